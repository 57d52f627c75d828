//! Network I/O that parks the goroutine, not the thread: [`TcpListener`], [`TcpStream`]
//! and [`UdpSocket`], with the API of `std::net`.
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
//! # Differences from `std::net`
//!
//! Errors, timeouts and their error kinds are `std`'s (`read` past its timeout fails with
//! `EAGAIN`, `ErrorKind::WouldBlock`, as on Unix; a zero timeout is `InvalidInput`).
//! Listeners use the kernel's maximum backlog rather than `std`'s 128, as Go's do. The
//! timeout getters return what was set (whole microseconds) rather than the kernel's
//! rounding. `set_nonblocking` applies to this handle and its clones, not to other
//! descriptors of the same open file.

mod io;
mod tcp;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

pub use std::net::{
    AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6,
    ToSocketAddrs,
};
