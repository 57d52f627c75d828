//! `gmp_runtime::sync`, `context` and `time` inside goroutines: locks park the goroutine
//! (never the M), guards cross suspension points and threads, cancellation trees, timers
//! on the per-P heaps. Timings are reported (`--nocapture`), asserted only with generous
//! bounds.

use gmp_runtime::chan::{bounded, never, select, Receiver};
use gmp_runtime::context::{Context, ContextError};
use gmp_runtime::sync::{Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};
use gmp_runtime::time::{after_func, Ticker, Timer};
use gmp_runtime::{sleep, JoinHandle, Runtime};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts a goroutine.
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: no goroutine here holds thread-local state across a suspension point (the
    // locks' guards have no owner thread, and a std guard is never held across one).
    unsafe { gmp_runtime::spawn(f) }
}

fn on<T: Send>(procs: usize, f: impl FnOnce() -> T + Send) -> T {
    let rt = Runtime::builder().procs(procs).build().unwrap();
    // SAFETY: no thread-local state is held across suspension points.
    unsafe { rt.block_on(f) }
}

/// 1,000 goroutines on 2 Ps increment under one Mutex; half of them sleep with the guard
/// held (the guard crosses a suspension point and possibly a thread). Exact count.
#[test]
fn mutex_1000_goroutines_half_sleeping_with_the_guard() {
    let t0 = Instant::now();
    let total = on(2, || {
        let m = Arc::new(Mutex::new(0u64));
        let wg = Arc::new(WaitGroup::new());
        for i in 0..1000 {
            wg.add(1);
            let (m, wg) = (m.clone(), wg.clone());
            go(move || {
                for k in 0..20 {
                    let mut g = m.lock();
                    *g += 1;
                    if i % 2 == 0 && k == 0 {
                        sleep(Duration::from_micros(50));
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        let v = *m.lock();
        v
    });
    assert_eq!(total, 20_000);
    eprintln!(
        "mutex 1000 goroutines x 20, 500 sleeps under the lock: {:?}",
        t0.elapsed()
    );
}

/// On one P, lockers that park (and holders that sleep with the guard) never block the
/// M: another goroutine keeps ticking every 5 ms throughout. Reports the worst gap.
#[test]
fn mutex_on_one_p_never_blocks_the_m() {
    let (total, worst) = on(1, || {
        let m = Arc::new(Mutex::new(0u64));
        let done = Arc::new(AtomicBool::new(false));
        let worst = Arc::new(AtomicU64::new(0));
        let ticker = {
            let (done, worst) = (done.clone(), worst.clone());
            go(move || {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    sleep(Duration::from_millis(5));
                    let now = Instant::now();
                    worst.fetch_max((now - last).as_micros() as u64, Ordering::Relaxed);
                    last = now;
                }
            })
        };
        let wg = Arc::new(WaitGroup::new());
        for i in 0..200 {
            wg.add(1);
            let (m, wg) = (m.clone(), wg.clone());
            go(move || {
                for _ in 0..10 {
                    let mut g = m.lock();
                    *g += 1;
                    if i % 2 == 0 {
                        sleep(Duration::from_micros(200));
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        done.store(true, Ordering::Relaxed);
        ticker.join().unwrap();
        let v = *m.lock();
        (v, Duration::from_micros(worst.load(Ordering::Relaxed)))
    });
    assert_eq!(total, 2000);
    eprintln!("procs(1): worst gap of a 5 ms ticker while 200 goroutines contend: {worst:?}");
    assert!(
        worst < Duration::from_secs(2),
        "the ticker stalled for {worst:?}"
    );
}

#[test]
fn wait_group_over_100_000_goroutines() {
    let t0 = Instant::now();
    let n = on(2, || {
        let wg = Arc::new(WaitGroup::new());
        let n = Arc::new(AtomicUsize::new(0));
        wg.add(100_000);
        for _ in 0..100_000 {
            let (wg, n) = (wg.clone(), n.clone());
            go(move || {
                n.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        n.load(Ordering::Relaxed)
    });
    assert_eq!(n, 100_000);
    eprintln!("WaitGroup over 100,000 goroutines: {:?}", t0.elapsed());
}

/// Goroutines and a plain thread share one Mutex, RwLock, Semaphore and Condvar.
#[test]
fn goroutines_and_threads_share_locks() {
    on(2, || {
        let m = Arc::new(Mutex::new(0u64));
        let l = Arc::new(RwLock::new(0u64));
        let s = Arc::new(Semaphore::new(1));
        let wg = Arc::new(WaitGroup::new());
        wg.add(5);
        let work = {
            let (m, l, s, wg) = (m.clone(), l.clone(), s.clone(), wg.clone());
            move || {
                for _ in 0..2000 {
                    *m.lock() += 1;
                    *l.write() += 1;
                    let _ = *l.read();
                    let _p = s.acquire();
                }
                wg.done();
            }
        };
        let t = std::thread::spawn(work.clone());
        for _ in 0..4 {
            go(work.clone());
        }
        wg.wait();
        t.join().unwrap();
        assert_eq!(*m.lock(), 10_000);
        assert_eq!(*l.read(), 10_000);
        assert_eq!(s.available_permits(), 1);

        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let g = {
            let p = pair.clone();
            go(move || {
                let mut ready = p.0.lock();
                p.1.wait_while(&mut ready, |r| !*r);
            })
        };
        let p = pair.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            *p.0.lock() = true;
            p.1.notify_all();
        })
        .join()
        .unwrap();
        g.join().unwrap();

        let b = Arc::new(Barrier::new(3));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                go(move || b.wait().is_leader())
            })
            .collect();
        let me = b.wait().is_leader();
        let leaders = hs.into_iter().filter(|_| true).map(|h| h.join().unwrap());
        assert_eq!(leaders.filter(|l| *l).count() + me as usize, 1);
    });
}

/// A goroutine unwound while parked on a lock (runtime shutdown) leaves no registration
/// behind: permits and counts are right afterwards, and the locks still work.
#[test]
fn shutdown_unwinds_parked_waiters_cleanly() {
    let sem = Arc::new(Semaphore::new(0));
    let m = Arc::new(Mutex::new(()));
    let wg = Arc::new(WaitGroup::new());
    let guard_held = Arc::new(Semaphore::new(0));
    wg.add(1);
    {
        let rt = Runtime::builder().procs(1).build().unwrap();
        let (s2, m2, wg2, h2) = (sem.clone(), m.clone(), wg.clone(), guard_held.clone());
        // SAFETY: no thread-local state is held across suspension points.
        unsafe {
            rt.block_on(move || {
                let s3 = s2.clone();
                go(move || drop(s3.acquire_many(2)));
                let m3 = m2.clone();
                let h3 = h2.clone();
                go(move || {
                    let _g = m3.lock();
                    h3.add_permits(1);
                    // Parks holding the guard until shutdown unwinds it.
                    gmp_runtime::park();
                });
                let m4 = m2.clone();
                go(move || drop(m4.lock()));
                let wg3 = wg2.clone();
                go(move || wg3.wait());
                drop(h2.acquire());
                sleep(Duration::from_millis(20));
            });
        }
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    // The unwound semaphore waiter is gone: new permits are not handed to it.
    sem.add_permits(2);
    assert_eq!(sem.available_permits(), 2);
    // The guard was dropped by the unwinding holder, and the unwound waiter did not keep
    // (or swallow) the lock.
    assert!(m.try_lock_for(Duration::from_secs(5)).is_some());
    // The unwound WaitGroup waiter uncounted itself: the counter can reach zero cleanly.
    wg.done();
    wg.wait();
}

/// A 3-level tree of contexts (10 → 100 → 10,000) with a goroutine waiting in `select!`
/// on each leaf: all return after the root's `cancel()`.
#[test]
fn cancel_tree_of_10_000_goroutines() {
    let (elapsed, errs) = on(2, || {
        let (root, cancel) = Context::background().with_cancel();
        let mut keep = Vec::new();
        let wg = Arc::new(WaitGroup::new());
        let started = Arc::new(WaitGroup::new());
        let leaves = Arc::new(Mutex::new(Vec::new()));
        let (_tx, idle): (_, Receiver<u32>) = bounded(0);
        for _ in 0..10 {
            let (l1, c1) = root.with_cancel();
            keep.push(c1);
            for _ in 0..10 {
                let (l2, c2) = l1.with_cancel();
                keep.push(c2);
                for _ in 0..100 {
                    let (leaf, c3) = l2.with_cancel();
                    keep.push(c3);
                    leaves.lock().push(leaf.clone());
                    wg.add(1);
                    started.add(1);
                    let (wg, started, idle) = (wg.clone(), started.clone(), idle.clone());
                    go(move || {
                        started.done();
                        select! {
                            recv(leaf.done()) -> r => assert!(r.is_err()),
                            recv(idle) -> _ => panic!("idle channel fired"),
                        }
                        wg.done();
                    });
                }
            }
        }
        started.wait();
        sleep(Duration::from_millis(20)); // let them all park in select!
        let t0 = Instant::now();
        cancel.cancel();
        let cancelled = t0.elapsed();
        wg.wait();
        let elapsed = t0.elapsed();
        eprintln!("cancel() itself (10,111 nodes ended, 10,000 goroutines readied): {cancelled:?}");
        let errs = leaves
            .lock()
            .iter()
            .filter(|c| c.err() == Some(ContextError::Canceled))
            .count();
        drop(keep);
        (elapsed, errs)
    });
    assert_eq!(errs, 10_000);
    eprintln!("cancel() of a 3-level tree to all 10,000 goroutines returned: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5));
}

#[test]
fn context_deadlines_and_errors() {
    on(2, || {
        let t0 = Instant::now();
        let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
        let (child, _c2) = ctx.with_cancel();
        let (later, _c3) = ctx.with_timeout(Duration::from_secs(60));
        assert_eq!(
            later.deadline(),
            ctx.deadline(),
            "a child keeps an earlier deadline"
        );
        let never_rx: Receiver<()> = never();
        select! {
            recv(child.done()) -> r => assert!(r.is_err()),
            recv(never_rx) -> _ => unreachable!(),
        }
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(later.err(), Some(ContextError::DeadlineExceeded));
        assert!(child.is_done());
        // A child of an ended parent is born ended, with the parent's error.
        let (late, _c4) = ctx.with_cancel();
        assert_eq!(late.err(), Some(ContextError::DeadlineExceeded));
        assert!(late.done().recv().is_err());
        // A past deadline ends at once; cancel wins over a far deadline.
        let (past, _c5) = Context::background().with_deadline(Instant::now());
        assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
        let (far, c6) = Context::background().with_timeout(Duration::from_secs(3600));
        drop(c6);
        assert_eq!(far.err(), Some(ContextError::Canceled));
        assert_eq!(ContextError::Canceled.to_string(), "context canceled");
        // The cancelled context's timer goroutine goes away.
        let t = Instant::now();
        while gmp_runtime::num_goroutine() > 1 && t.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(1));
        }
        assert_eq!(
            gmp_runtime::num_goroutine(),
            1,
            "timer goroutines left behind"
        );
    });
}

#[test]
fn context_from_a_plain_thread() {
    let (ctx, cancel) = Context::background().with_cancel();
    let t = std::thread::spawn({
        let ctx = ctx.clone();
        move || ctx.done().recv().is_err()
    });
    std::thread::sleep(Duration::from_millis(5));
    cancel.cancel();
    assert!(t.join().unwrap());
}

#[test]
fn timer_stop_and_reset() {
    on(2, || {
        let t0 = Instant::now();
        let t = Timer::new(Duration::from_millis(10));
        let at = t.receiver().recv().unwrap();
        assert!(at >= t0 + Duration::from_millis(10));
        assert!(!t.stop(), "fired and received: nothing to stop");
        // Stopped before firing: true, and nothing arrives.
        let t = Timer::new(Duration::from_millis(10));
        assert!(t.stop());
        assert!(!t.stop());
        assert!(t
            .receiver()
            .recv_timeout(Duration::from_millis(30))
            .is_err());
        // Reset after stop re-arms it.
        assert!(!t.reset(Duration::from_millis(5)));
        assert!(t.receiver().recv_timeout(Duration::from_secs(5)).is_ok());
        // Reset while armed: true, and it fires at the new time only.
        let t = Timer::new(Duration::from_secs(60));
        assert!(t.reset(Duration::from_millis(5)));
        assert!(t.receiver().recv_timeout(Duration::from_secs(5)).is_ok());
        // Fired but not received: stop discards the value (Go 1.23) and reports it.
        let t = Timer::new(Duration::from_millis(1));
        sleep(Duration::from_millis(10));
        assert!(t.stop());
        assert!(t.receiver().try_recv().is_err());
        // Zero duration fires at once.
        let t = Timer::new(Duration::ZERO);
        assert!(t.receiver().recv_timeout(Duration::from_secs(5)).is_ok());
    });
}

#[test]
fn ticker_ticks_stops_and_resets() {
    on(2, || {
        let t0 = Instant::now();
        let t = Ticker::new(Duration::from_millis(3));
        for _ in 0..5 {
            t.receiver().recv().unwrap();
        }
        assert!(t0.elapsed() >= Duration::from_millis(15));
        t.stop();
        assert!(t
            .receiver()
            .recv_timeout(Duration::from_millis(20))
            .is_err());
        t.reset(Duration::from_millis(2));
        t.receiver().recv_timeout(Duration::from_secs(5)).unwrap();
        drop(t);
        assert!(std::panic::catch_unwind(|| Ticker::new(Duration::ZERO)).is_err());
    });
}

#[test]
fn after_func_runs_in_its_own_goroutine() {
    on(2, || {
        let me = gmp_runtime::current().id();
        let (tx, rx) = bounded(1);
        // SAFETY: the closure holds no thread-local state.
        let t = unsafe {
            after_func(Duration::from_millis(5), move || {
                tx.send(gmp_runtime::current().id()).unwrap();
            })
        };
        let id = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(id, me);
        assert!(!t.stop());
        // Stopped before it fires: never runs.
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        // SAFETY: as above.
        let t = unsafe {
            after_func(Duration::from_millis(10), move || {
                r.store(true, Ordering::SeqCst)
            })
        };
        assert!(t.stop());
        sleep(Duration::from_millis(30));
        assert!(!ran.load(Ordering::SeqCst));
        // Dropping the handle does not cancel it.
        let r = ran.clone();
        // SAFETY: as above.
        drop(unsafe {
            after_func(Duration::from_millis(1), move || {
                r.store(true, Ordering::SeqCst)
            })
        });
        let t0 = Instant::now();
        while !ran.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
            sleep(Duration::from_millis(1));
        }
        assert!(ran.load(Ordering::SeqCst));
    });
}

/// The trait implementations API.md lists (and those generic code relies on).
#[test]
fn trait_implementations() {
    fn send_sync<T: Send + Sync>() {}
    fn clone_debug<T: Clone + std::fmt::Debug>() {}
    fn error_eq_copy<T: std::error::Error + Eq + Copy>() {}
    send_sync::<Context>();
    clone_debug::<Context>();
    send_sync::<gmp_runtime::context::Cancel>();
    error_eq_copy::<ContextError>();
    send_sync::<Mutex<Vec<u8>>>();
    send_sync::<gmp_runtime::sync::MutexGuard<'static, u8>>();
    send_sync::<RwLock<u8>>();
    send_sync::<Condvar>();
    send_sync::<WaitGroup>();
    send_sync::<Semaphore>();
    send_sync::<gmp_runtime::sync::SemaphorePermit<'static>>();
    send_sync::<gmp_runtime::sync::Once>();
    send_sync::<gmp_runtime::sync::OnceLock<String>>();
    send_sync::<Barrier>();
    send_sync::<Timer>();
    send_sync::<Ticker>();
}

/// One step of a worker in the proptest below.
#[derive(Debug, Clone)]
enum Op {
    /// Lock, add, and maybe suspend (yield or sleep) with the guard held.
    Add(u8, u8),
    /// Timed lock; adds on success.
    TimedAdd(u8),
    /// Write-lock and add to both halves of the pair; or read and check they are equal.
    Write(u8),
    Read,
    /// Take and give back permits of a 2-permit semaphore.
    Permits(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (1u8..10, 0u8..3).prop_map(|(n, s)| Op::Add(n, s)),
        (1u8..10).prop_map(Op::TimedAdd),
        (1u8..10).prop_map(Op::Write),
        Just(Op::Read),
        (1u8..3).prop_map(Op::Permits),
    ]
}

/// Runs one plan; returns what it added to the mutex and to the RwLock's pair.
fn run_plan(
    plan: Vec<Op>,
    m: &Mutex<u64>,
    l: &RwLock<(u64, u64)>,
    s: &Semaphore,
    out: &AtomicUsize,
) -> (u64, u64) {
    let (mut added, mut written) = (0, 0);
    for op in plan {
        match op {
            Op::Add(n, suspend) => {
                let mut g = m.lock();
                *g += n as u64;
                added += n as u64;
                match suspend {
                    1 => gmp_runtime::yield_now(),
                    2 => sleep(Duration::from_micros(20)),
                    _ => {}
                }
            }
            Op::TimedAdd(n) => {
                if let Some(mut g) = m.try_lock_for(Duration::from_micros(200)) {
                    *g += n as u64;
                    added += n as u64;
                }
            }
            Op::Write(n) => {
                let mut g = l.write();
                g.0 += n as u64;
                g.1 += n as u64;
                written += n as u64;
            }
            Op::Read => {
                let g = l.read();
                assert_eq!(g.0, g.1);
            }
            Op::Permits(k) => {
                let p = s.acquire_many(k as usize);
                let now = out.fetch_add(k as usize, Ordering::SeqCst) + k as usize;
                assert!(now <= 2, "{now} permits out of 2");
                out.fetch_sub(k as usize, Ordering::SeqCst);
                drop(p);
            }
        }
    }
    (added, written)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    /// Random sequences run by two goroutines and one plain thread at once against the
    /// sequential model: the final values are the sums of what each worker's successful
    /// operations added (addition commutes, so every interleaving must reach them), and
    /// the invariants hold at every step (the RwLock pair equal, at most 2 permits out).
    #[test]
    fn random_sequences_on_goroutines_and_a_thread(plans in proptest::collection::vec(
        proptest::collection::vec(op(), 1..30), 3..4)) {
        let m = Arc::new(Mutex::new(0u64));
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let s = Arc::new(Semaphore::new(2));
        let out = Arc::new(AtomicUsize::new(0));
        let mut plans = plans;
        let thread_plan = plans.pop().unwrap();
        let (m2, l2, s2, o2) = (m.clone(), l.clone(), s.clone(), out.clone());
        let (want, got) = on(2, move || {
            let t = {
                let (m, l, s, out) = (m2.clone(), l2.clone(), s2.clone(), o2.clone());
                std::thread::spawn(move || run_plan(thread_plan, &m, &l, &s, &out))
            };
            let gs: Vec<_> = plans
                .into_iter()
                .map(|plan| {
                    let (m, l, s, out) = (m2.clone(), l2.clone(), s2.clone(), o2.clone());
                    go(move || run_plan(plan, &m, &l, &s, &out))
                })
                .collect();
            let mut want = t.join().unwrap();
            for g in gs {
                let (a, w) = g.join().unwrap();
                want.0 += a;
                want.1 += w;
            }
            let got = (*m2.lock(), *l2.read());
            (want, got)
        });
        proptest::prop_assert_eq!(got.0, want.0);
        proptest::prop_assert_eq!(got.1, (want.1, want.1));
        proptest::prop_assert_eq!(s.available_permits(), 2);
        proptest::prop_assert!(!m.is_locked() && !l.is_locked());
    }
}
