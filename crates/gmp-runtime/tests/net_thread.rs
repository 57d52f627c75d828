//! `gmp_runtime::net` used from plain threads (no runtime), checked against `std::net`
//! doing the same thing: same results, same error kinds and OS errors.

use gmp_runtime::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

fn same_error(ours: &io::Error, theirs: &io::Error) {
    assert_eq!(ours.kind(), theirs.kind(), "ours: {ours}, std: {theirs}");
    assert_eq!(
        ours.raw_os_error(),
        theirs.raw_os_error(),
        "ours: {ours}, std: {theirs}"
    );
}

/// A loopback port with nobody listening.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A connected (ours, peer) pair; the peer is a `std` stream.
fn pair() -> (TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (peer, _) = l.accept().unwrap();
    (ours, peer)
}

/// The same, all `std`.
fn std_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

#[test]
fn types_are_send_and_sync() {
    fn is<T: Send + Sync + std::fmt::Debug>() {}
    is::<TcpListener>();
    is::<TcpStream>();
    is::<UdpSocket>();
}

#[test]
fn echo_between_threads() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CLIENTS: usize = 16;
    thread::scope(|s| {
        s.spawn(|| {
            for conn in listener.incoming().take(CLIENTS) {
                let mut c = conn.unwrap();
                s.spawn(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = c.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        c.write_all(&buf[..n]).unwrap();
                    }
                });
            }
        });
        for i in 0..CLIENTS {
            s.spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                for r in 0..100 {
                    let msg = format!("{i}:{r}");
                    c.write_all(msg.as_bytes()).unwrap();
                    let mut got = vec![0u8; msg.len()];
                    c.read_exact(&mut got).unwrap();
                    assert_eq!(got, msg.as_bytes());
                }
                c.shutdown(Shutdown::Write).unwrap();
                assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0);
            });
        }
    });
}

#[test]
fn read_timeout_fails_like_std() {
    let (ours, _peer) = pair();
    let (theirs, _peer2) = std_pair();
    let t = Some(Duration::from_millis(30));
    ours.set_read_timeout(t).unwrap();
    theirs.set_read_timeout(t).unwrap();
    assert_eq!(ours.read_timeout().unwrap(), t);
    let e1 = (&ours).read(&mut [0u8; 4]).unwrap_err();
    let e2 = (&theirs).read(&mut [0u8; 4]).unwrap_err();
    same_error(&e1, &e2);
    assert_eq!(e1.kind(), ErrorKind::WouldBlock);
    // The socket still works after a timeout.
    ours.set_read_timeout(None).unwrap();
    assert_eq!(ours.read_timeout().unwrap(), None);
}

#[test]
fn write_timeout_fails_like_std() {
    let (ours, _peer) = pair();
    ours.set_write_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    // Nobody reads: the buffers fill, then a write times out.
    let chunk = vec![1u8; 1 << 16];
    let e = loop {
        if let Err(e) = (&ours).write(&chunk) {
            break e;
        }
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
}

#[test]
fn zero_timeouts_are_invalid_input_like_std() {
    let (ours, _p) = pair();
    let (theirs, _p2) = std_pair();
    let e1 = ours.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    let e2 = theirs.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e1.kind(), e2.kind());
    assert_eq!(e1.to_string(), e2.to_string());
    assert_eq!(
        ours.set_write_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let addr = closed_port();
    let e1 = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    let e2 = std::net::TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    assert_eq!(e1.kind(), e2.kind());
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        u.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn connect_refused_like_std() {
    let addr = closed_port();
    let e1 = TcpStream::connect(addr).unwrap_err();
    let e2 = std::net::TcpStream::connect(addr).unwrap_err();
    same_error(&e1, &e2);
    assert_eq!(e1.kind(), ErrorKind::ConnectionRefused);
    let e3 = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
    same_error(&e3, &e2);
}

#[test]
fn unresolvable_input_like_std() {
    let none: &[SocketAddr] = &[];
    let e1 = TcpStream::connect(none).unwrap_err();
    let e2 = std::net::TcpStream::connect(none).unwrap_err();
    assert_eq!(e1.kind(), e2.kind());
    let e1 = TcpListener::bind(none).unwrap_err();
    let e2 = std::net::TcpListener::bind(none).unwrap_err();
    assert_eq!(e1.kind(), e2.kind());
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e1 = u.send_to(b"x", none).unwrap_err();
    let e2 = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"x", none)
        .unwrap_err();
    assert_eq!(e1.kind(), e2.kind());
}

#[test]
fn peer_closing_mid_read_gives_the_data_then_eof() {
    let (mut ours, mut peer) = pair();
    thread::scope(|s| {
        let r = s.spawn(move || {
            let mut all = Vec::new();
            ours.read_to_end(&mut all).unwrap();
            all
        });
        peer.write_all(b"partial").unwrap();
        thread::sleep(Duration::from_millis(20)); // let the reader block mid-stream
        drop(peer);
        assert_eq!(r.join().unwrap(), b"partial");
    });
}

/// Closes `s` with a reset (linger 0) instead of a FIN.
fn reset(s: std::net::TcpStream) {
    let lin = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized `linger` option value.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lin as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

#[test]
fn reset_peer_fails_like_std() {
    let (ours, peer) = pair();
    let (theirs, peer2) = std_pair();
    reset(peer);
    reset(peer2);
    let e1 = (&ours).read(&mut [0u8; 4]).unwrap_err();
    let e2 = (&theirs).read(&mut [0u8; 4]).unwrap_err();
    same_error(&e1, &e2);
    assert_eq!(e1.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn shutdown_like_std() {
    let (ours, _p) = pair();
    let (theirs, _p2) = std_pair();
    ours.shutdown(Shutdown::Read).unwrap();
    theirs.shutdown(Shutdown::Read).unwrap();
    assert_eq!((&ours).read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!((&theirs).read(&mut [0u8; 4]).unwrap(), 0);
    ours.shutdown(Shutdown::Write).unwrap();
    theirs.shutdown(Shutdown::Write).unwrap();
    same_error(
        &(&ours).write(b"x").unwrap_err(),
        &(&theirs).write(b"x").unwrap_err(),
    );
}

#[test]
fn peek_clone_options_and_nonblocking() {
    let (ours, mut peer) = pair();
    peer.write_all(b"abc").unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(ours.peek(&mut buf).unwrap(), 3);
    assert_eq!(&buf, b"abc");
    let clone = ours.try_clone().unwrap();
    assert_ne!(clone.as_raw_fd(), ours.as_raw_fd());
    let mut got = [0u8; 3];
    (&clone).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abc");
    // Timeouts and non-blocking mode are shared by clones, as std's are.
    ours.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(Duration::from_millis(5))
    );
    clone.set_nonblocking(true).unwrap();
    assert_eq!(
        (&ours).read(&mut got).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    ours.set_nonblocking(false).unwrap();
    ours.set_nodelay(true).unwrap();
    assert!(ours.nodelay().unwrap());
    ours.set_ttl(42).unwrap();
    assert_eq!(ours.ttl().unwrap(), 42);
    assert!(ours.take_error().unwrap().is_none());
    assert_eq!(ours.peer_addr().unwrap(), peer.local_addr().unwrap());
    assert_eq!(ours.local_addr().unwrap(), peer.peer_addr().unwrap());
}

#[test]
fn two_threads_reading_one_stream_each_get_data() {
    let (ours, mut peer) = pair();
    thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| (&ours).read(&mut [0u8; 1]).unwrap()))
            .collect();
        peer.write_all(b"x").unwrap();
        thread::sleep(Duration::from_millis(10));
        peer.write_all(b"y").unwrap();
        assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>(), 2);
    });
}

#[test]
fn listener_backlog_holds_a_burst_of_connects() {
    // std listens with a backlog of 128; we use the kernel's maximum, as Go does, so a
    // burst of 1000 connects completes before anyone accepts.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // With std's backlog, connect number 130 or so is not answered (its SYN is dropped
    // while the accept queue is full) and times out.
    let clients: Vec<_> = (0..1000)
        .map(|i| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {i} of the burst: {e}"))
        })
        .collect();
    for _ in 0..clients.len() {
        listener.accept().unwrap();
    }
    listener.set_nonblocking(true).unwrap();
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn udp_round_trips_and_timeouts() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 64];
            for _ in 0..100 {
                let (n, from) = b.recv_from(&mut buf).unwrap();
                b.send_to(&buf[..n], from).unwrap();
            }
        });
        a.connect(b.local_addr().unwrap()).unwrap();
        for i in 0..100u32 {
            a.send(&i.to_le_bytes()).unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(a.peek(&mut buf).unwrap(), 4);
            assert_eq!(a.recv(&mut buf).unwrap(), 4);
            assert_eq!(u32::from_le_bytes(buf), i);
        }
    });
    let t = Some(Duration::from_millis(20));
    a.set_read_timeout(t).unwrap();
    let theirs = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    theirs.set_read_timeout(t).unwrap();
    same_error(
        &a.recv(&mut [0u8; 4]).unwrap_err(),
        &theirs.recv(&mut [0u8; 4]).unwrap_err(),
    );
    assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
}
