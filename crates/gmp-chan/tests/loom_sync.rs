//! loom models of the `sync` primitives (small and sharp; run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --target-dir
//! target/loom -p gmp-chan --test loom_sync`).
//!
//! Under loom, `gmp_core::park` parks loom threads, a timed park returns at once ("timed
//! out", racing whatever the others do), and the mutex's starvation threshold is zero, so
//! every waiter that is woken and loses switches the lock to hand-off mode. Critical
//! sections touch a loom `UnsafeCell`, so loom itself reports two threads inside at once.
//! `Mutex` is, under loom, a stand-in with lock_api's shape over the same `RawMutex` (see
//! `sync/mutex.rs`), so the `Condvar` models run the real condition variable.
#![cfg(loom)]

use gmp_chan::sync::{Barrier, Condvar, Mutex, Once, RawMutex, RawRwLock, Semaphore, WaitGroup};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::time::{Duration, Instant};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Increments the cell inside a critical section.
fn bump(c: &UnsafeCell<usize>) {
    // SAFETY: only called while holding the lock under test; loom checks that claim.
    c.with_mut(|p| unsafe { *p += 1 });
}

fn read(c: &UnsafeCell<usize>) -> usize {
    // SAFETY: as in `bump` (a read share or the lock is held).
    c.with(|p| unsafe { *p })
}

struct Locked<L> {
    lock: L,
    cell: UnsafeCell<usize>,
}

// SAFETY: the cell is only touched under the lock (checked by loom).
unsafe impl<L: Sync> Sync for Locked<L> {}

/// Lock/unlock racing a waiter that parks: mutual exclusion, no lost wake-up (a lost
/// wake-up is a deadlock, which loom reports).
#[test]
fn mutex_lock_unlock_vs_waiter_park() {
    model(|| {
        let m = Arc::new(Locked {
            lock: RawMutex::new(),
            cell: UnsafeCell::new(0),
        });
        let t = {
            let m = m.clone();
            thread::spawn(move || {
                m.lock.lock();
                bump(&m.cell);
                // SAFETY: locked above.
                unsafe { m.lock.unlock() };
            })
        };
        m.lock.lock();
        bump(&m.cell);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
        t.join().unwrap();
        m.lock.lock();
        assert_eq!(read(&m.cell), 2);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
        assert!(!m.lock.is_locked());
    });
}

/// Hand-off: three lockers, so a woken waiter can lose to a barger, re-queue, and (with
/// the zero threshold under loom) switch to starvation mode; the lock is then handed
/// over FIFO. Exclusion holds and everybody gets through.
#[test]
fn mutex_starvation_hand_off() {
    model(|| {
        let m = Arc::new(Locked {
            lock: RawMutex::new(),
            cell: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    m.lock.lock();
                    bump(&m.cell);
                    // SAFETY: locked above.
                    unsafe { m.lock.unlock() };
                })
            })
            .collect();
        m.lock.lock();
        bump(&m.cell);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
        for t in ts {
            t.join().unwrap();
        }
        assert!(m.lock.try_lock(), "hand-off mode left behind");
        assert_eq!(read(&m.cell), 3);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
    });
}

/// A timed lock whose timeout races the unlock: it either gets the lock or leaves the
/// queue; the lock ends free either way.
#[test]
fn mutex_timeout_vs_unlock() {
    model(|| {
        let m = Arc::new(RawMutex::new());
        m.lock();
        let t = {
            let m = m.clone();
            thread::spawn(move || {
                if m.lock_until(Instant::now() + Duration::from_secs(60)) {
                    // SAFETY: locked above.
                    unsafe { m.unlock() };
                }
            })
        };
        // SAFETY: locked above.
        unsafe { m.unlock() };
        t.join().unwrap();
        assert!(m.try_lock());
        // SAFETY: locked above.
        unsafe { m.unlock() };
    });
}

/// A timed waiter and a plain waiter behind a holder: the timeout may fire after an
/// unlock chose the timed waiter; that wake-up must reach the other waiter.
#[test]
fn mutex_timeout_passes_the_wake_up_on() {
    model(|| {
        let m = Arc::new(Locked {
            lock: RawMutex::new(),
            cell: UnsafeCell::new(0),
        });
        m.lock.lock();
        let timed = {
            let m = m.clone();
            thread::spawn(move || {
                if m.lock.lock_until(Instant::now() + Duration::from_secs(60)) {
                    bump(&m.cell);
                    // SAFETY: locked above.
                    unsafe { m.lock.unlock() };
                }
            })
        };
        let plain = {
            let m = m.clone();
            thread::spawn(move || {
                m.lock.lock();
                bump(&m.cell);
                // SAFETY: locked above.
                unsafe { m.lock.unlock() };
            })
        };
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
        // Barge back in: the timed waiter may be woken and find the lock taken.
        m.lock.lock();
        bump(&m.cell);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
        timed.join().unwrap();
        plain.join().unwrap();
        assert!(m.lock.try_lock());
        assert!(read(&m.cell) >= 2);
        // SAFETY: locked above.
        unsafe { m.lock.unlock() };
    });
}

/// One writer against two readers: the write section is exclusive, readers see the
/// counter before or after it, never torn; the lock ends free.
#[test]
fn rwlock_writer_vs_readers() {
    model(|| {
        let l = Arc::new(Locked {
            lock: RawRwLock::new(),
            cell: UnsafeCell::new(0),
        });
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                l.lock.lock_exclusive();
                bump(&l.cell);
                // SAFETY: locked above.
                unsafe { l.lock.unlock_exclusive() };
            })
        };
        let r = {
            let l = l.clone();
            thread::spawn(move || {
                l.lock.lock_shared();
                let v = read(&l.cell);
                // SAFETY: locked above.
                unsafe { l.lock.unlock_shared() };
                v
            })
        };
        l.lock.lock_shared();
        let v = read(&l.cell);
        // SAFETY: locked above.
        unsafe { l.lock.unlock_shared() };
        assert!(v <= 1);
        assert!(r.join().unwrap() <= 1);
        w.join().unwrap();
        assert!(l.lock.try_lock_exclusive());
        assert_eq!(read(&l.cell), 1);
        // SAFETY: locked above.
        unsafe { l.lock.unlock_exclusive() };
    });
}

/// A writer whose timeout races the readers' release: it gets the lock or leaves, and
/// the reader it held back is let in either way.
#[test]
fn rwlock_writer_timeout_vs_reader() {
    model(|| {
        let l = Arc::new(RawRwLock::new());
        l.lock_shared();
        let w = {
            let l = l.clone();
            thread::spawn(move || {
                if l.lock_exclusive_until(Instant::now() + Duration::from_secs(60)) {
                    // SAFETY: locked above.
                    unsafe { l.unlock_exclusive() };
                }
            })
        };
        let r = {
            let l = l.clone();
            thread::spawn(move || {
                l.lock_shared();
                // SAFETY: locked above.
                unsafe { l.unlock_shared() };
            })
        };
        // SAFETY: locked above.
        unsafe { l.unlock_shared() };
        w.join().unwrap();
        r.join().unwrap();
        assert!(!l.is_locked());
        assert!(l.try_lock_exclusive());
        // SAFETY: locked above.
        unsafe { l.unlock_exclusive() };
    });
}

/// `wait` racing the last `done`s: it returns, after both workers' writes.
#[test]
fn wait_group_wait_vs_done() {
    model(|| {
        let wg = Arc::new(WaitGroup::new());
        let n = Arc::new(AtomicUsize::new(0));
        wg.add(2);
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let (wg, n) = (wg.clone(), n.clone());
                thread::spawn(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                    wg.done();
                })
            })
            .collect();
        wg.wait();
        assert_eq!(n.load(Ordering::Relaxed), 2);
        for t in ts {
            t.join().unwrap();
        }
    });
}

/// Acquire racing release with one permit, and a two-permit request queued FIFO: the
/// permits are exclusive and all come back.
#[test]
fn semaphore_acquire_vs_release() {
    model(|| {
        let s = Arc::new(Locked {
            lock: Semaphore::new(2),
            cell: UnsafeCell::new(0),
        });
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                let p = s.lock.acquire_many(2);
                bump(&s.cell);
                drop(p);
            })
        };
        {
            let _a = s.lock.acquire_many(2);
            bump(&s.cell);
        }
        t.join().unwrap();
        assert_eq!(s.lock.available_permits(), 2);
        let _all = s.lock.acquire_many(2);
        assert_eq!(read(&s.cell), 2);
    });
}

/// A timed acquire racing the release: it gets the permit or leaves the queue.
#[test]
fn semaphore_timeout_vs_release() {
    model(|| {
        let s = Arc::new(Semaphore::new(1));
        let p = s.acquire();
        let t = {
            let s = s.clone();
            thread::spawn(move || s.acquire_timeout(Duration::from_secs(60)).is_some())
        };
        drop(p);
        let _ = t.join().unwrap();
        assert_eq!(s.available_permits(), 1);
    });
}

/// Two initialisers race: exactly one runs, and both return after it finished.
#[test]
fn once_racing_initialisers() {
    model(|| {
        let o = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let t = {
            let (o, runs) = (o.clone(), runs.clone());
            thread::spawn(move || {
                o.call_once(|| {
                    runs.fetch_add(1, Ordering::Relaxed);
                });
                runs.load(Ordering::Relaxed)
            })
        };
        o.call_once(|| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert_eq!(t.join().unwrap(), 1);
    });
}

/// Two parties meet; exactly one leads.
#[test]
fn barrier_two_parties() {
    model(|| {
        let b = Arc::new(Barrier::new(2));
        let t = {
            let b = b.clone();
            thread::spawn(move || b.wait().is_leader())
        };
        let me = b.wait().is_leader();
        assert!(me != t.join().unwrap());
    });
}

/// `wait` in the usual predicate loop racing a notifier that sets the flag under the
/// mutex and calls `notify_one` after releasing it: no lost wake-up (the waiter queues
/// before it releases the mutex; a lost wake-up is a deadlock, which loom reports).
#[test]
fn condvar_wait_vs_notify_one() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let t = {
            let pair = pair.clone();
            thread::spawn(move || {
                *pair.0.lock() = true;
                pair.1.notify_one()
            })
        };
        let (m, c) = &*pair;
        let mut ready = m.lock();
        let mut waits = 0;
        while !*ready {
            c.wait(&mut ready);
            waits += 1;
        }
        drop(ready);
        let woke = t.join().unwrap();
        // No spurious wake-ups: the waiter waited at most once, and only if notified.
        assert!(waits <= 1);
        assert_eq!(woke, waits == 1);
    });
}

/// A timed wait (its park returns at once under loom: the timeout fires, racing the
/// notifier) followed by a plain wait if the flag is still unset. A notification that
/// reached the timed waiter is reported as such (and `notify_one` counts it); a timed-out
/// waiter leaves the queue, so the one `notify_one` reaches the plain wait instead of a
/// stale entry (a stale entry would swallow it: deadlock).
#[test]
fn condvar_wait_until_vs_notify_one() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let t = {
            let pair = pair.clone();
            thread::spawn(move || {
                *pair.0.lock() = true;
                pair.1.notify_one()
            })
        };
        let (m, c) = &*pair;
        let mut ready = m.lock();
        let mut timed_out = None;
        if !*ready {
            let r = c.wait_until(&mut ready, Instant::now() + Duration::from_secs(60));
            timed_out = Some(r.timed_out());
            while !*ready {
                c.wait(&mut ready);
            }
        }
        drop(ready);
        let woke = t.join().unwrap();
        match timed_out {
            // Never waited: nobody was queued for the notification.
            None => assert!(!woke),
            // Notified: the notifier set the flag first and counted the wake-up.
            Some(false) => assert!(woke),
            // Timed out: the notification went to the plain wait or found nobody.
            Some(true) => {}
        }
    });
}

/// Two waiters, two `notify_one`s, each after publishing one more "ticket" under the
/// mutex: both waiters get through. A `notify_one` takes the waiter it decides out of the
/// queue, so the second one reaches the other waiter (deciding the same waiter twice
/// leaves the other parked: deadlock).
#[test]
fn condvar_two_waiters_two_notify_one() {
    model(|| {
        let pair = Arc::new((Mutex::new(0usize), Condvar::new()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let pair = pair.clone();
                thread::spawn(move || {
                    let (m, c) = &*pair;
                    let mut tickets = m.lock();
                    while *tickets == 0 {
                        c.wait(&mut tickets);
                    }
                    *tickets -= 1;
                })
            })
            .collect();
        let (m, c) = &*pair;
        for _ in 0..2 {
            *m.lock() += 1;
            c.notify_one();
        }
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 0);
    });
}
