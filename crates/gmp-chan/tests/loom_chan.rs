//! loom models of the channel protocols, with loom threads (small and sharp; run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --target-dir
//! target/loom -p gmp-chan --test loom_chan`).
//!
//! Under loom, `gmp_core::park` parks loom threads on loom's mutex and condvar, and a timed
//! park returns at once, "timed out": a timeout is therefore modelled as firing at any
//! point where the waiter parks, racing whatever the peers do.
#![cfg(loom)]

use gmp_chan::{
    bounded, select, unbounded, Receiver, RecvError, RecvTimeoutError, SendError, Sender,
    TryRecvError,
};
use loom::thread;
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

fn chan(cap: Option<usize>) -> (Sender<u32>, Receiver<u32>) {
    match cap {
        Some(c) => bounded(c),
        None => unbounded(),
    }
}

fn send_vs_recv(cap: Option<usize>) {
    model(move || {
        let (s, r) = chan(cap);
        let t = thread::spawn(move || s.send(7).unwrap());
        assert_eq!(r.recv(), Ok(7));
        t.join().unwrap();
    });
}

#[test]
fn send_vs_recv_array() {
    send_vs_recv(Some(1));
}

#[test]
fn send_vs_recv_list() {
    send_vs_recv(None);
}

#[test]
fn send_vs_recv_zero() {
    send_vs_recv(Some(0));
}

/// Two sends into a one-slot ring against two receives: the second send blocks until the
/// first receive frees the slot; order is kept.
#[test]
fn array_full_sender_blocks_then_proceeds() {
    model(|| {
        let (s, r) = bounded(1);
        let t = thread::spawn(move || {
            s.send(1).unwrap();
            s.send(2).unwrap();
        });
        assert_eq!(r.recv(), Ok(1));
        assert_eq!(r.recv(), Ok(2));
        t.join().unwrap();
    });
}

fn last_sender_drop_vs_blocked_receiver(cap: Option<usize>) {
    model(move || {
        let (s, r) = chan(cap);
        let t = thread::spawn(move || drop(s));
        assert_eq!(r.recv(), Err(RecvError));
        t.join().unwrap();
    });
}

#[test]
fn last_sender_drop_vs_blocked_receiver_array() {
    last_sender_drop_vs_blocked_receiver(Some(1));
}

#[test]
fn last_sender_drop_vs_blocked_receiver_list() {
    last_sender_drop_vs_blocked_receiver(None);
}

#[test]
fn last_sender_drop_vs_blocked_receiver_zero() {
    last_sender_drop_vs_blocked_receiver(Some(0));
}

/// The last receiver goes while a sender is blocked (ring full / nobody to meet): the
/// sender gets its message back.
fn last_receiver_drop_vs_blocked_sender(cap: usize) {
    model(move || {
        let (s, r) = bounded(cap);
        for i in 0..cap {
            s.send(i as u32).unwrap();
        }
        let t = thread::spawn(move || s.send(99));
        drop(r);
        assert_eq!(t.join().unwrap(), Err(SendError(99)));
    });
}

#[test]
fn last_receiver_drop_vs_blocked_sender_array() {
    last_receiver_drop_vs_blocked_sender(1);
}

#[test]
fn last_receiver_drop_vs_blocked_sender_zero() {
    last_receiver_drop_vs_blocked_sender(0);
}

/// A select blocked on two one-slot channels while both receive a message: exactly one
/// arm fires and the other message stays in its channel.
#[test]
fn select_two_racing_sends_buffered() {
    model(|| {
        let (s1, r1) = bounded(1);
        let (s2, r2) = bounded(1);
        let t1 = thread::spawn(move || s1.send(1).unwrap());
        let t2 = thread::spawn(move || s2.send(2).unwrap());
        let got = select! {
            recv(r1) -> v => v.unwrap(),
            recv(r2) -> v => v.unwrap(),
        };
        t1.join().unwrap();
        t2.join().unwrap();
        let other = if got == 1 { &r2 } else { &r1 };
        assert_eq!(other.try_recv(), Ok(3 - got), "the other value must stay");
        let mine = if got == 1 { &r1 } else { &r2 };
        // The senders are gone: an empty channel now reports the disconnection.
        assert_eq!(
            mine.try_recv(),
            Err(TryRecvError::Disconnected),
            "one arm fired once"
        );
    });
}

/// The same with rendezvous channels: exactly one handoff happens; the other sender is
/// released by the disconnection and gets its value back.
#[test]
fn select_two_racing_sends_zero() {
    model(|| {
        let (s1, r1) = bounded(0);
        let (s2, r2) = bounded(0);
        let t1 = thread::spawn(move || s1.send(1));
        let t2 = thread::spawn(move || s2.send(2));
        let got = select! {
            recv(r1) -> v => v.unwrap(),
            recv(r2) -> v => v.unwrap(),
        };
        drop(r1);
        drop(r2);
        let (a, b) = (t1.join().unwrap(), t2.join().unwrap());
        if got == 1 {
            assert_eq!((a, b), (Ok(()), Err(SendError(2))));
        } else {
            assert_eq!((a, b), (Err(SendError(1)), Ok(())));
        }
    });
}

/// A rendezvous where the sender is a blocked `select` send arm (the message is produced
/// only after the arm is chosen) and the receiver a plain `recv`.
#[test]
fn zero_select_send_vs_plain_recv() {
    model(|| {
        let (s, r) = bounded(0);
        let t = thread::spawn(move || {
            select! {
                send(s, 5) -> res => res.unwrap(),
            }
        });
        assert_eq!(r.recv(), Ok(5));
        t.join().unwrap();
    });
}

/// `recv_timeout` racing a send: either the message arrives, or the receive times out and
/// the message is still there (buffered) or back with its sender (rendezvous).
#[test]
fn recv_timeout_vs_send_array() {
    model(|| {
        let (s, r) = bounded(1);
        let t = thread::spawn(move || s.send(3).unwrap());
        let res = r.recv_timeout(Duration::from_secs(1));
        t.join().unwrap();
        match res {
            Ok(v) => assert_eq!(v, 3),
            Err(RecvTimeoutError::Timeout) => assert_eq!(r.try_recv(), Ok(3)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

#[test]
fn recv_timeout_vs_send_zero() {
    model(|| {
        let (s, r) = bounded(0);
        let t = thread::spawn(move || s.send(3));
        let res = r.recv_timeout(Duration::from_secs(1));
        drop(r);
        let sent = t.join().unwrap();
        match res {
            Ok(v) => assert_eq!((v, sent), (3, Ok(()))),
            Err(RecvTimeoutError::Timeout) => assert_eq!(sent, Err(SendError(3))),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// `try_select` is linearizable (crossbeam-channel's `linearizable_try` pattern, issue 10
/// finding 11): this thread sends on `a` then selects over `b` (checked first) and `a`;
/// the peer sends on `b` then takes `a`'s message. If the select misses `a`'s message,
/// the peer took it, and the peer's send on `b` came before that: some channel always
/// held a message, so the select must not report "nothing ready". A single pass over the
/// arms can miss both (it checks `b` just before the peer's send, `a` just after its
/// take); the select makes a second pass, which then sees `b`.
fn try_select_is_linearizable(cap: Option<usize>) {
    model(move || {
        let (sa, ra) = chan(cap);
        let (sb, rb) = chan(cap);
        let ra2 = ra.clone();
        let t = thread::spawn(move || {
            sb.send(2).unwrap();
            let _ = ra2.try_recv();
        });
        sa.send(1).unwrap();
        let mut sel = gmp_chan::Select::new_biased();
        let ib = sel.recv(&rb);
        let ia = sel.recv(&ra);
        match sel.try_select() {
            Ok(oper) if oper.index() == ib => assert_eq!(oper.recv(&rb), Ok(2)),
            Ok(oper) if oper.index() == ia => assert_eq!(oper.recv(&ra), Ok(1)),
            Ok(_) => unreachable!(),
            Err(_) => panic!("try_select saw neither message"),
        }
        t.join().unwrap();
    });
}

#[test]
fn try_select_is_linearizable_array() {
    try_select_is_linearizable(Some(1));
}

#[test]
fn try_select_is_linearizable_list() {
    try_select_is_linearizable(None);
}

// The unbounded channel's block list (`flavors/list.rs`): under loom a block holds three
// messages, so these models cross block boundaries: the next block's install by the
// sender that takes a block's last slot, `head`'s move by the receiver that takes it,
// and the freeing of a block by whoever reads last.

/// Two senders fill past the end of the first block while the receiver drains: every
/// message arrives once, each sender's in its order.
#[test]
fn list_two_senders_cross_a_block() {
    model(|| {
        let (s, r) = unbounded::<u32>();
        let s2 = s.clone();
        let t = thread::spawn(move || {
            s2.send(10).unwrap();
            s2.send(11).unwrap();
        });
        s.send(20).unwrap();
        s.send(21).unwrap();
        let got: Vec<u32> = (0..4).map(|_| r.recv().unwrap()).collect();
        t.join().unwrap();
        let from = |base: u32| {
            got.iter()
                .copied()
                .filter(|v| v / 10 == base / 10)
                .collect::<Vec<_>>()
        };
        assert_eq!(from(10), [10, 11]);
        assert_eq!(from(20), [20, 21]);
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Two receivers drain a list that spans two blocks, racing for the first block's last
/// slot (which moves `head` on) and for its destruction (the `READ`/`DESTROY` hand-over):
/// each message is received exactly once, and the model sees no use after free.
#[test]
fn list_receivers_race_across_a_block_end() {
    model(|| {
        let (s, r) = unbounded::<u32>();
        for i in 0..4 {
            s.send(i).unwrap();
        }
        let r2 = r.clone();
        let t = thread::spawn(move || [r2.recv().unwrap(), r2.recv().unwrap()]);
        let mine = [r.recv().unwrap(), r.recv().unwrap()];
        let theirs = t.join().unwrap();
        assert!(mine[0] < mine[1] && theirs[0] < theirs[1]);
        let mut all = [mine, theirs].concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
    });
}

/// The last receiver goes while a sender crosses a block boundary: every message is
/// dropped exactly once — received, discarded with the queue, or handed back by `send`.
#[test]
fn list_last_receiver_drop_vs_sends() {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (s, r) = unbounded::<Counted>();
        let d = drops.clone();
        let t = thread::spawn(move || {
            for _ in 0..4 {
                // A failed send hands the message back; it is dropped here.
                let _ = s.send(Counted(d.clone()));
            }
        });
        drop(r.recv());
        drop(r);
        t.join().unwrap();
        // Relaxed: the join orders the sender's drops before this load.
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    });
}

/// The last handles of both sides, dropped at once (a clone of each on its own thread):
/// each side disconnects once while the channel is alive, and the channel is freed
/// exactly once (counter.rs); loom reports a channel never freed as a leak, and one
/// freed while the other side still disconnects as an access to a dropped object.
fn last_handles_dropped_together(cap: Option<usize>) {
    model(move || {
        let (s, r) = chan(cap);
        let (s2, r2) = (s.clone(), r.clone());
        let a = thread::spawn(move || drop(s2));
        let b = thread::spawn(move || drop(r2));
        drop(s);
        drop(r);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn last_handles_dropped_together_array() {
    last_handles_dropped_together(Some(1));
}

#[test]
fn last_handles_dropped_together_list() {
    last_handles_dropped_together(None);
}

#[test]
fn last_handles_dropped_together_zero() {
    last_handles_dropped_together(Some(0));
}
