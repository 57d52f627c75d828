//! The poller with real sockets (Unix socket pairs and loopback TCP), plain threads as
//! the waiters, and a driver thread in the runtime's role: poll, unpark the ready.

use gmp_netpoll::{is_closed_error, Direction, PollDesc, Poller};
use mio::net::{TcpListener, TcpStream, UnixStream};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` while a thread polls `poller` and unparks whoever becomes ready.
fn with_driver<R>(poller: &Poller, f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut ready = Vec::new();
            while !stop.load(Ordering::Acquire) {
                poller
                    .poll(Some(Duration::from_millis(5)), &mut ready)
                    .unwrap();
                ready.drain(..).for_each(|u| u.unpark());
            }
        });
        let r = f();
        stop.store(true, Ordering::Release);
        r
    })
}

/// Spins (yielding) until `cond`, failing the test after a generous bound instead of
/// hanging.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Reads once, waiting on `pd` as long as the socket would block.
fn read_wait<S>(
    s: &S,
    pd: &PollDesc,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    loop {
        match { s }.read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => pd.wait(Direction::Read, deadline)?,
            r => return r,
        }
    }
}

fn write_all_wait<S>(s: &S, pd: &PollDesc, mut buf: &[u8]) -> io::Result<()>
where
    for<'a> &'a S: Write,
{
    while !buf.is_empty() {
        match { s }.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => pd.wait_write()?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// (index, generation) of a descriptor, from its `Debug` output.
fn index_gen(pd: &PollDesc) -> (usize, usize) {
    let d = format!("{pd:?}");
    let field = |name: &str| -> usize {
        let rest = &d[d.find(name).unwrap() + name.len()..];
        rest[..rest.find(',').unwrap()].parse().unwrap()
    };
    (field("index: "), field("generation: "))
}

#[test]
fn readiness_wakes_a_parked_reader() {
    let poller = Poller::new().unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    with_driver(&poller, || {
        thread::scope(|s| {
            let r = s.spawn(|| {
                let mut buf = [0u8; 8];
                let n = read_wait(&b, &pd, &mut buf, None).unwrap();
                buf[..n].to_vec()
            });
            wait_until("the reader to park", || poller.has_waiters());
            a.write_all(b"ping").unwrap();
            assert_eq!(r.join().unwrap(), b"ping");
        });
    });
    assert!(!poller.has_waiters());
    pd.deregister(&mut b).unwrap();
}

#[test]
fn an_event_before_the_wait_is_not_lost() {
    let poller = Poller::new().unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    a.write_all(b"x").unwrap();
    let mut ready = Vec::new();
    // The readable edge arrives while nobody waits: it is remembered (READY)...
    wait_until("the readable event", || {
        poller
            .poll(Some(Duration::from_millis(10)), &mut ready)
            .unwrap();
        pd.is_ready(Direction::Read)
    });
    // ...and the next wait consumes it without sleeping (there is no driver to wake us).
    pd.wait_read().unwrap();
    assert!(!pd.is_ready(Direction::Read));
    assert!(ready.is_empty(), "nobody was parked, so nobody is returned");
}

// `register_drained` marks the descriptor drained before the add: data already there,
// or arriving later, is still reported (the mark clears and the waiter is woken), so a
// reader that trusts the mark and waits at once never misses it.
#[test]
fn a_drained_registration_still_reports_data_already_there() {
    let poller = Poller::new().unwrap();
    for data_first in [true, false] {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        if data_first {
            a.write_all(b"x").unwrap();
        }
        let pd = poller.register_drained(&mut b).unwrap();
        assert!(pd.read_drained(), "no read event dispatched yet");
        let mut ready = Vec::new();
        // The add's own edges (writable; readable when data_first) are dispatched.
        poller
            .poll(Some(Duration::from_millis(50)), &mut ready)
            .unwrap();
        assert_eq!(
            pd.read_drained(),
            !data_first,
            "the add must report the byte already there (data_first = {data_first})"
        );
        // The reader trusts the mark (skips its read) and waits: it is woken either way.
        with_driver(&poller, || {
            thread::scope(|s| {
                let r = s.spawn(|| {
                    if pd.read_drained() {
                        pd.wait_read().unwrap();
                    }
                    let mut buf = [0u8; 8];
                    read_wait(&b, &pd, &mut buf, None).unwrap()
                });
                if !data_first {
                    wait_until("the reader to park", || poller.has_waiters());
                    a.write_all(b"x").unwrap();
                }
                assert_eq!(r.join().unwrap(), 1);
            });
        });
        pd.deregister(&mut b).unwrap();
    }
}

#[test]
fn read_deadline_times_out_and_past_deadline_fails_at_once() {
    let poller = Poller::new().unwrap();
    let (_a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    let mut buf = [0u8; 4];
    let soon = Instant::now() + Duration::from_millis(30);
    let e = read_wait(&b, &pd, &mut buf, Some(soon)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(Instant::now() >= soon);

    pd.set_read_deadline(Some(Instant::now()));
    assert_eq!(pd.wait_read().unwrap_err().kind(), ErrorKind::TimedOut);
    // The write side has its own deadline.
    assert_eq!(pd.deadline(Direction::Write), None);
    pd.set_read_deadline(None);
    assert_eq!(pd.deadline(Direction::Read), None);
}

#[test]
fn a_past_deadline_wakes_a_pending_waiter() {
    let poller = Poller::new().unwrap();
    let (_a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    thread::scope(|s| {
        let r = s.spawn(|| read_wait(&b, &pd, &mut [0u8; 4], None));
        wait_until("the reader to park", || poller.has_waiters());
        pd.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)));
        assert_eq!(r.join().unwrap().unwrap_err().kind(), ErrorKind::TimedOut);
    });
    assert!(!poller.has_waiters());
}

#[test]
fn a_later_deadline_puts_the_waiter_back_to_sleep() {
    let poller = Poller::new().unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    pd.set_read_deadline(Some(Instant::now() + Duration::from_secs(3600)));
    with_driver(&poller, || {
        thread::scope(|s| {
            let r = s.spawn(|| read_wait(&b, &pd, &mut [0u8; 4], None));
            wait_until("the reader to park", || poller.has_waiters());
            // Wakes the reader, which re-checks, finds no error, and parks again.
            pd.set_read_deadline(None);
            wait_until("the reader to park again", || poller.has_waiters());
            a.write_all(b"ok").unwrap();
            assert_eq!(r.join().unwrap().unwrap(), 2);
        });
    });
}

#[test]
fn close_wakes_readers_and_writers() {
    let poller = Poller::new().unwrap();
    let (_a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    // Fill the send buffer so that a writer must wait.
    let chunk = [7u8; 65536];
    while (&b).write(&chunk).is_ok() {}
    with_driver(&poller, || {
        thread::scope(|s| {
            let r = s.spawn(|| read_wait(&b, &pd, &mut [0u8; 4], None));
            let w = s.spawn(|| write_all_wait(&b, &pd, &chunk));
            let r2 = s.spawn(|| read_wait(&b, &pd, &mut [0u8; 4], None)); // queued reader
            wait_until("reader and writer to park", || {
                format!("{pd:?}").matches("parked").count() == 2
            });
            pd.close();
            for e in [
                r.join().unwrap().unwrap_err(),
                w.join().unwrap().unwrap_err(),
            ] {
                assert!(is_closed_error(&e), "{e}");
            }
            assert!(is_closed_error(&r2.join().unwrap().unwrap_err()));
        });
    });
    assert!(pd.is_closed());
    assert!(is_closed_error(&pd.wait_read().unwrap_err()));
    assert!(!poller.has_waiters());
}

#[test]
fn several_callers_on_one_direction_all_get_their_data() {
    let poller = Poller::new().unwrap();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let pd = poller.register(&mut b).unwrap();
    const READERS: usize = 4;
    with_driver(&poller, || {
        thread::scope(|s| {
            let hs: Vec<_> = (0..READERS)
                .map(|_| s.spawn(|| read_wait(&b, &pd, &mut [0u8; 1], None).unwrap()))
                .collect();
            wait_until("a reader to park", || poller.has_waiters());
            for _ in 0..READERS {
                a.write_all(b"z").unwrap();
                thread::sleep(Duration::from_millis(2));
            }
            let got: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(got, READERS);
        });
    });
}

#[test]
fn a_late_event_for_a_reused_descriptor_is_ignored() {
    let poller = Poller::new().unwrap();
    let (mut a1, mut b1) = UnixStream::pair().unwrap();
    let pd1 = poller.register(&mut b1).unwrap();
    assert_eq!(index_gen(&pd1), (0, 0));
    // A dup keeps the open file, and so its epoll registration, alive after b1 closes
    // without deregistering: exactly the situation Go's fdseq guards against.
    // SAFETY: `dup` returns a fresh descriptor that the new UnixStream owns.
    let _dup = unsafe { UnixStream::from_raw_fd(libc::dup(b1.as_raw_fd())) };
    drop(pd1);
    drop(b1);
    let (_a2, mut b2) = UnixStream::pair().unwrap();
    let pd2 = poller.register(&mut b2).unwrap();
    assert_eq!(index_gen(&pd2), (0, 1), "same slot, next generation");
    with_driver(&poller, || {
        thread::scope(|s| {
            let deadline = Instant::now() + Duration::from_millis(300);
            let (b2, pd2) = (&b2, &pd2);
            let r = s.spawn(move || read_wait(b2, pd2, &mut [0u8; 4], Some(deadline)));
            wait_until("the reader to park", || poller.has_waiters());
            // Readiness of the *old* registration (same index, old generation).
            a1.write_all(b"stale").unwrap();
            // Woken by it, the reader would retry, get EAGAIN and wait again, so check
            // the observable difference: the stale edge never marks the new owner ready.
            let e = r.join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
        });
    });
    let mut ready = Vec::new();
    poller.poll(Some(Duration::ZERO), &mut ready).unwrap();
    assert!(!pd2.is_ready(Direction::Read), "no readiness for pd2");
}

#[test]
fn only_one_thread_blocks_in_the_poller_and_wake_releases_it() {
    let poller = Poller::new().unwrap();
    thread::scope(|s| {
        let blocked = s.spawn(|| {
            let mut ready = Vec::new();
            poller.poll(None, &mut ready).unwrap()
        });
        wait_until("a thread to block in poll", || poller.is_polling());
        let mut ready = Vec::new();
        assert_eq!(
            poller.poll(None, &mut ready).unwrap(),
            0,
            "second poller returns at once"
        );
        poller.wake().unwrap();
        poller.wake().unwrap(); // deduplicated
        assert_eq!(blocked.join().unwrap(), 0);
    });
    assert!(!poller.is_polling());
    // A wake with nobody polling makes the next poll return at once.
    poller.wake().unwrap();
    let mut ready = Vec::new();
    assert_eq!(poller.poll(None, &mut ready).unwrap(), 0);
}

/// A wake-up is kept for the blocking poll: non-blocking polls before it see the
/// waker's event but leave it pending, and the blocking poll that takes it consumes it.
#[test]
fn non_blocking_polls_leave_a_wake_for_the_blocking_poll() {
    let poller = Poller::new().unwrap();
    poller.wake().unwrap();
    let mut ready = Vec::new();
    for _ in 0..3 {
        assert_eq!(poller.poll(Some(Duration::ZERO), &mut ready).unwrap(), 0);
    }
    let t = Instant::now();
    assert_eq!(
        poller
            .poll(Some(Duration::from_secs(20)), &mut ready)
            .unwrap(),
        0
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the wake-up was lost to a non-blocking poll: the blocking poll slept {:?}",
        t.elapsed()
    );
    // Consumed: the next blocking poll waits for its timeout.
    let t = Instant::now();
    poller
        .poll(Some(Duration::from_millis(30)), &mut ready)
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(30),
        "a consumed wake-up returned again"
    );
    assert!(ready.is_empty());
}

/// The runtime polls without blocking while another M is blocked in the poller; a wake
/// for the blocked thread must reach it however many of those polls run meanwhile. (With
/// an edge-triggered eventfd, a non-blocking poll reaped the edge and the blocked thread,
/// woken by the kernel into an empty ready list, slept on: this test then waited 20 s.)
#[test]
fn a_wake_reaches_the_blocked_poller_while_others_poll_without_blocking() {
    let poller = Poller::new().unwrap();
    for round in 0..20 {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let blocked = s.spawn(|| {
                let t = Instant::now();
                poller
                    .poll(Some(Duration::from_secs(20)), &mut Vec::new())
                    .unwrap();
                t.elapsed()
            });
            wait_until("a thread to block in poll", || poller.is_polling());
            let spinners: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut ready = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            poller.poll(Some(Duration::ZERO), &mut ready).unwrap();
                        }
                    })
                })
                .collect();
            poller.wake().unwrap();
            let slept = blocked.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            for h in spinners {
                h.join().unwrap();
            }
            assert!(
                slept < Duration::from_secs(10),
                "round {round}: the wake-up was lost to a non-blocking poll ({slept:?})"
            );
        });
    }
}

#[test]
fn tcp_echo_through_poll_descriptors() {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 50;
    let poller = Poller::new().unwrap();
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let lpd = poller.register(&mut listener).unwrap();
    with_driver(&poller, || {
        thread::scope(|s| {
            // Server: accepts CLIENTS connections, one echo thread each.
            s.spawn(|| {
                for _ in 0..CLIENTS {
                    let (mut c, _) = loop {
                        match listener.accept() {
                            Err(e) if e.kind() == ErrorKind::WouldBlock => lpd.wait_read().unwrap(),
                            r => break r.unwrap(),
                        }
                    };
                    let pd = poller.register(&mut c).unwrap();
                    s.spawn(move || {
                        let mut buf = [0u8; 256];
                        loop {
                            let n = read_wait(&c, &pd, &mut buf, None).unwrap();
                            if n == 0 {
                                break;
                            }
                            write_all_wait(&c, &pd, &buf[..n]).unwrap();
                        }
                        pd.deregister(&mut c).unwrap();
                    });
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let poller = &poller;
                    s.spawn(move || {
                        let mut c = TcpStream::connect(addr).unwrap();
                        let pd = poller.register(&mut c).unwrap();
                        for r in 0..ROUNDS {
                            let msg = format!("client {i} round {r}");
                            write_all_wait(&c, &pd, msg.as_bytes()).unwrap();
                            let mut got = Vec::new();
                            while got.len() < msg.len() {
                                let mut buf = [0u8; 64];
                                let n = read_wait(&c, &pd, &mut buf, None).unwrap();
                                assert!(n > 0, "server closed early");
                                got.extend_from_slice(&buf[..n]);
                            }
                            assert_eq!(got, msg.as_bytes());
                        }
                        pd.deregister(&mut c).unwrap();
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
        });
    });
    assert!(!poller.has_waiters());
}

#[test]
fn descriptors_are_pooled_across_many_registrations() {
    let poller = Poller::new().unwrap();
    let mut ready = Vec::new();
    for round in 0..3 {
        let mut pairs: Vec<_> = (0..300).map(|_| UnixStream::pair().unwrap()).collect();
        let pds: Vec<_> = pairs
            .iter_mut()
            .map(|(_, b)| poller.register(b).unwrap())
            .collect();
        for (a, _) in pairs.iter_mut().step_by(2) {
            a.write_all(b"!").unwrap();
        }
        // Every written-to descriptor becomes ready, the others do not.
        wait_until("readiness of every written socket", || {
            poller
                .poll(Some(Duration::from_millis(10)), &mut ready)
                .unwrap();
            pds.iter().step_by(2).all(|pd| pd.is_ready(Direction::Read))
        });
        assert!(ready.is_empty());
        for pd in pds.iter().skip(1).step_by(2) {
            assert!(!pd.is_ready(Direction::Read), "round {round}");
        }
        for (pd, (_, b)) in pds.iter().zip(pairs.iter_mut()) {
            pd.deregister(b).unwrap();
        }
        // The same 300 slots every round, each one generation further.
        let mut ids: Vec<(usize, usize)> = pds.iter().map(index_gen).collect();
        ids.sort();
        assert_eq!(ids, (0..300).map(|i| (i, round)).collect::<Vec<_>>());
    }
}
