//! sysmon: the runtime's watchdog thread (Go: `runtime.sysmon`, `retake`, `checkdead`).
//!
//! It runs without a P. Each round it sleeps — 20 µs at first, doubling after 50 idle
//! rounds up to 10 ms, but never past the moment a retake below falls due — then:
//!
//! - **retake** (Go: `retake`): a P whose M has been in a `blocking` call for a full
//!   sysmon tick (≥ 20 µs) is handed to another M; and — our answer to Rust having no
//!   preemption points — a P whose goroutine has run for more than 10 ms without a
//!   scheduling point (its `switchtick` frozen) is taken from its M exactly as if the
//!   goroutine were in a blocking call. The goroutine runs on, without a P; at its next
//!   scheduling point it goes back through the scheduler for one. A P whose time slice
//!   has lasted 10 ms *through* scheduling points (`schedtick` frozen, `switchtick`
//!   moving: goroutines handing `runnext` to each other, which inherits the slice) is
//!   not taken: sysmon sets its `preempt` flag (Go: `preemptone`), and its owner ends
//!   the slice at the next switch. A P held by a goroutine that has not switched is
//!   also taken when its earliest timer is 50 µs overdue, and while such a timer is
//!   pending sysmon keeps one M asleep on the idle list to hand the P to (creating a
//!   thread at the deadline made the sleeper 200-340 µs late).
//! - **netpoll**: polls the network if nobody has for 10 ms.
//! - **schedtrace**: prints Go's `SCHED` line every `GMP_SCHEDTRACE` ms.
//! - **deadlock** (Go: `checkdead`): see [`check_dead`].
//!
//! When every P is idle and no goroutine is in a blocking call, sysmon sleeps until an
//! M starts running again (Go: `sysmonwait`), so an idle runtime uses no CPU.

use crate::p::{Take, OWN_IDLE, OWN_SYSCALL, OWN_USER};
use crate::sched::{Sched, ALL_M};
use crate::timers;
use crate::trace::RetakeWhy;
use gmp_core::sync::atomic::Ordering;
use std::fmt::Write as _;
use std::sync::atomic::Ordering as StdOrdering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Go: `forcePreemptNS`.
pub(crate) const FORCE_PREEMPT: Duration = Duration::from_millis(10);
/// How long a runtime must stay frozen before it is declared deadlocked.
pub(crate) const DEADLOCK_GRACE: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Default)]
struct PWatch {
    schedtick: u32,
    schedwhen: Option<Instant>,
    /// The P's `switchtick` when sysmon last saw it move, and when.
    switchtick: u32,
    switchwhen: Option<Instant>,
    syscalltick: u32,
    syscallwhen: Option<Instant>,
}

impl PWatch {
    /// Notes whether P `pp` has switched goroutines since the last look, and when it
    /// last did.
    fn watch_switches(&mut self, pp: &crate::p::P, now: Instant) {
        let s = pp.switchtick.load(Ordering::Relaxed);
        if self.switchwhen.is_none() || s != self.switchtick {
            self.switchtick = s;
            self.switchwhen = Some(now);
        }
    }
}

/// Starts sysmon for `sched`. It holds only a weak reference, so dropping the runtime
/// ends it.
pub(crate) fn start(sched: &Arc<Sched>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let weak = Arc::downgrade(sched);
    let name = format!("{}-sysmon", sched.config.name);
    // Counted before the thread exists and uncounted when it ends (or was never
    // made), so the deadlock detector never sees it as an unknown thread.
    ALL_SERVICE_THREADS.fetch_add(1, StdOrdering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(128 * 1024)
        .spawn(move || {
            struct Count;
            impl Drop for Count {
                fn drop(&mut self) {
                    ALL_SERVICE_THREADS.fetch_sub(1, StdOrdering::SeqCst);
                }
            }
            let _count = Count;
            crate::m::precise_timer_wakeups();
            sysmon(weak)
        });
    if spawned.is_err() {
        ALL_SERVICE_THREADS.fetch_sub(1, StdOrdering::SeqCst);
    }
    spawned
}

/// sysmon threads alive in the process (all runtimes). Plain std: a process-wide
/// count read only by the deadlock detector.
pub(crate) static ALL_SERVICE_THREADS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Threads blocked in `block_on` (all runtimes), waiting for their main goroutine.
pub(crate) static ALL_MAIN_WAITERS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The OS threads of this process (`/proc/self/status`), or `None` if unknown.
fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// True if every thread of the process is one the runtime knows cannot wake a
/// goroutine by itself: an M (of any runtime), a sysmon, or a thread waiting in
/// `block_on`. Any other thread — a stdin reader holding a `Sender`, a thread pool,
/// the test harness's main thread — might still send on a channel, so a stall with
/// such a thread alive is reported as a warning, never as a fatal deadlock.
fn only_known_threads() -> bool {
    let known = ALL_M.load(StdOrdering::SeqCst)
        + ALL_SERVICE_THREADS.load(StdOrdering::SeqCst)
        + ALL_MAIN_WAITERS.load(StdOrdering::SeqCst);
    process_threads().is_some_and(|n| n <= known)
}

fn sysmon(weak: Weak<Sched>) {
    let mut watch: Vec<PWatch> = Vec::new();
    let mut idle_rounds = 0u32;
    let mut delay = Duration::from_micros(20);
    let start = Instant::now();
    let mut last_trace = start;
    let mut frozen: Option<(u64, Instant)> = None;
    let mut last_scavenge = start;
    let mut last_spare_m: Option<Instant> = None;
    // The next nap: `delay`, or less when a retake falls due sooner.
    let mut nap = delay;
    loop {
        std::thread::sleep(nap);
        let Some(sched) = weak.upgrade() else { return };
        if sched.is_shutdown() {
            timers::set_park_clock(&sched, false);
            return;
        }
        timers::set_park_clock(&sched, true);
        if watch.len() != sched.nprocs() {
            watch = vec![PWatch::default(); sched.nprocs()];
        }
        let now = Instant::now();
        let trace = sched.config.schedtrace_ms;
        if let Some(ms) = trace {
            if now.duration_since(last_trace) >= Duration::from_millis(ms) {
                last_trace = now;
                let mut line = schedtrace_line(&sched, now.duration_since(start));
                if sched.config.scheddetail {
                    scheddetail(&sched, &mut line);
                }
                eprintln!("{line}");
            }
        }
        // Deadlock watch and deep sleep when nothing runs.
        let all_idle = sched.npidle.load(Ordering::SeqCst) == sched.nprocs()
            && sched.nsyscall.load(Ordering::SeqCst) == 0;
        if all_idle && crate::sched::work_anywhere(&sched) {
            // Work is queued and no P runs: a thread creation failed (`startm` gave the
            // P back) and no M is left to run it. Try again rather than hang.
            sched.wakep();
        }
        if all_idle {
            // Nothing runs: give back all the stack memory beyond the hot set now,
            // before a long sleep, on a CPU nobody else wants.
            if sched.stack_pool.excess() > 0 {
                sched.stack_pool.scavenge(usize::MAX);
            }
            if check_dead(&sched, &mut frozen) {
                continue;
            }
            if trace.is_none() {
                let timeout = if crate::sched::work_anywhere(&sched) {
                    // Stranded work (see above): retry the thread creation soon.
                    Some(Duration::from_millis(10))
                } else {
                    sched.main_waiting().then_some(DEADLOCK_GRACE / 2)
                };
                timers::set_park_clock(&sched, false);
                deep_sleep(&sched, timeout);
                // Go: sysmon restarts at 20 µs only when a goroutine entering a
                // blocking call woke it (`syscallWake`): such a P must be retaken
                // promptly. A P that merely started running keeps the backed-off
                // delay: a server whose Ps go idle and busy again thousands of times a
                // second would otherwise have sysmon napping 20 µs at a time after each
                // wake (0.2 `clock_nanosleep` per echo round trip, strace).
                if sched.nsyscall.load(Ordering::SeqCst) > 0 {
                    idle_rounds = 0;
                    delay = Duration::from_micros(20);
                }
                nap = delay;
                continue;
            }
        } else {
            frozen = None;
        }
        let retook = retake(&sched, &mut watch, now);
        let due = next_retake_due(&sched, &watch);
        keep_spare_m(&sched, &watch, now, &mut last_spare_m);
        sysmon_poll(&sched, now);
        scavenge_stacks(&sched, now, &mut last_scavenge);
        drop(sched);
        if retook {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
        }
        delay = if idle_rounds <= 50 {
            Duration::from_micros(20)
        } else {
            (delay * 2).min(Duration::from_millis(10))
        };
        if trace.is_some() {
            delay = delay.min(Duration::from_millis(1));
        }
        nap = nap_until(delay, due, Instant::now());
    }
}

/// The shortest nap: sysmon's own clock reads, `nanosleep` and scan are a few µs.
const MIN_NAP: Duration = Duration::from_micros(20);

/// How long sysmon sleeps: its backed-off `delay`, cut short when a retake falls due
/// sooner (`due`, from [`next_retake_due`]), but never under [`MIN_NAP`].
fn nap_until(delay: Duration, due: Option<Instant>, now: Instant) -> Duration {
    match due {
        Some(d) => delay.min(d.saturating_duration_since(now).max(MIN_NAP)),
        None => delay,
    }
}

/// When the next retake can fall due, for a P that has been held by the same goroutine
/// since sysmon's last look: its hog limit (`schedwhen` + [`FORCE_PREEMPT`], or its last
/// switch + [`FORCE_PREEMPT`] if earlier) or, while its switch tick is still the one
/// sysmon saw, its earliest timer becoming overdue
/// (+ [`TIMER_OVERDUE_NS`]). Without this the delay, backed off to as much as 10 ms
/// while nothing was retaken, came on top of both: a goroutine sleeping behind a hog
/// on one P woke up to that much later than the retake was due (the starve workload's
/// worst sleep of 20: median of 8 runs 1.55 ms before, 1.03 ms after; what is left is
/// mostly the OS waking the P's new M late). A P whose tick moves runs its own timers:
/// it sets no timer deadline, so a busy P with a backlog of due timers does not keep
/// sysmon awake.
fn next_retake_due(sched: &Sched, watch: &[PWatch]) -> Option<Instant> {
    let mut due: Option<Instant> = None;
    for (pp, w) in sched.allp.iter().zip(watch) {
        // Relaxed: a hint for the length of a nap; `retake` decides with its own CAS.
        let st = pp.own.load(Ordering::Relaxed) & 0xff;
        if st != OWN_USER && st != OWN_SYSCALL {
            continue;
        }
        let Some(mut since) = w.schedwhen else {
            continue;
        };
        // A USER P is also watched for its switches (`retake`): a hog is due 10 ms after
        // its last one, even when a slice preemption has restarted `schedwhen`.
        if st == OWN_USER {
            since = w.switchwhen.map_or(since, |s| s.min(since));
        }
        let mut d = since + FORCE_PREEMPT;
        if let Some(next_timer) = held_timer(pp, w) {
            d = d.min(crate::timers::instant(
                next_timer.saturating_add(TIMER_OVERDUE_NS),
            ));
        }
        due = Some(due.map_or(d, |x| x.min(d)));
    }
    due
}

/// The earliest timer of P `pp` if the P is held by a goroutine that has not switched
/// since sysmon's last look (`w`), so that the timer will be run only by a retake
/// unless the goroutine reaches a scheduling point first.
fn held_timer(pp: &crate::p::P, w: &PWatch) -> Option<u64> {
    let next_timer = pp.timers.next();
    // Relaxed: a hint; `retake` decides with its own CAS on the ownership word.
    (next_timer != u64::MAX
        && w.switchwhen.is_some()
        && pp.switchtick.load(Ordering::Relaxed) == w.switchtick)
        .then_some(next_timer)
}

/// How long after starting a spare M sysmon waits before it may start another: the
/// new thread needs a few hundred µs to reach the idle list, where it is counted.
const SPARE_M_EVERY: Duration = Duration::from_millis(10);

/// Keeps an M asleep on the idle list while a goroutine holds a P whose timer is
/// pending (`held_timer`), so that the retake when the timer falls overdue hands the
/// P to a sleeping thread (one wake-up) instead of creating one. Measured with a hog
/// on one P and a goroutine sleeping 10 ms beside it: the retake that had to create
/// its M woke the sleeper 200-340 µs late, one that found an idle M 120-130 µs late.
/// Go needs no spare: its sysmon preempts the hog in place (asynchronous
/// preemption), which Rust code cannot allow.
fn keep_spare_m(sched: &Arc<Sched>, watch: &[PWatch], now: Instant, last: &mut Option<Instant>) {
    if last.is_some_and(|t| now.duration_since(t) < SPARE_M_EVERY)
        || sched.nmidle.load(Ordering::Relaxed) > 0
    {
        return;
    }
    let held = sched.allp.iter().zip(watch).any(|(pp, w)| {
        // Relaxed: a hint, as in `next_retake_due`.
        let st = pp.own.load(Ordering::Relaxed) & 0xff;
        (st == OWN_USER || st == OWN_SYSCALL) && held_timer(pp, w).is_some()
    });
    if held {
        *last = Some(now);
        // A failure is reported by the retake that needs the thread (`startm`).
        let _ = sched.newm(None, false);
    }
}

/// Stacks given back per scavenging round while goroutines run.
const SCAVENGE_BATCH: usize = 32;
/// Time between scavenging rounds while goroutines run: at most 32,000 stacks a
/// second, a few percent of one CPU (a `madvise` with its TLB flush costs ~2–5 µs).
const SCAVENGE_EVERY: Duration = Duration::from_millis(1);

/// Go: `bgscavenge`, for stacks. Gives back, a batch at a time, the memory of cached
/// stacks beyond the pool's hot set (`StackPool::deferred`), paced so that a burst of
/// ended goroutines costs the running program little; when every P is idle, sysmon
/// gives back the rest at once.
fn scavenge_stacks(sched: &Sched, now: Instant, last: &mut Instant) {
    if sched.stack_pool.excess() == 0 || now.duration_since(*last) < SCAVENGE_EVERY {
        return;
    }
    *last = now;
    sched.stack_pool.scavenge(SCAVENGE_BATCH);
}

/// Go: `sysmon`'s `notetsleep(&sched.sysmonnote)`.
fn deep_sleep(sched: &Sched, timeout: Option<Duration>) {
    let mut sleeping = sched.sysmon_lock.lock();
    *sleeping = true;
    sched.sysmon_sleeping.store(true, Ordering::SeqCst);
    // Re-check after publishing: a P may have started meanwhile.
    if sched.npidle.load(Ordering::SeqCst) == sched.nprocs()
        && sched.nsyscall.load(Ordering::SeqCst) == 0
        && !sched.is_shutdown()
    {
        match timeout {
            Some(t) => {
                sched
                    .sysmon_cvar
                    .wait_until(&mut sleeping, Instant::now() + t);
            }
            None => sched.sysmon_cvar.wait(&mut sleeping),
        }
    }
    *sleeping = false;
    sched.sysmon_sleeping.store(false, Ordering::SeqCst);
}

/// How late a P's earliest timer may be before sysmon takes the P from the goroutine
/// that holds it (its owner runs timers only at its scheduling points). The P must
/// also have made no switch since sysmon's previous look (`held_timer`), so a P whose
/// goroutines keep switching runs its timers itself and is not taken for them. 1 ms
/// until 2026-12-04:
/// a goroutine sleeping 10 ms beside a hog on one P woke 1.07 ms late; with 50 µs,
/// 117-134 µs late (the retake, then the OS waking the M it hands the P to).
const TIMER_OVERDUE_NS: u64 = 50_000;

/// A P whose timers are overdue is held by a goroutine that reaches no scheduling
/// point — a hog, or a loop of short `blocking` calls whose P sysmon never sees idle
/// long enough. Go's sysmon starts an M for overdue timers ("perhaps because there is
/// an unpreemptible P"); we take the P (state USER or SYSCALL, retried a few times
/// since such a loop flips between them) and hand it to an M that runs the timers.
/// `retake` also uses it for a P held 10 ms by such a loop while other work waits;
/// `why` tells the trace which of the two it was.
fn retake_held(sched: &Arc<Sched>, i: usize, why: RetakeWhy) -> bool {
    let pp = &sched.allp[i];
    for _ in 0..64 {
        let own = pp.own.load(Ordering::Acquire);
        let st = own & 0xff;
        if st != OWN_USER && st != OWN_SYSCALL {
            // Idle (an M will look at its timers) or in scheduler code (running them).
            if st == OWN_IDLE || st == crate::p::OWN_RUNTIME {
                return false;
            }
            continue;
        }
        let taken = if st == OWN_USER {
            match crate::p::take_from_user(sched, i, own) {
                Take::Taken => true,
                // Its M is at a scheduling point: it runs its timers itself.
                Take::Kept => return false,
                Take::Changed => false,
            }
        } else {
            pp.own
                .compare_exchange(own, OWN_IDLE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        };
        if taken {
            hand_off_retaken(sched, i, own, why);
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

/// The rest of every retake, once sysmon's CAS took P `i` (whose ownership word was
/// `own`) from its M: count it (by the state it was taken in), stamp it in the trace
/// before handing the P on (the trace cuts the holder's run there: json.rs), hand it
/// on. One place, so that no way of taking a P can skip the stamp.
fn hand_off_retaken(sched: &Arc<Sched>, i: usize, own: u64, why: RetakeWhy) {
    let stat = if own & 0xff == OWN_USER {
        &sched.stats.retakes_hog
    } else {
        &sched.stats.retakes_blocking
    };
    stat.fetch_add(1, Ordering::Relaxed);
    crate::trace::retake(sched, i, own, why);
    sched.handoffp(i);
}

/// Go: `retake`. Returns true if it took any P.
fn retake(sched: &Arc<Sched>, watch: &mut [PWatch], now: Instant) -> bool {
    let mut took = false;
    let now_ns = crate::timers::nanos(now);
    for (i, pp) in sched.allp.iter().enumerate() {
        // Overdue timers on a P that has not scheduled since our last look (a hog, or a
        // loop of blocking calls, holds it). A P that schedules runs its due timers
        // itself, as many as its queue has room for (schedule.rs `timer_room`): a
        // backlog of due timers there is queued work, not a held P.
        let stuck = watch[i].switchwhen.is_some()
            && pp.switchtick.load(Ordering::Relaxed) == watch[i].switchtick;
        if stuck
            && pp.timers.next().saturating_add(TIMER_OVERDUE_NS) <= now_ns
            && retake_held(sched, i, RetakeWhy::TimersOverdue)
        {
            watch[i] = PWatch::default();
            took = true;
            continue;
        }
        let own = pp.own.load(Ordering::Acquire);
        let w = &mut watch[i];
        match own & 0xff {
            OWN_USER => {
                let t = pp.schedtick.load(Ordering::Relaxed);
                if w.schedwhen.is_none() || t != w.schedtick {
                    w.schedtick = t;
                    w.schedwhen = Some(now);
                }
                w.watch_switches(pp, now);
                if now.duration_since(w.switchwhen.unwrap_or(now)) >= FORCE_PREEMPT {
                    // The same goroutine has run for 10 ms without a scheduling point:
                    // take its P.
                    if crate::p::take_from_user(sched, i, own) == Take::Taken {
                        w.schedwhen = None;
                        w.switchwhen = None;
                        hand_off_retaken(sched, i, own, RetakeWhy::Hog);
                        took = true;
                    }
                } else if now.duration_since(w.schedwhen.unwrap_or(now)) >= FORCE_PREEMPT {
                    // One time slice for 10 ms, through scheduling points: goroutines
                    // handing `runnext` back and forth. Taking the P would cost an M
                    // hand-off every 10 ms (and sysmon's fast naps after it); ending the
                    // slice at the owner's next switch is enough for the goroutines
                    // queued behind them (Go: `preemptone`).
                    pp.preempt.store(true, Ordering::Relaxed);
                    w.schedwhen = Some(now);
                }
            }
            OWN_SYSCALL => {
                // For the overdue-timers check above.
                w.watch_switches(pp, now);
                // The same goroutine has held the P for 10 ms (its scheduling tick is
                // frozen) while other work waits: a loop of short blocking calls, which
                // the per-call rule below never catches. Take the P as from a hog.
                let st = pp.schedtick.load(Ordering::Relaxed);
                if w.schedwhen.is_none() || st != w.schedtick {
                    w.schedtick = st;
                    w.schedwhen = Some(now);
                } else if now.duration_since(w.schedwhen.unwrap_or(now)) >= FORCE_PREEMPT
                    && (!pp.stealer.is_empty() || !sched.global.is_empty())
                    && retake_held(sched, i, RetakeWhy::Hog)
                {
                    *w = PWatch::default();
                    took = true;
                    continue;
                }
                // A due timer on this P is run only by the P's owner: a goroutine that
                // loops on short blocking calls keeps the P for itself and would starve
                // it (Go's sysmon starts an M for overdue timers, "perhaps because there
                // is an unpreemptible P"). Then take the P for another M at once.
                let timer_due = pp.timers.next() <= crate::timers::nanos(now);
                let t = pp.syscalltick.load(Ordering::Relaxed);
                if !timer_due && (w.syscallwhen.is_none() || t != w.syscalltick) {
                    // A new call since we last looked: give it one full tick.
                    w.syscalltick = t;
                    w.syscallwhen = Some(now);
                    continue;
                }
                let age = now.duration_since(w.syscallwhen.unwrap_or(now));
                let others_can_cover = sched.nmspinning.load(Ordering::SeqCst)
                    + sched.npidle.load(Ordering::SeqCst)
                    > 0;
                if pp.stealer.is_empty()
                    && sched.global.is_empty()
                    && !timer_due
                    && others_can_cover
                    && age < FORCE_PREEMPT
                {
                    continue;
                }
                if pp
                    .own
                    .compare_exchange(own, OWN_IDLE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    w.syscallwhen = None;
                    hand_off_retaken(sched, i, own, RetakeWhy::Blocking);
                    took = true;
                }
            }
            // In scheduler code (RUNTIME) the tick tells whether a new goroutine ran;
            // only an idle P starts the watch afresh.
            OWN_IDLE => {
                w.schedwhen = None;
                w.switchwhen = None;
                w.syscallwhen = None;
            }
            _ => {}
        }
    }
    took
}

/// Go: sysmon's "poll network if not polled for more than 10ms".
fn sysmon_poll(sched: &Arc<Sched>, now: Instant) {
    let Some(poller) = crate::netpoll_poller_if_started() else {
        return;
    };
    if !poller.has_waiters() || poller.is_polling() {
        return;
    }
    let last = sched.last_poll.load(Ordering::Relaxed);
    if crate::timers::nanos(now).saturating_sub(last) < 10_000_000 {
        return;
    }
    let mut ready = Vec::new();
    let _ = poller.poll(Some(Duration::ZERO), &mut ready);
    sched
        .last_poll
        .store(crate::timers::nanos(now), Ordering::Relaxed);
    for u in ready {
        u.unpark();
    }
}

/// Go: `checkdead`. Every goroutine is parked and nothing can wake one: no running M,
/// no runnable goroutine, no timer, no poller waiter, no blocking call, no thread
/// parked on a gmp primitive — and it has stayed so for [`DEADLOCK_GRACE`] with no
/// goroutine readied or created.
///
/// A report must be certain or must not be fatal. It is certain only when every thread
/// of the process is a thread the runtime knows ([`only_known_threads`]): then the
/// goroutines existing now are abandoned — marked so that no unpark can ever run them
/// again, which is what makes unwinding the `block_on` caller's frame sound even for
/// goroutines (scoped children included) that borrow from it — and the `block_on`
/// caller panics with Go's message. Otherwise another thread may still wake them (a
/// stdin reader about to send, say): a warning is printed once per stall, and
/// `block_on` goes on waiting. `GMP_DEADLOCK=off` silences both.
fn check_dead(sched: &Arc<Sched>, frozen: &mut Option<(u64, Instant)>) -> bool {
    if !sched.main_waiting() || sched.deadlocked.load(Ordering::SeqCst) {
        *frozen = None;
        return false;
    }
    if !stalled(sched) {
        *frozen = None;
        return false;
    }
    let progress = sched.progress.load(Ordering::SeqCst);
    match *frozen {
        Some((p, since)) if p == progress => {
            if since.elapsed() >= DEADLOCK_GRACE {
                *frozen = Some((progress, Instant::now() + Duration::from_secs(3600)));
                match deadlock_policy() {
                    Policy::Off => {}
                    Policy::Auto if only_known_threads() && abandon_all(sched) => {
                        sched.deadlocked.store(true, Ordering::SeqCst);
                        sched.wake_main();
                        *frozen = None;
                        return true;
                    }
                    Policy::Auto => {
                        eprintln!(
                            "gmp: warning: {}\n(not fatal: another thread of the process may \
                             still wake them; set GMP_DEADLOCK=off to silence)",
                            deadlock_report(sched).trim_end()
                        );
                    }
                }
            }
        }
        Some((p, _)) if p != progress => *frozen = Some((progress, Instant::now())),
        Some(_) => {}
        None => *frozen = Some((progress, Instant::now())),
    }
    false
}

/// Every goroutine parked with nothing in the runtime able to wake one (see
/// [`check_dead`]).
fn stalled(sched: &Sched) -> bool {
    sched.nsyscall.load(Ordering::SeqCst) == 0
        // Every M is asleep: none runs a goroutine that lost its P (a long computation
        // is not a deadlock).
        && sched.nmidle.load(Ordering::SeqCst) == sched.mcount.load(Ordering::SeqCst)
        // … and neither does any M of another runtime in the process.
        && crate::sched::ALL_IDLE_M.load(StdOrdering::SeqCst) == ALL_M.load(StdOrdering::SeqCst)
        && sched.nmspinning.load(Ordering::SeqCst) == 0
        && sched.global.is_empty()
        && sched
            .allp
            .iter()
            .all(|pp| pp.stealer.is_empty() && pp.timers.next() == u64::MAX)
        && crate::netpoll_poller_if_started().is_none_or(|p| !p.has_waiters())
        && gmp_core::park::parked_threads() <= ALL_MAIN_WAITERS.load(StdOrdering::SeqCst)
        // A goroutine in `future::block_on` waits for a waker the runtime cannot see.
        && crate::future::future_waiters() == 0
        && sched.registry.all_match(|g| g.status() == crate::g::Status::Waiting)
}

/// Marks every goroutine of the runtime abandoned (its unparks are ignored from now
/// on), then checks that the runtime is still stalled: if anything moved meanwhile,
/// the report is withdrawn — `false` — and the marks stay (a goroutine that was
/// readied in the window runs to its next park and is then never woken again; that
/// can only happen when a thread the runtime does not know exists, which
/// [`only_known_threads`] has just ruled out).
fn abandon_all(sched: &Sched) -> bool {
    let before = sched.progress.load(Ordering::SeqCst);
    for g in sched.registry.all() {
        g.abandoned.store(true, Ordering::SeqCst);
    }
    stalled(sched) && sched.progress.load(Ordering::SeqCst) == before
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Fatal when certain, a warning otherwise.
    Auto,
    /// No report at all.
    Off,
}

/// `GMP_DEADLOCK`: `off` disables the detector; anything else (or unset) is `auto`.
fn deadlock_policy() -> Policy {
    match std::env::var("GMP_DEADLOCK") {
        Ok(v) if v.trim().eq_ignore_ascii_case("off") => Policy::Off,
        _ => Policy::Auto,
    }
}

/// The report a deadlocked `block_on` panics with: Go's message, then every
/// goroutine with its stack (debug.rs).
pub(crate) fn deadlock_report(sched: &Arc<Sched>) -> String {
    let mut out = b"all goroutines are asleep - deadlock!\n\n".to_vec();
    let _ = crate::debug::dump_one_runtime(&mut out, sched);
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `schedtrace` line.
pub(crate) fn schedtrace_line(sched: &Sched, since_start: Duration) -> String {
    let mut s = format!(
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} runqueue={} [",
        since_start.as_millis(),
        sched.nprocs(),
        sched.npidle.load(Ordering::Relaxed),
        sched.mcount.load(Ordering::Relaxed) + 1,
        sched.nmspinning.load(Ordering::Relaxed),
        sched.nmidle.load(Ordering::Relaxed),
        sched.global.len(),
    );
    for (i, pp) in sched.allp.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{}", pp.stealer.len());
    }
    s.push(']');
    s
}

/// Go's `scheddetail` lines (after the `SCHED` line): one per P, M and G.
pub(crate) fn scheddetail(sched: &Sched, s: &mut String) {
    for (i, pp) in sched.allp.iter().enumerate() {
        let own = pp.own.load(Ordering::Relaxed);
        let m = own >> 8;
        let _ = write!(
            s,
            "\n  P{i}: status={} schedtick={} syscalltick={} m={} runqsize={} timers={}",
            own & 0xff,
            pp.schedtick.load(Ordering::Relaxed),
            pp.syscalltick.load(Ordering::Relaxed),
            if own & 0xff == OWN_IDLE { -1 } else { m as i64 },
            pp.stealer.len(),
            if pp.timers.next() == u64::MAX {
                "none"
            } else {
                "armed"
            },
        );
    }
    let ms: Vec<_> = sched.allm.lock().iter().filter_map(Weak::upgrade).collect();
    for m in ms {
        let p = m.p_id.load(Ordering::Relaxed);
        let g = m.curg_id.load(Ordering::Relaxed);
        let _ = write!(
            s,
            "\n  M{}: p={} curg={}",
            m.id,
            if p == usize::MAX { -1 } else { p as i64 },
            if g == 0 { -1 } else { g as i64 },
        );
    }
    let mut gs = sched.registry.all();
    gs.sort_by_key(|g| g.id);
    for g in gs {
        let _ = write!(s, "\n  G{}: status={}", g.id, g.status() as u8);
        if let Some(r) = g.wait_reason() {
            let _ = write!(s, "({r})");
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::p::{own_word, OWN_RUNTIME};
    use crate::timers::tests::{parked_g, sched};

    #[test]
    fn a_nap_ends_when_a_retake_falls_due() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(nap_until(ms(10), None, now), ms(10));
        assert_eq!(nap_until(ms(10), Some(now + ms(3)), now), ms(3));
        // Never longer than the backed-off delay, never shorter than MIN_NAP (a
        // deadline already past included).
        assert_eq!(nap_until(ms(2), Some(now + ms(3)), now), ms(2));
        assert_eq!(nap_until(ms(10), Some(now), now), MIN_NAP);
        assert_eq!(nap_until(ms(10), Some(now - ms(1)), now), MIN_NAP);
    }

    /// The deadline sysmon naps towards: the hog limit of a P held by one goroutine
    /// since the last look, or its earliest timer's overdue point while its tick has
    /// not moved; nothing for a P in scheduler code or idle, and no timer deadline
    /// for a P that scheduled since (it runs its own timers).
    #[test]
    fn the_next_retake_is_due_at_the_hog_limit_or_an_overdue_timer() {
        let sched = sched(2);
        let pp = &sched.allp[0];
        let mut watch = vec![PWatch::default(); 2];
        assert_eq!(next_retake_due(&sched, &watch), None, "every P idle");

        // P 0 runs a goroutine (USER) that sysmon first saw at `since`.
        pp.own.swap(own_word(1, OWN_RUNTIME), Ordering::AcqRel);
        pp.own.store(own_word(1, OWN_USER), Ordering::Release);
        let since = Instant::now();
        watch[0].schedtick = pp.schedtick.load(Ordering::Relaxed);
        watch[0].schedwhen = Some(since);
        watch[0].watch_switches(pp, since);
        assert_eq!(next_retake_due(&sched, &watch), Some(since + FORCE_PREEMPT));

        // A timer due 2 ms after `since` on that P: overdue `TIMER_OVERDUE_NS` later,
        // before the hog limit.
        let when = since + Duration::from_millis(2);
        let (g, seq) = parked_g(&sched, 1);
        assert!(pp.timers.add(when, seq, g));
        let overdue = crate::timers::instant(pp.timers.next() + TIMER_OVERDUE_NS);
        assert!(overdue < since + FORCE_PREEMPT);
        assert_eq!(next_retake_due(&sched, &watch), Some(overdue));

        // P 0 switched goroutines since the look (a `runnext` hand-off, in the same
        // time slice): it runs its timers itself at its switches.
        pp.count_switch();
        assert_eq!(next_retake_due(&sched, &watch), Some(since + FORCE_PREEMPT));

        // sysmon saw that switch 1 ms after `since`: with none since, the timer holds
        // the P again.
        watch[0].watch_switches(pp, since + Duration::from_millis(1));
        assert_eq!(next_retake_due(&sched, &watch), Some(overdue));
        let _fired = pp.timers.run(u64::MAX - 1, usize::MAX, |_| {});

        // sysmon ended the slice 5 ms after `since` (`preempt`): the slice is watched
        // afresh, but a hog is still due 10 ms after the last switch sysmon saw.
        watch[0].schedwhen = Some(since + Duration::from_millis(5));
        assert_eq!(
            next_retake_due(&sched, &watch),
            Some(since + Duration::from_millis(1) + FORCE_PREEMPT)
        );

        // In scheduler code: nothing to retake.
        pp.own.swap(own_word(1, OWN_RUNTIME), Ordering::AcqRel);
        assert_eq!(next_retake_due(&sched, &watch), None);
        pp.own.store(OWN_IDLE, Ordering::Release);
        let _fired = pp.timers.run(u64::MAX - 1, usize::MAX, |_| {});
        drop(sched.global.drain());
    }
}
