//! loom models of the wait-word protocol (`src/wait.rs`), Go's netpollblock /
//! netpollunblock: readiness racing the waiter's park; a deadline racing readiness; a
//! close racing both. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --target-dir target/loom -p gmp-netpoll --test loom_poll_desc`.
//!
//! Each model checks that the waiter always returns (loom reports a deadlock if it is left
//! parked with nobody to wake it), that it returns "ready" whenever it was not cut short,
//! and that afterwards no waiter is registered and the waiter count is back to zero.
#![cfg(loom)]

use gmp_core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use gmp_core::sync::{thread, Arc};
use gmp_netpoll::WaitWord;
use std::cell::Cell;
use std::time::{Duration, Instant};

struct Shared {
    word: WaitWord,
    waiters: AtomicUsize,
    /// The waiter's error condition: a closed descriptor or an expired deadline.
    cut: AtomicBool,
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        word: WaitWord::new(),
        waiters: AtomicUsize::new(0),
        cut: AtomicBool::new(false),
    })
}

/// The poller delivering an I/O event.
fn ready(s: &Shared) {
    if let Some(u) = s.word.unblock(true, &s.waiters) {
        u.unpark();
    }
}

/// A close, or a deadline timer (Go's `netpolldeadlineimpl`): set the flag, then wake.
fn cut(s: &Shared) {
    s.cut.store(true, SeqCst);
    if let Some(u) = s.word.unblock(false, &s.waiters) {
        u.unpark();
    }
}

/// The I/O loop of `PollDesc::wait`: Ok(()) on readiness, Err(()) when cut.
fn wait(s: &Shared, deadline: Option<Instant>, abort: impl Fn() -> bool) -> Result<(), ()> {
    loop {
        if s.cut.load(SeqCst) {
            return Err(());
        }
        if s.word.block(deadline, &abort, &s.waiters) {
            return Ok(());
        }
    }
}

fn assert_idle(s: &Shared) {
    assert_eq!(s.waiters.load(SeqCst), 0, "waiter count leaked");
    assert!(!s.word.has_waiter(), "a waiter is still registered");
}

#[test]
fn readiness_racing_the_park() {
    loom::model(|| {
        let s = shared();
        let p = {
            let s = s.clone();
            thread::spawn(move || ready(&s))
        };
        assert_eq!(wait(&s, None, || false), Ok(()));
        p.join().unwrap();
        assert_idle(&s);
        assert!(!s.word.is_ready(), "the one event was consumed");
    });
}

#[test]
fn readiness_before_and_during_two_waits() {
    // Two events, two waits: whatever the interleaving, each wait consumes one event
    // or finds the second already merged into a pending READY (edge-triggered events
    // coalesce), so the second wait may only complete once the poller is done.
    loom::model(|| {
        let s = shared();
        let p = {
            let s = s.clone();
            thread::spawn(move || {
                ready(&s);
                ready(&s);
            })
        };
        assert_eq!(wait(&s, None, || false), Ok(()));
        p.join().unwrap();
        assert_idle(&s);
    });
}

#[test]
fn close_racing_the_park() {
    // No I/O will come: only the close can end the wait, so a close that slips between
    // the waiter's check and its sleep would leave it parked forever (loom: deadlock).
    loom::model(|| {
        let s = shared();
        let c = {
            let s = s.clone();
            thread::spawn(move || cut(&s))
        };
        let s2 = s.clone();
        assert_eq!(wait(&s, None, move || s2.cut.load(SeqCst)), Err(()));
        c.join().unwrap();
        assert_idle(&s);
    });
}

#[test]
fn timer_deadline_racing_readiness() {
    // Go's model: a timer sets the deadline flag and unblocks without I/O.
    loom::model(|| {
        let s = shared();
        let p = {
            let s = s.clone();
            thread::spawn(move || ready(&s))
        };
        let t = {
            let s = s.clone();
            thread::spawn(move || cut(&s))
        };
        let s2 = s.clone();
        let r = wait(&s, None, move || s2.cut.load(SeqCst));
        p.join().unwrap();
        t.join().unwrap();
        assert!(r.is_ok() || s.cut.load(SeqCst));
        assert_ne!(r.is_ok(), s.word.is_ready());
        assert_idle(&s);
    });
}

#[test]
fn own_deadline_racing_readiness() {
    // The waiter parks with a deadline and, on its timed wake-up (loom's timed waits may
    // return at once), finds it expired and takes itself back out, racing the poller for
    // the PARKED word.
    loom::model(|| {
        let s = shared();
        let p = {
            let s = s.clone();
            thread::spawn(move || ready(&s))
        };
        // "Time" passes while parked: the first check (before sleeping) says not yet.
        let checks = Cell::new(0);
        let deadline = Some(Instant::now() + Duration::from_secs(3600));
        let got = s.word.block(
            deadline,
            || {
                checks.set(checks.get() + 1);
                checks.get() > 1
            },
            &s.waiters,
        );
        p.join().unwrap();
        assert_idle(&s);
        // The one event is either consumed by this wait, or (it timed out first) left
        // pending for the next one: never lost, never both.
        assert_ne!(got, s.word.is_ready());
    });
}

#[test]
fn close_racing_readiness_and_a_deadline() {
    loom::model(|| {
        let s = shared();
        let p = {
            let s = s.clone();
            thread::spawn(move || ready(&s))
        };
        let c = {
            let s = s.clone();
            thread::spawn(move || cut(&s))
        };
        let checks = Cell::new(0);
        let deadline = Some(Instant::now() + Duration::from_secs(3600));
        let r = loop {
            if s.cut.load(SeqCst) {
                break Err(());
            }
            let s2 = &s;
            let abort = || {
                checks.set(checks.get() + 1);
                s2.cut.load(SeqCst) || checks.get() > 1
            };
            if s.word.block(deadline, abort, &s.waiters) {
                break Ok(());
            }
            if checks.get() > 1 {
                break Err(()); // timed out
            }
        };
        p.join().unwrap();
        c.join().unwrap();
        // Cut short only by the close or the deadline, and then the event is kept.
        if r.is_err() {
            assert!(s.cut.load(SeqCst) || checks.get() > 1);
        }
        assert_ne!(r.is_ok(), s.word.is_ready());
        assert_idle(&s);
    });
}
