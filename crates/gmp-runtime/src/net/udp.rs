//! `UdpSocket`: `std::net`'s, over a non-blocking socket (see `io.rs`). Every datagram
//! operation is one syscall in the loop of `io.rs`; everything else is `std`'s own.

use super::io::{deadline_methods, Io};
use gmp_netpoll::Direction;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// A UDP socket, as [`std::net::UdpSocket`]; in a goroutine, a receive (or a send) that
/// would block parks the goroutine instead of its thread.
///
/// ```
/// use gmp_runtime::net::UdpSocket;
///
/// let a = UdpSocket::bind("127.0.0.1:0")?;
/// let b = UdpSocket::bind("127.0.0.1:0")?;
/// a.send_to(b"ping", b.local_addr()?)?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    io: Io<std::net::UdpSocket>,
}

fn first_addr<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddr> {
    let mut addrs = if crate::in_goroutine() {
        crate::blocking(|| addr.to_socket_addrs())?
    } else {
        addr.to_socket_addrs()?
    };
    addrs
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))
}

impl UdpSocket {
    /// Binds to `addr` (each resolved address in turn, as `std`).
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_ne!(socket.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Wraps a `std` socket (put in non-blocking mode).
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let std_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let addr = std_socket.local_addr()?;
    /// assert_eq!(UdpSocket::from_std(std_socket)?.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: Io::new(socket, Arc::default()),
        })
    }

    /// Receives one datagram and its source, waiting for one.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// a.send_to(b"ping", b.local_addr()?)?;
    /// let mut buf = [0u8; 16];
    /// let (n, from) = b.recv_from(&mut buf)?; // parks a goroutine, blocks a thread
    /// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Direction::Read, |s| s.recv_from(buf))
    }

    /// As [`UdpSocket::recv_from`], without removing the datagram from the queue.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// a.send_to(b"ping", b.local_addr()?)?;
    /// let mut buf = [0u8; 16];
    /// let (n, _) = b.peek_from(&mut buf)?;
    /// assert_eq!(b.recv(&mut buf)?, n); // the datagram was still there
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Direction::Read, |s| s.peek_from(buf))
    }

    /// Sends `buf` to the first address `addr` resolves to.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(a.send_to(b"hello", b.local_addr()?)?, 5);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv(&mut buf)?, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = first_addr(addr)?;
        self.io.io(Direction::Write, |s| s.send_to(buf, addr))
    }

    /// Sets the default destination and the only accepted source (each resolved address
    /// in turn, as `std`).
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// a.send(b"x")?; // to the connected address
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.io.get().connect(addr)
    }

    /// Sends `buf` to the connected peer.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.send(b"abc")?, 3);
    /// let mut buf = [0u8; 3];
    /// assert_eq!(b.recv(&mut buf)?, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io(Direction::Write, |s| s.send(buf))
    }

    /// Receives one datagram from the connected peer, waiting for one.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// b.connect(a.local_addr()?)?; // receive from `a` only
    /// a.send_to(b"yo", b.local_addr()?)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv(&mut buf)?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.recv(buf))
    }

    /// As [`UdpSocket::recv`], without removing the datagram from the queue.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// b.connect(a.local_addr()?)?;
    /// a.send_to(b"yo", b.local_addr()?)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.peek(&mut buf)?, 2);
    /// assert_eq!(b.recv(&mut buf)?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.peek(buf))
    }

    /// The connected peer's address.
    ///
    /// ```
    /// # use gmp_runtime::net::UdpSocket;
    /// # let a = UdpSocket::bind("127.0.0.1:0")?;
    /// # let b = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(a.peer_addr().is_err()); // not connected
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A new handle to the same socket (a `dup`); the clones share their options.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let other = socket.try_clone()?;
    /// assert_eq!(other.local_addr()?, socket.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let s = self.io.get().try_clone()?;
        Ok(UdpSocket {
            io: Io::new(s, self.io.opts.clone()),
        })
    }

    /// Bounds each receive: after `dur` a receive fails with `ErrorKind::WouldBlock`
    /// (`EAGAIN`, as `std` on Unix). `Some(Duration::ZERO)` is an `InvalidInput` error.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// use std::time::Duration;
    ///
    /// socket.set_read_timeout(Some(Duration::from_millis(10)))?;
    /// let mut buf = [0u8; 8];
    /// let err = socket.recv_from(&mut buf).unwrap_err(); // nobody sends
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Read, dur)
    }

    /// Bounds each send; as [`UdpSocket::set_read_timeout`].
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// use std::time::Duration;
    ///
    /// socket.set_write_timeout(Some(Duration::from_secs(1)))?;
    /// assert_eq!(socket.write_timeout()?, Some(Duration::from_secs(1)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.opts.set_timeout(Direction::Write, dur)
    }

    /// The read timeout.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(socket.read_timeout()?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Read))
    }

    /// The write timeout.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(socket.write_timeout()?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.io.opts.timeout(Direction::Write))
    }

    /// In non-blocking mode, operations that would wait return `ErrorKind::WouldBlock`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_nonblocking(true)?;
    /// let mut buf = [0u8; 8];
    /// let err = socket.recv(&mut buf).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.opts.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_broadcast(true)?;
    /// assert!(socket.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(!socket.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get().broadcast()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_ttl(7)?;
    /// assert_eq!(socket.ttl()?, 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get().ttl()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_multicast_loop_v4(false)?;
    /// assert!(!socket.multicast_loop_v4()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.multicast_loop_v4()?); // on by default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.set_multicast_ttl_v4(4)?;
    /// assert_eq!(socket.multicast_ttl_v4()?, 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(socket.multicast_ttl_v4()?, 1); // the default
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// ```,no_run
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("[::1]:0")?; // needs IPv6
    /// socket.set_multicast_loop_v6(false)?;
    /// assert!(!socket.multicast_loop_v6()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get().set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`.
    ///
    /// ```,no_run
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("[::1]:0")?; // needs IPv6
    /// assert!(socket.multicast_loop_v6()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get().multicast_loop_v6()
    }

    /// Joins an IPv4 multicast group (`IP_ADD_MEMBERSHIP`).
    ///
    /// ```,no_run
    /// use gmp_runtime::net::{Ipv4Addr, UdpSocket};
    ///
    /// let socket = UdpSocket::bind("0.0.0.0:5353")?;
    /// // Needs a multicast-capable interface (the default route's, for UNSPECIFIED).
    /// socket.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &Ipv4Addr::UNSPECIFIED)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get().join_multicast_v4(multiaddr, interface)
    }

    /// Joins an IPv6 multicast group (`IPV6_ADD_MEMBERSHIP`).
    ///
    /// ```,no_run
    /// use gmp_runtime::net::{Ipv6Addr, UdpSocket};
    ///
    /// let socket = UdpSocket::bind("[::]:5353")?;
    /// let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
    /// socket.join_multicast_v6(&group, 0)?; // 0: the default interface
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group.
    ///
    /// ```,no_run
    /// use gmp_runtime::net::{Ipv4Addr, UdpSocket};
    ///
    /// let socket = UdpSocket::bind("0.0.0.0:5353")?;
    /// let group = Ipv4Addr::new(224, 0, 0, 251);
    /// socket.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)?;
    /// socket.leave_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.io.get().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group.
    ///
    /// ```,no_run
    /// use gmp_runtime::net::{Ipv6Addr, UdpSocket};
    ///
    /// let socket = UdpSocket::bind("[::]:5353")?;
    /// let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
    /// socket.join_multicast_v6(&group, 0)?;
    /// socket.leave_multicast_v6(&group, 0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get().leave_multicast_v6(multiaddr, interface)
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// use gmp_runtime::net::UdpSocket;
    ///
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.take_error()?.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get().take_error()
    }
}

deadline_methods!(UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.io.get(), f)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;
    fn try_from(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(s)
    }
}
