//! Unix-domain sockets and `io::PollFd` on the poller: goroutines park, plain threads
//! block, and bad input is a clear error.

use gmp_runtime::io::PollFd;
use gmp_runtime::net::{UnixDatagram, UnixListener, UnixSocketAddr, UnixStream};
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::path::PathBuf;
use std::time::Duration;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: the test goroutines hold no thread-local state across I/O.
    unsafe { gmp_runtime::spawn(f) }
}

fn block_on<T: Send>(rt: &Runtime, f: impl FnOnce() -> T + Send) -> T {
    // SAFETY: as for `go`.
    unsafe { rt.block_on(f) }
}

/// A fresh, empty temporary directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gmp-unix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn echo(mut c: UnixStream) {
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

fn serve(l: UnixListener, n: usize) -> JoinHandle<()> {
    go(move || {
        for c in l.incoming().take(n) {
            let c = c.unwrap();
            go(move || echo(c));
        }
    })
}

fn client(connect: impl Fn() -> std::io::Result<UnixStream>, i: usize) {
    let mut c = connect().unwrap();
    for round in 0..5 {
        let msg = format!("client {i} round {round}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
}

#[test]
fn stream_echo_with_a_thousand_client_goroutines() {
    const CLIENTS: usize = 1000;
    let dir = temp_dir("echo");
    let path = dir.join("echo.sock");
    block_on(&rt(2), || {
        let srv = serve(UnixListener::bind(&path).unwrap(), CLIENTS);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let path = path.clone();
                go(move || client(|| UnixStream::connect(&path), i))
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        srv.join().unwrap();
    });
    // The socket file stays, as with std; the temp path is removed afterwards.
    assert!(path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!path.exists());
}

#[test]
fn abstract_listener() {
    let name = format!("gmp-test-{}", std::process::id());
    let addr = UnixSocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    block_on(&rt(2), || {
        let l = UnixListener::bind_addr(&addr).unwrap();
        assert_eq!(
            l.local_addr().unwrap().as_abstract_name(),
            Some(name.as_bytes())
        );
        let srv = serve(l, 10);
        let clients: Vec<_> = (0..10)
            .map(|i| {
                let addr = addr.clone();
                go(move || client(|| UnixStream::connect_addr(&addr), i))
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        srv.join().unwrap();
    });
    // Abstract names vanish with their socket: binding again works.
    drop(UnixListener::bind_addr(&addr).unwrap());
}

#[test]
fn a_thousand_datagrams() {
    const CLIENTS: usize = 10;
    const EACH: usize = 100;
    let dir = temp_dir("dgram");
    let srv_path = dir.join("server.sock");
    block_on(&rt(2), || {
        let srv = UnixDatagram::bind(&srv_path).unwrap();
        let server = go(move || {
            let mut buf = [0u8; 256];
            for _ in 0..CLIENTS * EACH {
                let (n, from) = srv.recv_from(&mut buf).unwrap();
                let to = from.as_pathname().unwrap().to_path_buf();
                srv.send_to(&buf[..n], to).unwrap();
            }
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let me = dir.join(format!("client{i}.sock"));
                let srv_path = srv_path.clone();
                go(move || {
                    let s = UnixDatagram::bind(&me).unwrap();
                    let mut buf = [0u8; 256];
                    for k in 0..EACH {
                        let msg = format!("{i}/{k}");
                        assert_eq!(s.send_to(msg.as_bytes(), &srv_path).unwrap(), msg.len());
                        let (n, from) = s.recv_from(&mut buf).unwrap();
                        assert_eq!(&buf[..n], msg.as_bytes());
                        assert_eq!(from.as_pathname(), Some(srv_path.as_path()));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn datagram_sender_waits_for_a_full_receiver() {
    // More datagrams than the receive queue holds: senders park and retry.
    block_on(&rt(2), || {
        let (a, b) = UnixDatagram::pair().unwrap();
        let sender = go(move || {
            for i in 0u32..5000 {
                a.send(&i.to_le_bytes()).unwrap();
            }
        });
        gmp_runtime::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 4];
        for i in 0u32..5000 {
            assert_eq!(b.recv(&mut buf).unwrap(), 4);
            assert_eq!(u32::from_le_bytes(buf), i);
        }
        sender.join().unwrap();
    });
}

#[test]
fn works_on_plain_threads() {
    let (a, b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 5];
        (&b).read_exact(&mut buf).unwrap();
        (&b).write_all(&buf).unwrap();
        b
    });
    std::thread::sleep(Duration::from_millis(10));
    (&a).write_all(b"hello").unwrap();
    let mut back = [0u8; 5];
    (&a).read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    let _b = t.join().unwrap();

    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let e = (&a).read(&mut back).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "std's timeout error");
    assert!(a.peer_addr().unwrap().is_unnamed());
}

#[test]
fn a_path_too_long_is_invalid_input() {
    let long = std::env::temp_dir().join("x".repeat(200));
    let check = |e: std::io::Error| {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("shorter"), "{e}");
    };
    check(UnixListener::bind(&long).unwrap_err());
    check(UnixDatagram::bind(&long).unwrap_err());
    check(UnixStream::connect(&long).unwrap_err());
    block_on(&rt(1), || {
        check(UnixStream::connect(&long).unwrap_err());
        let d = UnixDatagram::unbound().unwrap();
        check(d.send_to(b"x", &long).unwrap_err());
    });
}

#[test]
fn connect_to_nothing_is_std_s_error() {
    let dir = temp_dir("nothing");
    let p = dir.join("none.sock");
    let thread = UnixStream::connect(&p).unwrap_err().kind();
    let goroutine = block_on(&rt(1), || UnixStream::connect(&p).unwrap_err().kind());
    assert_eq!(thread, ErrorKind::NotFound);
    assert_eq!(goroutine, thread);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: new descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn is_nonblocking(fd: &impl AsRawFd) -> bool {
    // SAFETY: F_GETFL on an open descriptor.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK != 0 }
}

#[test]
fn pollfd_pipe_parks_goroutines() {
    block_on(&rt(1), || {
        let (r, w) = pipe();
        let r = PollFd::new(r).unwrap();
        let w = PollFd::new(w).unwrap();
        assert!(is_nonblocking(r.get_ref()));
        // 1 MB through a 64 KB pipe: both sides park repeatedly on one P.
        let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = go(move || {
            (&w).write_all(&data).unwrap();
        });
        let mut got = Vec::new();
        (&r).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == expect, "bytes differ");
        let fd = r.into_inner();
        assert!(!is_nonblocking(&fd), "into_inner restores blocking mode");
    });
}

#[test]
fn pollfd_bad_descriptors_are_clear_errors() {
    let (r, _w) = pipe();
    // A copy at the highest number allowed (the other tests' descriptors stay far
    // below), then closed.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let high = i32::try_from(lim.rlim_cur.saturating_sub(1)).unwrap_or(i32::MAX - 1);
    // SAFETY: F_DUPFD on an open descriptor; the copy is owned and closed at once.
    let raw = unsafe { libc::fcntl(r.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high) };
    assert_eq!(raw, high);
    // SAFETY: `raw` is the copy made above, owned by nobody else.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    // SAFETY: deliberately a closed descriptor; PollFd only calls fcntl on it and fails.
    let closed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    let e = PollFd::new(closed).unwrap_err();
    assert_eq!(e.raw_os_error(), None);
    assert!(e.to_string().contains("not open"), "{e}");

    let path = std::env::temp_dir().join(format!("gmp-unix-{}-regular", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    let e = PollFd::new(f).unwrap_err();
    assert!(e.to_string().contains("cannot be polled"), "{e}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn lookup_host_in_goroutines() {
    block_on(&rt(1), || {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                go(|| {
                    gmp_runtime::net::lookup_host("localhost:80")
                        .unwrap()
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in hs {
            let addrs = h.join().unwrap();
            assert!(!addrs.is_empty());
            assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
        }
        let e = gmp_runtime::net::lookup_host("").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
}
