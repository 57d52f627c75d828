//! The blocking-I/O loop shared by every socket type and [`crate::io::PollFd`]: Go's
//! `internal/poll.FD`.
//!
//! Every descriptor is in non-blocking mode from birth. An operation first tries its
//! syscall; if that would block, who runs it decides how to wait:
//!
//! - **a goroutine** waits on the descriptor's [`PollDesc`] in the process-wide poller
//!   ([`crate::netpoll_poller`]), which parks the goroutine and frees its M; the descriptor
//!   is registered with the poller the first time a goroutine has to wait on it (an epoll
//!   registration reports the current readiness at once, so nothing is missed);
//! - **a plain thread** blocks in `poll(2)` on the one descriptor (and its own wake-up
//!   eventfd, see "Deadlines"), with the remaining timeout, so the types work without any
//!   runtime, as `std::net` does.
//!
//! Then it retries the syscall. Timeouts (`set_read_timeout`, …) are per call, as
//! `SO_RCVTIMEO` is: each operation gets `now + timeout` as its deadline, and on expiry
//! returns the error `std` gives on Unix, `EAGAIN` (`ErrorKind::WouldBlock`).
//!
//! # Deadlines (Go's `SetReadDeadline`)
//!
//! A deadline is absolute and persistent: once it has passed, every operation in its
//! direction fails with `ErrorKind::TimedOut` before trying its syscall (Go's
//! `prepareRead`), until the deadline is moved or cleared. Setting one must wake the
//! operations already waiting, wherever they wait:
//!
//! - goroutines wait on a [`PollDesc`], whose own persistent deadline wakes its waiters
//!   when set ([`PollDesc::set_deadline`]); [`Options`] keeps the registered descriptors of
//!   every clone and copies each new deadline into all of them;
//! - plain threads wait in `poll(2)` on the descriptor plus their thread's wake-up eventfd,
//!   which they list in [`Options`] for the duration of the wait; a setter writes to each
//!   listed eventfd, and the woken thread re-reads the deadline.
//!
//! The setter stores the deadline and walks both lists under one lock, and a waiter lists
//! itself under that lock before it reads the deadline, so either the waiter sees the new
//! deadline or the setter sees the waiter.
//!
//! Options that `std` keeps in the socket or its open file description — the timeouts,
//! non-blocking mode — and the deadlines are shared by the clones of a socket
//! (`try_clone`), so they live in an [`Options`] behind an `Arc`.

use gmp_core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use gmp_netpoll::{Direction, PollDesc};
use mio::unix::SourceFd;
use parking_lot::Mutex;
use std::cell::OnceCell;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Per-socket options shared by clones. Each field is independent and only read as a
/// snapshot at the start of an operation, so `Relaxed` suffices: like a concurrent
/// `setsockopt`, a change races with operations already under way and applies to later ones.
/// The deadlines are the exception: their waking protocol runs under `waiters` (module docs).
#[derive(Debug, Default)]
pub(crate) struct Options {
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    nonblocking: AtomicBool,
    /// Persistent deadlines, [`encode_deadline`]d; 0 = none. Written under `waiters`.
    read_deadline: AtomicU64,
    write_deadline: AtomicU64,
    waiters: Mutex<Waiters>,
}

/// Who must be told when a deadline changes.
#[derive(Debug, Default)]
struct Waiters {
    /// The poll descriptors of every clone registered with the poller.
    descs: Vec<Arc<PollDesc>>,
    /// The wake-up eventfds of plain threads waiting right now (with a multiplicity).
    threads: Vec<RawFd>,
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

/// The origin of encoded deadlines (set once).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// A deadline as nanoseconds after [`base`], plus one (0: none). Instants before the base
/// are already past and saturate to it; ones beyond ~584 years saturate to the far end.
fn encode_deadline(d: Option<Instant>) -> u64 {
    match d {
        None => 0,
        Some(t) => {
            let ns = t.saturating_duration_since(base()).as_nanos();
            u64::try_from(ns).unwrap_or(u64::MAX - 1).min(u64::MAX - 1) + 1
        }
    }
}

fn decode_deadline(v: u64) -> Option<Instant> {
    (v != 0).then(|| base() + Duration::from_nanos(v - 1))
}

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The error of an operation whose deadline has passed: Go's `os.ErrDeadlineExceeded`.
pub(crate) fn deadline_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o deadline reached")
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

    fn deadline_word(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::Read => &self.read_deadline,
            Direction::Write => &self.write_deadline,
        }
    }

    /// The persistent deadline of `dir`.
    ///
    /// `Relaxed`: a reader that misses a concurrent store is woken by the setter and reads
    /// again; the wake-up (a lock, an unpark, an eventfd write) orders the store before it.
    pub(crate) fn deadline(&self, dir: Direction) -> Option<Instant> {
        decode_deadline(self.deadline_word(dir).load(Relaxed))
    }

    /// Sets the persistent deadline of `dir` and wakes every operation waiting in that
    /// direction, on any clone, so that it re-checks. Go: `poll.FD.SetReadDeadline`.
    pub(crate) fn set_deadline(&self, dir: Direction, deadline: Option<Instant>) {
        let w = self.waiters.lock();
        self.deadline_word(dir)
            .store(encode_deadline(deadline), Relaxed);
        for pd in &w.descs {
            pd.set_deadline(dir, deadline);
        }
        for &efd in &w.threads {
            let one: u64 = 1;
            // SAFETY: `efd` is the open eventfd of a thread that is inside `thread_wait`
            // (it unlists itself under this lock before it returns), and `one` is 8
            // readable bytes. A full counter (EAGAIN) still leaves the eventfd readable.
            unsafe { libc::write(efd, (&one as *const u64).cast(), 8) };
        }
    }

    /// Lists a new poll descriptor and gives it the current deadlines.
    fn add_desc(&self, pd: &Arc<PollDesc>) {
        let mut w = self.waiters.lock();
        pd.set_deadline(Direction::Read, self.deadline(Direction::Read));
        pd.set_deadline(Direction::Write, self.deadline(Direction::Write));
        // Most streams are never cloned: one slot (an 8-byte request) instead of the
        // four `push` starts with (32 bytes, a 48-byte chunk per connection).
        if w.descs.capacity() == 0 {
            w.descs.reserve_exact(1);
        }
        w.descs.push(pd.clone());
    }

    fn remove_desc(&self, pd: &Arc<PollDesc>) {
        let mut w = self.waiters.lock();
        if let Some(i) = w.descs.iter().position(|p| Arc::ptr_eq(p, pd)) {
            w.descs.swap_remove(i);
        }
    }
}

/// A non-blocking descriptor `S` plus how to wait on it.
pub(crate) struct Io<S: AsFd> {
    sock: ManuallyDrop<S>,
    /// Registered with the process-wide poller on first need; `Err(errno)` if that failed.
    pd: OnceLock<Result<Arc<PollDesc>, i32>>,
    /// A goroutine's stream read, made before the registration, was short (it emptied
    /// the receive queue): the next such read registers the descriptor drained and waits
    /// at once (see [`Io::read_stream`]). A hint only (no ordering needed): a stale value
    /// costs one wait or one `EAGAIN`, never a missed byte.
    short_unregistered: AtomicBool,
    pub(crate) opts: Arc<Options>,
}

impl<S: AsFd> Io<S> {
    /// Wraps `sock`, which must already be in non-blocking mode.
    pub(crate) fn new(sock: S, opts: Arc<Options>) -> Self {
        Io {
            sock: ManuallyDrop::new(sock),
            pd: OnceLock::new(),
            short_unregistered: AtomicBool::new(false),
            opts,
        }
    }

    pub(crate) fn get(&self) -> &S {
        &self.sock
    }

    fn raw_fd(&self) -> RawFd {
        self.sock.as_fd().as_raw_fd()
    }

    /// Unregisters and gives the descriptor back (still in non-blocking mode).
    pub(crate) fn into_inner(self) -> S {
        let mut me = ManuallyDrop::new(self);
        me.release();
        // SAFETY: `me` is never dropped (ManuallyDrop), so `sock` is taken exactly once
        // and `pd`/`opts` are read out exactly once and dropped here.
        unsafe {
            drop(std::ptr::read(&me.pd));
            drop(std::ptr::read(&me.opts));
            ManuallyDrop::take(&mut me.sock)
        }
    }

    /// Runs `f` (one non-blocking syscall) until it does not would-block, waiting in
    /// between; applies the deadline and the timeout for `dir` and the non-blocking mode.
    pub(crate) fn io<R>(
        &self,
        dir: Direction,
        f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_inner(dir, None, None::<fn(&R) -> bool>, f)
    }

    /// A read from a stream socket whose short read means an empty receive queue (TCP)
    /// into a buffer of `len` bytes: as [`Io::io`], but a goroutine skips the syscall
    /// and waits at once while the poller has reported nothing since a short read
    /// emptied the queue (`PollDesc::read_drained`, tokio's cleared readiness). In a
    /// request/response exchange that read would fail with `EAGAIN`: half of an echo
    /// server's reads did.
    ///
    /// The descriptor is registered with the poller lazily, at its first wait, so a
    /// short read before that cannot leave a mark on it; it sets `short_unregistered`
    /// instead, and the next read registers the descriptor already drained
    /// (`Poller::register_drained`) and waits without trying the syscall: the read that
    /// follows a new connection's first request saves its `EAGAIN` too (10,000 of the
    /// `conns` bench's 20,000 reads). A connection that is read once and closed is never
    /// registered at all. Go registers at `netFD.init` and tries every read; tokio
    /// registers at creation.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.io_inner(
            Direction::Read,
            None,
            Some(|&n: &usize| n > 0 && n < len),
            f,
        )
    }

    /// As [`Io::io`], but each wait lasts at most `cap` (doubling from 1 ms up to `cap`):
    /// for syscalls whose readiness the kernel may never signal (a `sendto` on an
    /// unconnected Unix datagram socket to a full receiver).
    pub(crate) fn io_capped<R>(
        &self,
        dir: Direction,
        cap: Option<Duration>,
        f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_inner(dir, cap, None::<fn(&R) -> bool>, f)
    }

    /// [`Io::io_capped`], and with `drained: Some(short)`, [`Io::read_stream`]
    /// (`short` says whether a result shows that the read emptied the receive queue).
    fn io_inner<R>(
        &self,
        dir: Direction,
        cap: Option<Duration>,
        drained: Option<impl Fn(&R) -> bool>,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut timeout: Option<Option<Instant>> = None;
        let mut backoff = Duration::from_millis(1);
        loop {
            self.check_deadline(dir)?;
            let nonblocking = self.opts.nonblocking.load(Relaxed);
            // The drained hint: only for a stream read by a goroutine in blocking mode
            // (its wait goes through the poller, whose next event for us moves the
            // count; a thread waits with poll(2), and a non-blocking caller does not wait
            // at all), and only once registered - which the next read after a short one
            // made before the registration does now, drained (`short_unregistered`).
            let hinted = drained.is_some() && !nonblocking && crate::in_goroutine();
            if hinted && self.pd.get().is_none() && self.short_unregistered.load(Relaxed) {
                // Registration errors surface at the wait, as on the usual path.
                let _ = self.register(true);
            }
            let hint = match self.pd.get() {
                Some(Ok(pd)) if hinted => Some(&**pd),
                _ => None,
            };
            if !hint.is_some_and(|pd| pd.read_drained()) {
                let ticket = hint.map(|pd| pd.read_ticket());
                match f(&self.sock) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Ok(n) => {
                        if drained.as_ref().is_some_and(|short| short(&n)) {
                            match (hint, ticket) {
                                (Some(pd), Some(t)) => pd.set_read_drained(t),
                                _ if hinted && self.pd.get().is_none() => {
                                    self.short_unregistered.store(true, Relaxed)
                                }
                                _ => {}
                            }
                        }
                        return Ok(n);
                    }
                    r => return r,
                }
                if nonblocking {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            let t = *timeout.get_or_insert_with(|| {
                self.opts
                    .timeout(dir)
                    .map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
            });
            let bound = match cap {
                None => t,
                Some(cap) => {
                    let b = Instant::now() + backoff;
                    backoff = (backoff * 2).min(cap);
                    earliest(t, Some(b))
                }
            };
            match self.wait(dir, bound) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.check_deadline(dir)?;
                    if t.is_some_and(|t| Instant::now() >= t) {
                        // What `std` returns on Unix when SO_RCVTIMEO / SO_SNDTIMEO expires.
                        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
                    }
                    // The backoff cap (or a deadline since moved): retry.
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `TimedOut` if the persistent deadline of `dir` has passed (Go: `prepareRead`).
    #[inline]
    fn check_deadline(&self, dir: Direction) -> io::Result<()> {
        match self.opts.deadline(dir) {
            Some(d) if Instant::now() >= d => Err(deadline_error()),
            _ => Ok(()),
        }
    }

    /// Waits until `dir` may be ready, `deadline` or the persistent deadline passes
    /// (`ErrorKind::TimedOut`), or an error. Parks the goroutine, or blocks the thread.
    pub(crate) fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        if crate::in_goroutine() {
            self.poll_desc()?.wait(dir, deadline)
        } else {
            thread_wait(self.raw_fd(), dir, deadline, &self.opts)
        }
    }

    /// The descriptor's registration with the poller, made on first use.
    pub(crate) fn poll_desc(&self) -> io::Result<&PollDesc> {
        self.register(false)
    }

    /// [`Io::poll_desc`]; a registration made now starts drained if `drained` (see
    /// [`Io::read_stream`]).
    fn register(&self, drained: bool) -> io::Result<&PollDesc> {
        let r = self.pd.get_or_init(|| {
            let fd = self.raw_fd();
            let poller = crate::netpoll_poller();
            let pd = if drained {
                poller.register_drained(&mut SourceFd(&fd))
            } else {
                poller.register(&mut SourceFd(&fd))
            };
            match pd {
                Ok(pd) => {
                    let pd = Arc::new(pd);
                    self.opts.add_desc(&pd);
                    Ok(pd)
                }
                Err(e) => Err(e.raw_os_error().unwrap_or(libc::EINVAL)),
            }
        });
        r.as_deref()
            .map_err(|&errno| io::Error::from_raw_os_error(errno))
    }

    /// Deregisters from the poller (Go: `pollDesc.close`), before the descriptor is closed
    /// or handed back, so that a `dup` of it elsewhere does not keep our registration (and
    /// its events) alive. Waiters still parked (there are none: they borrow `self`) would
    /// fail with a closed error.
    fn release(&mut self) {
        if let Some(Ok(pd)) = self.pd.take() {
            self.opts.remove_desc(&pd);
            let fd = self.raw_fd();
            let _ = pd.deregister(&mut SourceFd(&fd));
            pd.close();
        }
    }
}

impl<S: AsFd> Drop for Io<S> {
    fn drop(&mut self) {
        self.release();
        // SAFETY: `sock` is dropped exactly once, here (`into_inner` never drops `self`).
        unsafe { ManuallyDrop::drop(&mut self.sock) };
    }
}

/// Go's deadline setters for a type with an `io: Io<_>` field.
macro_rules! deadline_methods {
    ($ty:ident) => {
        impl $ty {
            /// Sets both the read and the write deadline; see
            /// [`set_read_deadline`](Self::set_read_deadline). Go: `SetDeadline`.
            pub fn set_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.io
                    .opts
                    .set_deadline(gmp_netpoll::Direction::Read, deadline);
                self.io
                    .opts
                    .set_deadline(gmp_netpoll::Direction::Write, deadline);
                Ok(())
            }

            /// Sets an absolute deadline for reads (Go's `SetReadDeadline`): once it has
            /// passed, every read — including one already waiting, in any goroutine or
            /// thread, on this handle or a clone — fails with `ErrorKind::TimedOut`, until
            /// the deadline is moved or cleared (`None`). Independent of
            /// `set_read_timeout`, which bounds each call.
            pub fn set_read_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.io
                    .opts
                    .set_deadline(gmp_netpoll::Direction::Read, deadline);
                Ok(())
            }

            /// Sets an absolute deadline for writes; as
            /// [`set_read_deadline`](Self::set_read_deadline). Go: `SetWriteDeadline`.
            pub fn set_write_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.io
                    .opts
                    .set_deadline(gmp_netpoll::Direction::Write, deadline);
                Ok(())
            }
        }
    };
}
pub(crate) use deadline_methods;

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

thread_local! {
    /// This thread's wake-up eventfd for deadline changes (created on first wait).
    static WAKE_FD: OnceCell<Option<OwnedFd>> = const { OnceCell::new() };
}

fn thread_wake_fd() -> Option<RawFd> {
    WAKE_FD
        .try_with(|c| {
            c.get_or_init(|| {
                // SAFETY: plain syscall with constant flags.
                let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                // SAFETY: a new descriptor that nothing else owns.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .as_ref()
            .map(|f| f.as_raw_fd())
        })
        .ok()
        .flatten()
}

/// Unlists a waiting thread (normally or unwinding) and drains its eventfd.
struct ThreadListed<'a> {
    opts: &'a Options,
    efd: RawFd,
}

impl Drop for ThreadListed<'_> {
    fn drop(&mut self) {
        {
            let mut w = self.opts.waiters.lock();
            if let Some(i) = w.threads.iter().position(|&f| f == self.efd) {
                w.threads.swap_remove(i);
            }
        }
        // Once unlisted no setter writes to it any more: drain what was written.
        let mut v: u64 = 0;
        // SAFETY: `efd` is this thread's open eventfd; `v` is 8 writable bytes.
        unsafe { libc::read(self.efd, (&mut v as *mut u64).cast(), 8) };
    }
}

/// Blocks the calling thread in `poll(2)` until `fd` is ready for `dir`, the deadline of
/// `dir` changes, or `deadline` or the persistent deadline passes (`ErrorKind::TimedOut`).
/// Readiness may be spurious; the caller retries.
fn thread_wait(
    fd: RawFd,
    dir: Direction,
    deadline: Option<Instant>,
    opts: &Options,
) -> io::Result<()> {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let efd = thread_wake_fd();
    let _listed = efd.map(|efd| {
        opts.waiters.lock().threads.push(efd);
        ThreadListed { opts, efd }
    });
    loop {
        let bound = earliest(deadline, opts.deadline(dir));
        let timeout_ms = match bound {
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
        let mut pfds = [
            libc::pollfd {
                fd,
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: efd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `pfds` is a valid array of 2 pollfds for the duration of the call (a
        // negative fd is ignored by poll).
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), 2, timeout_ms) };
        if r > 0 {
            // Ready, an error/hang-up the retried syscall will report, or a deadline
            // change the retry will see.
            return Ok(());
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
    fn deadlines_encode_round_trip() {
        assert_eq!(decode_deadline(encode_deadline(None)), None);
        let t = Instant::now() + Duration::from_millis(1500);
        let back = decode_deadline(encode_deadline(Some(t))).unwrap();
        assert!(back <= t && t - back < Duration::from_micros(1));
    }

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
