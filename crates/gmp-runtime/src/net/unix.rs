//! `UnixListener`, `UnixStream` and `UnixDatagram`: `std::os::unix::net`'s, over
//! non-blocking sockets, on the same loop as TCP (`io.rs`). Go: `net.UnixConn`,
//! `net.UnixListener`.
//!
//! Each wraps the `std` type itself (set non-blocking), so every option, address and error
//! is `std`'s own; only the waiting differs. Three operations need more than the loop:
//!
//! - `UnixListener::bind` re-issues `listen(2)` with the kernel's maximum backlog, as the
//!   TCP listener does.
//! - `UnixStream::connect` in a goroutine is a non-blocking `connect(2)`. A Unix-domain
//!   connect completes at once or fails, except when the listener's backlog is full: then
//!   Linux answers `EAGAIN` and offers nothing to wait on, so the connect is retried as a
//!   blocking `std` connect inside [`crate::blocking`] (the goroutine's P is handed on).
//!   On a plain thread it is `std`'s blocking connect.
//! - A datagram send on an unconnected socket to a full receiver fails with `EAGAIN`
//!   while the sender's own socket stays writable, so no readiness event may ever come:
//!   sends wait in rounds of at most 32 ms (`Io::io_capped`) and retry.

use super::io::{deadline_methods, Io};
use super::tcp::max_backlog;
use gmp_netpoll::Direction;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The longest a datagram send waits before retrying (module docs).
const SEND_RETRY_CAP: Duration = Duration::from_millis(32);

/// A Unix-domain stream server socket, as [`std::os::unix::net::UnixListener`]; in a
/// goroutine, `accept` parks the goroutine instead of blocking its thread.
///
/// ```
/// use gmp_runtime::net::{UnixListener, UnixStream};
/// use std::io::{Read, Write};
///
/// let dir = std::env::temp_dir().join(format!("gmp-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sock");
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let client = std::thread::spawn({
///     let path = path.clone();
///     move || -> std::io::Result<String> {
///         let mut s = UnixStream::connect(&path)?;
///         s.write_all(b"hello")?;
///         let mut back = String::new();
///         s.read_to_string(&mut back)?;
///         Ok(back)
///     }
/// });
/// let (mut conn, _) = listener.accept()?;
/// let mut buf = [0; 5];
/// conn.read_exact(&mut buf)?;
/// conn.write_all(&buf)?;
/// drop(conn);
/// assert_eq!(client.join().unwrap()?, "hello");
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    io: Io<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the filesystem `path` and listens with the kernel's maximum backlog. A
    /// path too long for a `sockaddr_un` is an `InvalidInput` error, as in `std`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::listen(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Binds to `addr` (a path or, on Linux, an abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::listen(std::os::unix::net::UnixListener::bind_addr(addr)?)
    }

    fn listen(l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        // SAFETY: `l` owns a valid listening socket for the duration of the call.
        if unsafe { libc::listen(l.as_raw_fd(), max_backlog()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        UnixListener::from_std(l)
    }

    /// Wraps a `std` listener (put in non-blocking mode).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: Io::new(listener, Arc::default()),
        })
    }

    /// Accepts a connection, waiting for one (parking the goroutine, or blocking the
    /// thread).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.io.io(Direction::Read, accept_nonblocking)?;
        Ok((UnixStream::from_nonblocking(s), addr))
    }

    /// An iterator over incoming connections: `accept` forever, never `None`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A new handle to the same socket (a `dup`); the clones share their options.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        let l = self.io.get().try_clone()?;
        Ok(UnixListener {
            io: Io::new(l, self.io.opts.clone()),
        })
    }

    /// In non-blocking mode, `accept` returns `ErrorKind::WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// Sets an absolute deadline for `accept` (Go's `UnixListener.SetDeadline`): once it
    /// has passed, `accept` — including one already waiting — fails with
    /// `ErrorKind::TimedOut`; `None` clears it.
    pub fn set_deadline(&self, deadline: Option<std::time::Instant>) -> io::Result<()> {
        self.io.opts.set_deadline(Direction::Read, deadline);
        Ok(())
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::os::unix::net::UnixListener> for UnixListener {
    type Error = io::Error;
    fn try_from(l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        UnixListener::from_std(l)
    }
}

impl<'a> IntoIterator for &'a UnixListener {
    type Item = io::Result<UnixStream>;
    type IntoIter = Incoming<'a>;
    fn into_iter(self) -> Incoming<'a> {
        self.incoming()
    }
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` (mio's `accept`): the new socket is
/// born non-blocking (no `ioctl(FIONBIO)` per connection). Go: `internal/poll.accept`.
fn accept_nonblocking(
    l: &std::os::unix::net::UnixListener,
) -> io::Result<(std::os::unix::net::UnixStream, SocketAddr)> {
    // SAFETY: `l` keeps the listening socket open for the whole call; the mio listener
    // only borrows its descriptor and is never dropped (`ManuallyDrop`), so it never
    // closes it.
    let m = ManuallyDrop::new(unsafe { mio::net::UnixListener::from_raw_fd(l.as_raw_fd()) });
    let (s, addr) = m.accept()?;
    Ok((s.into(), addr))
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// `addr` as a `sockaddr_un` and its length, for `connect(2)`.
fn sockaddr(addr: &SocketAddr) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: all-zero is a valid `sockaddr_un`.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let (bytes, start): (&[u8], usize) = if let Some(p) = addr.as_pathname() {
        (p.as_os_str().as_encoded_bytes(), 0)
    } else if let Some(name) = addr.as_abstract_name() {
        (name, 1) // A leading NUL.
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot connect to an unnamed Unix socket address",
        ));
    };
    // `std`'s SocketAddr already checked the length; this is belt and braces.
    if start + bytes.len() >= sun.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path must be shorter than SUN_LEN",
        ));
    }
    for (d, &b) in sun.sun_path[start..].iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    let len = base + start + bytes.len() + usize::from(start == 0);
    Ok((sun, len as libc::socklen_t))
}

/// A Unix-domain stream connection, as [`std::os::unix::net::UnixStream`]; in a goroutine,
/// reads, writes and connects that would block park the goroutine instead of its thread.
///
/// ```
/// use gmp_runtime::net::UnixStream;
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    io: Io<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`. A path too long for a `sockaddr_un` is an
    /// `InvalidInput` error, as in `std`.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        if !crate::in_goroutine() {
            return UnixStream::from_std(std::os::unix::net::UnixStream::connect(path)?);
        }
        UnixStream::connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Connects to `addr` (a path or, on Linux, an abstract name).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        if !crate::in_goroutine() {
            return UnixStream::from_std(std::os::unix::net::UnixStream::connect_addr(addr)?);
        }
        let (sun, len) = sockaddr(addr)?;
        // SAFETY: plain syscall with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new socket nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        loop {
            // SAFETY: `sun` is a valid `sockaddr_un` of which `len` bytes are used.
            let r = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&sun as *const libc::sockaddr_un).cast(),
                    len,
                )
            };
            if r == 0 {
                let s = std::os::unix::net::UnixStream::from(fd);
                return Ok(UnixStream {
                    io: Io::new(s, Arc::default()),
                });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    // The listener's backlog is full (module docs).
                    drop(fd);
                    let s = crate::blocking(|| std::os::unix::net::UnixStream::connect_addr(addr))?;
                    return UnixStream::from_std(s);
                }
                _ => return Err(e),
            }
        }
    }

    /// A connected pair of sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a `std` stream (put in non-blocking mode).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream::from_nonblocking(stream))
    }

    /// Wraps a stream already in non-blocking mode.
    fn from_nonblocking(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream {
            io: Io::new(stream, Arc::default()),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }

    /// A new handle to the same connection (a `dup`); the clones share their timeouts,
    /// deadlines and non-blocking mode.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let s = self.io.get().try_clone()?;
        Ok(UnixStream {
            io: Io::new(s, self.io.opts.clone()),
        })
    }

    /// Bounds each read: after `dur` without data a read fails with `ErrorKind::WouldBlock`
    /// (`EAGAIN`, as `std` on Unix). `Some(Duration::ZERO)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Read, dur)
    }

    /// Bounds each write; as [`UnixStream::set_read_timeout`].
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Write, dur)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Write))
    }

    /// In non-blocking mode, operations that would wait return `ErrorKind::WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }
}

deadline_methods!(UnixStream);

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.io(Direction::Read, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &UnixStream {
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

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
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

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::os::unix::net::UnixStream> for UnixStream {
    type Error = io::Error;
    fn try_from(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        UnixStream::from_std(s)
    }
}

/// A Unix-domain datagram socket, as [`std::os::unix::net::UnixDatagram`]; in a
/// goroutine, a receive or send that would block parks the goroutine.
///
/// ```
/// use gmp_runtime::net::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair()?;
/// a.send(b"ping")?;
/// let mut buf = [0; 16];
/// let n = b.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    io: Io<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to the filesystem `path`. A path too long is an `InvalidInput` error.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// Binds to `addr` (a path or, on Linux, an abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind_addr(addr)?)
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of sockets (`socketpair(2)`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a `std` socket (put in non-blocking mode).
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram {
            io: Io::new(socket, Arc::default()),
        })
    }

    /// Sets the default destination and the only accepted source.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io.get().connect(path)
    }

    /// As [`UnixDatagram::connect`], to `addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        self.io.get().connect_addr(addr)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// Receives one datagram and its source, waiting for one.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives one datagram from the connected peer, waiting for one.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.recv(buf))
    }

    /// Sends `buf` to the socket at `path`, waiting while the receiver's queue is full.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io
            .io_capped(Direction::Write, Some(SEND_RETRY_CAP), |s| {
                s.send_to(buf, path)
            })
    }

    /// Sends `buf` to `addr`; as [`UnixDatagram::send_to`].
    pub fn send_to_addr(&self, buf: &[u8], addr: &SocketAddr) -> io::Result<usize> {
        self.io
            .io_capped(Direction::Write, Some(SEND_RETRY_CAP), |s| {
                s.send_to_addr(buf, addr)
            })
    }

    /// Sends `buf` to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .io_capped(Direction::Write, Some(SEND_RETRY_CAP), |s| s.send(buf))
    }

    /// A new handle to the same socket (a `dup`); the clones share their options.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        let s = self.io.get().try_clone()?;
        Ok(UnixDatagram {
            io: Io::new(s, self.io.opts.clone()),
        })
    }

    /// Bounds each receive: after `dur` a receive fails with `ErrorKind::WouldBlock`.
    /// `Some(Duration::ZERO)` is an `InvalidInput` error.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Read, dur)
    }

    /// Bounds each send; as [`UnixDatagram::set_read_timeout`].
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Write, dur)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Write))
    }

    /// In non-blocking mode, operations that would wait return `ErrorKind::WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }
}

deadline_methods!(UnixDatagram);

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::os::unix::net::UnixDatagram> for UnixDatagram {
    type Error = io::Error;
    fn try_from(s: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(s)
    }
}
