//! The blocking-I/O loop shared by every socket type: Go's `internal/poll.FD`.
//!
//! Every socket is in non-blocking mode from birth. An operation first tries its syscall;
//! if that would block, who runs it decides how to wait:
//!
//! - **a goroutine** waits on the socket's [`PollDesc`] in the process-wide poller
//!   ([`crate::netpoll_poller`]), which parks the goroutine and frees its M; the socket is
//!   registered with the poller the first time a goroutine has to wait on it (an epoll
//!   registration reports the current readiness at once, so nothing is missed);
//! - **a plain thread** blocks in `poll(2)` on the one descriptor, with the remaining
//!   timeout, so the types work without any runtime, as `std::net` does.
//!
//! Then it retries the syscall. Timeouts (`set_read_timeout`, …) are per call, as
//! `SO_RCVTIMEO` is: each operation gets `now + timeout` as its deadline, and on expiry
//! returns the error `std` gives on Unix, `EAGAIN` (`ErrorKind::WouldBlock`).
//!
//! Options that `std` keeps in the socket or its open file description — the timeouts,
//! non-blocking mode — are shared by the clones of a socket (`try_clone`), so they live in
//! an [`Options`] behind an `Arc`.

use gmp_core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use gmp_netpoll::{Direction, PollDesc};
use mio::unix::SourceFd;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Per-socket options shared by clones. Each field is independent and only read as a
/// snapshot at the start of an operation, so `Relaxed` suffices: like a concurrent
/// `setsockopt`, a change races with operations already under way and applies to later ones.
#[derive(Debug, Default)]
pub(crate) struct Options {
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    nonblocking: AtomicBool,
}

fn encode_timeout(t: Option<Duration>) -> io::Result<u64> {
    match t {
        None => Ok(0),
        Some(d) if d.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        )),
        // As `std` (a `timeval`): whole microseconds, at least one; ~584 years saturate.
        Some(d) => {
            let us = u64::try_from(d.as_micros())
                .unwrap_or(u64::MAX / 1000)
                .max(1);
            Ok(us.saturating_mul(1000))
        }
    }
}

fn decode_timeout(v: u64) -> Option<Duration> {
    (v != 0).then(|| Duration::from_nanos(v))
}

impl Options {
    pub(crate) fn timeout(&self, dir: Direction) -> Option<Duration> {
        decode_timeout(match dir {
            Direction::Read => self.read_timeout.load(Relaxed),
            Direction::Write => self.write_timeout.load(Relaxed),
        })
    }

    pub(crate) fn set_timeout(&self, dir: Direction, t: Option<Duration>) -> io::Result<()> {
        let v = encode_timeout(t)?;
        match dir {
            Direction::Read => self.read_timeout.store(v, Relaxed),
            Direction::Write => self.write_timeout.store(v, Relaxed),
        }
        Ok(())
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.store(nonblocking, Relaxed);
    }
}

/// A non-blocking socket `S` plus how to wait on it.
pub(crate) struct Io<S: AsRawFd> {
    sock: S,
    /// Registered with the process-wide poller on first need; `Err(errno)` if that failed.
    pd: OnceLock<Result<PollDesc, i32>>,
    pub(crate) opts: Arc<Options>,
}

impl<S: AsRawFd> Io<S> {
    /// Wraps `sock`, which must already be in non-blocking mode.
    pub(crate) fn new(sock: S, opts: Arc<Options>) -> Self {
        Io {
            sock,
            pd: OnceLock::new(),
            opts,
        }
    }

    pub(crate) fn get(&self) -> &S {
        &self.sock
    }

    /// Runs `f` (one non-blocking syscall) until it does not would-block, waiting in
    /// between; applies the socket's timeout for `dir` and its non-blocking mode.
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            match f(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if self.opts.nonblocking.load(Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let d = *deadline.get_or_insert_with(|| {
                self.opts
                    .timeout(dir)
                    .map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
            });
            self.wait(dir, d).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    // What `std` returns on Unix when SO_RCVTIMEO / SO_SNDTIMEO expires.
                    io::Error::from_raw_os_error(libc::EAGAIN)
                } else {
                    e
                }
            })?;
        }
    }

    /// Waits until `dir` may be ready, `deadline` passes (`ErrorKind::TimedOut`), or an
    /// error. Parks the goroutine, or blocks the thread.
    pub(crate) fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        if crate::in_goroutine() {
            self.poll_desc()?.wait(dir, deadline)
        } else {
            thread_wait(self.sock.as_raw_fd(), dir, deadline)
        }
    }

    fn poll_desc(&self) -> io::Result<&PollDesc> {
        let r = self.pd.get_or_init(|| {
            let fd = self.sock.as_raw_fd();
            crate::netpoll_poller()
                .register(&mut SourceFd(&fd))
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EINVAL))
        });
        r.as_ref()
            .map_err(|&errno| io::Error::from_raw_os_error(errno))
    }
}

impl<S: AsRawFd> Drop for Io<S> {
    fn drop(&mut self) {
        if let Some(Ok(pd)) = self.pd.take() {
            // Go: pollDesc.close — deregister before the descriptor is closed, so that a
            // `dup` of it elsewhere does not keep our registration (and its events) alive.
            let fd = self.sock.as_raw_fd();
            let _ = pd.deregister(&mut SourceFd(&fd));
            pd.close();
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Blocks the calling thread in `poll(2)` until `fd` is ready for `dir` or `deadline`
/// passes (`ErrorKind::TimedOut`). Readiness may be spurious; the caller retries.
fn thread_wait(fd: RawFd, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                // Round up: waking a little early would just poll again.
                let ms = (d - now).as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call, and nfds is 1.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r > 0 {
            return Ok(()); // Ready, or an error/hang-up the retried syscall will report.
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Timed out or interrupted: the deadline check above decides.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_encode_like_std() {
        assert_eq!(encode_timeout(None).unwrap(), 0);
        let e = encode_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let round = |d| decode_timeout(encode_timeout(Some(d)).unwrap()).unwrap();
        assert_eq!(round(Duration::from_nanos(1)), Duration::from_micros(1));
        assert_eq!(round(Duration::from_nanos(2500)), Duration::from_micros(2));
        assert_eq!(round(Duration::from_secs(3)), Duration::from_secs(3));
        assert!(round(Duration::MAX) > Duration::from_secs(500 * 365 * 86400));
    }
}
