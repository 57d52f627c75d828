//! Any pollable file descriptor on the network poller: [`PollFd`].
//!
//! The loop the socket types use (try the syscall; on `EAGAIN` park the goroutine on the
//! poller — or block the plain thread in `poll(2)` — and retry) made public for any
//! descriptor epoll accepts: pipes, ttys, eventfds, inotify, signalfd, timerfd, pidfds,
//! sockets from other crates. Go: `os.NewFile` on a non-blocking descriptor, which puts
//! it on the poller; tokio's `AsyncFd`.

use crate::net::io::Io;
use gmp_netpoll::Direction;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

/// A non-blocking descriptor `T` whose reads and writes park the goroutine (or block the
/// plain thread) instead of failing with `WouldBlock`.
///
/// [`PollFd::new`] puts the descriptor in non-blocking mode (`O_NONBLOCK`, which belongs
/// to the open file description: other descriptors of the same file see it too) and
/// registers it with the process-wide poller; [`PollFd::into_inner`] deregisters it and
/// restores the mode it had. [`Read`] and [`Write`] are `read(2)`/`write(2)` on the
/// descriptor; [`read_with`](PollFd::read_with) and [`write_with`](PollFd::write_with)
/// run any other non-blocking syscall in the same loop.
///
/// ```
/// use gmp_runtime::io::PollFd;
/// use std::io::{Read, Write};
/// use std::os::fd::{FromRawFd, OwnedFd};
///
/// let mut fds = [0; 2];
/// // SAFETY: `fds` has room for the two new descriptors.
/// assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
/// // SAFETY: new descriptors nothing else owns.
/// let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
/// let mut r = PollFd::new(r)?;
/// let mut w = PollFd::new(w)?;
/// w.write_all(b"through a pipe")?;
/// drop(w);
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// assert_eq!(s, "through a pipe");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PollFd<T: AsFd> {
    io: Io<T>,
    /// `O_NONBLOCK` was set before `new`: keep it in `into_inner`.
    was_nonblocking: bool,
}

/// Reads the file status flags of `fd`, naming the mistake if `fd` is not open.
fn status_flags(fd: RawFd) -> io::Result<i32> {
    // SAFETY: F_GETFL on any integer is harmless; a closed descriptor gives EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBADF) {
            return Err(io::Error::new(
                e.kind(),
                format!("PollFd: file descriptor {fd} is not open (EBADF)"),
            ));
        }
        return Err(e);
    }
    Ok(flags)
}

fn set_status_flags(fd: RawFd, flags: i32) -> io::Result<()> {
    // SAFETY: F_SETFL with flags read from the same descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl<T: AsFd> PollFd<T> {
    /// Puts `inner` in non-blocking mode and registers it with the poller.
    ///
    /// Errors: a descriptor that is not open (`EBADF`, the message names it); one epoll
    /// cannot watch, such as a regular file or a directory (`EPERM`: use
    /// [`crate::fs`], whose calls never wait for readiness).
    pub fn new(inner: T) -> io::Result<PollFd<T>> {
        let p = PollFd::new_lazy(inner)?;
        if let Err(e) = p.io.poll_desc() {
            let fd = p.as_raw_fd();
            // Back to the mode it had before the error is returned.
            let _ = PollFd::into_inner(p);
            if e.raw_os_error() == Some(libc::EPERM) {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "PollFd: file descriptor {fd} cannot be polled (a regular file or \
                         directory is always ready; use gmp_runtime::fs)"
                    ),
                ));
            }
            return Err(e);
        }
        Ok(p)
    }

    /// As `new`, but registers with the poller only when a goroutine first waits (a
    /// plain thread never needs it).
    pub(crate) fn new_lazy(inner: T) -> io::Result<PollFd<T>> {
        let fd = inner.as_fd().as_raw_fd();
        let flags = status_flags(fd)?;
        let was_nonblocking = flags & libc::O_NONBLOCK != 0;
        if !was_nonblocking {
            set_status_flags(fd, flags | libc::O_NONBLOCK)?;
        }
        Ok(PollFd {
            io: Io::new(inner, Arc::default()),
            was_nonblocking,
        })
    }

    /// The wrapped descriptor. Using it directly bypasses the waiting, not the
    /// non-blocking mode: its reads may fail with `WouldBlock`.
    pub fn get_ref(&self) -> &T {
        self.io.get()
    }

    /// Deregisters the descriptor and gives it back, in the blocking mode it had before
    /// [`PollFd::new`].
    pub fn into_inner(self) -> T {
        let was_nonblocking = self.was_nonblocking;
        let inner = self.io.into_inner();
        if !was_nonblocking {
            let fd = inner.as_fd().as_raw_fd();
            if let Ok(flags) = status_flags(fd) {
                let _ = set_status_flags(fd, flags & !libc::O_NONBLOCK);
            }
        }
        inner
    }

    /// Runs `f` — a non-blocking read-side syscall on the descriptor — until it does not
    /// fail with `WouldBlock`, parking the goroutine on readability in between.
    ///
    /// ```
    /// use gmp_runtime::io::PollFd;
    /// use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    ///
    /// // An eventfd: read(2) of 8 bytes waits until the counter is non-zero.
    /// // SAFETY: plain syscall; the new descriptor is owned below.
    /// let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    /// // SAFETY: a new descriptor nothing else owns.
    /// let ev = PollFd::new(unsafe { OwnedFd::from_raw_fd(efd) })?;
    /// let add = |n: u64| -> std::io::Result<usize> {
    ///     ev.write_with(|fd| {
    ///         // SAFETY: 8 readable bytes.
    ///         let r = unsafe { libc::write(fd.as_raw_fd(), (&n as *const u64).cast(), 8) };
    ///         if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r as usize) }
    ///     })
    /// };
    /// add(3)?;
    /// let v = ev.read_with(|fd| {
    ///     let mut v = 0u64;
    ///     // SAFETY: 8 writable bytes.
    ///     let r = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    ///     if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(v) }
    /// })?;
    /// assert_eq!(v, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_with<R>(&self, f: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Direction::Read, f)
    }

    /// As [`PollFd::read_with`], for a write-side syscall (waits for writability).
    pub fn write_with<R>(&self, f: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Direction::Write, f)
    }

    /// Waits until the descriptor may be readable or `deadline` passes
    /// (`ErrorKind::TimedOut`), without doing I/O.
    pub(crate) fn wait_readable(&self, deadline: Option<std::time::Instant>) -> io::Result<()> {
        self.io.wait(Direction::Read, deadline)
    }
}

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

impl<T: AsFd> Read for &PollFd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(isize::MAX as usize);
        self.read_with(|t| {
            // SAFETY: `buf` is `len` writable bytes; the descriptor is open while `t` lives.
            cvt(unsafe { libc::read(t.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), len) })
        })
    }
}

impl<T: AsFd> Write for &PollFd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(isize::MAX as usize);
        self.write_with(|t| {
            // SAFETY: `buf` is `len` readable bytes; the descriptor is open while `t` lives.
            cvt(unsafe { libc::write(t.as_fd().as_raw_fd(), buf.as_ptr().cast(), len) })
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: AsFd> Read for PollFd<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl<T: AsFd> Write for PollFd<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: AsFd> AsFd for PollFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl<T: AsFd> AsRawFd for PollFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get().as_fd().as_raw_fd()
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for PollFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollFd")
            .field("inner", self.get_ref())
            .finish()
    }
}
