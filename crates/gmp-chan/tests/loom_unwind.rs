//! loom models of a waiter unwinding out of its park while a peer completes the operation
//! (ARCHITECTURE.md: "a loom model of 'unregister while a peer completes the operation'
//! goes with each" registration). Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2
//! cargo test --release --target-dir target/loom -p gmp-chan --test loom_unwind`.
//!
//! The unwinding waiter is a loom thread with a park hook that unwinds out of the first
//! park, as gmp-core's forced unwind does to a goroutine dropped while parked (and, like
//! gmp-core during that unwinding, lets later parks return at once). loom then explores
//! every interleaving of its registration, its unwinding and the peer's operation. After
//! both finish, the channels must be exactly as if the dead waiter never existed: no entry
//! left (a later `try_send`/`try_recv` finds no peer), every message dropped once or
//! received once, and no live party left asleep (loom reports that as a deadlock).
//!
//! Not modelled here: the array and list flavours, whose unwinding waiter takes a wait
//! queue's lock that a peer holds while loom switches threads inside its critical section.
//! loom runs every model thread on one OS thread, so `std::thread::panicking()` is true for
//! all of them while one unwinds, and a peer's guard released in that window poisons the
//! std mutex inside loom's `Mutex` (loom then panics on the next lock). Their protocol
//! (remove the entry, or pass a consumed wake-up on) is checked deterministically with a
//! real forced unwind in `tests/unwind.rs` and in gmp-runtime's `unwind_registrations.rs`.
#![cfg(loom)]

use gmp_chan::{bounded, Select, TryRecvError, TrySendError};
use gmp_core::park::{self, ParkHook, Unparker};
use loom::thread;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// The payload of the modelled forced unwind.
struct Unwind;

/// Unwinds out of the first park of the thread it is installed on.
struct UnwindOnPark;

impl ParkHook for UnwindOnPark {
    fn current(&self) -> Option<Unparker> {
        None // wake-ups go to the loom thread's own parker: harmless
    }

    fn park(&self, _deadline: Option<std::time::Instant>) -> bool {
        if std::thread::panicking() {
            // A destructor run by the unwinding parks: return at once, as gmp-core does.
            loom::thread::yield_now();
            return true;
        }
        panic::resume_unwind(Box::new(Unwind));
    }
}

static UNWIND_ON_PARK: UnwindOnPark = UnwindOnPark;

/// As [`UnwindOnPark`], but lets the other threads run first (a voluntary switch, which
/// loom does not count against the preemption bound): the peer may then choose the
/// waiter, and be preempted anywhere in its pairing, before the waiter unwinds.
struct YieldThenUnwindOnPark;

impl ParkHook for YieldThenUnwindOnPark {
    fn current(&self) -> Option<Unparker> {
        None
    }

    fn park(&self, deadline: Option<std::time::Instant>) -> bool {
        if !std::thread::panicking() {
            loom::thread::yield_now();
        }
        UNWIND_ON_PARK.park(deadline)
    }
}

static YIELD_THEN_UNWIND_ON_PARK: YieldThenUnwindOnPark = YieldThenUnwindOnPark;

/// Runs `f`, which must park, on this thread, unwinding it out of its first park.
fn unwound_in_park<R>(f: impl FnOnce() -> R) -> Option<R> {
    unwound_in_park_with(&UNWIND_ON_PARK, f)
}

/// [`unwound_in_park`] with the park hook `hook`.
fn unwound_in_park_with<R>(hook: &'static dyn ParkHook, f: impl FnOnce() -> R) -> Option<R> {
    park::set_hook(Some(hook));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    park::set_hook(None);
    match r {
        Ok(v) => Some(v), // it completed without parking
        Err(p) if p.is::<Unwind>() => None,
        Err(p) => panic::resume_unwind(p),
    }
}

/// Counts drops of messages.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Zero capacity: a receiver unwinds out of its park while a sender tries to hand it a
/// message. Either the handoff happened (the message is dropped with the dead receiver's
/// pairing, once) or the sender got it back; no entry is left.
#[test]
fn zero_recv_unwinds_vs_try_send() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, r) = bounded::<Counted>(0);
        let r2 = r.clone();
        let t = thread::spawn(move || unwound_in_park(|| r2.recv().is_ok()));
        let sent = match s.try_send(Counted(drops.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(m)) => {
                drop(m);
                false
            }
            Err(TrySendError::Disconnected(_)) => unreachable!(),
        };
        let received = t.join().unwrap();
        // The receiver either took it without parking, or unwound.
        assert!(received.is_none() || received == Some(sent));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(matches!(
            s.try_send(Counted(drops.clone())),
            Err(TrySendError::Full(_))
        ));
        drop(r);
    });
}

/// Zero capacity: a sender unwinds out of its park while a receiver tries to take its
/// message: delivered exactly once, or dropped with the sender; no entry is left.
#[test]
fn zero_send_unwinds_vs_try_recv() {
    zero_send_unwinds_vs_try_recv_with(&UNWIND_ON_PARK);
}

/// Zero capacity: a sender parks, a receiver chooses it, and the sender unwinds while
/// the receiver is anywhere in its pairing (the sender's park yields first). The
/// receiver uses the sender's waiter record under the channel's lock after choosing it
/// (`store_packet`) and after the lock to wake it; the unwinding sender takes that lock
/// before it lets go, and then either waits for the wake-up or leaves first (`LEFT`),
/// after which the receiver does not touch the record. A record that dies before the
/// receiver's last touch fails the model (gmp-chan's `context.rs` checks each touch
/// against the record's end under loom).
#[test]
fn zero_send_unwinds_while_its_receiver_pairs() {
    zero_send_unwinds_vs_try_recv_with(&YIELD_THEN_UNWIND_ON_PARK);
}

fn zero_send_unwinds_vs_try_recv_with(hook: &'static dyn ParkHook) {
    model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, r) = bounded::<Counted>(0);
        let (s2, d) = (s.clone(), drops.clone());
        let t = thread::spawn(move || unwound_in_park_with(hook, || s2.send(Counted(d)).is_ok()));
        let got = r.try_recv();
        let received = got.is_ok();
        drop(got);
        let sent = t.join().unwrap();
        assert!(sent.is_none() || sent == Some(received));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(matches!(r.try_recv(), Err(TryRecvError::Empty)));
        drop(s);
    });
}

/// A select over two zero-capacity channels unwinds out of its park while a sender
/// fires one arm: the message is dropped once (handed over) or given back, and neither
/// channel keeps an entry of the select.
#[test]
fn select_unwinds_vs_other_arm_firing() {
    select_unwinds_vs_other_arm_firing_with(&UNWIND_ON_PARK);
}

/// As [`select_unwinds_vs_other_arm_firing`], the select's park yielding first: the
/// sender may choose an arm and be anywhere in its pairing (under the channel's lock or
/// after it, completing or waking) when the select unwinds (`accept` is not reached: the
/// select lets go of the chosen arm's packet in `abandon_selected`, after the lock, and
/// waits for the sender's last touch of its record or leaves first).
#[test]
fn select_unwinds_while_its_sender_pairs() {
    select_unwinds_vs_other_arm_firing_with(&YIELD_THEN_UNWIND_ON_PARK);
}

fn select_unwinds_vs_other_arm_firing_with(hook: &'static dyn ParkHook) {
    model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (s1, r1) = bounded::<Counted>(0);
        let (s2, r2) = bounded::<Counted>(0);
        let (r1b, r2b) = (r1.clone(), r2.clone());
        let t = thread::spawn(move || {
            unwound_in_park_with(hook, || {
                let mut sel = Select::new();
                sel.recv(&r1b);
                sel.recv(&r2b);
                let oper = sel.select();
                let i = oper.index();
                let v = if i == 0 {
                    oper.recv(&r1b)
                } else {
                    oper.recv(&r2b)
                };
                v.is_ok()
            })
        });
        if let Err(TrySendError::Full(m)) = s2.try_send(Counted(drops.clone())) {
            drop(m);
        }
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(matches!(
            s1.try_send(Counted(drops.clone())),
            Err(TrySendError::Full(_))
        ));
        assert!(matches!(
            s2.try_send(Counted(drops.clone())),
            Err(TrySendError::Full(_))
        ));
        drop((r1, r2));
    });
}

/// A select's zero-capacity send arm is chosen by a receiver, which then waits for the
/// message; the select unwinds instead of producing it. The receiver must not get a
/// phantom message nor wait forever: it retries and finds nobody.
#[test]
fn select_send_arm_unwinds_after_being_chosen() {
    model(|| {
        let (s, r) = bounded::<u32>(0);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            unwound_in_park(|| {
                let mut sel = Select::new();
                sel.send(&s2);
                let oper = sel.select();
                oper.send(&s2, 5).is_ok()
            })
        });
        let got = r.try_recv();
        let sent = t.join().unwrap();
        match got {
            Ok(v) => {
                assert_eq!(v, 5);
                assert_eq!(sent, Some(true));
            }
            Err(e) => assert_eq!(e, TryRecvError::Empty),
        }
        assert!(matches!(s.try_send(1), Err(TrySendError::Full(1))));
    });
}
