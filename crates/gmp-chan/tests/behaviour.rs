//! Behaviour of every public item, following crossbeam-channel's documented contract
//! (rewritten here, not copied): constructors, `Sender`/`Receiver` methods, disconnection
//! with values returned in errors, timers, iterators, `select!`/`select_biased!` syntax
//! and semantics, the `Select` builder and `SelectedOperation`, error types and traits.
//! Timing is only ever checked as a lower bound ("did not return early").

use gmp_chan::{
    after, at, bounded, never, select, select_biased, tick, unbounded, Receiver, RecvError,
    RecvTimeoutError, Select, SendError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The three kinds of buffered/unbuffered channel, for tests that hold for all.
fn flavours() -> Vec<(&'static str, Sender<i32>, Receiver<i32>)> {
    let (s0, r0) = bounded(0);
    let (s1, r1) = bounded(1);
    let (s5, r5) = bounded(5);
    let (su, ru) = unbounded();
    vec![
        ("zero", s0, r0),
        ("array1", s1, r1),
        ("array5", s5, r5),
        ("list", su, ru),
    ]
}

#[test]
fn send_then_recv_in_order_every_flavour() {
    for (name, s, r) in flavours() {
        let t = thread::spawn(move || {
            for i in 0..100 {
                s.send(i).unwrap();
            }
        });
        for i in 0..100 {
            assert_eq!(r.recv(), Ok(i), "{name}");
        }
        t.join().unwrap();
        assert_eq!(r.recv(), Err(RecvError), "{name}: all senders gone");
    }
}

#[test]
fn try_send_full_and_disconnected_return_the_message() {
    let (s, r) = bounded(2);
    assert_eq!(s.try_send(1), Ok(()));
    assert_eq!(s.try_send(2), Ok(()));
    assert_eq!(s.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(r.try_recv(), Ok(1));
    assert_eq!(s.try_send(3), Ok(()));
    drop(r);
    let e = s.try_send(4).unwrap_err();
    assert!(e.is_disconnected() && !e.is_full());
    assert_eq!(e.into_inner(), 4);

    let (s, r) = bounded::<i32>(0);
    assert_eq!(
        s.try_send(1),
        Err(TrySendError::Full(1)),
        "no receiver waiting"
    );
    drop(r);
    assert_eq!(s.try_send(1), Err(TrySendError::Disconnected(1)));

    let (s, r) = unbounded();
    for i in 0..1000 {
        s.try_send(i).unwrap();
    }
    assert_eq!(r.len(), 1000);
    drop(r);
    assert_eq!(s.try_send(0), Err(TrySendError::Disconnected(0)));
}

#[test]
fn try_recv_empty_then_disconnected_after_draining() {
    for (name, s, r) in flavours() {
        assert_eq!(r.try_recv(), Err(TryRecvError::Empty), "{name}");
        if s.capacity() != Some(0) {
            s.send(7).unwrap();
        }
        drop(s);
        if r.capacity() != Some(0) {
            assert_eq!(r.try_recv(), Ok(7), "{name}: buffered message survives");
        }
        assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected), "{name}");
        assert_eq!(r.recv(), Err(RecvError), "{name}");
    }
}

#[test]
fn send_on_disconnected_returns_message() {
    for (name, s, r) in flavours() {
        drop(r);
        assert_eq!(s.send(5), Err(SendError(5)), "{name}");
        assert_eq!(
            s.send_timeout(6, ms(1)),
            Err(SendTimeoutError::Disconnected(6)),
            "{name}"
        );
    }
}

#[test]
fn blocked_sender_gets_message_back_when_receivers_drop() {
    for cap in [0, 1] {
        let (s, r) = bounded(cap);
        if cap == 1 {
            s.send(0).unwrap();
        }
        let t = thread::spawn(move || s.send(42));
        thread::sleep(ms(50));
        drop(r);
        assert_eq!(t.join().unwrap(), Err(SendError(42)), "cap {cap}");
    }
}

#[test]
fn blocked_receiver_wakes_when_senders_drop() {
    for (name, s, r) in flavours() {
        let t = thread::spawn(move || r.recv());
        thread::sleep(ms(50));
        drop(s);
        assert_eq!(t.join().unwrap(), Err(RecvError), "{name}");
    }
}

#[test]
fn disconnect_needs_all_clones() {
    let (s, r) = unbounded::<i32>();
    let s2 = s.clone();
    drop(s);
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    s2.send(1).unwrap();
    drop(s2);
    assert_eq!(r.recv(), Ok(1));
    assert_eq!(r.recv(), Err(RecvError));

    let (s, r) = bounded::<i32>(1);
    let r2 = r.clone();
    drop(r);
    assert_eq!(s.send(1), Ok(()));
    drop(r2);
    assert_eq!(s.try_send(2), Err(TrySendError::Disconnected(2)));
}

#[test]
fn timeouts_return_timeout_and_do_not_return_early() {
    for (name, s, r) in flavours() {
        let start = Instant::now();
        assert_eq!(
            r.recv_timeout(ms(30)),
            Err(RecvTimeoutError::Timeout),
            "{name}"
        );
        assert!(start.elapsed() >= ms(30), "{name}: returned early");
        let deadline = Instant::now() + ms(20);
        assert_eq!(
            r.recv_deadline(deadline),
            Err(RecvTimeoutError::Timeout),
            "{name}"
        );
        assert!(Instant::now() >= deadline);
        if let Some(cap) = s.capacity() {
            for i in 0..cap as i32 {
                s.send(i).unwrap();
            }
            let start = Instant::now();
            assert_eq!(
                s.send_timeout(9, ms(30)),
                Err(SendTimeoutError::Timeout(9)),
                "{name}"
            );
            assert!(start.elapsed() >= ms(30), "{name}: returned early");
            let e = s.send_deadline(8, Instant::now() + ms(5)).unwrap_err();
            assert!(e.is_timeout() && !e.is_disconnected());
            assert_eq!(e.into_inner(), 8);
        }
        drop(s);
        let e = r.recv_timeout(ms(1000)).err();
        if r.capacity() == Some(0) || r.capacity().is_none() {
            assert_eq!(e, Some(RecvTimeoutError::Disconnected), "{name}");
        }
    }
}

#[test]
fn timeouts_succeed_when_a_peer_comes_in_time() {
    for (name, s, r) in flavours() {
        let t = thread::spawn(move || {
            thread::sleep(ms(20));
            s.send(3).unwrap();
            s
        });
        assert_eq!(r.recv_timeout(Duration::from_secs(60)), Ok(3), "{name}");
        let s = t.join().unwrap();
        let t = thread::spawn(move || {
            thread::sleep(ms(20));
            // Keep the receiver alive until the main thread's send completed.
            (r.recv().unwrap(), r)
        });
        if s.capacity().is_some_and(|c| c > 0) {
            while !s.is_full() {
                s.send(0).unwrap();
            }
        }
        assert_eq!(s.send_timeout(4, Duration::from_secs(60)), Ok(()), "{name}");
        let (got, _r) = t.join().unwrap();
        if s.capacity() == Some(0) {
            assert_eq!(got, 4);
        }
    }
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let (s, r) = bounded(1);
    s.send_timeout(1, Duration::MAX).unwrap();
    assert_eq!(r.recv_timeout(Duration::MAX), Ok(1));
    let start = Instant::now();
    let a = after(Duration::MAX);
    assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
    assert!(start.elapsed() < Duration::from_secs(3600));
    let t = tick(Duration::MAX);
    assert_eq!(t.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn len_capacity_empty_full() {
    let (s, r) = bounded(3);
    assert_eq!((s.capacity(), r.capacity()), (Some(3), Some(3)));
    assert!(s.is_empty() && r.is_empty() && !s.is_full() && !r.is_full());
    for i in 0..3 {
        assert_eq!(s.len(), i);
        s.send(i).unwrap();
    }
    assert!(s.is_full() && r.is_full() && !r.is_empty());
    assert_eq!(r.len(), 3);
    // Wrap around the ring a few times.
    for i in 3..20 {
        assert_eq!(r.recv(), Ok(i - 3));
        s.send(i).unwrap();
        assert_eq!(r.len(), 3);
    }

    let (s, r) = bounded::<()>(0);
    assert_eq!((s.capacity(), r.capacity()), (Some(0), Some(0)));
    assert!(s.is_empty() && s.is_full() && r.is_empty() && r.is_full());
    assert_eq!((s.len(), r.len()), (0, 0));

    let (s, r) = unbounded();
    assert_eq!((s.capacity(), r.capacity()), (None, None));
    for i in 0..10 {
        s.send(i).unwrap();
    }
    assert_eq!((s.len(), r.len()), (10, 10));
    assert!(!s.is_full() && !r.is_full() && !r.is_empty());

    let n = never::<i32>();
    assert_eq!(
        (n.len(), n.capacity(), n.is_empty(), n.is_full()),
        (0, Some(0), true, true)
    );
    let a = after(ms(0));
    assert_eq!(a.capacity(), Some(1));
}

#[test]
#[should_panic(expected = "capacity")]
fn absurd_capacity_panics() {
    let _ = bounded::<u8>(usize::MAX);
}

#[test]
fn iterators() {
    let (s, r) = unbounded();
    for i in 0..5 {
        s.send(i).unwrap();
    }
    assert_eq!(r.try_iter().take(2).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(r.try_iter().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(r.try_iter().next(), None, "try_iter does not block");
    let t = thread::spawn(move || {
        for i in 10..13 {
            s.send(i).unwrap();
        }
    });
    assert_eq!(
        r.iter().collect::<Vec<_>>(),
        [10, 11, 12],
        "iter ends at disconnection"
    );
    t.join().unwrap();
    let mut it = r.iter();
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None, "fused");

    let (s, r) = bounded(2);
    s.send(1).unwrap();
    drop(s);
    let mut n = 0;
    for x in &r {
        n += x;
    }
    assert_eq!(n, 1);
    let (s, r) = bounded(2);
    s.send(2).unwrap();
    drop(s);
    assert_eq!(r.into_iter().collect::<Vec<_>>(), [2]);
}

#[test]
fn same_channel() {
    let (s, r) = unbounded::<i32>();
    let (s2, r2) = unbounded::<i32>();
    assert!(s.same_channel(&s.clone()) && r.same_channel(&r.clone()));
    assert!(!s.same_channel(&s2) && !r.same_channel(&r2));
    let (b, rb) = bounded::<i32>(1);
    assert!(!s.same_channel(&b) && !r.same_channel(&rb));
    let (z, rz) = bounded::<i32>(0);
    assert!(z.same_channel(&z.clone()) && !z.same_channel(&b) && rz.same_channel(&rz.clone()));
    let a = after(ms(10));
    assert!(a.same_channel(&a.clone()) && !a.same_channel(&after(ms(10))));
    let t = tick(ms(10));
    assert!(t.same_channel(&t.clone()) && !t.same_channel(&a));
    assert!(never::<i32>().same_channel(&never()));
    assert!(!never::<Instant>().same_channel(&a));
}

#[test]
fn after_and_at_deliver_once_at_the_due_instant() {
    let start = Instant::now();
    let r = after(ms(30));
    let got = r.recv().unwrap();
    assert!(got >= start + ms(30) && Instant::now() >= got);
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty), "only one message");
    assert_eq!(
        r.recv_timeout(ms(10)),
        Err(RecvTimeoutError::Timeout),
        "never disconnected"
    );

    let when = Instant::now() + ms(20);
    let r = at(when);
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    assert!(r.is_empty());
    assert_eq!(r.recv(), Ok(when));

    let past = Instant::now() - ms(5);
    let r = at(past);
    assert_eq!(r.len(), 1);
    assert!(r.is_full());
    assert_eq!(r.try_recv(), Ok(past));
    assert_eq!(r.len(), 0);

    // Several receivers: exactly one gets the message.
    let r = after(ms(10));
    let got = Arc::new(AtomicUsize::new(0));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (r, got) = (r.clone(), got.clone());
            thread::spawn(move || {
                if r.recv_timeout(ms(200)).is_ok() {
                    got.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(got.load(Ordering::SeqCst), 1);
}

#[test]
fn tick_delivers_periodically_and_drops_missed_ticks() {
    let start = Instant::now();
    let r = tick(ms(10));
    let t1 = r.recv().unwrap();
    let t2 = r.recv().unwrap();
    assert!(t1 >= start + ms(10) && t2 >= t1 + ms(10));
    thread::sleep(ms(50));
    // Capacity one: one message waits, the missed ticks are not queued...
    assert_eq!(r.len(), 1);
    let late = Instant::now();
    assert!(r.try_recv().is_ok());
    // ...and the next tick is due one period after that late receive.
    let t3 = r.recv().unwrap();
    assert!(t3 >= late + ms(10), "missed ticks were queued");
}

#[test]
fn never_never_delivers() {
    let r = never::<i32>();
    assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    let start = Instant::now();
    assert_eq!(r.recv_timeout(ms(20)), Err(RecvTimeoutError::Timeout));
    assert!(start.elapsed() >= ms(20));
    const N: Receiver<u8> = never();
    assert_eq!(N.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn zero_capacity_send_completes_only_when_received() {
    let (s, r) = bounded(0);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let t = thread::spawn(move || {
        s.send(1).unwrap();
        d.store(1, Ordering::SeqCst);
    });
    thread::sleep(ms(50));
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "send returned without a receiver"
    );
    assert_eq!(r.recv(), Ok(1));
    t.join().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1);
}

#[test]
fn messages_are_dropped_exactly_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct D;
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    for cap in [None, Some(4)] {
        DROPS.store(0, Ordering::SeqCst);
        let (s, r) = match cap {
            None => unbounded(),
            Some(c) => bounded(c),
        };
        for _ in 0..3 {
            s.send(D).unwrap();
        }
        drop(r.recv().unwrap());
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
        drop(r);
        let e = s.send(D).unwrap_err();
        drop(e);
        drop(s);
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            4,
            "{cap:?}: queued messages dropped"
        );
    }
}

#[test]
fn errors_display_debug_and_conversions() {
    assert_eq!(
        SendError(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(format!("{:?}", SendError(1)), "SendError(..)");
    assert_eq!(
        TrySendError::Full(1).to_string(),
        "sending on a full channel"
    );
    assert_eq!(
        format!("{:?}", TrySendError::Disconnected(1)),
        "Disconnected(..)"
    );
    assert_eq!(
        SendTimeoutError::Timeout(1).to_string(),
        "timed out waiting on send operation"
    );
    assert_eq!(
        format!("{:?}", SendTimeoutError::Timeout(())),
        "SendTimeoutError(..)"
    );
    assert_eq!(
        RecvError.to_string(),
        "receiving on an empty and disconnected channel"
    );
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
    assert_eq!(
        RecvTimeoutError::Timeout.to_string(),
        "timed out waiting on receive operation"
    );
    assert_eq!(
        TrySendError::from(SendError(3)),
        TrySendError::Disconnected(3)
    );
    assert_eq!(
        SendTimeoutError::from(SendError(3)),
        SendTimeoutError::Disconnected(3)
    );
    assert_eq!(TryRecvError::from(RecvError), TryRecvError::Disconnected);
    assert_eq!(
        RecvTimeoutError::from(RecvError),
        RecvTimeoutError::Disconnected
    );
    assert!(TryRecvError::Empty.is_empty() && TryRecvError::Disconnected.is_disconnected());
    assert!(RecvTimeoutError::Timeout.is_timeout());
    assert!(RecvTimeoutError::Disconnected.is_disconnected());
    assert_eq!(SendError("x").into_inner(), "x");
    assert_eq!(
        gmp_chan::TrySelectError.to_string(),
        "all operations in select would block"
    );
    assert_eq!(
        gmp_chan::SelectTimeoutError.to_string(),
        "timed out waiting on select"
    );
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(SendError(1u8));
    assert!(!boxed.to_string().is_empty());
}

#[test]
fn trait_impls_match_crossbeam() {
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    fn unwind<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    fn debug<T: std::fmt::Debug>() {}
    fn error<T: std::error::Error + Eq + Copy>() {}
    send_sync::<Sender<i32>>();
    send_sync::<Receiver<i32>>();
    send_sync::<Select<'static>>();
    clone::<Sender<std::cell::Cell<i32>>>();
    clone::<Receiver<i32>>();
    clone::<Select<'static>>();
    unwind::<Sender<std::cell::Cell<i32>>>();
    unwind::<Receiver<std::cell::Cell<i32>>>();
    debug::<Sender<()>>();
    debug::<Receiver<()>>();
    debug::<Select<'static>>();
    debug::<gmp_chan::Iter<'static, ()>>();
    debug::<gmp_chan::TryIter<'static, ()>>();
    debug::<gmp_chan::IntoIter<()>>();
    error::<SendError<i32>>();
    error::<TrySendError<i32>>();
    error::<SendTimeoutError<i32>>();
    error::<RecvError>();
    error::<TryRecvError>();
    error::<RecvTimeoutError>();
    error::<gmp_chan::TrySelectError>();
    error::<gmp_chan::SelectTimeoutError>();
    error::<gmp_chan::TryReadyError>();
    error::<gmp_chan::ReadyTimeoutError>();
    assert_eq!(format!("{:?}", unbounded::<()>().0), "Sender { .. }");
    assert_eq!(format!("{:?}", unbounded::<()>().1), "Receiver { .. }");
    assert_eq!(format!("{:?}", Select::new()), "Select { .. }");
}

// ---- select! ----

#[test]
fn select_recv_send_default_and_timeout_arms() {
    let (s1, r1) = unbounded();
    let (s2, r2) = bounded(1);
    s1.send(10).unwrap();
    let got = select! {
        recv(r1) -> msg => msg.unwrap(),
        recv(r2) -> _ => panic!("r2 is empty"),
    };
    assert_eq!(got, 10);

    select! {
        send(s2, 20) -> res => res.unwrap(),
        recv(r1) -> _ => panic!("r1 is empty"),
    }
    assert_eq!(r2.recv(), Ok(20));

    let ran_default = select! {
        recv(r1) -> _ => false,
        default => true,
    };
    assert!(ran_default);

    let start = Instant::now();
    let timed_out = select! {
        recv(r1) -> _ => false,
        default(ms(30)) => true,
    };
    assert!(timed_out && start.elapsed() >= ms(30));

    // `default()` is `default`; only-default selects work too.
    select! { default() => {} }
    let start = Instant::now();
    select! { default(ms(10)) => {} }
    assert!(start.elapsed() >= ms(10));
    drop(s1);
}

#[test]
fn select_syntax_variants() {
    let (s, r) = unbounded::<i32>();
    s.send(1).unwrap();
    // Blocks without commas, trailing comma, pattern bindings, references and temporaries.
    select! {
        recv(r) -> v => { assert_eq!(v, Ok(1)) }
        recv(never::<i32>()) -> _ => { unreachable!() }
    }
    s.send(2).unwrap();
    let rr = &r;
    select! {
        recv(rr) -> v => assert_eq!(v, Ok(2)),
        recv(&never::<i32>()) -> _ => unreachable!(),
    }
    let opt: Option<&Receiver<i32>> = std::hint::black_box(None);
    s.send(3).unwrap();
    select! {
        recv(opt.unwrap_or(&never())) -> _ => unreachable!(),
        recv(r) -> v => assert_eq!(v, Ok(3)),
    }
    // send arm with trailing comma in its arguments and a block body.
    select! {
        send(s, 4,) -> res => { res.unwrap(); }
    }
    assert_eq!(r.recv(), Ok(4));
    // The value of select! is the value of the chosen body.
    s.send(5).unwrap();
    let v: i32 = select! { recv(r) -> v => v.unwrap() * 2 };
    assert_eq!(v, 10);
}

#[test]
fn select_send_message_is_evaluated_only_if_chosen() {
    let (s, _r) = bounded::<i32>(0);
    let (s2, r2) = unbounded();
    s2.send(1).unwrap();
    let evaluated = std::cell::Cell::new(false);
    select! {
        send(s, { evaluated.set(true); 5 }) -> _ => panic!("no receiver: not ready"),
        recv(r2) -> _ => {}
    }
    assert!(!evaluated.get());
}

#[test]
fn select_bodies_can_break_continue_return() {
    // `return` inside an arm is the point of this test.
    #[allow(clippy::needless_return)]
    fn first(r: &Receiver<i32>) -> Option<i32> {
        select! {
            recv(r) -> v => return v.ok(),
            default => return None,
        }
    }
    let (s, r) = unbounded();
    assert_eq!(first(&r), None);
    s.send(1).unwrap();
    assert_eq!(first(&r), Some(1));

    for i in 0..5 {
        s.send(i).unwrap();
    }
    drop(s);
    let mut sum = 0;
    loop {
        select! {
            recv(r) -> v => match v {
                Ok(1) => continue,
                Ok(x) => sum += x,
                Err(_) => break,
            },
        }
    }
    assert_eq!(sum, 9);
}

#[test]
fn select_disconnected_operations_are_ready() {
    let (s, r) = unbounded::<i32>();
    drop(s);
    select! {
        recv(r) -> v => assert_eq!(v, Err(RecvError)),
        default => panic!("a disconnected receive is ready"),
    }
    let (s, r) = bounded::<i32>(0);
    drop(r);
    select! {
        send(s, 1) -> res => assert_eq!(res, Err(SendError(1))),
        default => panic!("a disconnected send is ready"),
    }
}

#[test]
fn select_blocks_until_a_peer_arrives() {
    for cap in [0, 1] {
        let (s1, r1) = bounded::<i32>(cap);
        let (s2, r2) = bounded::<i32>(cap);
        let t = thread::spawn(move || {
            thread::sleep(ms(30));
            s2.send(2).unwrap();
            s1
        });
        select! {
            recv(r1) -> _ => panic!("nothing on r1"),
            recv(r2) -> v => assert_eq!(v, Ok(2)),
        }
        drop(t.join().unwrap());
        // A blocked send arm.
        let (s3, r3) = bounded::<i32>(cap);
        if cap == 1 {
            s3.send(0).unwrap();
        }
        let t = thread::spawn(move || {
            thread::sleep(ms(30));
            let mut v = r3.recv().unwrap();
            if cap == 1 {
                v = r3.recv().unwrap();
            }
            v
        });
        select! {
            send(s3, 7) -> res => res.unwrap(),
            recv(never::<i32>()) -> _ => panic!(),
        }
        assert_eq!(t.join().unwrap(), 7);
    }
}

#[test]
fn select_with_after_timer_arm() {
    let (_s, r) = unbounded::<i32>();
    let start = Instant::now();
    select! {
        recv(r) -> _ => panic!(),
        recv(after(ms(30))) -> t => assert!(t.unwrap() >= start + ms(30)),
    }
    assert!(start.elapsed() >= ms(30));
}

#[test]
fn select_send_and_recv_on_same_zero_channel_does_not_pair_with_itself() {
    let (s, r) = bounded::<i32>(0);
    let timed_out = select! {
        send(s, 1) -> _ => false,
        recv(r) -> _ => false,
        default(ms(30)) => true,
    };
    assert!(timed_out);
    // With a peer it completes one side.
    let (s2, r2) = (s.clone(), r.clone());
    let t = thread::spawn(move || {
        select! {
            send(s2, 5) -> _ => None,
            recv(r2) -> v => Some(v.unwrap()),
        }
    });
    thread::sleep(ms(20));
    let mine = select! {
        send(s, 6) -> _ => None,
        recv(r) -> v => Some(v.unwrap()),
    };
    let theirs = t.join().unwrap();
    assert!(
        matches!((mine, theirs), (Some(5), None) | (None, Some(6))),
        "{mine:?} {theirs:?}"
    );
}

#[test]
fn select_biased_prefers_the_first_ready_arm() {
    let (s1, r1) = unbounded();
    let (s2, r2) = unbounded();
    for _ in 0..100 {
        s1.send(1).unwrap();
        s2.send(2).unwrap();
        select_biased! {
            recv(r1) -> v => assert_eq!(v, Ok(1)),
            recv(r2) -> _ => panic!("biased select chose the second arm"),
        }
        assert_eq!(r2.recv(), Ok(2));
    }
}

#[test]
fn select_many_arms() {
    let chans: Vec<_> = (0..32).map(|_| unbounded::<usize>()).collect();
    chans[31].0.send(31).unwrap();
    let r = |i: usize| &chans[i].1;
    select! {
        recv(r(0)) -> _ => panic!(), recv(r(1)) -> _ => panic!(), recv(r(2)) -> _ => panic!(),
        recv(r(3)) -> _ => panic!(), recv(r(4)) -> _ => panic!(), recv(r(5)) -> _ => panic!(),
        recv(r(6)) -> _ => panic!(), recv(r(7)) -> _ => panic!(), recv(r(8)) -> _ => panic!(),
        recv(r(9)) -> _ => panic!(), recv(r(10)) -> _ => panic!(), recv(r(11)) -> _ => panic!(),
        recv(r(12)) -> _ => panic!(), recv(r(13)) -> _ => panic!(), recv(r(14)) -> _ => panic!(),
        recv(r(15)) -> _ => panic!(), recv(r(16)) -> _ => panic!(), recv(r(17)) -> _ => panic!(),
        recv(r(18)) -> _ => panic!(), recv(r(19)) -> _ => panic!(), recv(r(20)) -> _ => panic!(),
        recv(r(21)) -> _ => panic!(), recv(r(22)) -> _ => panic!(), recv(r(23)) -> _ => panic!(),
        recv(r(24)) -> _ => panic!(), recv(r(25)) -> _ => panic!(), recv(r(26)) -> _ => panic!(),
        recv(r(27)) -> _ => panic!(), recv(r(28)) -> _ => panic!(), recv(r(29)) -> _ => panic!(),
        recv(r(30)) -> _ => panic!(), recv(r(31)) -> v => assert_eq!(v, Ok(31)),
    }
}

// ---- Select ----

#[test]
fn select_builder_select_try_select_timeout_deadline() {
    let (s1, r1) = unbounded::<i32>();
    let (s2, r2) = bounded::<i32>(1);
    let mut sel = Select::new();
    let a = sel.recv(&r1);
    let b = sel.send(&s2);
    assert_eq!((a, b), (0, 1));
    let oper = sel.select();
    assert_eq!(oper.index(), b, "only the send is ready");
    oper.send(&s2, 9).unwrap();
    assert!(sel.try_select().is_err(), "r1 empty and s2 full");
    assert!(sel.select_timeout(ms(20)).is_err());
    assert!(sel.select_deadline(Instant::now() + ms(20)).is_err());
    s1.send(1).unwrap();
    let oper = sel.try_select().unwrap();
    assert_eq!(oper.index(), a);
    assert_eq!(oper.recv(&r1), Ok(1));
    assert_eq!(r2.recv(), Ok(9));
    let t = thread::spawn(move || {
        thread::sleep(ms(20));
        s1.send(2).unwrap();
    });
    let mut sel2 = Select::new();
    sel2.recv(&r1);
    let oper = sel2.select_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(oper.recv(&r1), Ok(2));
    t.join().unwrap();
}

#[test]
fn select_builder_ready_family() {
    let (s1, r1) = unbounded::<i32>();
    let (s2, r2) = bounded::<i32>(0);
    let mut sel = Select::new();
    let a = sel.recv(&r1);
    let b = sel.recv(&r2);
    assert!(sel.try_ready().is_err());
    assert!(sel.ready_timeout(ms(20)).is_err());
    assert!(sel.ready_deadline(Instant::now() + ms(10)).is_err());
    s1.send(1).unwrap();
    assert_eq!(sel.try_ready(), Ok(a));
    assert_eq!(sel.ready(), a);
    assert_eq!(r1.try_recv(), Ok(1), "ready does not consume");
    // A zero-capacity receive is ready when a sender is blocked.
    let t = thread::spawn(move || s2.send(2).unwrap());
    assert_eq!(sel.ready(), b);
    assert_eq!(r2.recv(), Ok(2));
    t.join().unwrap();
    // Disconnection is readiness too (both senders are gone now).
    drop(s1);
    let i = sel.ready_timeout(Duration::from_secs(60)).unwrap();
    assert!(i == a || i == b);
    assert_eq!(r1.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn select_builder_remove_and_biased() {
    let (s1, r1) = unbounded::<i32>();
    let (s2, r2) = unbounded::<i32>();
    let (s3, r3) = unbounded::<i32>();
    s1.send(1).unwrap();
    s2.send(2).unwrap();
    s3.send(3).unwrap();
    let mut sel = Select::new_biased();
    let a = sel.recv(&r1);
    let b = sel.recv(&r2);
    let c = sel.recv(&r3);
    sel.remove(a);
    let oper = sel.select();
    assert_eq!(oper.index(), b, "biased: first remaining");
    assert_eq!(oper.recv(&r2), Ok(2));
    sel.remove(b);
    let d = sel.recv(&r1);
    assert_eq!(d, 3, "indices are not reused");
    let mut copy = sel.clone();
    let oper = copy.select();
    assert_eq!(oper.index(), c);
    assert_eq!(oper.recv(&r3), Ok(3));
    let oper = sel.select();
    assert_eq!(oper.index(), d);
    assert_eq!(oper.recv(&r1), Ok(1));
}

#[test]
#[should_panic(expected = "no operation with this index")]
fn select_remove_twice_panics() {
    let (_s, r) = unbounded::<i32>();
    let mut sel = Select::new();
    let i = sel.recv(&r);
    sel.remove(i);
    sel.remove(i);
}

#[test]
#[should_panic(expected = "index out of bounds")]
fn select_remove_unknown_panics() {
    Select::new().remove(3);
}

#[test]
#[should_panic(expected = "no operations have been added to `Select`")]
fn empty_select_panics() {
    let _ = Select::new().select();
}

#[test]
#[should_panic(expected = "no operations have been added to `Select`")]
fn empty_ready_panics() {
    Select::new().ready();
}

#[test]
fn empty_select_try_and_timeout_fail() {
    assert!(Select::new().try_select().is_err());
    assert!(Select::new().try_ready().is_err());
    let start = Instant::now();
    assert!(Select::new().select_timeout(ms(20)).is_err());
    assert!(start.elapsed() >= ms(20));
}

#[test]
#[should_panic(expected = "dropped `SelectedOperation` without completing the operation")]
fn dropping_a_selected_operation_panics() {
    let (s, _r) = unbounded::<i32>();
    let mut sel = Select::new();
    sel.send(&s);
    let oper = sel.select();
    drop(oper);
}

#[test]
#[should_panic(expected = "passed a receiver that wasn't selected")]
fn completing_with_the_wrong_receiver_panics() {
    let (s, r) = unbounded::<i32>();
    let (_s2, r2) = unbounded::<i32>();
    s.send(1).unwrap();
    let mut sel = Select::new();
    sel.recv(&r);
    let oper = sel.select();
    let _ = oper.recv(&r2);
}

#[test]
#[should_panic(expected = "passed a sender that wasn't selected")]
fn completing_with_the_wrong_sender_panics() {
    let (s, _r) = unbounded::<i32>();
    let (s2, _r2) = unbounded::<i32>();
    let mut sel = Select::new();
    sel.send(&s);
    let oper = sel.select();
    let _ = oper.send(&s2, 1);
}

#[test]
fn select_same_receiver_twice() {
    let (s, r) = unbounded::<i32>();
    s.send(1).unwrap();
    let mut sel = Select::new();
    let a = sel.recv(&r);
    let b = sel.recv(&r);
    let oper = sel.select();
    assert!(oper.index() == a || oper.index() == b);
    assert_eq!(oper.recv(&r), Ok(1));
    assert!(sel.try_select().is_err());
}

#[test]
fn zero_capacity_select_send_meets_plain_recv_and_vice_versa() {
    // A select send arm (message produced after the arm is chosen) meets a blocked recv.
    let (s, r) = bounded::<String>(0);
    let t = thread::spawn(move || r.recv().unwrap());
    thread::sleep(ms(20));
    let mut sel = Select::new();
    sel.send(&s);
    let oper = sel.select();
    oper.send(&s, "hello".to_string()).unwrap();
    assert_eq!(t.join().unwrap(), "hello");

    // A blocked select send arm is chosen by a later plain recv.
    let (s, r) = bounded::<String>(0);
    let t = thread::spawn(move || {
        let mut sel = Select::new();
        sel.send(&s);
        let oper = sel.select();
        oper.send(&s, "late".to_string()).unwrap();
    });
    thread::sleep(ms(20));
    assert_eq!(r.recv(), Ok("late".to_string()));
    t.join().unwrap();

    // A blocked select recv arm is chosen by a plain send.
    let (s, r) = bounded::<String>(0);
    let t = thread::spawn(move || {
        let mut sel = Select::new();
        sel.recv(&r);
        sel.select().recv(&r).unwrap()
    });
    thread::sleep(ms(20));
    s.send("x".to_string()).unwrap();
    assert_eq!(t.join().unwrap(), "x");
}

#[test]
fn two_selects_pair_through_a_zero_channel() {
    let (s, r) = bounded::<i32>(0);
    let (_s_other, r_other) = unbounded::<i32>();
    let t = thread::spawn(move || {
        select! {
            send(s, 11) -> res => res.unwrap(),
            recv(r_other) -> _ => panic!(),
        }
    });
    let (_s_other2, r_other2) = unbounded::<i32>();
    select! {
        recv(r) -> v => assert_eq!(v, Ok(11)),
        recv(r_other2) -> _ => panic!(),
    }
    t.join().unwrap();
}
