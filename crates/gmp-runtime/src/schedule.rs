//! The M side of the scheduler: `mstart`, `schedule`, `findRunnable`, `execute`
//! (Go: runtime/proc.go, the half that runs on the M's own stack). The goroutine side
//! — parking, yielding, blocking calls — is `proc.rs`.
//!
//! # Switching (the park/commit protocol, go-runtime.md §8)
//!
//! A goroutine never publishes itself as wakeable while it is still running. To park,
//! it records what it wants in `G::action` and switches to its M's scheduler context
//! (Go: `mcall(park_m)`). Only there, with the goroutine's registers saved, does the
//! M commit the park (`ParkState::commit_park`, Go: the `unlockf` of `gopark`). From
//! that instant any thread may ready and resume the goroutine — possibly on another
//! M — so after the commit the scheduler touches nothing but its `Arc`.
//!
//! # Owning the P
//!
//! Scheduler code reaches the P's owner-only parts (local queue, caches) only through
//! an [`OwnedP`] from [`enter`], which the P's ownership word backs.
//!
//! # findRunnable, in Go's order
//!
//! 1. due timers of our own P, as many as its ring has room for ([`timer_room`]; Go
//!    fires them all, overflowing the rest to the global queue);
//! 2. every 61st tick, one goroutine from the global queue (fairness);
//! 3. `runnext`, then the local ring;
//!    - not Go's: the queue of a P that has not switched goroutines for 100 us while
//!      goroutines waited in it (its M preempted by the kernel, or a goroutine without
//!      a scheduling point; [`steal_from_stalled`], `stall.rs`);
//! 4. a batch from the global queue;
//! 5. a non-blocking network poll, if anyone waits on the poller — also while another
//!    M is blocked in it, unlike Go ([`poll_network`]); what it readies wakes at most
//!    one M, none for a lone goroutine ([`ready_polled`], tokio's rule);
//! 6. stealing, if already spinning or fewer than half the busy Ps have spinners:
//!    4 passes over the Ps in random order, timers and `runnext` only on the last;
//! 7. release the P, stop spinning (`nmspinning--`, then re-check every queue);
//! 8. sleep: in the poller if it has waiters and no other M is blocked in it, else on
//!    the M's note — in both cases only until the earliest timer.

use crate::g::{Action, GRef, Status, G};
use crate::m::{set_ctx, MCtx, M};
use crate::metrics::PStats;
use crate::p::{acquirep, enter, own_word, releasep, OwnedP, OWN_IDLE, OWN_USER};
use crate::sched::{work_anywhere, Release, Sched};
use crate::stall::Verdict;
use crate::timers::{self, nanos};
use gmp_core::coroutine::Resume;
use gmp_core::park::Unparker;
use gmp_core::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Go: `mstart`. The body of every M thread.
pub(crate) fn mstart(sched: Arc<Sched>, m: Arc<M>, p: Option<usize>, spinning: bool) {
    sched.allm.lock().push(Arc::downgrade(&m));
    crate::m::precise_timer_wakeups();
    let ctx = MCtx::new(m, sched.clone());
    set_ctx(&ctx);
    // `execute` resumes goroutines with `resume_with_initial_fp`, which does not save
    // this thread's FP control state (`stmxcsr` was a seventh of a yield) and sets the
    // initial one on every switch back; so this thread runs with the initial state
    // from here on, whatever it inherited from the thread that created it.
    gmp_core::coroutine::set_initial_fp_control();
    let prev_hook = gmp_core::park::set_hook(Some(&crate::proc::HOOK));
    if let Some(p) = p {
        acquirep(&ctx, p);
        ctx.spinning.set(spinning);
    }
    schedule(&ctx);
    crate::trace::m_state(&ctx, None);
    sched.transition_from_spinning(&ctx);
    if ctx.p.get().is_some() {
        let p = releasep(&ctx);
        sched.pidleput(p);
    }
    gmp_core::park::set_hook(prev_hook);
    set_ctx(std::ptr::null());
    // No goroutine's G may stay in this thread's channel cache past the shutdown.
    gmp_chan::runtime_support::clear_thread_cache();
    sched.count_m_exited();
}

/// Go: `schedule`. Finds a goroutine and runs it, forever (until shutdown).
///
/// Always inlined into `mstart`, its one caller: left to the compiler, an unrelated
/// change elsewhere (gmp-chan's channel counts) flipped the decision and a yield went
/// 17.4 -> 20.1 ns (interleaved direct runs; the profile's top symbol moved from
/// `mstart` to `schedule` and `back_in_scheduler` grew 8% -> 12%).
#[inline(always)]
fn schedule(c: &MCtx) {
    while let Some((g, inherit)) = find_runnable(c) {
        if c.spinning.get() {
            reset_spinning(c);
        }
        execute(c, g, inherit);
    }
}

/// Go: `resetspinning`. A spinner found work: stop spinning and, if it was the
/// last spinner, wake another M to look for more.
fn reset_spinning(c: &MCtx) {
    c.sched.transition_from_spinning(c);
    // Go wakes another M whether or not we were the last spinner: work that made us
    // stop may have more behind it, and `wakep` returns at once if someone spins.
    c.sched.wakep();
}

/// Go: `execute` + the return half of `mcall`. Runs `g` until it suspends or ends.
fn execute(c: &MCtx, g: GRef, inherit: bool) {
    let p = c.p.get().expect("gmp: execute without a P");
    let pp = &c.sched.allp[p];
    if !inherit {
        pp.tick();
    }
    pp.count_switch();
    g.set_status(Status::Running);
    c.curg.set(Arc::as_ptr(&g));
    crate::trace::go_start(c, p, &g);
    // Relaxed: read only by dumps and `scheddetail`.
    c.m.curg_id.store(g.id, Ordering::Relaxed);
    // Release: the P may be retaken by sysmon from here on; it must see our writes.
    pp.own.store(own_word(c.m.id, OWN_USER), Ordering::Release);
    // SAFETY: we took `g` from a run queue (or re-run it after a failed park commit),
    // so we are its unique owner (g.rs module docs).
    let slot = unsafe { g.co() };
    if slot.is_none() {
        match crate::spawn::start_goroutine(&g) {
            Ok(co) => *slot = Some(co),
            Err((entry, e)) => {
                // No stack: the body reports the error to `join` without running.
                back_in_scheduler(c);
                entry.start(g.id, Some(e));
                gdestroy(c, g);
                return;
            }
        }
    }
    let co = slot
        .as_mut()
        .expect("gmp: a runnable goroutine has no coroutine");
    // The M has the initial FP control state (set in `mstart`); the goroutine's own is
    // saved and restored by the switch as always.
    let r = co.resume_with_initial_fp();
    crate::trace::go_stop(c);
    // Back on the scheduler stack, on this same M.
    back_in_scheduler(c);
    match r {
        Resume::Suspended => after_suspend(c, g),
        Resume::Returned(()) => gdestroy(c, g),
        Resume::Panicked(payload) => {
            // The goroutine body catches user panics itself (they go to `join`), so
            // this is a panic in the runtime's own wrapper or a forced unwind.
            gdestroy(c, g);
            if !gmp_core::coroutine::is_forced_unwind(&*payload) {
                eprintln!("gmp: internal error: a goroutine's entry wrapper panicked");
            }
        }
    }
}

/// Back in scheduler code after running a goroutine: take the P back for runtime
/// work (or learn that sysmon took it) and forget the goroutine.
fn back_in_scheduler(c: &MCtx) {
    let owned = enter(c);
    c.curg.set(std::ptr::null());
    c.m.curg_id.store(0, Ordering::Relaxed);
    // With no goroutine running, the drop leaves the P in state RUNTIME: ours.
    drop(owned);
}

/// The scheduler's half of `gopark`/`goyield`: carry out what the goroutine asked for.
fn after_suspend(c: &MCtx, g: GRef) {
    let sched = &c.sched;
    match g.action.take() {
        Action::Park { deadline } => {
            if g.registry_slot.get() == crate::g::NO_SLOT {
                // First park: from now on only the registry can find this G at
                // shutdown (registry.rs). Goroutines that never park never pay for it.
                let shard = c.p.get().unwrap_or(g.id as usize);
                let slot = sched.registry.insert(shard, &g);
                g.registry_slot.set(
                    u32::try_from(slot)
                        .ok()
                        .filter(|&s| s != crate::g::NO_SLOT)
                        .expect("gmp: more than 4 billion goroutines in the registry"),
                );
            }
            // The coarse clock, as sysmon last read it: a park must not pay for a clock
            // read (a precise one was 12% of a channel ping-pong), the dump shows minutes.
            g.parked_at
                .store(timers::park_stamp(sched), Ordering::Relaxed);
            crate::trace::go_park(c, &g);
            g.set_status(Status::Waiting);
            // Release: a timer armed below with this seq is valid only if the G is
            // still in this park (timers.rs `fire` acquires it).
            // Only the owner writes `park_seq`: a load and a store, no locked RMW.
            let seq = g.park_seq.load(Ordering::Relaxed) + 1;
            g.park_seq.store(seq, Ordering::Release);
            let timer_g = match G::commit_park(g, deadline.is_some()) {
                Ok(timer_g) => timer_g,
                Err(g) => {
                    // An unpark slipped in between the goroutine's check and the commit:
                    // do not sleep; run it again next, inheriting the time slice.
                    g.set_status(Status::Runnable);
                    put_local(c, g, true);
                    return;
                }
            };
            // Committed: from here another M may already be running the G. An untimed
            // park kept our reference for its waker; a timed one gave it back for the
            // timer.
            if let (Some(d), Some(g)) = (deadline, timer_g) {
                let pi = c.p.get().unwrap_or(g.id as usize % sched.nprocs());
                match enter(c) {
                    Some(p) => PStats::bump(&p.p().stats.timers_armed),
                    None => {
                        sched.stats.timers_armed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if sched.allp[pi].timers.add_nanos(d, seq, g) {
                    sched.wake_for_timer(d);
                }
            }
        }
        Action::Yield => {
            g.set_status(Status::Runnable);
            put_local(c, g, false);
        }
        Action::Requeue => {
            g.set_status(Status::Runnable);
            sched.global.push(g);
            sched.wakep();
        }
        Action::None => panic!(
            "gmp: internal error: goroutine {} suspended without a reason",
            g.id
        ),
    }
}

/// Runnable G from the scheduler: to our P's queue, or globally if we have none.
fn put_local(c: &MCtx, g: GRef, next: bool) {
    let sched = &c.sched;
    match enter(c) {
        Some(p) if next => p.local().push_next(g, &sched.global),
        Some(p) => p.local().push(g, &sched.global),
        None => {
            sched.global.push(g);
            sched.wakep();
        }
    }
}

/// Go: `goexit0` + `gdestroy`. The goroutine's body has returned.
fn gdestroy(c: &MCtx, g: GRef) {
    let sched = &c.sched;
    g.set_status(Status::Dead);
    // SAFETY: the goroutine has finished on this M; nobody else can run it.
    let co = unsafe { g.co() }.take();
    let owned = enter(c);
    if let Some(stack) = co.and_then(|co| co.into_stack()) {
        if stack.size() == sched.stack_pool.stack_size() {
            let full = match &owned {
                Some(p) => p.cache_stack(stack).err(),
                None => Some(stack),
            };
            if let Some(stack) = full {
                sched.stack_pool.put(stack);
            }
        }
    }
    if g.registry_slot.get() != crate::g::NO_SLOT {
        sched.registry.remove(g.registry_slot.get() as usize);
    }
    match &owned {
        Some(p) => sched.count_goroutine_owned(p.id(), -1),
        None => sched.goroutine_exited_unowned(),
    }
    // Go: `gfput`. Keep the G for the next spawn if nobody else holds it (no join
    // handle, no timer entry, no unparker). The record of the goroutine's last blocking
    // channel operation, cached on this M, keeps an unparker of it: let it go.
    gmp_chan::runtime_support::forget_waiter(Arc::as_ptr(&g) as *const ());
    let mut g = g;
    if let Some(p) = &owned {
        if Arc::get_mut(&mut g).is_some() {
            p.cache_g(g);
        }
    }
}

/// Ends a time slice that sysmon asked to end (`P::preempt`): `g`, just taken from
/// `runnext`, goes to the back of the global queue (Go: `gopreempt_m` →
/// `goschedImpl`, `globrunqput`), and the ring's head runs in a fresh slice (`None` if
/// the ring is empty: look again, and the global queue's head runs). Out of line: the
/// `runnext` path only loads the flag.
///
/// Not the back of our ring: two pairs handing `runnext` back and forth on one P would
/// then take turns through the ring for ever, and the global queue, looked at first
/// only every 61st fresh slice (one per 10 ms here), would wait minutes — a hog's
/// goroutine queued there never ran (the soak's hang, seed 1796464216620327170).
#[cold]
#[inline(never)]
fn end_slice(
    sched: &Arc<crate::sched::Sched>,
    pp: &crate::p::P,
    local: &gmp_queue::Local<GRef>,
    g: GRef,
) -> Option<GRef> {
    // Only the owner clears the flag, so a load and a store suffice (a request sysmon
    // makes between them is the same request).
    pp.preempt.store(false, Ordering::Relaxed);
    sched.global.push(g);
    // An idle P may take it at once (Go's `goschedImpl` wakes one too).
    sched.wakep();
    local.pop().map(|(g, _)| g)
}

/// Go: `findRunnable`. Returns `None` only at shutdown.
fn find_runnable(c: &MCtx) -> Option<(GRef, bool)> {
    let sched = &c.sched;
    loop {
        if sched.is_shutdown() {
            return None;
        }
        let Some(owned) = enter(c) else {
            // We lost our P (retaken while a goroutine ran): get one, or sleep.
            sleep_for_p(c)?;
            continue;
        };
        let (p, pp, local) = (owned.id(), owned.p(), owned.local());

        // 1. Our own timers.
        if pp.timers.next() != u64::MAX {
            let now = nanos(Instant::now());
            let fired = pp.timers.run(now, timer_room(local), |g| {
                ready_from_timer(sched, local, g)
            });
            count_fired(pp, fired);
        }
        // 2. Fairness: every 61st tick, the global queue first.
        if pp.schedtick.load(Ordering::Relaxed) % 61 == 0 && !sched.global.is_empty() {
            if let Some(g) = sched.global.pop() {
                return Some((g, false));
            }
        }
        // 3. runnext, then the ring.
        if let Some((g, inherit)) = local.pop() {
            // One time slice has lasted 10 ms through `runnext` hand-offs (sysmon set
            // `preempt`): end it; `g` queues behind everything else (`end_slice`).
            if inherit && pp.preempt.load(Ordering::Relaxed) {
                match end_slice(sched, pp, local, g) {
                    Some(g) => return Some((g, false)),
                    None => continue,
                }
            }
            return Some((g, inherit));
        }
        // 3b. Not Go's: the queue of a P whose M has stopped switching (`stall.rs`).
        if let Some(g) = steal_from_stalled(c, &owned) {
            PStats::bump(&pp.stats.steals);
            return Some((g, false));
        }
        // 4. A global batch.
        if !sched.global.is_empty() {
            if let Some(g) = sched.global.pop_batch_into(local, sched.nprocs()) {
                return Some((g, false));
            }
        }
        // 5. Non-blocking network poll.
        if let Some(g) = poll_network(c, local, Some(Duration::ZERO)) {
            return Some((g, false));
        }
        // 6. Steal.
        if sched.transition_to_spinning(c) {
            crate::trace::m_state(c, crate::trace::SPINNING);
            if let Some(g) = steal_work(c, &owned) {
                PStats::bump(&pp.stats.steals);
                return Some((g, false));
            }
        }
        // 7. Nothing: give up the P.
        if sched.is_shutdown() {
            return None;
        }
        drop(owned);
        let was_spinning = c.spinning.replace(false);
        match sched.release_p(p, was_spinning) {
            Release::Keep => {
                c.spinning.set(was_spinning);
                if let Some(p) = enter(c) {
                    if let Some(g) = sched.global.pop_batch_into(p.local(), sched.nprocs()) {
                        return Some((g, false));
                    }
                }
                continue;
            }
            Release::Reacquired(p2) => {
                c.p.set(None);
                acquirep(c, p2);
                c.spinning.set(true);
                continue;
            }
            Release::Spin => {
                c.spinning.set(true);
                continue;
            }
            Release::Released => c.p.set(None),
        }
        // 8. Sleep until there is work for us.
        sleep_for_p(c)?;
    }
}

/// Adds `n` fired timers to the counters of P `pp`, which the caller owns.
fn count_fired(pp: &crate::p::P, n: usize) {
    if n > 0 {
        let c = &pp.stats.timers_fired;
        c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
    }
}

/// How many due timers a P fires into its queue at once: as many as its ring has room
/// for (and at least one). The rest stay in the heap, earliest deadline first, and fire
/// at the P's next scheduling points. Firing them all would overflow the ring to the
/// *tail* of the global queue, behind every goroutine queued there (a burst of spawns),
/// where a woken sleeper waited up to 100 ms (p99 of the timers workload).
fn timer_room(local: &gmp_queue::Local<GRef>) -> usize {
    local.capacity().saturating_sub(local.len()).max(1)
}

/// Go: `goroutineReady` → `ready(gp, 0, true)`. A goroutine woken by a timer goes to
/// `runnext` of the P that ran the timer, so it runs next: its sleep ends as close to
/// its deadline as the running goroutine allows, instead of behind the whole queue
/// (with 100,000 sleepers on 2 Ps, joining the tail made a 1 ms sleep 23 ms late on
/// average, against Go's 3.4 ms). When several fire at once, each displaces the one
/// before to the tail of the ring, as in Go.
fn ready_from_timer(sched: &Arc<Sched>, local: &gmp_queue::Local<GRef>, g: GRef) {
    crate::trace::go_unpark(sched, &g);
    g.set_status(Status::Runnable);
    local.push_next(g, &sched.global);
}

/// Go: `netpoll` + `injectglist`. Returns one goroutine to run if the poll readied
/// any (the rest are in our queue).
///
/// Unlike Go's `findRunnable`, which skips this poll while another M is blocked in the
/// poller (`sched.lastpoll == 0`: "only an optimization before stealing"), we poll
/// anyway. The blocked M is another thread, and when events arrive the kernel wakes it
/// but must also find it a CPU: with the server's Ms and its clients sharing the CPUs,
/// that thread waited behind them while this M, on a CPU already, could not look at
/// the events and went on to steal, give up its P and sleep, for the blocked M to wake
/// into the idle P. Reaping them here serves the request on the M that is running.
/// HTTP (`wrk -t2 -c100`, 2 CPUs, 5 interleaved rounds): p75 686-744 -> 453-498 us,
/// p90 1.23-1.33 -> 0.90-1.03 ms, p99 2.09-2.63 -> 1.88-2.35 ms, 202k-212k ->
/// 211k-223k req/s (tokio 214k-219k, p75 565-593 us, same rounds;
/// `bench-results/profiles/network-cpu-budget.txt` section 6). The poller's waker is
/// level-triggered and only a blocking poll drains it (gmp-netpoll `waker.rs`), so this
/// poll never takes a wake-up meant for the blocked M.
fn poll_network(
    c: &MCtx,
    local: &gmp_queue::Local<GRef>,
    timeout: Option<Duration>,
) -> Option<GRef> {
    let poller = crate::netpoll_poller_if_started()?;
    if !poller.has_waiters() {
        return None;
    }
    let mut ready: Vec<Unparker> = Vec::new();
    let _ = poller.poll(timeout, &mut ready);
    c.sched
        .last_poll
        .store(nanos(Instant::now()), Ordering::Relaxed);
    if ready.is_empty() {
        return None;
    }
    ready_polled(c, ready);
    local.pop().map(|(g, _)| g)
}

/// Readies the goroutines a network poll returned into our P — the last into `runnext`,
/// the others to the ring — and wakes at most one M for them, and none for one
/// goroutine: we run it next. Go's `injectglist` starts an M per goroutine while Ps
/// are idle; here each `ready` would call `wakep`, and the M it woke for a lone
/// goroutine found it in our `runnext` (stolen only after a back-off) and went back to
/// its futex. tokio has the same rule: a worker back from the driver notifies another
/// only if its queue holds more than its LIFO slot. Per echo round trip (perf's
/// syscall tracepoints on the server, 3 interleaved rounds): `futex` 0.019-0.021 ->
/// 0.009-0.010 (tokio 0.011-0.012), context switches 0.051-0.053 -> 0.038-0.046; echo
/// and http rates level, http p75 534-553 -> 655-672 us (one M serves a lone request
/// where two took turns), p99 level (`bench-results/profiles/http-netpark.txt`). The
/// caller holds a P.
fn ready_polled(c: &MCtx, ready: Vec<Unparker>) {
    /// Ends the batch even if an unpark unwinds.
    struct Batch<'a>(&'a MCtx);
    impl Drop for Batch<'_> {
        fn drop(&mut self) {
            self.0.batch_ready.set(false);
        }
    }
    let n = ready.len();
    c.batch_ready.set(true);
    let batch = Batch(c);
    for u in ready {
        u.unpark();
    }
    drop(batch);
    if n > 1 {
        // `wakep`, not `wakep_after_push_next`: the goroutines moved to the ring were
        // published by Release stores, which its fence orders before its reads of the
        // spinning and idle counts. (`n` counts every waiter the poll returned; one of
        // another runtime or a plain thread at most costs a needless `wakep`.)
        c.sched.wakep();
    }
}

/// Takes goroutines from a P that has not switched for [`crate::stall::STALL_NS`] while
/// they waited in its queue (`stall.rs`): half of its ring, or its `runnext` once the
/// ring is empty — without `steal_work`'s back-off, which is for a victim about to run
/// what it just readied, and this one has not run anything for that long. Each look is
/// a few Relaxed loads of the other Ps' words; the clock is read only for a P seen
/// twice at one `switchtick` with goroutines queued.
fn steal_from_stalled(c: &MCtx, owned: &OwnedP<'_>) -> Option<GRef> {
    let sched = &c.sched;
    let n = sched.nprocs();
    if n == 1 {
        return None;
    }
    let (p, local) = (owned.id(), owned.local());
    let mut now = 0;
    let mut clock = || {
        if now == 0 {
            // At least 1: 0 means "not read yet", here and in `StallWatch`.
            now = nanos(Instant::now()).max(1);
        }
        now
    };
    for v in 0..n {
        if v == p {
            continue;
        }
        let vp = &sched.allp[v];
        // Relaxed: a progress hint, as for sysmon; a wrong guess costs one early steal
        // (safe: `steal_into` is the stealers' own protocol) or one late one.
        let tick = vp.switchtick.load(Ordering::Relaxed);
        let queued = vp.state() != OWN_IDLE && !vp.stealer.is_empty();
        if c.stalls.look(n, v, tick, queued, &mut clock) == Verdict::Stalled {
            if let Some(g) = vp.stealer.steal_into(local, true) {
                crate::trace::steal(c, p, v, &g, local.len());
                return Some(g);
            }
        }
    }
    None
}

/// Go: `stealWork`. Four passes over the other Ps in random order; timers and
/// `runnext` only on the last.
fn steal_work(c: &MCtx, owned: &OwnedP<'_>) -> Option<GRef> {
    let sched = &c.sched;
    let n = sched.nprocs();
    if n == 1 {
        return None;
    }
    let (p, local) = (owned.id(), owned.local());
    for pass in 0..4 {
        let last = pass == 3;
        // Go: randomOrder — a random start and a random stride coprime with n.
        let start = (c.rand() % n as u64) as usize;
        let stride = coprime_stride(n, c.rand());
        let now = if last { nanos(Instant::now()) } else { 0 };
        for k in 0..n {
            if sched.is_shutdown() {
                return None;
            }
            let v = (start + k * stride) % n;
            if v == p {
                continue;
            }
            let vp = &sched.allp[v];
            if last && vp.timers.next() <= now {
                let fired = vp.timers.run(now, timer_room(local), |g| {
                    ready_from_timer(sched, local, g)
                });
                count_fired(owned.p(), fired);
                if let Some((g, _)) = local.pop() {
                    return Some(g);
                }
            }
            if vp.state() == OWN_IDLE {
                // Go skips idle Ps: their queues are empty.
                continue;
            }
            if let Some(g) = vp.stealer.steal_into(local, false) {
                crate::trace::steal(c, p, v, &g, local.len());
                return Some(g);
            }
            if last && !vp.stealer.is_empty() {
                // Only `runnext` is left. Go: runqgrab's back-off — if the victim is
                // running, it usually runs the goroutine it just readied within a few
                // microseconds (a channel handoff takes ~100 ns); stealing it at once
                // would bounce a communicating pair between Ps. Sleep, as Go does, rather
                // than spin: the spinner stays counted as spinning, so every `ready`
                // meanwhile finds a spinner and wakes no M, and the sleeping thread leaves
                // its CPU to the victim's M (on a VM that packs both threads onto one
                // vCPU, a spin took the victim's CPU away). Measured on 2 Ps against a
                // 128-`pause` spin (~1.4 µs), interleaved: pingpong 498-557 -> 387-390
                // ns, spawn 690-721 -> 535-546 ns, waitgroup 348-372 -> 294-326 ns;
                // mpmc0, skynet, timers, echo and http within noise.
                if vp.state() == crate::p::OWN_USER {
                    std::thread::sleep(RUNNEXT_BACKOFF);
                }
                if let Some(g) = vp.stealer.steal_into(local, true) {
                    crate::trace::steal(c, p, v, &g, local.len());
                    return Some(g);
                }
            }
        }
    }
    None
}

/// Go: the `usleep(3)` in `runqgrab` before stealing `runnext`. Go's sleep lasts some
/// 50 µs more than it asks, the kernel's default timer slack; an M runs with no slack
/// (m.rs `precise_timer_wakeups`), so the back-off asks for what it took in practice.
/// Asking for 3 µs here made the sleep 3-8 µs and the spinner steal a ping-pong pair's
/// `runnext` apart: pingpong on 2 Ps 358-404 -> 431-485 ns.
const RUNNEXT_BACKOFF: Duration = Duration::from_micros(50);

fn coprime_stride(n: usize, r: u64) -> usize {
    let mut s = (r as usize % n).max(1);
    while gcd(s, n) != 1 {
        s = s % n + 1;
    }
    s
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The M has no P: sleep until handed one (or a timer is due and a P is free).
/// Returns `None` at shutdown.
fn sleep_for_p(c: &MCtx) -> Option<()> {
    let sched = &c.sched;
    loop {
        if sched.is_shutdown() {
            return None;
        }
        if c.p.get().is_some() {
            return Some(());
        }
        let next = sched
            .allp
            .iter()
            .map(|pp| pp.timers.next())
            .min()
            .unwrap_or(u64::MAX);
        let now = nanos(Instant::now());
        if (next <= now || work_anywhere(sched)) && sched.npidle.load(Ordering::SeqCst) > 0 {
            if let Some(p) = sched.pidleget() {
                acquirep(c, p);
                return Some(());
            }
        }
        // Sleep until the earliest timer. One that is already due but that we could
        // not serve (every P busy: their owners run their own timers at their next
        // schedule) must not make us spin: then look again in 1 ms.
        let wake_at = if next <= now { now + 1_000_000 } else { next };
        let deadline = (next != u64::MAX).then(|| timers::instant(wake_at));
        if let Some(d) = deadline {
            sched.sleep_until.fetch_min(nanos(d), Ordering::SeqCst);
        }
        // Block in the poller if anyone waits on it and nobody else is blocked there.
        if let Some(poller) = crate::netpoll_poller_if_started() {
            if poller.has_waiters() && !poller.is_polling() {
                let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let mut ready: Vec<Unparker> = Vec::new();
                crate::trace::m_state(c, crate::trace::NETPOLL);
                sched.last_poll_blocked.store(true, Ordering::SeqCst);
                let _ = poller.poll(timeout, &mut ready);
                sched.last_poll_blocked.store(false, Ordering::SeqCst);
                crate::trace::m_state(c, None);
                sched
                    .last_poll
                    .store(nanos(Instant::now()), Ordering::Relaxed);
                sched.sleep_until.store(u64::MAX, Ordering::SeqCst);
                if !ready.is_empty() {
                    if let Some(p) = sched.pidleget() {
                        acquirep(c, p);
                        ready_polled(c, ready);
                    } else {
                        // No P: onto the global queue, each with a `wakep`.
                        for u in ready {
                            u.unpark();
                        }
                    }
                }
                continue;
            }
        }
        // Another thread (perhaps of another runtime sharing the process's poller) is
        // blocked in the poller for our waiters: never rely on it alone — it may stop
        // polling for good (its runtime shuts down). Look again every 10 ms.
        let deadline = match crate::netpoll_poller_if_started() {
            Some(poller) if poller.has_waiters() => {
                let cap = Instant::now() + Duration::from_millis(10);
                Some(deadline.map_or(cap, |d| d.min(cap)))
            }
            _ => deadline,
        };
        crate::trace::m_state(c, crate::trace::IDLE);
        let woke = sched.stopm(&c.m, deadline);
        crate::trace::m_state(c, None);
        sched.sleep_until.store(u64::MAX, Ordering::SeqCst);
        if let Some((p, spinning)) = woke {
            acquirep(c, p);
            c.spinning.set(spinning);
            return Some(());
        }
    }
}
