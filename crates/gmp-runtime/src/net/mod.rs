//! Network I/O that parks the goroutine, not the thread: [`TcpListener`], [`TcpStream`]
//! and [`UdpSocket`], with the API of `std::net`; [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], with the API of `std::os::unix::net`; [`lookup_host`]; and Go's
//! absolute deadlines on all of them.
//!
//! Write plain blocking code, one goroutine per connection, as in Go:
//!
//! ```no_run
//! use gmp_runtime::net::TcpListener;
//! use std::io::{Read, Write};
//!
//! // SAFETY: the connection handlers hold no thread-local state across I/O.
//! unsafe {
//!     gmp_runtime::run(|| {
//!         let listener = TcpListener::bind("127.0.0.1:7000").unwrap();
//!         for conn in listener.incoming() {
//!             let mut conn = conn.unwrap();
//!             gmp_runtime::go!(move || {
//!                 let mut buf = [0u8; 4096];
//!                 while let Ok(n @ 1..) = conn.read(&mut buf) {
//!                     if conn.write_all(&buf[..n]).is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!     })
//! }
//! ```
//!
//! # How it works (Go's `internal/poll` and `runtime/netpoll.go`)
//!
//! Sockets are non-blocking. An operation tries its syscall; on `EAGAIN`, a goroutine
//! parks on the socket's poll descriptor in the process-wide [`gmp_netpoll::Poller`] (the
//! scheduler polls it and readies the goroutine when the socket is ready), while a plain
//! OS thread blocks in `poll(2)` on the socket. Either way the caller retries the syscall.
//! So the same value works everywhere: created on a thread, used in goroutines, or the
//! reverse. See `io.rs` for the loop, `tcp.rs` and `udp.rs` for the types.
//!
//! # Deadlines
//!
//! Besides `std`'s per-call timeouts, every socket type has Go's absolute deadlines
//! (`set_deadline`, `set_read_deadline`, `set_write_deadline`; `set_deadline` on the
//! listeners). A deadline that passes fails the operations of its direction with
//! `ErrorKind::TimedOut` — including those already waiting, even when it is set from another
//! goroutine or thread while they wait — until it is moved or cleared:
//!
//! ```
//! use gmp_runtime::net::UnixStream;
//! use std::io::{ErrorKind, Read};
//! use std::time::{Duration, Instant};
//!
//! let (a, _b) = UnixStream::pair()?;
//! let reader = a.try_clone()?;
//! let t = std::thread::spawn(move || (&reader).read(&mut [0; 8]).unwrap_err().kind());
//! std::thread::sleep(Duration::from_millis(20));
//! a.set_read_deadline(Some(Instant::now()))?; // wakes the blocked read
//! assert_eq!(t.join().unwrap(), ErrorKind::TimedOut);
//! a.set_read_deadline(None)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Differences from `std::net`
//!
//! Errors, timeouts and their error kinds are `std`'s (`read` past its timeout fails with
//! `EAGAIN`, `ErrorKind::WouldBlock`, as on Unix; a zero timeout is `InvalidInput`).
//! Listeners use the kernel's maximum backlog rather than `std`'s 128, as Go's do. The
//! timeout getters return what was set (whole microseconds) rather than the kernel's
//! rounding. `set_nonblocking` applies to this handle and its clones, not to other
//! descriptors of the same open file.

mod dns;
pub(crate) mod io;
mod tcp;
mod udp;
mod unix;

pub use dns::lookup_host;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{Incoming as UnixIncoming, UnixDatagram, UnixListener, UnixStream};

/// The address of a Unix-domain socket: `std::os::unix::net::SocketAddr`.
pub use std::os::unix::net::SocketAddr as UnixSocketAddr;

pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
    ToSocketAddrs,
};
