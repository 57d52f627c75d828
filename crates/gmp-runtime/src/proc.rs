//! The scheduling loop: `mstart`, `schedule`, `findRunnable`, `execute`, and the
//! goroutine side of parking (Go: runtime/proc.go).
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
//! # findRunnable, in Go's order
//!
//! 1. due timers of our own P;
//! 2. every 61st tick, one goroutine from the global queue (fairness);
//! 3. `runnext`, then the local ring;
//! 4. a batch from the global queue;
//! 5. a non-blocking network poll, if anyone waits on the poller;
//! 6. stealing, if already spinning or fewer than half the busy Ps have spinners:
//!    4 passes over the Ps in random order, timers and `runnext` only on the last;
//! 7. release the P, stop spinning (`nmspinning--`, then re-check every queue);
//! 8. sleep: in the poller if it has waiters and nobody else polls, else on the M's
//!    note — in both cases only until the earliest timer.

use crate::g::{Action, GRef, Status, WaitReason, G};
use crate::m::{self, set_ctx, MCtx, M};
use crate::p::{own_word, OWN_IDLE, OWN_USER, STACK_CACHE};
use crate::sched::{acquirep, enter, releasep, work_anywhere, Release, Sched};
use crate::timers::{self, nanos};
use gmp_core::coroutine::Resume;
use gmp_core::park::{ParkHook, Unparker};
use gmp_core::sync::atomic::Ordering;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Go: `mstart`. The body of every M thread.
pub(crate) fn mstart(sched: Arc<Sched>, m: Arc<M>, p: Option<usize>, spinning: bool) {
    let ctx = MCtx::new(m, sched.clone());
    set_ctx(&ctx);
    let prev_hook = gmp_core::park::set_hook(Some(&HOOK));
    if let Some(p) = p {
        acquirep(&ctx, p);
        ctx.spinning.set(spinning);
    }
    schedule(&ctx);
    if ctx.spinning.replace(false) {
        sched.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }
    if ctx.p.get().is_some() {
        let p = releasep(&ctx);
        sched.pidleput(p);
    }
    gmp_core::park::set_hook(prev_hook);
    set_ctx(std::ptr::null());
    sched.mcount.fetch_sub(1, Ordering::Relaxed);
    crate::sched::ALL_M.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

/// Go: `schedule`. Finds a goroutine and runs it, forever (until shutdown).
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
    c.spinning.set(false);
    let prev = c.sched.nmspinning.fetch_sub(1, Ordering::SeqCst);
    debug_assert!(prev > 0, "gmp: nmspinning underflow");
    c.sched.wakep();
}

/// Go: `execute` + the return half of `mcall`. Runs `g` until it suspends or ends.
fn execute(c: &MCtx, g: GRef, inherit: bool) {
    let sched = &c.sched;
    let p = c.p.get().expect("gmp: execute without a P");
    let pp = &sched.allp[p];
    if !inherit {
        pp.tick();
    }
    g.set_status(Status::Running);
    c.curg.set(Arc::as_ptr(&g));
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
                enter(c);
                c.curg.set(std::ptr::null());
                entry.start(Some(e));
                gdestroy(c, g);
                return;
            }
        }
    }
    let co = slot
        .as_mut()
        .expect("gmp: a runnable goroutine has no coroutine");
    let r = co.resume();
    // Back on the scheduler stack, on this same M.
    enter(c);
    c.curg.set(std::ptr::null());
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

/// The scheduler's half of `gopark`/`goyield`: carry out what the goroutine asked for.
fn after_suspend(c: &MCtx, g: GRef) {
    let sched = &c.sched;
    match g.action.replace(Action::None) {
        Action::Park { deadline, reason } => {
            if g.registry_slot.get() == usize::MAX {
                // First park: from now on only the registry can find this G at
                // shutdown (registry.rs). Goroutines that never park never pay for it.
                let shard = c.p.get().unwrap_or(g.id as usize);
                g.registry_slot.set(sched.registry.insert(shard, &g));
            }
            g.set_wait_reason(reason);
            g.set_status(Status::Waiting);
            // Release: a timer armed below with this seq is valid only if the G is
            // still in this park (timers.rs `fire` acquires it).
            // Only the owner writes `park_seq`: a load and a store, no locked RMW.
            let seq = g.park_seq.load(Ordering::Relaxed) + 1;
            g.park_seq.store(seq, Ordering::Release);
            if !g.park.commit_park() {
                // An unpark slipped in between the goroutine's check and the commit:
                // do not sleep; run it again next, inheriting the time slice.
                g.set_status(Status::Runnable);
                put_local(c, g, true);
                return;
            }
            // Committed: from here another M may already be running `g`.
            if let Some(d) = deadline {
                let pi = c.p.get().unwrap_or(g.id as usize % sched.nprocs());
                if sched.allp[pi].timers.add(d, seq, g) {
                    sched.wake_for_timer(nanos(d));
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
    match c.p.get() {
        Some(p) => {
            // SAFETY: in scheduler code with a P, this M owns it in state RUNTIME.
            let local = unsafe { sched.allp[p].local() };
            if next {
                local.push_next(g, &sched.global);
            } else {
                local.push(g, &sched.global);
            }
        }
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
    if let Some(stack) = co.and_then(|co| co.into_stack()) {
        if stack.size() == sched.stack_pool.stack_size() {
            match c.p.get() {
                // SAFETY: in scheduler code with a P, this M owns it.
                Some(p) if unsafe { sched.allp[p].stacks() }.len() < STACK_CACHE => {
                    // SAFETY: as above.
                    unsafe { sched.allp[p].stacks() }.push(stack)
                }
                _ => sched.stack_pool.put(stack),
            }
        }
    }
    if g.registry_slot.get() != usize::MAX {
        sched.registry.remove(g.registry_slot.get());
    }
    sched.goroutine_exited();
    // Go: `gfput`. Keep the G for the next spawn if nobody else holds it (no join
    // handle, no timer entry, no unparker).
    let mut g = g;
    if let Some(p) = c.p.get() {
        if Arc::get_mut(&mut g).is_some() {
            // SAFETY: in scheduler code with a P, this M owns it.
            let cache = unsafe { sched.allp[p].gfree() };
            if cache.len() < crate::p::G_CACHE {
                cache.push(g);
            }
        }
    }
}

/// Go: `findRunnable`. Returns `None` only at shutdown.
fn find_runnable(c: &MCtx) -> Option<(GRef, bool)> {
    let sched = &c.sched;
    loop {
        if sched.is_shutdown() {
            return None;
        }
        let Some(p) = c.p.get() else {
            // We lost our P (retaken while a goroutine ran): get one, or sleep.
            sleep_for_p(c)?;
            continue;
        };
        let pp = &sched.allp[p];
        // SAFETY: this M owns P `p` in state RUNTIME (scheduler code).
        let local = unsafe { pp.local() };

        // 1. Our own timers.
        if pp.timers.next() != u64::MAX {
            let now = nanos(Instant::now());
            pp.timers.run(now, |g| ready_from_timer(sched, local, g));
        }
        // 2. Fairness: every 61st tick, the global queue first.
        if pp.schedtick.load(Ordering::Relaxed) % 61 == 0 && !sched.global.is_empty() {
            if let Some(g) = sched.global.pop() {
                return Some((g, false));
            }
        }
        // 3. runnext, then the ring.
        if let Some((g, inherit)) = local.pop() {
            return Some((g, inherit));
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
        let busy = sched.nprocs() - sched.npidle.load(Ordering::SeqCst);
        if c.spinning.get() || 2 * sched.nmspinning.load(Ordering::SeqCst) < busy {
            if !c.spinning.get() {
                c.spinning.set(true);
                sched.nmspinning.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(g) = steal_work(c, p) {
                return Some((g, false));
            }
        }
        // 7. Nothing: give up the P.
        if sched.is_shutdown() {
            return None;
        }
        let was_spinning = c.spinning.replace(false);
        match sched.release_p(p, was_spinning) {
            Release::Keep => {
                c.spinning.set(was_spinning);
                if let Some(g) = sched.global.pop_batch_into(local, sched.nprocs()) {
                    return Some((g, false));
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

/// A goroutine woken by a timer joins the tail of the queue that ran the timer.
fn ready_from_timer(sched: &Arc<Sched>, local: &gmp_queue::Local<GRef>, g: GRef) {
    g.set_status(Status::Runnable);
    local.push(g, &sched.global);
}

/// Go: `netpoll` + `injectglist`. Returns one goroutine to run if the poll readied
/// any (the rest are in our queue).
fn poll_network(
    c: &MCtx,
    local: &gmp_queue::Local<GRef>,
    timeout: Option<Duration>,
) -> Option<GRef> {
    let poller = crate::netpoll_poller_if_started()?;
    if !poller.has_waiters() || poller.is_polling() {
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
    for u in ready {
        // Readies goroutines into this P (runnext, pushing the others to the ring).
        u.unpark();
    }
    local.pop().map(|(g, _)| g)
}

/// Go: `stealWork`. Four passes over the other Ps in random order; timers and
/// `runnext` only on the last.
fn steal_work(c: &MCtx, p: usize) -> Option<GRef> {
    let sched = &c.sched;
    let n = sched.nprocs();
    if n == 1 {
        return None;
    }
    // SAFETY: this M owns P `p` (scheduler code).
    let local = unsafe { sched.allp[p].local() };
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
                vp.timers.run(now, |g| ready_from_timer(sched, local, g));
                if let Some((g, _)) = local.pop() {
                    return Some(g);
                }
            }
            if vp.state() == OWN_IDLE {
                // Go skips idle Ps: their queues are empty.
                continue;
            }
            if let Some(g) = vp.stealer.steal_into(local, false) {
                return Some(g);
            }
            if last && !vp.stealer.is_empty() {
                // Only `runnext` is left. Go: runqgrab's back-off — if the victim is
                // running, it usually runs the goroutine it just readied within a few
                // microseconds (a channel handoff takes ~100 ns); stealing it at once
                // would bounce a communicating pair between Ps. A bounded spin without
                // clock reads (Go sleeps 3 µs; a sleep costs us a syscall).
                if vp.state() == crate::p::OWN_USER {
                    for _ in 0..RUNNEXT_BACKOFF_SPINS {
                        std::hint::spin_loop();
                    }
                }
                if let Some(g) = vp.stealer.steal_into(local, true) {
                    return Some(g);
                }
            }
        }
    }
    None
}

/// Go: the `usleep(3)` in `runqgrab` before stealing `runnext`, as `pause` spins
/// (about 1–3 µs on current x86).
const RUNNEXT_BACKOFF_SPINS: u32 = 128;

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
                sched.last_poll_blocked.store(true, Ordering::SeqCst);
                let _ = poller.poll(timeout, &mut ready);
                sched.last_poll_blocked.store(false, Ordering::SeqCst);
                sched
                    .last_poll
                    .store(nanos(Instant::now()), Ordering::Relaxed);
                sched.sleep_until.store(u64::MAX, Ordering::SeqCst);
                if !ready.is_empty() {
                    if let Some(p) = sched.pidleget() {
                        acquirep(c, p);
                    }
                    for u in ready {
                        u.unpark();
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
        let woke = sched.stopm(&c.m, deadline);
        sched.sleep_until.store(u64::MAX, Ordering::SeqCst);
        if let Some((p, spinning)) = woke {
            acquirep(c, p);
            c.spinning.set(spinning);
            return Some(());
        }
    }
}

/// The park hook the runtime installs on every M: a goroutine parks by switching
/// out; the scheduler code itself never parks through it.
struct Hook;

static HOOK: Hook = Hook;

impl ParkHook for Hook {
    fn current(&self) -> Option<Unparker> {
        // While unwinding, a goroutine waits as its thread does (see `park`).
        let g = current_g().filter(|_| !std::thread::panicking())?;
        Some(G::arc(g).unparker())
    }

    fn in_goroutine(&self) -> bool {
        current_g().is_some() && !std::thread::panicking()
    }

    fn park(&self, deadline: Option<Instant>) -> bool {
        match current_g() {
            Some(_) if std::thread::panicking() => {
                // Unwinding: std's panic count is thread-local, so the goroutine must
                // not move to another M. Block this M instead (`current` handed out
                // the thread's unparker), as a blocking call, so its P is handed on.
                blocking_call(|| gmp_core::park::park_thread(deadline));
                true
            }
            Some(g) => {
                park_current(g, deadline, WaitReason::Park);
                true
            }
            None => false,
        }
    }
}

/// The goroutine running on this thread, if any. The reference is valid only until
/// the goroutine next suspends (it may then move to another M; the G itself lives on,
/// but callers should re-fetch).
///
/// Inside `blocking(f)` this is `None`: `f` runs as plain-thread code (a channel
/// operation or a join inside it blocks the M, whose P sysmon has handed on), so that
/// a goroutine never parks while its M is in a system call.
pub(crate) fn current_g() -> Option<&'static G> {
    let g = running_g()?;
    (g.status() != Status::Syscall).then_some(g)
}

/// The goroutine running on this thread, also inside `blocking` (for its identity).
pub(crate) fn running_g() -> Option<&'static G> {
    let c = m::ctx()?;
    let g = c.curg()?;
    // SAFETY: the G is kept alive by the `Arc` its M holds while running it, and the
    // running goroutine is the caller: the G outlives this call frame's use of it.
    Some(unsafe { &*(g as *const G) })
}

/// The goroutine the caller runs as: the running one (also inside `blocking`), or
/// the one a shutdown is unwinding on this thread. For its identity only.
pub(crate) fn identity_g() -> Option<&'static G> {
    if let Some(g) = running_g() {
        return Some(g);
    }
    let (g, _) = UNWINDING.with(|u| u.get());
    // SAFETY: `unwind_goroutine` keeps the G alive while it is published, and only
    // code running on that G's stack (this thread, during the unwind) can observe it.
    (!g.is_null()).then(|| unsafe { &*g })
}

/// `JoinHandle::abort`, at a suspension point: unwinds the goroutine with an
/// [`Aborted`](crate::Aborted) payload if an abort was requested, unless it is already
/// unwinding (a destructor) or inside a region that must finish first (`scope`
/// waiting for its children). Raised once.
#[inline]
pub(crate) fn check_abort(g: &G) {
    // Relaxed: a hint read at every suspension point; the RMW below decides, and the
    // requester's unpark (a release/acquire edge through the park word) makes the
    // request visible at the park that follows it.
    if g.abort.load(Ordering::Relaxed) == crate::g::ABORT_REQUESTED {
        raise_abort(g);
    }
}

#[cold]
#[inline(never)]
fn raise_abort(g: &G) {
    if g.abort_mask.get() != 0 || std::thread::panicking() {
        return;
    }
    if g
        .abort
        .compare_exchange(
            crate::g::ABORT_REQUESTED,
            crate::g::ABORT_RAISED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        std::panic::resume_unwind(Box::new(crate::Aborted));
    }
}

/// Runs `f` with aborts of the running goroutine held back (they are raised at the
/// first suspension point after `f`): for waits that keep borrowed frames alive.
pub(crate) fn without_abort<R>(f: impl FnOnce() -> R) -> R {
    struct Unmask(Option<&'static G>);
    impl Drop for Unmask {
        fn drop(&mut self) {
            if let Some(g) = self.0 {
                g.abort_mask.set(g.abort_mask.get() - 1);
            }
        }
    }
    let g = running_g();
    if let Some(g) = g {
        g.abort_mask.set(g.abort_mask.get() + 1);
    }
    let unmask = Unmask(g);
    let r = f();
    drop(unmask);
    if let Some(g) = current_g() {
        check_abort(g);
    }
    r
}

/// Go: `gopark`. Parks the running goroutine `g` until its permit is available or
/// `deadline` passes (or spuriously).
pub(crate) fn park_current(g: &G, deadline: Option<Instant>, reason: WaitReason) {
    check_abort(g);
    if g.park.try_acquire() {
        return;
    }
    // `sleep` has just checked its deadline itself: spare it a second clock read.
    if reason != WaitReason::Sleep && deadline.is_some_and(|d| d <= Instant::now()) {
        return;
    }
    g.action.set(Action::Park { deadline, reason });
    suspend(g);
    g.park.finish_park();
    g.set_wait_reason(WaitReason::None);
    // Resumed, perhaps on another M: re-read nothing thread-local before this.
    check_abort(g);
}

/// Go: `goyield`: to the back of the local queue.
pub(crate) fn yield_current(g: &G) {
    check_abort(g);
    g.action.set(Action::Yield);
    suspend(g);
    check_abort(g);
}

/// Switches from goroutine `g` to its M's scheduler. Returns when `g` is resumed,
/// possibly on another M.
pub(crate) fn suspend(g: &G) {
    let s = g.suspender.get();
    assert!(
        !s.is_null(),
        "gmp: internal error: goroutine {} has no suspender",
        g.id
    );
    // SAFETY: the suspender lives on `g`'s own stack for the whole life of its body,
    // and we are running on that stack now.
    unsafe { (*s).suspend() };
}

/// Go: `entersyscall` … `exitsyscall`, around `f`.
pub(crate) fn blocking_call<R>(f: impl FnOnce() -> R) -> R {
    let Some(c) = m::ctx() else { return f() };
    let Some(g) = c.curg() else { return f() };
    if g.status() == Status::Syscall {
        // Nested `blocking`: already accounted for.
        return f();
    }
    let sched = c.sched.clone();
    let me = c.m.id;
    let p = enter(c);
    if let Some(p) = p {
        let pp = &sched.allp[p];
        pp.syscalltick.fetch_add(1, Ordering::Relaxed);
        g.set_status(Status::Syscall);
        // Release: sysmon may retake the P from now on.
        pp.own
            .store(own_word(me, crate::p::OWN_SYSCALL), Ordering::Release);
    } else {
        g.set_status(Status::Syscall);
    }
    sched.nsyscall.fetch_add(1, Ordering::SeqCst);
    sched.wake_sysmon();

    struct Exit<'a> {
        sched: &'a Arc<Sched>,
    }
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            exitsyscall(self.sched);
        }
    }
    let guard = Exit { sched: &sched };
    let r = f();
    drop(guard);
    // An abort that arrived during the call takes effect now that it has returned.
    if let Some(g) = current_g() {
        check_abort(g);
    }
    r
}

/// Go: `exitsyscall`. Keep our P if sysmon did not take it; else any idle P; else
/// requeue the goroutine globally and let this M sleep.
fn exitsyscall(sched: &Arc<Sched>) {
    sched.nsyscall.fetch_sub(1, Ordering::SeqCst);
    let c = m::ctx().expect("gmp: exitsyscall off an M");
    let g = c.curg().expect("gmp: exitsyscall without a goroutine");
    let me = c.m.id;
    if let Some(p) = c.p.get() {
        let pp = &sched.allp[p];
        // Acquire on success: we own the P again.
        if pp
            .own
            .compare_exchange(
                own_word(me, crate::p::OWN_SYSCALL),
                own_word(me, OWN_USER),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            g.set_status(Status::Running);
            return;
        }
        c.p.set(None);
    }
    // Slow path: any idle P.
    if let Some(p) = sched.pidleget() {
        acquirep(c, p);
        g.set_status(Status::Running);
        sched.allp[p]
            .own
            .store(own_word(me, OWN_USER), Ordering::Release);
        return;
    }
    if std::thread::panicking() {
        // Unwinding must stay on this thread (std's panic count is thread-local): run
        // on without a P, like a goroutine sysmon took the P from.
        g.set_status(Status::Running);
        return;
    }
    // Slowest: no P. Queue the goroutine and switch out; the M sleeps.
    g.action.set(Action::Requeue);
    suspend(g);
    // Resumed, on some M holding a P.
}

/// At a scheduling point: if the running goroutine's M lost its P while it ran user
/// code (sysmon retook it after 10 ms), switch out and get one back through the
/// scheduler (the goroutine is requeued globally). Only called where no runtime lock
/// is held.
pub(crate) fn resched_if_lost_p() {
    let Some(c) = m::ctx() else { return };
    if c.p.get().is_some() {
        return;
    }
    if std::thread::panicking() {
        return; // never migrate while unwinding (see `exitsyscall`)
    }
    if let Some(g) = c.curg().filter(|g| g.status() != Status::Syscall) {
        g.action.set(Action::Requeue);
        // SAFETY: `g` is the running goroutine: this is its own stack.
        let g: &G = unsafe { &*(g as *const G) };
        suspend(g);
    }
}

// ---------------------------------------------------------------------------------
// Shutdown's forced unwind (sched.rs `unwind_all`)
// ---------------------------------------------------------------------------------

/// How often a goroutine may swallow the shutdown's forced unwind (a `catch_unwind`
/// around a suspension point that does not rethrow) before the process aborts.
pub(crate) const MAX_SWALLOWED_UNWINDS: u32 = 100;

std::thread_local! {
    /// The goroutine being unwound on this thread by a shutdown, and how many times it
    /// has swallowed the unwind so far.
    static UNWINDING: Cell<(*const G, u32)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Runs `f` (which drops a suspended goroutine's coroutine, unwinding its stack) as
/// the shutdown's forced unwind of `g`, on the calling thread.
///
/// The goroutine's code runs here as on a plain thread — this thread's M context, if
/// it is an M of another runtime, is hidden for the duration, so that the goroutine
/// can never switch out through that runtime's scheduler — except that every
/// suspension point (a park through the hook, `yield_now`, `sleep`) raises the forced
/// unwind again if the goroutine caught it and carried on. After
/// [`MAX_SWALLOWED_UNWINDS`] the process aborts with a message naming the goroutine:
/// it would otherwise keep the shutdown waiting forever.
pub(crate) fn unwind_goroutine(g: &G, f: impl FnOnce()) {
    struct Restore(*const m::MCtx, Option<&'static dyn ParkHook>, (*const G, u32));
    impl Drop for Restore {
        fn drop(&mut self) {
            UNWINDING.with(|u| u.set(self.2));
            gmp_core::park::set_hook(self.1);
            set_ctx(self.0);
        }
    }
    let prev_ctx = set_ctx(std::ptr::null());
    let prev_hook = gmp_core::park::set_hook(Some(&UNWIND_HOOK));
    let prev = UNWINDING.with(|u| u.replace((g as *const G, 0)));
    let _restore = Restore(prev_ctx, prev_hook, prev);
    f();
}

/// Called at a suspension point reached without an M context: if this is a goroutine
/// being unwound by a shutdown that swallowed the unwind, raise it again.
#[inline(never)]
pub(crate) fn reraise_if_unwinding() {
    if std::thread::panicking() {
        // A destructor run by the unwind itself: it may wait as a thread does.
        return;
    }
    let (g, n) = UNWINDING.with(|u| u.get());
    if g.is_null() {
        return;
    }
    // SAFETY: `unwind_goroutine` holds an `Arc` of the G for as long as the pointer is
    // published, and we run on that G's stack.
    let g: &G = unsafe { &*g };
    if n >= MAX_SWALLOWED_UNWINDS {
        eprintln!(
            "gmp: goroutine {}{} caught the runtime's shutdown unwind {n} times without \
             rethrowing it; a catch_unwind around code that can suspend must \
             resume_unwind payloads for which gmp_runtime::is_forced_unwind is true. \
             Aborting.",
            g.id,
            g.name.as_deref().map(|n| format!(" ('{n}')")).unwrap_or_default(),
        );
        std::process::abort();
    }
    UNWINDING.with(|u| u.set((g as *const G, n + 1)));
    // The coroutine's forced-unwind flag is set: `suspend` raises it again at once.
    suspend(g);
}

/// The park hook of a thread running a shutdown's forced unwind.
struct UnwindHook;

static UNWIND_HOOK: UnwindHook = UnwindHook;

impl ParkHook for UnwindHook {
    fn current(&self) -> Option<Unparker> {
        None
    }

    fn park(&self, _deadline: Option<Instant>) -> bool {
        reraise_if_unwinding();
        // In a destructor: wait as a thread.
        false
    }
}

/// A plain-thread fallback used by `sleep` and friends.
pub(crate) fn thread_sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(deadline - now);
    }
}

impl G {
    /// An `Arc` for a G known to be alive.
    pub(crate) fn arc(g: &G) -> Arc<G> {
        // SAFETY: every G lives in an `Arc` (`G::new` is the only constructor) and
        // `g` borrows a live one, so its strong count is at least 1 for this call.
        unsafe {
            Arc::increment_strong_count(g as *const G);
            Arc::from_raw(g as *const G)
        }
    }
}
