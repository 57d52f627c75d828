//! Go's absolute deadlines on the socket types: a deadline that passes — or is set from
//! elsewhere while an operation waits — wakes that operation with `TimedOut`.

use gmp_runtime::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream};
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt() -> Runtime {
    Runtime::builder().procs(2).build().unwrap()
}

fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: the test goroutines hold no thread-local state across I/O.
    unsafe { gmp_runtime::spawn(f) }
}

fn block_on<T: Send>(rt: &Runtime, f: impl FnOnce() -> T + Send) -> T {
    // SAFETY: as for `go`.
    unsafe { rt.block_on(f) }
}

/// Per-call timeouts that end a wait the deadline failed to wake, so that such a bug
/// fails the test (`WouldBlock` instead of `TimedOut`) rather than hanging it.
const BACKSTOP: Duration = Duration::from_secs(10);

/// The error kind `op` fails with, checking that it was woken well before the backstop.
fn timed<T: std::fmt::Debug>(op: impl FnOnce() -> std::io::Result<T>) -> ErrorKind {
    let t = Instant::now();
    let e = op().unwrap_err();
    assert!(t.elapsed() < BACKSTOP / 2, "not woken by the deadline: {e}");
    e.kind()
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (c, l.accept().unwrap().0)
}

/// A read parked in one goroutine is woken by a deadline set from another one, on the
/// same handle (shared) and through a clone.
#[test]
fn a_parked_read_is_woken_by_a_deadline_set_from_another_goroutine() {
    block_on(&rt(), || {
        let (a, _b) = tcp_pair();
        // A backstop: without the wake-up the read would end in WouldBlock, not hang.
        a.set_read_timeout(Some(BACKSTOP)).unwrap();
        let a = Arc::new(a);
        let reader = {
            let a = a.clone();
            go(move || {
                let t = Instant::now();
                let e = (&*a).read(&mut [0u8; 16]).unwrap_err();
                (e.kind(), t.elapsed())
            })
        };
        gmp_runtime::sleep(Duration::from_millis(50));
        a.set_read_deadline(Some(Instant::now())).unwrap();
        let (kind, waited) = reader.join().unwrap();
        assert_eq!(kind, ErrorKind::TimedOut);
        assert!(
            waited >= Duration::from_millis(40),
            "woke early: {waited:?}"
        );

        // Through a clone: the reader waits on its own registration.
        let (c, mut d) = UnixStream::pair().unwrap();
        let clone = c.try_clone().unwrap();
        clone.set_read_timeout(Some(BACKSTOP)).unwrap();
        let reader = go(move || timed(|| (&clone).read(&mut [0u8; 16])));
        gmp_runtime::sleep(Duration::from_millis(30));
        c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)))
            .unwrap();
        assert_eq!(reader.join().unwrap(), ErrorKind::TimedOut);

        // Cleared, reads work again.
        c.set_read_deadline(None).unwrap();
        d.write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        (&c).read_exact(&mut buf).unwrap();
    });
}

/// A deadline set before the wait, in the future, wakes the waiter when it passes.
#[test]
fn a_future_deadline_passes_while_parked() {
    block_on(&rt(), || {
        let (a, _b) = UnixStream::pair().unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (d1, _d2) = UnixDatagram::pair().unwrap();
        let when = Instant::now() + Duration::from_millis(60);
        a.set_deadline(Some(when)).unwrap();
        u.set_read_deadline(Some(when)).unwrap();
        d1.set_read_deadline(Some(when)).unwrap();
        let h1 = go(move || (&a).read(&mut [0u8; 4]).unwrap_err().kind());
        let h2 = go(move || u.recv_from(&mut [0u8; 4]).unwrap_err().kind());
        let h3 = go(move || d1.recv(&mut [0u8; 4]).unwrap_err().kind());
        for h in [h1, h2, h3] {
            assert_eq!(h.join().unwrap(), ErrorKind::TimedOut);
        }
        assert!(Instant::now() >= when);
    });
}

/// Once passed, a deadline fails operations at once even when data is ready (Go's
/// `prepareRead`); moving it into the future lets them through.
#[test]
fn a_past_deadline_fails_before_the_syscall() {
    let (mut a, b) = tcp_pair();
    a.write_all(b"ready").unwrap();
    b.set_read_deadline(Some(Instant::now())).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let e = (&b).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    b.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 5];
    (&b).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready");
    // Timeouts keep std's per-call meaning and error.
    b.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(
        (&b).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

/// On plain threads too: a thread blocked in `poll(2)` is woken by a deadline set from
/// another thread.
#[test]
fn a_blocked_thread_is_woken_by_a_deadline() {
    let (a, _b) = tcp_pair();
    a.set_read_timeout(Some(BACKSTOP)).unwrap();
    let a = Arc::new(a);
    let t = {
        let a = a.clone();
        std::thread::spawn(move || timed(|| (&*a).read(&mut [0u8; 4])))
    };
    std::thread::sleep(Duration::from_millis(50));
    a.set_read_deadline(Some(Instant::now())).unwrap();
    assert_eq!(t.join().unwrap(), ErrorKind::TimedOut);
}

/// A write parked on a full socket buffer is woken by its write deadline; an accept by
/// the listener's deadline.
#[test]
fn writes_and_accepts_have_deadlines() {
    block_on(&rt(), || {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_write_timeout(Some(BACKSTOP)).unwrap();
        let a = Arc::new(a);
        let writer = {
            let a = a.clone();
            go(move || {
                let chunk = vec![0u8; 64 * 1024];
                loop {
                    let t = Instant::now();
                    if let Err(e) = (&*a).write(&chunk) {
                        assert!(t.elapsed() < BACKSTOP / 2, "not woken by the deadline");
                        return e.kind();
                    }
                }
            })
        };
        gmp_runtime::sleep(Duration::from_millis(50));
        a.set_write_deadline(Some(Instant::now())).unwrap();
        assert_eq!(writer.join().unwrap(), ErrorKind::TimedOut);

        let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let acceptor = {
            let l = l.clone();
            go(move || timed(|| l.accept()))
        };
        gmp_runtime::sleep(Duration::from_millis(30));
        l.set_deadline(Some(Instant::now())).unwrap();
        assert_eq!(acceptor.join().unwrap(), ErrorKind::TimedOut);
    });
}
