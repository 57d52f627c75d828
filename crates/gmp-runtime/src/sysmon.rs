//! sysmon: the runtime's watchdog thread (Go: `runtime.sysmon`, `retake`, `checkdead`).
//!
//! It runs without a P. Each round it sleeps — 20 µs at first, doubling after 50 idle
//! rounds up to 10 ms — then:
//!
//! - **retake** (Go: `retake`): a P whose M has been in a `blocking` call for a full
//!   sysmon tick (≥ 20 µs) is handed to another M; and — our answer to Rust having no
//!   preemption points — a P whose goroutine has run for more than 10 ms without a
//!   scheduling point (its `schedtick` frozen) is taken from its M exactly as if the
//!   goroutine were in a blocking call. The goroutine runs on, without a P; at its next
//!   scheduling point it goes back through the scheduler for one.
//! - **netpoll**: polls the network if nobody has for 10 ms.
//! - **schedtrace**: prints Go's `SCHED` line every `GMP_SCHEDTRACE` ms.
//! - **deadlock** (Go: `checkdead`): see [`check_dead`].
//!
//! When every P is idle and no goroutine is in a blocking call, sysmon sleeps until an
//! M starts running again (Go: `sysmonwait`), so an idle runtime uses no CPU.

use crate::p::{OWN_IDLE, OWN_SYSCALL, OWN_USER};
use crate::sched::Sched;
use gmp_core::sync::atomic::Ordering;
use std::fmt::Write as _;
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
    syscalltick: u32,
    syscallwhen: Option<Instant>,
}

/// Starts sysmon for `sched`. It holds only a weak reference, so dropping the runtime
/// ends it.
pub(crate) fn start(sched: &Arc<Sched>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let weak = Arc::downgrade(sched);
    let name = format!("{}-sysmon", sched.config.name);
    std::thread::Builder::new()
        .name(name)
        .stack_size(128 * 1024)
        .spawn(move || sysmon(weak))
}

fn sysmon(weak: Weak<Sched>) {
    let mut watch: Vec<PWatch> = Vec::new();
    let mut idle_rounds = 0u32;
    let mut delay = Duration::from_micros(20);
    let start = Instant::now();
    let mut last_trace = start;
    let mut frozen: Option<(u64, Instant)> = None;
    loop {
        std::thread::sleep(delay);
        let Some(sched) = weak.upgrade() else { return };
        if sched.is_shutdown() {
            return;
        }
        if watch.len() != sched.nprocs() {
            watch = vec![PWatch::default(); sched.nprocs()];
        }
        let now = Instant::now();
        let trace = sched.config.schedtrace_ms;
        if let Some(ms) = trace {
            if now.duration_since(last_trace) >= Duration::from_millis(ms) {
                last_trace = now;
                eprintln!("{}", schedtrace_line(&sched, now.duration_since(start)));
            }
        }
        // Deadlock watch and deep sleep when nothing runs.
        let all_idle = sched.npidle.load(Ordering::SeqCst) == sched.nprocs()
            && sched.nsyscall.load(Ordering::SeqCst) == 0;
        if all_idle {
            if check_dead(&sched, &mut frozen) {
                continue;
            }
            if trace.is_none() {
                let timeout = sched.main_waiting().then_some(DEADLOCK_GRACE / 2);
                deep_sleep(&sched, timeout);
                idle_rounds = 0;
                delay = Duration::from_micros(20);
                continue;
            }
        } else {
            frozen = None;
        }
        let retook = retake(&sched, &mut watch, now);
        sysmon_poll(&sched, now);
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
    }
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

/// Go: `retake`. Returns true if it took any P.
fn retake(sched: &Arc<Sched>, watch: &mut [PWatch], now: Instant) -> bool {
    let mut took = false;
    for (i, pp) in sched.allp.iter().enumerate() {
        let own = pp.own.load(Ordering::Acquire);
        let w = &mut watch[i];
        match own & 0xff {
            OWN_USER => {
                let t = pp.schedtick.load(Ordering::Relaxed);
                if w.schedwhen.is_none() || t != w.schedtick {
                    w.schedtick = t;
                    w.schedwhen = Some(now);
                } else if now.duration_since(w.schedwhen.unwrap_or(now)) >= FORCE_PREEMPT {
                    // The same goroutine has run for 10 ms: take its P.
                    if pp
                        .own
                        .compare_exchange(own, OWN_IDLE, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        w.schedwhen = None;
                        sched.handoffp(i);
                        took = true;
                    }
                }
            }
            OWN_SYSCALL => {
                let t = pp.syscalltick.load(Ordering::Relaxed);
                if w.syscallwhen.is_none() || t != w.syscalltick {
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
                    sched.handoffp(i);
                    took = true;
                }
            }
            _ => {
                w.schedwhen = None;
                w.syscallwhen = None;
            }
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
/// no runnable goroutine, no timer, no poller waiter, no blocking call — and it has
/// stayed so for [`DEADLOCK_GRACE`] with no goroutine readied or created. Then the
/// `block_on` caller is told, and panics with Go's message.
///
/// What cannot be seen: a plain OS thread that holds a channel handle and will use it
/// later (say after `std::thread::sleep`) is invisible to the runtime. A thread parked
/// on a gmp primitive counts as a possible waker, so it suppresses the report; a thread
/// doing something else for longer than the grace period does not, and would be
/// misreported. Go has the same blind spot for cgo threads.
fn check_dead(sched: &Arc<Sched>, frozen: &mut Option<(u64, Instant)>) -> bool {
    if !sched.main_waiting() || sched.deadlocked.load(Ordering::SeqCst) {
        *frozen = None;
        return false;
    }
    let quiet = sched.nsyscall.load(Ordering::SeqCst) == 0
        // Every M is asleep: none runs a goroutine that lost its P (a long computation
        // is not a deadlock).
        && sched.nmidle.load(Ordering::SeqCst) == sched.mcount.load(Ordering::SeqCst)
        // … and neither does any M of another runtime in the process.
        && crate::sched::ALL_IDLE_M.load(std::sync::atomic::Ordering::SeqCst)
            == crate::sched::ALL_M.load(std::sync::atomic::Ordering::SeqCst)
        && sched.nmspinning.load(Ordering::SeqCst) == 0
        && sched.global.is_empty()
        && sched
            .allp
            .iter()
            .all(|pp| pp.stealer.is_empty() && pp.timers.next() == u64::MAX)
        && crate::netpoll_poller_if_started().is_none_or(|p| !p.has_waiters())
        && gmp_core::park::parked_threads() <= sched.main_waiters()
        // A goroutine in `future::block_on` waits for a waker the runtime cannot see.
        && crate::future::future_waiters() == 0
        && sched.registry.all_match(|g| g.status() == crate::g::Status::Waiting);
    if !quiet {
        *frozen = None;
        return false;
    }
    let progress = sched.progress.load(Ordering::SeqCst);
    match *frozen {
        Some((p, since)) if p == progress => {
            if since.elapsed() >= DEADLOCK_GRACE {
                sched.deadlocked.store(true, Ordering::SeqCst);
                sched.wake_main();
                *frozen = None;
                return true;
            }
        }
        _ => *frozen = Some((progress, Instant::now())),
    }
    false
}

/// The report a deadlocked `block_on` panics with.
pub(crate) fn deadlock_report(sched: &Sched) -> String {
    let mut s = String::from("all goroutines are asleep - deadlock!\n");
    let mut gs = sched.registry.all();
    gs.sort_by_key(|g| g.id);
    for g in gs {
        let _ = write!(s, "\ngoroutine {}", g.id);
        if let Some(n) = &g.name {
            let _ = write!(s, " ('{n}')");
        }
        let _ = writeln!(s, " [{}]", g.wait_reason().describe());
    }
    s
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
