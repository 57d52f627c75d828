//! `send_async` / `recv_async` / `stream` on every flavour, with plain threads on the
//! other end: results, wake-ups, cancel safety (a dropped receive loses nothing, a
//! dropped send drops its message unless it was taken), and no registration left behind.

use gmp_chan::{after, bounded, never, tick, unbounded, Receiver, RecvError, SendError, Sender};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// A waker that counts its wake-ups and unparks a thread.
struct Counting {
    wakes: AtomicUsize,
    thread: thread::Thread,
}

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let c = Arc::new(Counting {
        wakes: AtomicUsize::new(0),
        thread: thread::current(),
    });
    (c.clone(), Waker::from(c))
}

/// A minimal executor: polls, parks the thread while pending.
fn block_on<F: Future>(f: F) -> F::Output {
    let (_, w) = counting();
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&w)) {
            return v;
        }
        thread::park();
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F, w: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(w))
}

fn flavours() -> Vec<(&'static str, Sender<u64>, Receiver<u64>)> {
    let (a, b) = unbounded();
    let (c, d) = bounded(1);
    let (e, f) = bounded(0);
    vec![("list", a, b), ("array", c, d), ("zero", e, f)]
}

#[test]
fn recv_async_waits_for_a_thread_sender_on_every_flavour() {
    for (name, tx, rx) in flavours() {
        let t = thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        let mut sum = 0;
        while let Ok(v) = block_on(rx.recv_async()) {
            sum += v;
        }
        t.join().unwrap();
        assert_eq!(sum, 999 * 1000 / 2, "{name}");
        assert_eq!(block_on(rx.recv_async()), Err(RecvError), "{name}");
    }
}

#[test]
fn send_async_waits_for_a_thread_receiver_on_every_flavour() {
    for (name, tx, rx) in flavours() {
        let t = thread::spawn(move || rx.iter().sum::<u64>());
        for i in 0..1000 {
            block_on(tx.send_async(i)).unwrap();
        }
        drop(tx);
        assert_eq!(t.join().unwrap(), 999 * 1000 / 2, "{name}");
    }
}

#[test]
fn async_to_async_on_every_flavour() {
    // Both ends are futures (on two threads): on a zero-capacity channel the sender's
    // registration carries the message, so two futures still meet.
    for (name, tx, rx) in flavours() {
        let t = thread::spawn(move || {
            for i in 0..1000 {
                block_on(tx.send_async(i)).unwrap();
            }
        });
        let mut n = 0;
        while let Ok(v) = block_on(rx.recv_async()) {
            assert_eq!(v, n, "{name}: in order");
            n += 1;
        }
        t.join().unwrap();
        assert_eq!(n, 1000, "{name}");
    }
}

#[test]
fn disconnection_gives_the_errors_of_send_and_recv() {
    for (name, tx, rx) in flavours() {
        drop(rx);
        assert_eq!(block_on(tx.send_async(9)), Err(SendError(9)), "{name}");
    }
    for (name, tx, rx) in flavours() {
        // Registered first, then the channel closes: the waiting future wakes with it.
        let (c, w) = counting();
        let mut f = rx.recv_async();
        assert!(poll_once(&mut f, &w).is_pending(), "{name}");
        drop(tx);
        assert!(c.wakes.load(Ordering::SeqCst) >= 1, "{name}: woken");
        assert_eq!(poll_once(&mut f, &w), Poll::Ready(Err(RecvError)), "{name}");
    }
    // A zero-capacity send registered when the receiver goes gets its message back.
    let (tx, rx) = bounded::<u64>(0);
    let (c, w) = counting();
    let mut f = tx.send_async(5);
    assert!(poll_once(&mut f, &w).is_pending());
    drop(rx);
    assert!(c.wakes.load(Ordering::SeqCst) >= 1);
    assert_eq!(poll_once(&mut f, &w), Poll::Ready(Err(SendError(5))));
}

#[test]
fn a_dropped_recv_async_loses_no_message() {
    for (name, tx, rx) in flavours() {
        let (c, w) = counting();
        let mut f = rx.recv_async();
        assert!(poll_once(&mut f, &w).is_pending());
        // A sender arrives (a thread, which blocks on a full or zero-capacity channel),
        // the future is woken, and dropped before it runs again.
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        while c.wakes.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        drop(f);
        assert_eq!(rx.recv(), Ok(1), "{name}");
        assert_eq!(rx.recv(), Ok(2), "{name}");
        t.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError), "{name}");
    }
}

/// Counts drops, to see what happens to a message.
struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_send_async_drops_its_message_and_leaves_no_registration() {
    let drops = Arc::new(AtomicUsize::new(0));
    // Zero capacity: the future registered its message; dropping it withdraws both.
    let (tx, rx) = bounded::<Tracked>(0);
    let (_c, w) = counting();
    let mut f = tx.send_async(Tracked(drops.clone()));
    assert!(poll_once(&mut f, &w).is_pending());
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the message was dropped");
    assert!(rx.try_recv().is_err(), "no sender left registered");
    // Full buffer: same.
    let (tx, rx) = bounded::<Tracked>(1);
    tx.send(Tracked(drops.clone())).unwrap();
    let mut f = tx.send_async(Tracked(drops.clone()));
    assert!(poll_once(&mut f, &w).is_pending());
    drop(f);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(rx.try_recv().unwrap());
    assert!(rx.try_recv().is_err());
    // Zero capacity, taken before the drop: delivered, not dropped by the future.
    let (tx, rx) = bounded::<u64>(0);
    let mut f = tx.send_async(7);
    assert!(poll_once(&mut f, &w).is_pending());
    assert_eq!(rx.recv(), Ok(7));
    drop(f);
    assert!(rx.try_recv().is_err());
}

#[test]
fn many_futures_and_threads_share_one_channel() {
    // Futures (polled on their own threads) and blocking threads on both ends of each
    // flavour; every message arrives exactly once.
    for (name, tx, rx) in flavours() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut ts = Vec::new();
        for k in 0..4u64 {
            let tx = tx.clone();
            ts.push(thread::spawn(move || {
                for i in 0..500 {
                    let v = k * 500 + i;
                    if k % 2 == 0 {
                        block_on(tx.send_async(v)).unwrap();
                    } else {
                        tx.send(v).unwrap();
                    }
                }
            }));
        }
        drop(tx);
        let mut rs = Vec::new();
        for k in 0..4 {
            let (rx, total) = (rx.clone(), total.clone());
            rs.push(thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    let r = if k % 2 == 0 {
                        block_on(rx.recv_async())
                    } else {
                        rx.recv()
                    };
                    match r {
                        Ok(v) => seen.push(v),
                        Err(_) => break,
                    }
                }
                total.fetch_add(seen.len(), Ordering::SeqCst);
                seen
            }));
        }
        for t in ts {
            t.join().unwrap();
        }
        let mut all: Vec<u64> = rs.into_iter().flat_map(|r| r.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..2000).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn timer_channels_wake_their_futures() {
    let start = Instant::now();
    let at = block_on(after(Duration::from_millis(30)).recv_async()).unwrap();
    assert!(at >= start + Duration::from_millis(30));
    assert!(start.elapsed() >= Duration::from_millis(30));
    let t = tick(Duration::from_millis(10));
    for _ in 0..3 {
        block_on(t.recv_async()).unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(60));
    // `never` stays pending, and says so without spinning.
    let (c, w) = counting();
    let n = never::<u8>();
    let mut f = n.recv_async();
    assert!(poll_once(&mut f, &w).is_pending());
    assert!(poll_once(&mut f, &w).is_pending());
    assert_eq!(c.wakes.load(Ordering::SeqCst), 0);
}

#[test]
fn recv_async_is_woken_once_per_registration_and_not_after_drop() {
    let (tx, rx) = unbounded::<u64>();
    let (c, w) = counting();
    let mut f = rx.recv_async();
    assert!(poll_once(&mut f, &w).is_pending());
    assert!(poll_once(&mut f, &w).is_pending()); // re-registers, does not pile up
    tx.send(1).unwrap();
    assert_eq!(c.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(&mut f, &w), Poll::Ready(Ok(1)));
    let mut g = rx.recv_async();
    assert!(poll_once(&mut g, &w).is_pending());
    drop(g);
    tx.send(2).unwrap();
    assert_eq!(
        c.wakes.load(Ordering::SeqCst),
        1,
        "a dropped future is not woken"
    );
    assert_eq!(rx.try_recv(), Ok(2));
}

#[cfg(feature = "futures")]
#[test]
fn stream_yields_every_message_then_ends() {
    use futures_core::{FusedStream, Stream};
    let (tx, rx) = bounded::<u64>(4);
    let t = thread::spawn(move || {
        for i in 0..100 {
            tx.send(i).unwrap();
        }
    });
    let mut st = pin!(rx.stream());
    let mut got = Vec::new();
    while let Some(v) = block_on(std::future::poll_fn(|cx| st.as_mut().poll_next(cx))) {
        got.push(v);
    }
    t.join().unwrap();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert!(st.is_terminated());
}

/// A task waker that panics (user code) while a receiver wakes a zero-capacity
/// `send_async` it has just served: the receive unwinds, but the sender's waiter record
/// is still given back, so the future completes and is dropped without waiting forever
/// for the receiver (gmp-chan's `context.rs`: the peer's release runs while it unwinds).
#[test]
fn a_panicking_waker_does_not_strand_the_sender() {
    struct Bomb;
    impl Wake for Bomb {
        fn wake(self: Arc<Self>) {
            panic!("the task's waker panics");
        }
    }
    let (s, r) = bounded::<u32>(0);
    let w = Waker::from(Arc::new(Bomb));
    let mut f = s.send_async(1);
    assert!(Pin::new(&mut f)
        .poll(&mut Context::from_waker(&w))
        .is_pending());
    let receiver = thread::spawn(move || r.recv());
    assert!(
        receiver.join().is_err(),
        "the receive unwinds from the waker"
    );
    let done = Pin::new(&mut f).poll(&mut Context::from_waker(&w));
    assert!(matches!(done, Poll::Ready(Ok(()))), "{done:?}");
    drop(f);
}
