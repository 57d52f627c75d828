//! loom models of the park state machine (`gmp_core::park::ThreadParker`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --target-dir target/loom -p gmp-core --test loom_park`
//!
//! Under loom a timed wait returns at once, "timed out" (see `gmp_core::sync`), which is
//! exactly the timeout racing the unpark that the third model needs.
#![cfg(loom)]

use gmp_core::park::ThreadParker;
use gmp_core::sync::atomic::{AtomicBool, Ordering};
use gmp_core::sync::{thread, Arc};
use std::time::{Duration, Instant};

/// An unpark that happens before the park is not lost: the park returns at once.
#[test]
fn unpark_before_park() {
    loom::model(|| {
        let p = Arc::new(ThreadParker::new());
        let p2 = p.clone();
        let t = thread::spawn(move || p2.unpark());
        t.join().unwrap();
        p.park(None); // must not block
    });
}

/// A waiter parked (or about to park) is woken by a concurrent unpark, and sees what the
/// unparker wrote before unparking.
#[test]
fn unpark_during_park() {
    loom::model(|| {
        let p = Arc::new(ThreadParker::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (p2, f2) = (p.clone(), flag.clone());
        let t = thread::spawn(move || {
            // Relaxed: the park/unpark permit is what must publish this store.
            f2.store(true, Ordering::Relaxed);
            p2.unpark();
        });
        // A park may return spuriously; a waiter re-checks its condition. loom fails the
        // model if this can block forever (a lost wake-up) or if the flag is not visible.
        loop {
            if flag.load(Ordering::Relaxed) {
                break;
            }
            p.park(None);
        }
        t.join().unwrap();
    });
}

/// A timed park racing an unpark: whether the timeout or the unpark wins, the permit is
/// never lost (a later untimed park returns) and the parker ends up idle.
#[test]
fn timeout_racing_unpark() {
    loom::model(|| {
        let p = Arc::new(ThreadParker::new());
        let done = Arc::new(AtomicBool::new(false));
        let (p2, d2) = (p.clone(), done.clone());
        let t = thread::spawn(move || {
            d2.store(true, Ordering::Release);
            p2.unpark();
        });
        p.park(Some(Instant::now() + Duration::from_millis(1)));
        // If the unparker has not finished yet, its unpark is still to come; if it has,
        // its permit was either consumed by the timed park or is pending. Either way this
        // loop terminates: a lost permit would block it forever, which loom reports.
        while !done.load(Ordering::Acquire) {
            p.park(None);
        }
        t.join().unwrap();
        // The state machine is not wedged: a state left PARKED would make the next park's
        // commit panic ("two waiters share one park state"), a lost permit would block.
        p.unpark();
        p.park(None);
    });
}

/// A goroutine dump borrows a parked waiter (`begin_capture`) while a waker unparks it
/// and its timer fires: exactly one of them wakes it — never none (a lost wake-up),
/// never two (a goroutine run twice).
#[test]
fn capture_racing_unpark_and_timeout_wakes_exactly_once() {
    use gmp_core::park::ParkState;
    use gmp_core::sync::atomic::AtomicUsize;
    loom::model(|| {
        let st = Arc::new(ParkState::new());
        assert!(st.commit_park()); // the waiter is parked
        let wakes = Arc::new(AtomicUsize::new(0));
        let (s1, w1) = (st.clone(), wakes.clone());
        let waker = thread::spawn(move || {
            if s1.unpark() {
                w1.fetch_add(1, Ordering::SeqCst);
            }
        });
        let (s2, w2) = (st.clone(), wakes.clone());
        let timer = thread::spawn(move || {
            if s2.cancel_park() {
                w2.fetch_add(1, Ordering::SeqCst);
            }
        });
        if st.begin_capture() && !st.end_capture() {
            // Woken while lent: the dumper wakes it.
            wakes.fetch_add(1, Ordering::SeqCst);
        }
        waker.join().unwrap();
        timer.join().unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
    });
}

/// The goroutine hand-off (the runtime's park protocol on a bare `ParkState`): the
/// parking side writes its context (for a goroutine: the registers its switch pushed on
/// its stack, its G's fields) and then commits the park; whoever then wins the right
/// to wake it — an unparker that saw `PARKED`, or a timer whose `cancel_park` succeeded —
/// resumes it, possibly on another thread, and reads that context. The commit must
/// therefore release and the winner acquire: with a relaxed commit (or an unpark that
/// only releases) loom reports the context read as racing the write.
#[test]
fn committed_context_is_visible_to_whoever_resumes_the_waiter() {
    use gmp_core::park::ParkState;
    use gmp_core::sync::UnsafeCell;
    for timer in [false, true] {
        loom::model(move || {
            let st = Arc::new(ParkState::new());
            let ctx = Arc::new(UnsafeCell::new(0u64));
            let (st2, ctx2) = (st.clone(), ctx.clone());
            let waker = thread::spawn(move || {
                let won = if timer {
                    st2.cancel_park()
                } else {
                    st2.unpark()
                };
                if won {
                    // We resume the waiter: its saved context must be complete.
                    // SAFETY: the waiter committed and we won it: it is ours.
                    let v = ctx2.with(|p| unsafe { *p });
                    assert_eq!(v, 42);
                }
            });
            // The waiter's side, up to the commit (the switch has saved the context).
            // SAFETY: nobody can resume the waiter before the commit below.
            ctx.with_mut(|p| unsafe { *p = 42 });
            if !st.commit_park() {
                // An unpark came first: the waiter runs on itself.
            }
            waker.join().unwrap();
        });
    }
}

/// A goroutine's wake-up (`ParkState::unpark_taking`): a waker that finds the waiter
/// `PARKED` leaves the word `EMPTY` and resumes the waiter itself, here through a
/// Release/Acquire hand-off flag standing in for the run queue; the resumed waiter does
/// not swap the word again (no `finish_park`). The waiter must see what the waker wrote
/// (a Relaxed flag: only the hand-off publishes it; without it the waiter parks again
/// and nobody resumes it, which loom reports), no wake-up is lost, and the word ends
/// idle: a state left `PARKED` would make the last `commit_park` panic.
#[test]
fn unpark_taking_resumes_the_waiter_through_its_handoff() {
    use gmp_core::park::ParkState;
    loom::model(|| {
        let state = Arc::new(ParkState::new());
        let data = Arc::new(AtomicBool::new(false));
        let resumed = Arc::new(AtomicBool::new(false));
        let (s2, d2, r2) = (state.clone(), data.clone(), resumed.clone());
        let t = thread::spawn(move || {
            // Relaxed: the hand-off below (or the permit) must publish it.
            d2.store(true, Ordering::Relaxed);
            if s2.unpark_taking() {
                // We took the parked waiter over: resume it (a run queue's push).
                r2.store(true, Ordering::Release);
            }
        });
        while !data.load(Ordering::Relaxed) {
            if state.try_acquire() {
                continue; // a permit: re-check
            }
            if state.commit_park() {
                // Asleep until the one who took us over resumes us (an M's pop).
                while !resumed.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                resumed.store(false, Ordering::Relaxed);
            }
        }
        t.join().unwrap();
        // Idle again: a new park commits (a permit left in a race is taken instead).
        if !state.try_acquire() {
            assert!(state.commit_park(), "the word was left wedged");
        }
    });
}
