//! Behaviour of `gmp_chan::sync` on plain threads (goroutines: gmp-runtime's
//! `tests/sync_goroutines.rs`), and a proptest of random lock/unlock/wait sequences across
//! threads against a sequential model.
#![cfg(not(loom))]

use gmp_chan::sync::{
    Barrier, Condvar, Mutex, Once, OnceLock, RawMutex, RwLock, Semaphore, WaitGroup,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn mutex_counts_exactly_across_threads() {
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..20_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 160_000);
    assert!(!m.is_locked());
}

#[test]
fn mutex_timed_lock_times_out_and_leaves_no_waiter() {
    let m = Arc::new(Mutex::new(()));
    let g = m.lock();
    let t0 = Instant::now();
    assert!(m.try_lock_for(Duration::from_millis(20)).is_none());
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert!(m
        .try_lock_until(Instant::now() + Duration::from_millis(1))
        .is_none());
    drop(g);
    // The timed-out waiters left the queue: the uncontended fast path works again.
    assert!(m.try_lock().is_some());
    let m2 = m.clone();
    let g = m.lock();
    let t = thread::spawn(move || m2.try_lock_for(Duration::from_secs(10)).is_some());
    thread::sleep(Duration::from_millis(10));
    drop(g);
    assert!(t.join().unwrap());
}

#[test]
fn guard_unlocks_on_another_thread() {
    let m = Mutex::new(5);
    let g = m.lock();
    // GuardSend: the lock has no owner thread.
    thread::scope(|s| {
        s.spawn(move || drop(g));
    });
    assert_eq!(*m.lock(), 5);
    let mut m = Mutex::new(vec![1]);
    m.get_mut().push(2);
    let g = m.lock();
    let first = gmp_chan::sync::MutexGuard::map(g, |v| &mut v[0]);
    assert_eq!(*first, 1);
    drop(first);
    assert_eq!(m.into_inner(), vec![1, 2]);
}

/// Once a waiter has waited more than 1 ms, the lock is handed over in FIFO order: a
/// thread that hammers lock/unlock cannot keep the waiter out.
#[test]
fn starvation_mode_hands_the_lock_to_the_waiter() {
    let m = Arc::new(Mutex::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let hog = {
        let (m, stop) = (m.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let g = m.lock();
                // A critical section long enough that the waiter's wait crosses 1 ms.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(50) {}
                drop(g);
                n += 1;
            }
            n
        })
    };
    thread::sleep(Duration::from_millis(5));
    let t0 = Instant::now();
    for _ in 0..20 {
        drop(m.lock());
    }
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    hog.join().unwrap();
    // 20 acquisitions against a hog: with hand-off each costs about one critical
    // section plus 1 ms; without it the waiter could lose indefinitely. Generous bound.
    assert!(took < Duration::from_secs(5), "waiter starved for {took:?}");
}

#[test]
fn raw_mutex_unlock_fair_hands_over() {
    let m = Arc::new(RawMutex::new());
    m.lock();
    let got = Arc::new(AtomicBool::new(false));
    let t = {
        let (m, got) = (m.clone(), got.clone());
        thread::spawn(move || {
            m.lock();
            got.store(true, Ordering::SeqCst);
            // SAFETY: locked above.
            unsafe { m.unlock() };
        })
    };
    thread::sleep(Duration::from_millis(10));
    // SAFETY: locked above.
    unsafe { m.unlock_fair() };
    t.join().unwrap();
    assert!(got.load(Ordering::SeqCst));
    assert!(!m.is_locked());
}

#[test]
fn rwlock_readers_share_and_writer_blocks_new_readers() {
    let l = Arc::new(RwLock::new(0));
    let r1 = l.read();
    let r2 = l.read();
    assert_eq!(*r1 + *r2, 0);
    let writer_in = Arc::new(AtomicBool::new(false));
    let w = {
        let (l, writer_in) = (l.clone(), writer_in.clone());
        thread::spawn(move || {
            let mut g = l.write();
            writer_in.store(true, Ordering::SeqCst);
            *g += 1;
        })
    };
    // Wait until the writer is queued: then new readers must not get in.
    let t0 = Instant::now();
    while l.try_read().is_some() {
        assert!(t0.elapsed() < Duration::from_secs(5), "writer never queued");
        thread::yield_now();
    }
    assert!(l.try_read_for(Duration::from_millis(5)).is_none());
    assert!(!writer_in.load(Ordering::SeqCst));
    drop(r1);
    drop(r2);
    w.join().unwrap();
    assert_eq!(*l.read(), 1);
    // A writer that gives up lets the readers it held back in.
    let r = l.read();
    assert!(l.try_write_for(Duration::from_millis(5)).is_none());
    assert!(l.try_read().is_some());
    drop(r);
    assert!(l.try_write().is_some());
}

#[test]
fn rwlock_stress_exclusive_sections_are_exclusive() {
    let l = Arc::new(RwLock::new((0u64, 0u64)));
    let hs: Vec<_> = (0..6)
        .map(|i| {
            let l = l.clone();
            thread::spawn(move || {
                for _ in 0..5_000 {
                    if i % 3 == 0 {
                        let mut g = l.write();
                        g.0 += 1;
                        g.1 += 1;
                    } else {
                        let g = l.read();
                        assert_eq!(g.0, g.1);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*l.read(), (10_000, 10_000));
}

#[test]
fn condvar_wait_notify_and_timeouts() {
    let pair = Arc::new((Mutex::new(0), Condvar::new()));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let p = pair.clone();
            thread::spawn(move || {
                let mut g = p.0.lock();
                p.1.wait_while(&mut g, |n| *n == 0);
                *g
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(10));
    *pair.0.lock() = 7;
    pair.1.notify_all();
    for h in hs {
        assert_eq!(h.join().unwrap(), 7);
    }
    let mut g = pair.0.lock();
    let r = pair.1.wait_for(&mut g, Duration::from_millis(5));
    assert!(r.timed_out());
    let r = pair
        .1
        .wait_while_for(&mut g, |n| *n == 7, Duration::from_millis(5));
    assert!(r.timed_out());
    assert!(
        !pair.1.notify_one(),
        "timed-out waiters must have left the queue"
    );
}

#[test]
fn condvar_notify_one_wakes_one() {
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let woke = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let (p, woke) = (pair.clone(), woke.clone());
            thread::spawn(move || {
                let mut g = p.0.lock();
                while *g == 0 {
                    p.1.wait(&mut g);
                }
                *g -= 1;
                woke.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(5));
        *pair.0.lock() += 1;
        pair.1.notify_one();
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(woke.load(Ordering::SeqCst), 3);
}

#[test]
fn wait_group_waits_and_panics_when_negative() {
    let wg = Arc::new(WaitGroup::new());
    let n = Arc::new(AtomicUsize::new(0));
    wg.add(16);
    for _ in 0..16 {
        let (wg, n) = (wg.clone(), n.clone());
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(2));
            n.fetch_add(1, Ordering::SeqCst);
            wg.done();
        });
    }
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (wg, n) = (wg.clone(), n.clone());
            thread::spawn(move || {
                wg.wait();
                n.load(Ordering::SeqCst)
            })
        })
        .collect();
    wg.wait();
    for w in waiters {
        assert_eq!(w.join().unwrap(), 16);
    }
    let err = std::panic::catch_unwind(|| WaitGroup::new().done()).unwrap_err();
    assert_eq!(
        err.downcast_ref::<&str>().copied(),
        Some("sync: negative WaitGroup counter")
    );
}

#[test]
fn semaphore_limits_and_serves_in_order() {
    let s = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let (s, inside, max) = (s.clone(), inside.clone(), max.clone());
            thread::spawn(move || {
                for _ in 0..200 {
                    let _p = s.acquire();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(max.load(Ordering::SeqCst) <= 3);
    assert_eq!(s.available_permits(), 3);
    // A big request at the head is not overtaken by small ones (FIFO).
    let all = s.acquire_many(3);
    let big = {
        let s = s.clone();
        thread::spawn(move || s.acquire_many(2).num_permits())
    };
    thread::sleep(Duration::from_millis(10));
    assert!(s.try_acquire().is_none(), "a queued waiter goes first");
    drop(all);
    assert_eq!(big.join().unwrap(), 2);
    assert_eq!(s.available_permits(), 3);
    assert!(s.acquire_timeout(Duration::from_millis(1)).is_some());
    let hold = s.acquire_many(3);
    assert!(s.acquire_timeout(Duration::from_millis(5)).is_none());
    hold.forget();
    assert_eq!(s.available_permits(), 0);
    s.add_permits(2);
    assert_eq!(s.available_permits(), 2);
}

#[test]
fn once_runs_once_and_poisons() {
    static O: Once = Once::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..6)
        .map(|_| {
            let runs = runs.clone();
            thread::spawn(move || {
                O.call_once(|| {
                    thread::sleep(Duration::from_millis(10));
                    runs.fetch_add(1, Ordering::SeqCst);
                });
                // Everyone returns only after the initialiser finished.
                assert_eq!(runs.load(Ordering::SeqCst), 1);
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let o = Once::new();
    assert!(std::panic::catch_unwind(|| o.call_once(|| panic!("init failed"))).is_err());
    assert!(std::panic::catch_unwind(|| o.call_once(|| {})).is_err());
    let mut saw = false;
    o.call_once_force(|s| saw = s.is_poisoned());
    assert!(saw && o.is_completed());
}

#[test]
fn once_lock_initialises_once() {
    let c = Arc::new(OnceLock::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..6)
        .map(|i| {
            let (c, runs) = (c.clone(), runs.clone());
            thread::spawn(move || {
                *c.get_or_init(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(5));
                    i
                })
            })
        })
        .collect();
    let vals: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(vals.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let c: OnceLock<String> = OnceLock::new();
    assert!(std::panic::catch_unwind(|| c.get_or_init(|| panic!("no"))).is_err());
    assert_eq!(c.get_or_init(|| "ok".into()), "ok");
    assert_eq!(c.clone(), OnceLock::from("ok".to_string()));
}

#[test]
fn barrier_releases_rounds_with_one_leader() {
    let b = Arc::new(Barrier::new(4));
    let leaders = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (b, leaders) = (b.clone(), leaders.clone());
            thread::spawn(move || {
                for _ in 0..50 {
                    if b.wait().is_leader() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(leaders.load(Ordering::SeqCst), 50);
    assert!(Barrier::new(0).wait().is_leader());
}

/// One step of a thread in the proptest: what it does to the shared state.
#[derive(Debug, Clone)]
enum Op {
    /// Lock, add to the counter, maybe hold a while, unlock.
    Add(u8, bool),
    /// Timed lock attempt; adds on success.
    TimedAdd(u8),
    /// Write-lock the RwLock and add; or read it and check the pair invariant.
    Write(u8),
    Read,
    /// Take and give back semaphore permits.
    Permits(u8),
    /// Wait at the WaitGroup checkpoint is done once per thread at the end.
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..10, any::<bool>()).prop_map(|(n, h)| Op::Add(n, h)),
        (1u8..10).prop_map(Op::TimedAdd),
        (1u8..10).prop_map(Op::Write),
        Just(Op::Read),
        (1u8..3).prop_map(Op::Permits),
        Just(Op::Yield),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random sequences on 3 threads; the sequential model is the sum of what each
    /// successful operation added (addition commutes, so any interleaving must reach
    /// it), plus the invariants that hold at every step (RwLock pair equal, at most 2
    /// semaphore permits out).
    #[test]
    fn random_sequences_match_the_model(plans in proptest::collection::vec(
        proptest::collection::vec(op(), 1..40), 3..4)) {
        let m = Arc::new(Mutex::new(0u64));
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let s = Arc::new(Semaphore::new(2));
        let out = Arc::new(AtomicUsize::new(0));
        let wg = Arc::new(WaitGroup::new());
        wg.add(plans.len() as isize);
        let hs: Vec<_> = plans.clone().into_iter().map(|plan| {
            let (m, l, s, out, wg) = (m.clone(), l.clone(), s.clone(), out.clone(), wg.clone());
            thread::spawn(move || {
                let mut added = 0u64;
                let mut written = 0u64;
                for op in plan {
                    match op {
                        Op::Add(n, hold) => {
                            let mut g = m.lock();
                            *g += n as u64;
                            added += n as u64;
                            if hold { thread::yield_now(); }
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
                            assert!(now <= 2);
                            out.fetch_sub(k as usize, Ordering::SeqCst);
                            drop(p);
                        }
                        Op::Yield => thread::yield_now(),
                    }
                }
                wg.done();
                (added, written)
            })
        }).collect();
        wg.wait();
        let mut want = (0, 0);
        for h in hs {
            let (a, w) = h.join().unwrap();
            want.0 += a;
            want.1 += w;
        }
        prop_assert_eq!(*m.lock(), want.0);
        prop_assert_eq!(*l.read(), (want.1, want.1));
        prop_assert_eq!(s.available_permits(), 2);
        prop_assert!(!m.is_locked() && !l.is_locked());
    }
}
