//! `TcpListener` and `TcpStream`: `std::net`'s, over non-blocking sockets (see `io.rs`).
//!
//! Each wraps the `std` type itself (set non-blocking), so every option and error is
//! `std`'s own; only the waiting differs. Two operations need more than the loop of
//! `io.rs`:
//!
//! - `TcpListener::bind` re-issues `listen(2)` with the kernel's maximum backlog
//!   (`/proc/sys/net/core/somaxconn`, else 4096), as Go does (`std` uses 128), so that a
//!   burst of connects is queued rather than reset; Linux updates the backlog of a
//!   listening socket in place.
//! - `TcpStream::connect` in a goroutine is a non-blocking connect: `EINPROGRESS`, wait for
//!   writability, then read `SO_ERROR` (Go: `netFD.connect`). On a plain thread it is
//!   `std`'s blocking connect, which gives exactly `std`'s errors by construction.

use super::io::{deadline_methods, Io};
use gmp_netpoll::Direction;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Resolves `addr` (a DNS lookup may block: in a goroutine it runs as a [`crate::blocking`]
/// call) and tries `f` on each address in turn, returning the first success or the last
/// error, as `std` does.
pub(super) fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let addrs = if crate::in_goroutine() {
        crate::blocking(|| addr.to_socket_addrs())?
    } else {
        addr.to_socket_addrs()?
    };
    let mut last = None;
    for a in addrs {
        match f(&a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// The listen backlog: the kernel's maximum, as Go's `maxListenerBacklog`.
pub(super) fn max_backlog() -> i32 {
    static BACKLOG: OnceLock<i32> = OnceLock::new();
    *BACKLOG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(4096)
    })
}

/// A TCP server socket, as [`std::net::TcpListener`]; in a goroutine, `accept` parks the
/// goroutine instead of blocking its thread.
///
/// ```
/// use gmp_runtime::net::{TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = std::thread::spawn(move || -> std::io::Result<String> {
///     let mut s = TcpStream::connect(addr)?;
///     s.write_all(b"hello")?;
///     let mut back = String::new();
///     s.read_to_string(&mut back)?;
///     Ok(back)
/// });
/// let (mut conn, _) = listener.accept()?;
/// let mut buf = [0; 5];
/// conn.read_exact(&mut buf)?;
/// conn.write_all(&buf)?;
/// drop(conn);
/// assert_eq!(client.join().unwrap()?, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    io: Io<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (each resolved address in turn, as `std`) and listens with the
    /// kernel's maximum backlog.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// assert_ne!(listener.local_addr()?.port(), 0); // port 0: the kernel picked one
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| {
            let l = std::net::TcpListener::bind(a)?;
            // SAFETY: `l` owns a valid listening socket for the duration of the call.
            if unsafe { libc::listen(l.as_raw_fd(), max_backlog()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpListener::from_std(l)
        })
    }

    /// Wraps a `std` listener (put in non-blocking mode).
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let listener = TcpListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: Io::new(listener, Arc::default()),
        })
    }

    /// Accepts a connection, waiting for one (parking the goroutine, or blocking the
    /// thread). Go: `netFD.accept`.
    ///
    /// ```
    /// use gmp_runtime::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    ///
    /// // SAFETY: the goroutines hold no thread-local state across a suspension point.
    /// let got = unsafe {
    ///     gmp_runtime::run(|| -> std::io::Result<String> {
    ///         let listener = TcpListener::bind("127.0.0.1:0")?;
    ///         let addr = listener.local_addr()?;
    ///         let client = gmp_runtime::go!(move || TcpStream::connect(addr)?.write_all(b"hi"));
    ///         let (mut conn, _) = listener.accept()?; // parks this goroutine until it connects
    ///         let mut s = String::new();
    ///         conn.read_to_string(&mut s)?;
    ///         client.join().unwrap()?;
    ///         Ok(s)
    ///     })
    /// }?;
    /// assert_eq!(got, "hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.io.io(Direction::Read, accept_nonblocking)?;
        Ok((TcpStream::from_nonblocking(s), addr))
    }

    /// An iterator over incoming connections: `accept` forever, never `None`.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let clients: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(addr)).collect();
    /// for conn in listener.incoming().take(2) {
    ///     let conn = conn?;
    ///     assert_eq!(conn.local_addr()?, addr);
    /// }
    /// # drop(clients);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address the listener is bound to.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// assert!(listener.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A new handle to the same socket (a `dup`); the clones share their options.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let other = listener.try_clone()?;
    /// assert_eq!(other.local_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        let l = self.io.get().try_clone()?;
        Ok(TcpListener {
            io: Io::new(l, self.io.opts.clone()),
        })
    }

    /// In non-blocking mode, `accept` returns `ErrorKind::WouldBlock` instead of waiting.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let err = listener.accept().unwrap_err(); // nobody is connecting
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_ttl(42)?;
    /// assert_eq!(listener.ttl()?, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// assert!(listener.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// use gmp_runtime::net::TcpListener;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// assert!(listener.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// Sets an absolute deadline for `accept` (Go's `TCPListener.SetDeadline`): once it
    /// has passed, `accept` — including one already waiting — fails with
    /// `ErrorKind::TimedOut`; `None` clears it.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.io.opts.set_deadline(Direction::Read, deadline);
        Ok(())
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;
    fn try_from(l: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(l)
    }
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` (mio's `accept`): the new socket is
/// born non-blocking, which saves the `ioctl(FIONBIO)` per connection that `std`'s
/// `accept` followed by `set_nonblocking` costs. Go: `internal/poll.accept`.
fn accept_nonblocking(l: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    // SAFETY: `l` keeps the listening socket open for the whole call; the mio listener
    // only borrows its descriptor and is never dropped (`ManuallyDrop`), so it never
    // closes it.
    let m = ManuallyDrop::new(unsafe { mio::net::TcpListener::from_raw_fd(l.as_raw_fd()) });
    let (s, addr) = m.accept()?;
    Ok((s.into(), addr))
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection, as [`std::net::TcpStream`]; in a goroutine, reads, writes and
/// connects that would block park the goroutine instead of its thread.
pub struct TcpStream {
    io: Io<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn, as `std`).
    ///
    /// ```
    /// use gmp_runtime::net::{TcpListener, TcpStream};
    /// use std::io::{Read, Write};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let client = unsafe {
    ///     gmp_runtime::spawn(move || -> std::io::Result<Vec<u8>> {
    ///         let mut s = TcpStream::connect(addr)?; // in a goroutine: parks while connecting
    ///         let mut reply = Vec::new();
    ///         s.read_to_end(&mut reply)?;
    ///         Ok(reply)
    ///     })
    /// };
    /// listener.accept()?.0.write_all(b"welcome")?;
    /// assert_eq!(client.join().unwrap()?, b"welcome");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| TcpStream::connect_addr(a, None))
    }

    /// Connects to `addr`, giving up after `timeout` (`ErrorKind::TimedOut`). A zero
    /// timeout is an `InvalidInput` error, as in `std`.
    ///
    /// ```
    /// use gmp_runtime::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    /// assert_eq!(s.peer_addr()?, addr);
    /// let zero = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    /// assert_eq!(zero.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(addr, Some(timeout))
    }

    fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        if !crate::in_goroutine() {
            let s = match timeout {
                None => std::net::TcpStream::connect(addr)?,
                Some(t) => std::net::TcpStream::connect_timeout(addr, t)?,
            };
            return TcpStream::from_std(s);
        }
        // Go: netFD.connect. mio creates the socket non-blocking and starts the connect.
        let m = mio::net::TcpStream::connect(*addr)?;
        let s = TcpStream::from_nonblocking(std::net::TcpStream::from(OwnedFd::from(m)));
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            s.io.wait(Direction::Write, deadline).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
                } else {
                    e
                }
            })?;
            if let Some(e) = s.io.get().take_error()? {
                return Err(e);
            }
            match s.io.get().peer_addr() {
                Ok(_) => return Ok(s),
                // Woken before the handshake finished (a spurious readiness): wait again.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Wraps a `std` stream (put in non-blocking mode).
    ///
    /// ```
    /// use gmp_runtime::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let stream = TcpStream::from_std(std_stream)?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_nonblocking(stream))
    }

    /// Wraps a stream already in non-blocking mode.
    fn from_nonblocking(stream: std::net::TcpStream) -> TcpStream {
        TcpStream {
            io: Io::new(stream, Arc::default()),
        }
    }

    /// The remote address.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert_eq!(stream.local_addr()?, peer.peer_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::io::Read;
    /// use gmp_runtime::net::Shutdown;
    ///
    /// stream.shutdown(Shutdown::Write)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!((&peer).read(&mut buf)?, 0); // the peer sees the end of the stream
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }

    /// A new handle to the same connection (a `dup`); the clones share their timeouts and
    /// non-blocking mode, as `std`'s do.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::io::{Read, Write};
    ///
    /// let mut writer = stream.try_clone()?;
    /// writer.write_all(b"x")?;
    /// let mut buf = [0u8; 1];
    /// (&peer).read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"x");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        let s = self.io.get().try_clone()?;
        Ok(TcpStream {
            io: Io::new(s, self.io.opts.clone()),
        })
    }

    /// Bounds each read: after `dur` without data a read fails with `ErrorKind::WouldBlock`
    /// (`EAGAIN`, as `std` on Unix). `None` removes the bound; `Some(Duration::ZERO)` is an
    /// `InvalidInput` error.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::io::Read;
    /// use std::time::Duration;
    ///
    /// stream.set_read_timeout(Some(Duration::from_millis(10)))?;
    /// let mut buf = [0u8; 1];
    /// let err = (&stream).read(&mut buf).unwrap_err(); // the peer sends nothing
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Read, dur)
    }

    /// Bounds each write; as [`TcpStream::set_read_timeout`].
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::time::Duration;
    ///
    /// stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    /// assert_eq!(stream.write_timeout()?, Some(Duration::from_secs(1)));
    /// stream.set_write_timeout(None)?;
    /// assert_eq!(stream.write_timeout()?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Write, dur)
    }

    /// The read timeout (whole microseconds, as `std` stores a `timeval`).
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::time::Duration;
    ///
    /// assert_eq!(stream.read_timeout()?, None);
    /// stream.set_read_timeout(Some(Duration::from_millis(250)))?;
    /// assert_eq!(stream.read_timeout()?, Some(Duration::from_millis(250)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Read))
    }

    /// The write timeout.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert_eq!(stream.write_timeout()?, None); // no bound by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Write))
    }

    /// Reads without consuming (`MSG_PEEK`), waiting for data like `read`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::io::{Read, Write};
    ///
    /// (&peer).write_all(b"hi")?;
    /// let mut buf = [0u8; 2];
    /// assert_eq!(stream.peek(&mut buf)?, 2); // the data stays queued
    /// (&stream).read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.peek(buf))
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// stream.set_nodelay(true)?;
    /// assert!(stream.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get().set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert!(!stream.nodelay()?); // Nagle is on by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// stream.set_ttl(33)?;
    /// assert_eq!(stream.ttl()?, 33);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert!(stream.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// assert!(stream.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// In non-blocking mode, operations that would wait return `ErrorKind::WouldBlock`.
    ///
    /// ```
    /// # use gmp_runtime::net::{TcpListener, TcpStream};
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// # let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let (peer, _) = listener.accept()?;
    /// use std::io::Read;
    ///
    /// stream.set_nonblocking(true)?;
    /// let mut buf = [0u8; 1];
    /// let err = (&stream).read(&mut buf).unwrap_err(); // nothing to read yet
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }
}

deadline_methods!(TcpStream);

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.io.read_stream(len, |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.io(Direction::Read, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io.io(Direction::Write, |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.io(Direction::Write, |mut s| s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;
    fn try_from(s: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_std(s)
    }
}
