#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("gmp-netpoll polls with epoll: Linux and Android only");

mod poll_desc;
mod table;
mod wait;
mod waker;

pub use poll_desc::{is_closed_error, Direction, PollDesc};
pub use wait::WaitWord;

pub use gmp_core::park::Unparker;

use gmp_core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use mio::Interest;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
// The poller's refcount is plain std: it is not part of a modelled protocol.
use std::sync::Arc;
use std::time::Duration;

/// Events fetched per `epoll_wait`, as Go's `netpoll` (128).
const EVENTS: usize = 128;

/// The network poller: Go's `netpoll` over one `mio::Poll`. Send + Sync.
///
/// See the [crate docs](crate) for the protocol and an example.
pub struct Poller {
    inner: Arc<Inner>,
}

/// What the poller and its descriptors share.
pub(crate) struct Inner {
    /// Owns the epoll instance; polled through its raw descriptor (`epfd`).
    _poll: mio::Poll,
    epfd: RawFd,
    registry: mio::Registry,
    /// Level-triggered eventfd, drained only by a blocking poll (`waker.rs`).
    waker: waker::Waker,
    /// Go's `netpollWakeSig`: a wake-up is pending, further `wake`s are no-ops.
    wake_sig: AtomicBool,
    /// A thread is blocked in `epoll_wait` (Go: `sched.lastpoll == 0`). Claimed by CAS:
    /// at most one blocked poller.
    blocked: AtomicBool,
    /// Go's `netpollWaiters`: waiters parked on some wait word.
    pub(crate) waiters: AtomicUsize,
    pub(crate) table: table::Table,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller")
            .field("waiters", &self.inner.waiters.load(SeqCst))
            .field("blocked", &self.inner.blocked.load(SeqCst))
            .finish()
    }
}

impl Poller {
    /// Creates a poller (an epoll instance and an eventfd waker). Go: `netpollinit`.
    pub fn new() -> io::Result<Poller> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = waker::Waker::new(poll.as_raw_fd(), table::WAKER_TOKEN as u64)?;
        Ok(Poller {
            inner: Arc::new(Inner {
                epfd: poll.as_raw_fd(),
                _poll: poll,
                registry,
                waker,
                wake_sig: AtomicBool::new(false),
                blocked: AtomicBool::new(false),
                waiters: AtomicUsize::new(0),
                table: table::Table::new(),
            }),
        })
    }

    /// Registers `source` for reading and writing, edge-triggered, once for its lifetime
    /// (Go: `netpollopen`, `EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET`), and returns its
    /// descriptor. The source must be in non-blocking mode.
    pub fn register<S: mio::event::Source + ?Sized>(&self, source: &mut S) -> io::Result<PollDesc> {
        self.register_inner(source, false)
    }

    /// As [`register`](Poller::register), for a stream socket whose last read emptied its
    /// receive queue: the descriptor starts drained ([`PollDesc::read_drained`] is true
    /// until the poller dispatches a read event for it), so that the caller's next read
    /// can wait at once instead of failing with `EAGAIN` first. A caller that registers
    /// lazily (at its first wait) saves that syscall on the read that follows a short
    /// first read.
    ///
    /// Sound whatever arrived since that read, and whatever the read was: the mark is
    /// taken before `epoll_ctl(ADD)`, and the kernel reports a source that is readable
    /// when it is added (edge-triggered too) at the next poll, which moves the count past
    /// the mark. A wrong claim costs a wait for that event, never a lost wake-up.
    ///
    /// ```
    /// use gmp_netpoll::Poller;
    /// use std::io::Write;
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    /// # fn main() -> std::io::Result<()> {
    /// let l = TcpListener::bind("127.0.0.1:0")?;
    /// let mut c = TcpStream::connect(l.local_addr()?)?;
    /// let (s, _) = l.accept()?;
    /// s.set_nonblocking(true)?;
    /// c.write_all(b"x")?; // arrives before the registration
    /// # std::thread::sleep(Duration::from_millis(20));
    /// let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    /// let poller = Poller::new()?;
    /// let pd = poller.register_drained(&mut mio::unix::SourceFd(&fd))?;
    /// assert!(pd.read_drained()); // until the poller reports the byte
    /// let mut ready = Vec::new();
    /// poller.poll(Some(Duration::from_secs(5)), &mut ready)?;
    /// assert!(!pd.read_drained()); // the add reported the byte already there
    /// # pd.deregister(&mut mio::unix::SourceFd(&fd))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn register_drained<S: mio::event::Source + ?Sized>(
        &self,
        source: &mut S,
    ) -> io::Result<PollDesc> {
        self.register_inner(source, true)
    }

    fn register_inner<S: mio::event::Source + ?Sized>(
        &self,
        source: &mut S,
        drained: bool,
    ) -> io::Result<PollDesc> {
        let (index, desc) = self.inner.table.alloc()?;
        let pd = PollDesc::new(self.inner.clone(), index, desc);
        if drained {
            // Before the add: every event the kernel queues for this registration
            // (including the one for data already there) comes after the mark.
            pd.set_read_drained(pd.read_ticket());
        }
        // On error `pd` is dropped, which returns the descriptor to the pool.
        self.inner.registry.register(
            source,
            pd.token(),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(pd)
    }

    /// Polls for I/O readiness for at most `timeout` (`None`: until an event or a
    /// [`wake`](Poller::wake); `Some(Duration::ZERO)`: without blocking) and appends the
    /// waiters made ready to `ready`; the caller must unpark each of them. Returns how many
    /// were appended. Go: `netpoll(delay)`.
    ///
    /// Non-blocking polls may run on any number of threads at once, also while another
    /// thread is blocked in the poller, and never consume a [`wake`](Poller::wake): only
    /// a blocking poll does. Only one thread blocks: a blocking poll while another
    /// thread is blocked in the poller returns `Ok(0)` at once. A timeout is rounded up
    /// to whole milliseconds (epoll's unit), so the poller never wakes before a timer it
    /// was asked to wait for. An interrupted wait (`EINTR`) returns `Ok(0)`; the caller
    /// recomputes its timeout, as Go's callers do.
    pub fn poll(&self, timeout: Option<Duration>, ready: &mut Vec<Unparker>) -> io::Result<usize> {
        let ms = match timeout {
            Some(d) if d.is_zero() => 0,
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
            None => -1,
        };
        // SeqCst: the runtime reads `blocked` (is_polling) against its own idle state to
        // decide whether it must block in the poller itself or `wake` it.
        if ms != 0
            && self
                .inner
                .blocked
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_err()
        {
            return Ok(0);
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: `epfd` is the epoll descriptor owned by `self.inner._poll`, open while
        // `self` lives; `events` is a writable buffer of `EVENTS` entries.
        let n =
            unsafe { libc::epoll_wait(self.inner.epfd, events.as_mut_ptr(), EVENTS as i32, ms) };
        let err = (n < 0).then(io::Error::last_os_error);
        if ms != 0 {
            self.inner.blocked.store(false, SeqCst);
        }
        if let Some(e) = err {
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let before = ready.len();
        let waiters = &self.inner.waiters;
        for ev in &events[..n as usize] {
            // Copies: `epoll_event` is packed on x86-64, its fields cannot be borrowed.
            let (bits, token) = (ev.events as i32, ev.u64 as usize);
            if token == table::WAKER_TOKEN {
                // Go: only a blocking poll drains the break fd and resets netpollWakeSig;
                // a non-blocking one leaves the (level-triggered) wake-up to the thread
                // blocked in the poller, or to the next one to block. Drain, then reset:
                // a `wake` in between finds the flag still set and writes nothing, which
                // loses nothing, since it came after its caller published what it wants
                // seen and this poll's caller looks at the runtime's state on return.
                if ms != 0 {
                    self.inner.waker.drain();
                    self.inner.wake_sig.store(false, SeqCst);
                }
                continue;
            }
            let (index, gen) = table::untoken(token);
            let Some(desc) = self.inner.table.get(index) else {
                continue;
            };
            if desc.seq.load(SeqCst) != gen {
                continue; // A late event for a freed (maybe reused) descriptor.
            }
            // Go's netpoll: IN, RDHUP, HUP, ERR wake readers; OUT, HUP, ERR wake writers.
            if bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0 {
                desc.note_read_event(
                    bits & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0,
                );
                ready.extend(desc.rd.word.unblock(true, waiters));
            }
            if bits & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0 {
                ready.extend(desc.wr.word.unblock(true, waiters));
            }
        }
        Ok(ready.len() - before)
    }

    /// Makes the thread blocked in [`poll`](Poller::poll) return now, or the next blocking
    /// `poll` return at once if nobody is blocked; non-blocking polls in between leave it
    /// pending. Deduplicated: while a wake-up is pending, more calls do nothing. Go:
    /// `netpollBreak`.
    pub fn wake(&self) -> io::Result<()> {
        if self
            .inner
            .wake_sig
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_err()
        {
            return Ok(());
        }
        self.inner
            .waker
            .wake()
            .inspect_err(|_| self.inner.wake_sig.store(false, SeqCst))
    }

    /// True if some waiter is parked on a descriptor of this poller, so that polling can
    /// make progress. Go: `netpollAnyWaiters`.
    pub fn has_waiters(&self) -> bool {
        self.inner.waiters.load(SeqCst) > 0
    }

    /// True while a thread is blocked inside [`poll`](Poller::poll) (a poll with a
    /// non-zero timeout); non-blocking polls do not count. Go: `sched.lastpoll == 0`.
    pub fn is_polling(&self) -> bool {
        self.inner.blocked.load(SeqCst)
    }
}
