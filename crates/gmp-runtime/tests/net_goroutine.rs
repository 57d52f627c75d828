//! `gmp_runtime::net` inside goroutines: a would-block parks the goroutine on the
//! network poller, so a few Ps serve thousands of connections with blocking code.

use gmp_runtime::chan;
use gmp_runtime::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn rt() -> Runtime {
    Runtime::builder().procs(2).build().unwrap()
}

/// Starts a goroutine on the current runtime.
fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: the test goroutines hold no thread-local state across I/O.
    unsafe { gmp_runtime::spawn(f) }
}

fn block_on<T: Send>(rt: &Runtime, f: impl FnOnce() -> T + Send) -> T {
    // SAFETY: as for `go`.
    unsafe { rt.block_on(f) }
}

/// Echoes until EOF.
fn echo(mut c: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// A goroutine accepting `n` connections, each served by `serve` in its own goroutine.
fn server(n: usize, serve: fn(TcpStream)) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = go(move || {
        for c in l.incoming().take(n) {
            let c = c.unwrap();
            go(move || serve(c));
        }
    });
    (addr, h)
}

#[test]
fn a_thousand_concurrent_echo_clients() {
    const CLIENTS: usize = 1000;
    const ROUNDS: usize = 10;
    block_on(&rt(), || {
        let (addr, srv) = server(CLIENTS, echo);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                go(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_nodelay(true).unwrap();
                    for r in 0..ROUNDS {
                        let msg = format!("client {i:04} round {r}");
                        c.write_all(msg.as_bytes()).unwrap();
                        let mut got = vec![0u8; msg.len()];
                        c.read_exact(&mut got).unwrap();
                        assert_eq!(got, msg.as_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        srv.join().unwrap();
    });
}

/// Raises the open-file limit to at least `want`, raising the hard limit too if we may.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur >= want {
        return;
    }
    let new = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: a valid in-pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        panic!(
            "this test needs {want} open files; RLIMIT_NOFILE is {}/{} and cannot be raised: {}",
            lim.rlim_cur,
            lim.rlim_max,
            std::io::Error::last_os_error()
        );
    }
}

/// The client side of the 10,000-connection test runs in a child process (the test binary
/// itself, re-run with this variable set to the server's address): both ends in one
/// process would need 20,000 descriptors, and machines often cap a process below that.
const CHILD_ENV: &str = "GMP_NET_TEST_10K_SERVER";
const CONNS: usize = 10_000;

/// The child: opens every connection first, then (all held open at once) has each echo a
/// byte, then closes them all.
fn ten_thousand_clients(addr: &str) {
    raise_nofile(CONNS as u64 + 256);
    let clients: Vec<std::net::TcpStream> = (0..CONNS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for c in &clients {
        let mut hello = [0u8; 1];
        (&*c).read_exact(&mut hello).unwrap(); // accepted and served by a goroutine
        assert_eq!(&hello, b"h");
    }
    for (i, c) in clients.iter().enumerate() {
        (&*c).write_all(&[(i % 251) as u8]).unwrap();
    }
    for (i, c) in clients.iter().enumerate() {
        let mut b = [0u8; 1];
        (&*c).read_exact(&mut b).unwrap();
        assert_eq!(b[0], (i % 251) as u8);
    }
}

#[test]
fn ten_thousand_connections_held_open_on_two_ps() {
    if let Ok(addr) = std::env::var(CHILD_ENV) {
        return ten_thousand_clients(&addr);
    }
    raise_nofile(CONNS as u64 + 256);
    let rt = rt();
    assert_eq!(rt.procs(), 2);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ten_thousand_connections_held_open_on_two_ps",
            "--nocapture",
        ])
        .env(CHILD_ENV, addr.to_string())
        .spawn()
        .unwrap();
    let served = block_on(&rt, move || {
        // One goroutine per connection: greet, then park in `read` until the client
        // (which first opens all 10,000) speaks; echo; wait for EOF.
        let done = Arc::new(AtomicUsize::new(0));
        let mut handlers = Vec::with_capacity(CONNS);
        for c in l.incoming().take(CONNS) {
            let mut c = c.unwrap();
            let done = done.clone();
            handlers.push(go(move || {
                c.write_all(b"h").unwrap();
                let mut b = [0u8; 1];
                assert_eq!(c.read(&mut b).unwrap(), 1);
                c.write_all(&b).unwrap();
                assert_eq!(c.read(&mut b).unwrap(), 0);
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for h in handlers {
            h.join().unwrap();
        }
        done.load(Ordering::SeqCst)
    });
    assert!(child.wait().unwrap().success(), "the client process failed");
    assert_eq!(served, CONNS);
}

#[test]
fn read_timeout_in_a_goroutine() {
    block_on(&rt(), || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let e = (&c).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
        // Other goroutines ran meanwhile: the timeout parked only this one.
        let other = go(|| 7);
        assert_eq!(other.join().unwrap(), 7);
    });
}

#[test]
fn peer_closes_mid_read() {
    block_on(&rt(), || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let reader = go(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            all
        });
        let (mut peer, _) = l.accept().unwrap();
        peer.write_all(b"half a mess").unwrap();
        gmp_runtime::sleep(Duration::from_millis(20)); // the reader parks mid-stream
        drop(peer);
        assert_eq!(reader.join().unwrap(), b"half a mess");
    });
}

#[test]
fn connect_errors_like_std() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let theirs = std::net::TcpStream::connect(addr).unwrap_err();
    let (e1, e2) = block_on(&rt(), || {
        (
            TcpStream::connect(addr).unwrap_err(),
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err(),
        )
    });
    for e in [e1, e2] {
        assert_eq!(e.kind(), theirs.kind());
        assert_eq!(e.raw_os_error(), theirs.raw_os_error());
    }
}

#[test]
fn shutdown_then_read_and_write_like_std() {
    block_on(&rt(), || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_peer, _) = l.accept().unwrap();
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!((&c).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn listener_dropped_while_a_goroutine_waits_in_accept() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let rt = rt();
    let (tx, rx) = chan::bounded::<()>(1);
    // SAFETY: as for `go`.
    let h = unsafe {
        rt.spawn(move || {
            let (_first, _) = l.accept().unwrap();
            tx.send(()).unwrap();
            // Parks in accept until the runtime is dropped and unwinds it.
            let _ = l.accept();
        })
    };
    let _c = std::net::TcpStream::connect(addr).unwrap();
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let it park in the second accept
    drop(rt); // unwinds the parked goroutine: its listener is dropped; must not hang
    drop(h);
    let e = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::ConnectionRefused,
        "the listener is closed"
    );
}

#[test]
fn udp_round_trips_between_goroutines() {
    block_on(&rt(), || {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = a.local_addr().unwrap();
        b.connect(a_addr).unwrap();
        let echo = go(move || {
            let mut buf = [0u8; 64];
            for _ in 0..200 {
                let (n, from) = a.recv_from(&mut buf).unwrap();
                a.send_to(&buf[..n], from).unwrap();
            }
        });
        for i in 0..200u32 {
            b.send(&i.to_be_bytes()).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(b.recv(&mut buf).unwrap(), 4);
            assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), i);
        }
        echo.join().unwrap();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(
            b.recv(&mut [0u8; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

#[test]
fn goroutines_and_threads_share_sockets() {
    // A thread client against a goroutine server, and the reverse, with values created
    // on one side and used on the other.
    let rt = rt();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // SAFETY: as for `go`.
    let srv = unsafe { rt.spawn(move || echo(l.accept().unwrap().0)) };
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"from a thread").unwrap();
    let mut got = [0u8; 13];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from a thread");
    drop(c);
    srv.join().unwrap();

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || echo(l.accept().unwrap().0));
    let n = block_on(&rt, || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"from a goroutine").unwrap();
        let mut got = [0u8; 16];
        c.read_exact(&mut got).unwrap();
        got.len()
    });
    assert_eq!(n, 16);
    t.join().unwrap();
}

#[test]
fn a_runtime_that_shuts_down_leaves_the_shared_poller_to_the_others() {
    // Every runtime polls the one process-wide poller, and only one thread blocks in it.
    // If that thread belongs to a runtime that shuts down, another runtime must take
    // over, or its goroutines parked on I/O are never woken.
    for round in 0..5 {
        // A first: its idle M becomes the thread blocked in the poller.
        let a = rt();
        let la = TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: as for `go`.
        let _ha = unsafe { a.spawn(move || drop(la.accept())) };
        std::thread::sleep(Duration::from_millis(30));
        // Then B, whose Ms find someone already blocked in the poller and sleep.
        let b = rt();
        let lb = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr_b = lb.local_addr().unwrap();
        let (tx, rx) = chan::bounded::<()>(1);
        // SAFETY: as for `go`.
        let _hb = unsafe {
            b.spawn(move || {
                let _ = lb.accept().unwrap();
                tx.send(()).unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        drop(a); // A's poller thread leaves
        let _c = std::net::TcpStream::connect(addr_b).unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("round {round}: runtime B's accept was never woken"));
    }
}

/// Runs `f` on a thread and fails the test if it has not finished within 30 s: the
/// drained-read hint's failure mode would be a read that never returns.
fn within_30s(what: &'static str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            t.join().unwrap(); // re-raises the panic
        }
        Err(_) => panic!("{what}: hung (a read skipped its syscall and was never woken)"),
    }
}

/// A connected pair: the gmp side (accepted inside the runtime) and a plain std client.
fn pair_with_std_client() -> (TcpStream, std::net::TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (s, c)
}

// After a short read (which lets later reads skip the syscall until the poller reports
// more), data, then end of stream arriving while nobody waits on the socket are still
// read: the data, then 0. Each step is tried with the late bytes arriving before the
// read (the poller has not polled yet) and after it (the reader is parked).
#[test]
fn reads_after_a_short_read_see_later_data_and_eof() {
    within_30s("short read, then data and EOF", || {
        let rt = rt();
        block_on(&rt, || {
            for late_first in [true, false] {
                let (mut s, mut c) = pair_with_std_client();
                let writer = std::thread::spawn(move || {
                    // Late, so that the first read parks (registering with the poller).
                    std::thread::sleep(Duration::from_millis(20));
                    c.write_all(b"ab").unwrap();
                    std::thread::sleep(Duration::from_millis(30));
                    c.write_all(b"cd").unwrap();
                    c.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut buf = [0u8; 64];
                let mut got = Vec::new();
                loop {
                    if late_first && got.len() == 2 {
                        // Let "cd" and the FIN arrive before the next read.
                        gmp_runtime::sleep(Duration::from_millis(100));
                    }
                    match s.read(&mut buf).unwrap() {
                        0 => break,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                assert_eq!(got, b"abcd");
                writer.join().unwrap();
            }
        });
    });
}

// Thousands of short exchanges in lock step (each read is short, so each next read may
// skip its syscall): every byte arrives, in order, and the peer's close ends the loop.
#[test]
fn lock_step_exchanges_after_short_reads() {
    within_30s("lock-step exchanges", || {
        let rt = rt();
        block_on(&rt, || {
            let (addr, server) = server(1, echo);
            let client = go(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                let mut buf = [0u8; 64];
                for i in 0..5_000u32 {
                    c.write_all(&i.to_le_bytes()).unwrap();
                    let mut got = 0;
                    while got < 4 {
                        got += c.read(&mut buf[got..]).unwrap();
                    }
                    assert_eq!(buf[..4], i.to_le_bytes());
                }
            });
            client.join().unwrap();
            server.join().unwrap();
        });
    });
}

// A short read in a goroutine, then the socket in non-blocking mode, or read from a
// plain thread: data that arrived meanwhile is returned (the hint applies only to a
// goroutine's blocking reads, whose wait goes through the poller).
#[test]
fn nonblocking_and_thread_reads_ignore_the_drained_hint() {
    within_30s("non-blocking and thread reads after a short read", || {
        let rt = rt();
        let (s, mut c) = block_on(&rt, || {
            let (mut s, c) = pair_with_std_client();
            // Late, so that the first read parks (registering with the poller).
            let w = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                (&c).write_all(b"x").unwrap();
                c
            });
            let mut buf = [0u8; 64];
            assert_eq!(s.read(&mut buf).unwrap(), 1);
            let mut c = w.join().unwrap();
            // Non-blocking with nothing there: WouldBlock at once, never a wait.
            s.set_nonblocking(true).unwrap();
            let e = s.read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
            // More data while nobody waits: the poller has reported nothing since.
            c.write_all(b"y").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.set_nonblocking(true).unwrap();
            assert_eq!(
                s.read(&mut buf).unwrap(),
                1,
                "non-blocking read missed data"
            );
            assert_eq!(buf[0], b'y');
            s.set_nonblocking(false).unwrap();
            c.write_all(b"z").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            (s, c)
        });
        // On a plain thread (outside the runtime): the byte is there.
        let mut s = s;
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'z');
        c.write_all(b"w").unwrap();
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'w');
    });
}

// A new connection's first read is short before the stream was ever registered with the
// poller (the request was already there): the next read registers it drained and waits
// without trying the syscall. Whatever comes next is still read: bytes that arrive
// before that read (the registration must report them), bytes that arrive while it
// waits, and end of stream. A goroutine parked on another socket keeps the idle M
// blocked in the poller, so the registration's own event is dispatched at once: a drained
// mark taken after that (instead of before the add) would hide it and hang the read.
#[test]
fn the_read_after_a_first_short_read_sees_what_comes_next() {
    within_30s("first short read, then more", || {
        let rt = rt();
        block_on(&rt, || {
            let (mut idle_s, mut idle_c) = pair_with_std_client();
            let idle = go(move || idle_s.read(&mut [0u8; 1]).unwrap());
            for case in ["before", "while waiting", "eof"] {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                c.write_all(b"a").unwrap(); // queued before the accept
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 64];
                assert_eq!(s.read(&mut buf).unwrap(), 1, "{case}: the first read");
                assert_eq!(buf[0], b'a');
                let late = match case {
                    "before" => {
                        c.write_all(b"b").unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                    "eof" => {
                        c.shutdown(std::net::Shutdown::Write).unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    }
                    _ => Some(std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        c.write_all(b"b").unwrap();
                        c
                    })),
                };
                match case {
                    "eof" => assert_eq!(s.read(&mut buf).unwrap(), 0, "{case}"),
                    _ => {
                        assert_eq!(s.read(&mut buf).unwrap(), 1, "{case}");
                        assert_eq!(buf[0], b'b', "{case}");
                    }
                }
                if let Some(w) = late {
                    w.join().unwrap();
                }
            }
            idle_c.write_all(b"z").unwrap();
            assert_eq!(idle.join().unwrap(), 1);
        });
    });
}

// An accepted stream is born non-blocking and close-on-exec (`accept4` with both flags),
// TCP and Unix alike.
#[test]
fn accepted_streams_are_nonblocking_and_cloexec() {
    use std::os::fd::AsRawFd;
    let flags = |fd: i32| {
        // SAFETY: `fd` is an open descriptor owned by a stream alive in the caller.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        (fl & libc::O_NONBLOCK != 0, fdfl & libc::FD_CLOEXEC != 0)
    };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    assert_eq!(
        flags(s.as_raw_fd()),
        (true, true),
        "TCP: (O_NONBLOCK, FD_CLOEXEC)"
    );
    let dir = std::env::temp_dir().join(format!("gmp-accept-flags-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let ul = gmp_runtime::net::UnixListener::bind(&dir).unwrap();
    let _uc = std::os::unix::net::UnixStream::connect(&dir).unwrap();
    let (us, _) = ul.accept().unwrap();
    assert_eq!(
        flags(us.as_raw_fd()),
        (true, true),
        "Unix: (O_NONBLOCK, FD_CLOEXEC)"
    );
    let _ = std::fs::remove_file(&dir);
}
