//! loom models of the scheduler's protocols, with loom threads standing in for Ms.
//!
//! Run by `cargo xtask loom gmp-runtime` (`--cfg loom`, `--lib`). Each model drives the
//! real `Sched` functions; none touches a coroutine or an OS thread (a goroutine here
//! is a `G` with a body that never runs).
//!
//! 1. `wakep_vs_spinner_giving_up`: a goroutine is made runnable (global queue +
//!    `wakep`) while the only spinning M gives up its P (`release_p`). No lost wake-up:
//!    either the spinner finds the work, or `wakep` hands the P to an idle M. And the
//!    spinning count never underflows or leaks.
//! 2. `park_commit_vs_unpark`: the scheduler commits a goroutine's park while another
//!    thread unparks it: it is made runnable exactly once (by the unparker, or by the
//!    failed commit), and the run queue's reference that the park holds goes to exactly
//!    one place (`G::commit_park`, `G::take_park_ref`).
//! 3. `timer_vs_unpark`: a park deadline fires while an unpark arrives: exactly one of
//!    them readies the goroutine.
//! 4. `timer_insert_vs_sleeping_m`: a goroutine parks with a deadline (a timer is added)
//!    while the last M goes to sleep having seen no timer. The M must not sleep past the
//!    timer: either it saw it, or `wake_for_timer` nudges an idle M (it, or another that
//!    will serve the timer). A lost nudge leaves the sleeper blocked: loom reports it.
//! 5. `context_cancel_vs_select`: a plain thread blocks in a `select!` over
//!    `ctx.done()` and another channel while another thread drops the `Cancel`: the select
//!    returns from the done arm and `err()` is `Canceled` (a lost disconnect wake-up is a
//!    deadlock, which loom reports).
//! 6. `context_parent_cancel_vs_child_select`: a child is created under a parent while
//!    another thread cancels the parent, then a `select!` waits on the child's `done()`:
//!    whichever wins the parent's lock (the child links itself, or sees the parent ended),
//!    the child ends with the parent's error and the select returns.
//!
//! 7. `runnext_publish_vs_spinner_giving_up`: as model 1, but the goroutine is readied
//!    into the submitter's own `runnext` (`push_next`, whose swap is `SeqCst`) and
//!    `wakep_after_push_next` leaves out `wakep`'s fence. Either the spinner's re-scan
//!    sees the G, or the submitter sees no spinner and hands the idle P to an M. With
//!    the swap weakened to Release (gmp-queue's `RUNNEXT_SWAP`), loom finds the
//!    interleaving where neither happens.
//!
//! 8. `enter_vs_retake`: an M takes its P back from goroutine code (`enter_from_user`:
//!    a flag, a compiler fence, a load; no locked instruction) while sysmon takes the
//!    same P for a hog (`take_from_user`: a CAS to `RETAKE`, `membarrier`, a look at
//!    the flag). Exactly one of them gets the P, or both one after the other, never
//!    both at once: the P's owner-only state is a loom cell, so two owners at once are
//!    a data race loom reports. Under loom both barriers are `SeqCst` fences (what
//!    `membarrier` guarantees the pair); with either one weakened (the M's to
//!    `Release`, sysmon's to `AcqRel`) loom finds the interleaving where both go on
//!    (checked, 2026-12-05).
//!
//!    The context models use cancel contexts only: a deadline's timer lives on the
//!    runtime's per-P heaps (`time::callback_at`), which no loom thread here runs.

use crate::g::{Status, G};
use crate::m::{Wake, M};
use crate::p::{enter_from_user, own_word, take_from_user, Take, OWN_IDLE, OWN_RUNTIME, OWN_USER};
use crate::sched::{Config, Release, Sched};
use gmp_core::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

fn sched(procs: usize) -> Arc<Sched> {
    Arc::new(Sched::new(Config {
        procs,
        stack_size: gmp_core::stack::DEFAULT_STACK_SIZE,
        schedtrace_ms: None,
        scheddetail: false,
        name: "loom".into(),
    }))
}

/// A goroutine that is never run.
fn g(sched: &Arc<Sched>, id: u64) -> Arc<G> {
    G::new(
        id,
        crate::origin::Origin::new(None, None),
        sched.clone(),
        None,
        Some(crate::spawn::noop_entry()),
    )
}

/// Breaks the Sched → queue → G → Sched cycles so loom sees no leak.
fn teardown(s: &Sched) {
    drop(s.global.drain());
    for pp in s.allp.iter() {
        drop(pp.timers.drain());
    }
}

/// Takes an idle P as an M would (`pidleget` + `acquirep`).
fn take_p(sched: &Sched, m: u64) -> usize {
    let p = sched.pidleget().expect("an idle P");
    let prev = sched.allp[p]
        .own
        .swap(own_word(m, OWN_RUNTIME), Ordering::AcqRel);
    assert_eq!(prev & 0xff, OWN_IDLE);
    p
}

/// An M asleep on the idle list, counted there (`stopm` before its sleep).
fn idle_m(sched: &Sched, id: u64) -> Arc<M> {
    let m = M::new(id);
    sched.idle.lock().midle.push(m.clone());
    sched.nmidle.store(1, Ordering::Relaxed);
    m
}

/// `m` was handed P `p`, spinning, by `wakep`'s `startm`.
fn assert_handed_p_spinning(m: &M, p: usize) {
    match m.sleep(None) {
        Wake::P(p2, spinning) => {
            assert_eq!(p2, p);
            assert!(spinning);
        }
        Wake::Nudge => panic!("M woken without a P"),
    }
}

#[test]
fn wakep_vs_spinner_giving_up() {
    loom::model(|| {
        let s = sched(1);
        // M1 holds the only P and is spinning; M2 sleeps on the idle list.
        let p = take_p(&s, 1);
        s.nmspinning.store(1, Ordering::SeqCst);
        let m2 = idle_m(&s, 2);

        let s2 = s.clone();
        let submitter = loom::thread::spawn(move || {
            let gr = g(&s2, 7);
            gr.set_status(Status::Runnable);
            s2.global.push(gr);
            s2.wakep();
        });
        let spinner = s.release_p(p, true);
        submitter.join().unwrap();

        let m2_got_p = s.idle.lock().midle.is_empty();
        match spinner {
            // The spinner saw the work (before or after releasing): it keeps running.
            Release::Keep | Release::Reacquired(_) => {}
            Release::Spin => unreachable!("only a non-spinning M is asked to spin"),
            // The spinner sleeps: M2 must have been handed the P, spinning.
            Release::Released => {
                assert!(m2_got_p, "lost wake-up: work queued, P idle, no M running");
                assert_handed_p_spinning(&m2, p);
            }
        }
        // The spinning count is exactly the number of spinning Ms.
        let spinning = match spinner {
            Release::Keep => 1, // still spinning (the caller keeps its flag)
            Release::Reacquired(_) | Release::Spin => 1,
            Release::Released => usize::from(m2_got_p),
        };
        assert_eq!(
            s.nmspinning.load(Ordering::SeqCst),
            spinning,
            "nmspinning leaked or underflowed"
        );
        assert_eq!(s.global.len(), 1, "the goroutine was lost");
        teardown(&s);
    });
}

#[test]
fn runnext_publish_vs_spinner_giving_up() {
    loom::model(|| {
        let s = sched(2);
        // M1 holds one P and readies a goroutine; M2 holds the other and is the only
        // spinner, about to give up; M3 sleeps on the idle list.
        let submitter_p = take_p(&s, 1);
        let spinner_p = take_p(&s, 2);
        s.nmspinning.store(1, Ordering::SeqCst);
        let m3 = idle_m(&s, 3);

        let s2 = s.clone();
        let submitter = loom::thread::spawn(move || {
            let gr = g(&s2, 7);
            gr.set_status(Status::Runnable);
            // SAFETY: this thread stands in for P `submitter_p`'s owner (M1): no other
            // thread uses that queue but through its stealer.
            let local = unsafe { s2.allp[submitter_p].local_as_owner() };
            local.push_next(gr, &s2.global);
            s2.wakep_after_push_next();
        });
        let spinner = s.release_p(spinner_p, true);
        submitter.join().unwrap();

        let m3_got_p = s.idle.lock().midle.is_empty();
        match spinner {
            // The spinner saw the G (in the submitter's `runnext`) and took a P back.
            Release::Reacquired(_) => {}
            Release::Keep | Release::Spin => unreachable!("the global queue stays empty"),
            // The spinner sleeps: the submitter must have seen no spinner and handed
            // the idle P to M3, spinning, to run the G in parallel.
            Release::Released => {
                assert!(
                    m3_got_p,
                    "missed wake-up: a G readied, a P idle, nobody spinning to take it"
                );
                assert_handed_p_spinning(&m3, spinner_p);
            }
        }
        // SAFETY: the submitter thread has ended; this thread is the queue's owner now.
        let local = unsafe { s.allp[submitter_p].local_as_owner() };
        assert!(local.pop().is_some(), "the goroutine was lost");
        teardown(&s);
    });
}

#[test]
fn enter_vs_retake() {
    loom::model(|| {
        let s = sched(1);
        // M1 holds the only P and runs goroutine code (USER); sysmon has watched it
        // hog for 10 ms and is about to take it just as the goroutine switches.
        let p = take_p(&s, 1);
        let m1 = M::new(1);
        s.allm.lock().push(Arc::downgrade(&m1));
        let user = own_word(1, OWN_USER);
        s.allp[p].own.store(user, Ordering::Release);
        // The P's owner-only state (its run queue, caches): touched by whoever holds it.
        let state = Arc::new(loom::cell::UnsafeCell::new(0u32));

        let (s2, state2) = (s.clone(), state.clone());
        let sysmon = loom::thread::spawn(move || {
            let took = take_from_user(&s2, p, user);
            if took == Take::Taken {
                // Handed on: the next owner uses the P.
                // SAFETY: we hold the P (the model's claim: loom reports a race if not).
                state2.with_mut(|v| unsafe { *v += 1 });
            }
            took
        });
        // Two switches: the second one's flag follows the first one's, and sysmon may
        // read either.
        let mut entered = false;
        for _ in 0..2 {
            if !enter_from_user(&s.allp[p], &m1) {
                break;
            }
            entered = true;
            // SAFETY: as above, for the M.
            state.with_mut(|v| unsafe { *v += 10 });
            // Back to the goroutine (`OwnedP`'s drop).
            s.allp[p].own.store(user, Ordering::Release);
        }
        let took = sysmon.join().unwrap();

        assert!(
            entered || took == Take::Taken,
            "the P was lost: its M gave it up and sysmon did not take it"
        );
        let own = s.allp[p].own.load(Ordering::Acquire);
        if took == Take::Taken {
            assert_eq!(own, OWN_IDLE, "a taken P must stay idle until handed on");
        } else {
            assert_eq!(own, user, "a P sysmon left must be its M's again");
        }
        assert!(
            !m1.entering.load(Ordering::Relaxed),
            "the M's flag was left set"
        );
        teardown(&s);
    });
}

/// The scheduler's commit of a park (schedule.rs `after_suspend`), with the run queue's
/// reference `gr` (an untimed park keeps it for its waker; a timed one gives it back for
/// the timer): true if parked.
fn commit(gr: Arc<G>, timed: bool) -> (bool, Option<Arc<G>>) {
    gr.set_status(Status::Waiting);
    let seq = gr.park_seq.load(Ordering::Relaxed) + 1;
    gr.park_seq.store(seq, Ordering::Release);
    match G::commit_park(gr, timed) {
        Ok(timer_g) => (true, timer_g),
        Err(gr) => (false, Some(gr)),
    }
}

#[test]
fn park_commit_vs_unpark() {
    loom::model(|| {
        let s = sched(1);
        let _p = take_p(&s, 1); // the M running the scheduler holds the P
        let gr = g(&s, 9);
        gr.set_status(Status::Runnable);
        gr.set_status(Status::Running);
        let g2 = gr.clone();
        let waker = loom::thread::spawn(move || {
            gmp_core::park::Unpark::unpark(&*g2);
        });
        // The run queue's reference, which an untimed park hands to its waker.
        let (parked, back) = commit(gr.clone(), false);
        waker.join().unwrap();
        drop(back);
        let readied_by_unpark = s.global.len();
        if parked {
            // The unpark found it parked and readied it.
            assert_eq!(readied_by_unpark, 1, "a committed park was never readied");
        } else {
            // The permit slipped in first: the scheduler re-runs it; nobody else did.
            assert_eq!(readied_by_unpark, 0, "readied twice");
        }
        teardown(&s);
        // The park's reference went to the run queue (or back to us), nowhere else:
        // none leaked, none taken twice.
        assert_eq!(
            Arc::strong_count(&gr),
            1,
            "a G reference leaked or was taken twice"
        );
    });
}

#[test]
fn timer_vs_unpark() {
    loom::model(|| {
        let s = sched(1);
        let _p = take_p(&s, 1);
        let gr = g(&s, 11);
        gr.set_status(Status::Runnable);
        gr.set_status(Status::Running);
        let (parked, timer_g) = commit(gr.clone(), true);
        assert!(parked, "nothing else touches it yet");
        let seq = gr.park_seq.load(Ordering::Relaxed);
        let timer_g = timer_g.expect("a timed park gives its reference back");
        s.allp[0].timers.add(Instant::now(), seq, timer_g);
        let g2 = gr.clone();
        let waker = loom::thread::spawn(move || {
            gmp_core::park::Unpark::unpark(&*g2);
        });
        let mut by_timer = 0;
        s.allp[0]
            .timers
            .run(u64::MAX, usize::MAX, |_g| by_timer += 1);
        waker.join().unwrap();
        let by_unpark = s.global.len();
        assert_eq!(
            by_timer + by_unpark,
            1,
            "readied {by_timer} + {by_unpark} times"
        );
        teardown(&s);
        assert_eq!(
            Arc::strong_count(&gr),
            1,
            "a G reference leaked or was taken twice"
        );
    });
}

#[test]
fn timer_insert_vs_sleeping_m() {
    loom::model(|| {
        let s = sched(1); // P 0 idle
                          // Another idle M that a wake-up may pick instead of the sleeper.
        let spare = idle_m(&s, 3);
        let sleeper_m = M::new(2);

        let (s2, m2) = (s.clone(), sleeper_m.clone());
        let sleeper = loom::thread::spawn(move || {
            // proc.rs `sleep_for_p`: the earliest timer bounds the sleep.
            let next = s2.allp[0].timers.next();
            let deadline = (next != u64::MAX).then(|| crate::timers::instant(next));
            if deadline.is_some() {
                s2.sleep_until.fetch_min(next, Ordering::SeqCst);
            }
            let woke = s2.stopm(&m2, deadline);
            s2.sleep_until.store(u64::MAX, Ordering::SeqCst);
            (deadline.is_some(), woke)
        });

        // A goroutine parks with a deadline: `after_suspend` adds the timer and, if it is
        // the earliest, calls `wake_for_timer`.
        let gr = g(&s, 5);
        gr.set_status(Status::Runnable);
        gr.set_status(Status::Running);
        let (parked, timer_g) = commit(gr, true);
        assert!(parked, "nothing else touches it yet");
        let gr = timer_g.expect("a timed park gives its reference back");
        let when = Instant::now() + std::time::Duration::from_secs(1);
        let seq = gr.park_seq.load(Ordering::Relaxed);
        if s.allp[0].timers.add(when, seq, gr) {
            s.wake_for_timer(crate::timers::nanos(when));
        }
        // If the wake-up went to the spare M, it serves the timer; release the sleeper
        // so the model can end (a real sleeper would stay idle, which is fine then).
        let spare_woken = spare.has_pending_wake();
        if spare_woken {
            sleeper_m.nudge();
        }
        let (saw_timer, _woke) = sleeper.join().unwrap();
        // Reaching here means the sleeper did not sleep forever: it saw the timer, was
        // nudged by `wake_for_timer`, or the spare M took over.
        assert!(
            saw_timer
                || spare_woken
                || !s
                    .idle
                    .lock()
                    .midle
                    .iter()
                    .any(|m| Arc::ptr_eq(m, &sleeper_m))
        );
        teardown(&s);
    });
}

/// The other arm of the context selects: a channel that stays empty and connected.
fn quiet() -> (gmp_chan::Sender<u32>, gmp_chan::Receiver<u32>) {
    gmp_chan::bounded(1)
}

#[test]
fn context_cancel_vs_select() {
    use crate::context::{Context, ContextError};
    loom::model(|| {
        let (ctx, cancel) = Context::background().with_cancel();
        let (_tx, rx) = quiet();
        let t = loom::thread::spawn(move || drop(cancel));
        gmp_chan::select! {
            recv(ctx.done()) -> r => assert!(r.is_err(), "done() never carries a value"),
            recv(rx) -> _ => unreachable!("nothing is sent on the other channel"),
        }
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
        t.join().unwrap();
    });
}

#[test]
fn context_parent_cancel_vs_child_select() {
    use crate::context::{Context, ContextError};
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel();
        let (_tx, rx) = quiet();
        let t = loom::thread::spawn(move || cancel.cancel());
        // Races the cancel: linked into the parent's children, or born ended.
        let (child, _child_cancel) = parent.with_cancel();
        gmp_chan::select! {
            recv(child.done()) -> r => assert!(r.is_err(), "done() never carries a value"),
            recv(rx) -> _ => unreachable!("nothing is sent on the other channel"),
        }
        assert_eq!(child.err(), Some(ContextError::Canceled));
        t.join().unwrap();
        assert_eq!(parent.err(), Some(ContextError::Canceled));
    });
}
