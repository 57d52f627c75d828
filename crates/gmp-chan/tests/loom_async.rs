//! loom models of the async channel operations (`send_async`, `recv_async`): a waker
//! firing while the waiter parks, a waker cloned and fired twice, a future dropped while
//! its waker fires. Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release --target-dir target/loom -p gmp-chan --test loom_async`.
//!
//! The executor here is `gmp_runtime::future::block_on`'s thread path in miniature: the
//! waker unparks the waiter through `gmp_core::park` (loom's mutex and condvar under
//! loom), and the waiter re-polls after every park, spurious or not.
#![cfg(loom)]

use gmp_chan::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use gmp_core::park;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Wakes whoever made it, through the park hook's unparker.
struct Unparking(park::Unparker);

impl Wake for Unparking {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn waker() -> Waker {
    Waker::from(Arc::new(Unparking(park::current())))
}

fn block_on<F: Future>(f: F, w: &Waker) -> F::Output {
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(w)) {
            return v;
        }
        park::park();
    }
}

fn chan(cap: Option<usize>) -> (Sender<u32>, Receiver<u32>) {
    match cap {
        Some(c) => bounded(c),
        None => unbounded(),
    }
}

/// The sender's notification fires the waker at any point of the receiver's
/// register-check-park sequence: no lost wake-up, the message arrives once.
fn waker_fires_racing_the_park(cap: Option<usize>) {
    model(move || {
        let (s, r) = chan(cap);
        let t = thread::spawn(move || s.send(7).unwrap());
        let w = waker();
        assert_eq!(block_on(r.recv_async(), &w), Ok(7));
        t.join().unwrap();
    });
}

#[test]
fn recv_async_waker_races_park_list() {
    waker_fires_racing_the_park(None);
}

#[test]
fn recv_async_waker_races_park_array() {
    waker_fires_racing_the_park(Some(1));
}

#[test]
fn recv_async_waker_races_park_zero() {
    waker_fires_racing_the_park(Some(0));
}

/// A zero-capacity `send_async` (its message in a heap packet) against a blocking
/// receiver: the receiver's wake-up races the sender's park.
#[test]
fn send_async_zero_waker_races_park() {
    model(|| {
        let (s, r) = bounded::<u32>(0);
        let t = thread::spawn(move || r.recv().unwrap());
        let w = waker();
        block_on(s.send_async(5), &w).unwrap();
        assert_eq!(t.join().unwrap(), 5);
    });
}

/// The waker is cloned (the future keeps one, a stray copy another) and both fire,
/// racing each other and the park: the waiter wakes at least once, consumes once.
#[test]
fn waker_cloned_and_fired_twice() {
    model(|| {
        let (s, r) = unbounded::<u32>();
        let w = waker();
        let stray = w.clone();
        let t = thread::spawn(move || {
            stray.wake_by_ref();
            s.send(3).unwrap();
            stray.wake();
        });
        assert_eq!(block_on(r.recv_async(), &w), Ok(3));
        t.join().unwrap();
        assert!(r.try_recv().is_err(), "exactly one message");
    });
}

/// A registered `recv_async` is dropped while the sender's notification fires its
/// waker: the message stays in the channel.
#[test]
fn recv_async_dropped_while_its_waker_fires() {
    model(|| {
        let (s, r) = bounded::<u32>(1);
        let w = waker();
        let mut f = r.recv_async();
        let first = Pin::new(&mut f).poll(&mut Context::from_waker(&w));
        assert!(first.is_pending());
        let t = thread::spawn(move || s.send(9).unwrap());
        drop(f);
        t.join().unwrap();
        assert_eq!(r.try_recv(), Ok(9), "a dropped receive loses no message");
    });
}

/// A registered zero-capacity `send_async` is dropped while a receiver takes its
/// message (and fires its waker): either the receiver got it and the future did not
/// drop it, or the receiver timed out and the future dropped it — never both, never
/// neither. It is also the model of the packet's `LEFT` race (zero.rs): the future lets
/// go while the receiver completes, and exactly one of them frees the packet. With
/// either side's `fetch_add` split into a load and a store, loom finds the packet leaked.
#[test]
fn send_async_dropped_while_a_receiver_takes_it() {
    model(|| {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, r) = bounded::<Counted>(0);
        let w = waker();
        let mut f = s.send_async(Counted(drops.clone()));
        let first = Pin::new(&mut f).poll(&mut Context::from_waker(&w));
        assert!(first.is_pending());
        // Under loom a timed park "times out" at once: the receive races the drop.
        let t = thread::spawn(move || match r.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => {
                std::mem::forget(m);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => false,
        });
        drop(f);
        let received = t.join().unwrap();
        let dropped = drops.load(Ordering::SeqCst);
        assert_eq!(
            (received, dropped),
            if received { (true, 0) } else { (false, 1) }
        );
    });
}
