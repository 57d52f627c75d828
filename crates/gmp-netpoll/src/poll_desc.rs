//! Poll descriptors: Go's `pollDesc` (runtime/netpoll.go) and the waiting half of
//! `internal/poll.FD`.
//!
//! A [`PollDesc`] is the handle a socket keeps for its registration with the
//! [`Poller`](crate::Poller). The I/O loop above it is Go's:
//!
//! ```text
//! loop {
//!     match nonblocking_syscall() {
//!         Err(EAGAIN) => pd.wait_read()?,   // parks until readiness, deadline or close
//!         result => return result,
//!     }
//! }
//! ```
//!
//! # What a descriptor holds
//!
//! Per direction (read, write): a [`WaitWord`] (the `rg`/`wg` CAS protocol, see `wait.rs`),
//! a deadline, and a small queue. Plus a `closing` flag and the generation used to
//! recognise stale events (see `table.rs`).
//!
//! # One waiter per word, any number of callers
//!
//! Go serialises the readers of one fd with `fdMutex` before they reach `netpollblock`,
//! because the word holds one goroutine. `std::net` allows any number of threads to block
//! in `read` on one `&TcpStream`, so we need the same: the first caller to wait becomes the
//! *primary* waiter and blocks on the word; later callers queue behind it (a mutex-guarded
//! list, this is the rare path). When the primary leaves, for whatever reason, it wakes
//! every queued caller, and they return as if readiness had been signalled: each retries
//! its syscall, and whoever gets `EAGAIN` again waits again, one of them as the new
//! primary. Readiness consumed by the primary may have been for them too (an edge-triggered
//! event is reported once), which is why they must retry rather than keep sleeping.
//!
//! # Deadlines
//!
//! Each direction has a persistent deadline, as Go's `SetReadDeadline` (absolute; `None`
//! for none), and each wait may add its own (`std`'s timeouts are per call, so the net
//! types pass `now + timeout`). The earlier of the two bounds the wait. Setting a
//! persistent deadline wakes the waiters of that direction, which re-check: a deadline in
//! the past fails them at once with [`io::ErrorKind::TimedOut`], a later one puts them
//! back to sleep with the new bound.
//!
//! # Close
//!
//! [`PollDesc::close`] sets `closing` and wakes both directions; every current and future
//! wait fails with an error for which [`is_closed_error`] is true. Nothing is left parked.
//! Dropping the handle frees the descriptor (after it has been deregistered by its owner,
//! or its file descriptor closed: epoll forgets a closed file by itself).

use crate::table::{self, GEN_MASK};
use crate::wait::WaitWord;
use crate::Inner;
use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use gmp_core::sync::Mutex;
// The registration's refcount is plain std: it is not part of a modelled protocol.
use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which half of a descriptor: reading (Go's `'r'`) or writing (`'w'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Readable: data, end of stream, an error, or a pending connection on a listener.
    Read,
    /// Writable: buffer space, a completed connect, or an error.
    Write,
}

/// One descriptor in the pool (see `table.rs`). Type-stable: never freed while the poller
/// lives, only reset and reused with a new generation.
pub(crate) struct Desc {
    /// Generation (Go's `fdseq`): bumped when the descriptor is freed.
    pub(crate) seq: AtomicUsize,
    closing: AtomicBool,
    pub(crate) rd: Half,
    pub(crate) wr: Half,
    /// The read side's events as the poller dispatched them, in steps of 2 (wrapping;
    /// the count is never reset, so that no value repeats across reuses of the
    /// descriptor), with bit 0 set for the rest of the registration once an event
    /// reported end of stream, a hang-up or an error.
    /// See [`PollDesc::read_drained`].
    rd_events: AtomicU64,
    /// The `rd_events` value taken before the last read that emptied the receive queue,
    /// or [`NEVER_DRAINED`] (odd, so it never equals an even `rd_events`).
    rd_drained: AtomicU64,
}

/// `Desc::rd_drained` when no read has been seen to empty the receive queue.
const NEVER_DRAINED: u64 = 1;

pub(crate) struct Half {
    pub(crate) word: WaitWord,
    /// The persistent deadline, encoded by [`encode`]; 0 = none.
    deadline: AtomicU64,
    queue: Mutex<Queue>,
}

/// Callers of one direction beyond the primary waiter.
struct Queue {
    /// A primary waiter is blocked (or about to block) on the word.
    busy: bool,
    next_id: u64,
    waiting: Vec<(u64, Unparker)>,
}

impl Desc {
    pub(crate) fn new() -> Self {
        Desc {
            seq: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            rd: Half::new(),
            wr: Half::new(),
            rd_events: AtomicU64::new(0),
            rd_drained: AtomicU64::new(NEVER_DRAINED),
        }
    }

    /// Called by the poller for each read-side event, before it wakes the reader (so
    /// that a woken reader sees the new count). `closed`: the event reported end of
    /// stream, a hang-up or an error, which makes a read worth trying from now on.
    pub(crate) fn note_read_event(&self, closed: bool) {
        // SeqCst: ordered with the reader's load of the count before its syscall
        // (`PollDesc::read_ticket`) and its check in `read_drained`; see there.
        if closed {
            self.rd_events.fetch_or(1, SeqCst);
        }
        self.rd_events.fetch_add(2, SeqCst);
    }

    fn half(&self, dir: Direction) -> &Half {
        match dir {
            Direction::Read => &self.rd,
            Direction::Write => &self.wr,
        }
    }
}

impl Half {
    fn new() -> Self {
        Half {
            word: WaitWord::new(),
            deadline: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                busy: false,
                next_id: 0,
                waiting: Vec::new(),
            }),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        decode(self.deadline.load(SeqCst))
    }

    /// Wakes every queued (non-primary) caller; they retry their syscall.
    fn wake_queued(&self) {
        let woken = std::mem::take(&mut self.queue.lock().waiting);
        for (_, u) in woken {
            u.unpark();
        }
    }
}

/// The origin of encoded deadlines. Not part of any concurrent protocol (set once).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// A deadline as nanoseconds after [`base`], plus one (0 means "none"). Instants before the
/// base are already past and saturate to it; ones beyond ~584 years saturate to the far end.
fn encode(d: Option<Instant>) -> u64 {
    match d {
        None => 0,
        Some(t) => {
            let ns = t.saturating_duration_since(base()).as_nanos();
            u64::try_from(ns).unwrap_or(u64::MAX - 1).min(u64::MAX - 1) + 1
        }
    }
}

fn decode(v: u64) -> Option<Instant> {
    match v {
        0 => None,
        v => Some(base() + Duration::from_nanos(v - 1)),
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The error of a wait on a closed descriptor: Go's `ErrNetClosing`.
#[derive(Debug)]
struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("use of closed network connection (poll descriptor closed)")
    }
}

impl std::error::Error for Closed {}

fn closed_error() -> io::Error {
    io::Error::other(Closed)
}

/// True if `err` is the error a wait returns after [`PollDesc::close`].
pub fn is_closed_error(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Closed>())
}

fn timeout_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o deadline reached")
}

/// A registration with a [`Poller`](crate::Poller): the per-direction wait words and
/// deadlines of one source. Send + Sync; share it by reference.
///
/// Obtained from [`Poller::register`](crate::Poller::register). Dropping it frees the
/// descriptor for reuse; deregister the source first ([`PollDesc::deregister`]) unless its
/// file descriptor is being closed anyway.
pub struct PollDesc {
    inner: Arc<Inner>,
    index: u32,
    seq: usize,
    desc: NonNull<Desc>,
}

// SAFETY: `desc` points into a table page that lives as long as `inner` (which we hold),
// and `Desc` is only used through shared references and is itself Sync (atomics, a
// mutex, and `WaitWord`, which is Sync).
unsafe impl Send for PollDesc {}
// SAFETY: as above.
unsafe impl Sync for PollDesc {}

impl fmt::Debug for PollDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.desc();
        f.debug_struct("PollDesc")
            .field("index", &self.index)
            .field("generation", &self.seq)
            .field("closing", &d.closing.load(SeqCst))
            .field("read", &d.rd.word)
            .field("write", &d.wr.word)
            .finish()
    }
}

impl PollDesc {
    pub(crate) fn new(inner: Arc<Inner>, index: u32, desc: &Desc) -> PollDesc {
        let seq = desc.seq.load(SeqCst);
        PollDesc {
            desc: NonNull::from(desc),
            inner,
            index,
            seq,
        }
    }

    /// The mio token this descriptor is registered under (index and generation).
    pub(crate) fn token(&self) -> mio::Token {
        mio::Token(table::token(self.index, self.seq))
    }

    fn desc(&self) -> &Desc {
        // SAFETY: see the `Send`/`Sync` impls: the page outlives `self.inner`.
        unsafe { self.desc.as_ref() }
    }

    /// Waits until the source may be readable (then retry the read), the read deadline
    /// passes ([`io::ErrorKind::TimedOut`]), or the descriptor is closed. Go:
    /// `poll.runtime_pollWait(pd, 'r')`.
    pub fn wait_read(&self) -> io::Result<()> {
        self.wait(Direction::Read, None)
    }

    /// Waits until the source may be writable; as [`PollDesc::wait_read`].
    pub fn wait_write(&self) -> io::Result<()> {
        self.wait(Direction::Write, None)
    }

    /// Waits on `dir` with an extra, per-call `deadline` (the earlier of it and the
    /// direction's persistent deadline applies). Parks the calling goroutine or thread
    /// through [`gmp_core::park`].
    ///
    /// `Ok(())` means "retry the syscall": readiness was signalled, or this caller was
    /// queued behind another waiter that has just left (see the module docs).
    pub fn wait(&self, dir: Direction, deadline: Option<Instant>) -> io::Result<()> {
        let half = self.desc().half(dir);
        self.check(half, deadline)?;
        {
            let mut q = half.queue.lock();
            if q.busy {
                let id = q.next_id;
                q.next_id += 1;
                q.waiting.push((id, park::current()));
                drop(q);
                return self.wait_queued(half, id, deadline);
            }
            q.busy = true;
        }
        let _primary = Primary(half);
        let waiters = &self.inner.waiters;
        loop {
            let bound = earliest(half.deadline(), deadline);
            if half
                .word
                .block(bound, || self.check(half, deadline).is_err(), waiters)
            {
                return Ok(());
            }
            // Woken without readiness: closed, a deadline, or a deadline change.
            self.check(half, deadline)?;
        }
    }

    /// A caller queued behind the primary waiter: sleeps until the primary wakes it, its
    /// deadline passes, or the descriptor is closed.
    fn wait_queued(&self, half: &Half, id: u64, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            match earliest(half.deadline(), deadline) {
                Some(t) => park::park_deadline_for(t, WaitReason::IoWait),
                None => park::park_for(WaitReason::IoWait),
            }
            let mut q = half.queue.lock();
            let Some(pos) = q.waiting.iter().position(|(i, _)| *i == id) else {
                // Woken by the primary leaving, a close, or a deadline change.
                drop(q);
                return self.check(half, deadline);
            };
            if let Err(e) = self.check(half, deadline) {
                q.waiting.swap_remove(pos);
                return Err(e);
            }
            // Spurious: sleep again.
        }
    }

    /// Go: `netpollcheckerr`. Closing first, then the deadlines.
    fn check(&self, half: &Half, deadline: Option<Instant>) -> io::Result<()> {
        // SeqCst: pairs with `close` (store closing, then unblock); see wait.rs.
        if self.desc().closing.load(SeqCst) {
            return Err(closed_error());
        }
        if let Some(t) = earliest(half.deadline(), deadline) {
            if Instant::now() >= t {
                return Err(timeout_error());
            }
        }
        Ok(())
    }

    /// Sets the persistent read deadline (`None`: no deadline) and wakes the readers so
    /// that they re-check: one in the past fails them at once. Go: `SetReadDeadline`.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) {
        self.set_deadline(Direction::Read, deadline);
    }

    /// Sets the persistent write deadline; as [`PollDesc::set_read_deadline`].
    pub fn set_write_deadline(&self, deadline: Option<Instant>) {
        self.set_deadline(Direction::Write, deadline);
    }

    /// Sets the persistent deadline of `dir`. Go: `poll.runtime_pollSetDeadline`.
    pub fn set_deadline(&self, dir: Direction, deadline: Option<Instant>) {
        let half = self.desc().half(dir);
        // SeqCst: the store must precede the unblock's CAS on the word in the single
        // order, so a waiter that claims the word after it sees the new deadline.
        half.deadline.store(encode(deadline), SeqCst);
        if let Some(u) = half.word.unblock(false, &self.inner.waiters) {
            u.unpark();
        }
        half.wake_queued();
    }

    /// True if a readiness notification for `dir` is pending (the next wait on `dir`
    /// returns at once).
    pub fn is_ready(&self, dir: Direction) -> bool {
        self.desc().half(dir).word.is_ready()
    }

    /// A snapshot of the read side's events, to take just before a read syscall whose
    /// result may show that it emptied the receive queue (see [`PollDesc::read_drained`]).
    pub fn read_ticket(&self) -> u64 {
        self.desc().rd_events.load(SeqCst)
    }

    /// Records that a read begun after [`read_ticket`](PollDesc::read_ticket) returned
    /// `ticket` emptied the receive queue: a stream read that returned fewer bytes than
    /// asked (and more than none).
    pub fn set_read_drained(&self, ticket: u64) {
        // A ticket with the closed bit would never match again anyway.
        self.desc().rd_drained.store(ticket, SeqCst);
    }

    /// True if the poller has dispatched no read event for this descriptor since a read
    /// emptied its receive queue, and none that reported end of stream, a hang-up or an
    /// error: a read now would fail with `EAGAIN`, so the caller may wait at once
    /// (tokio clears its readiness after a short read for the same reason).
    ///
    /// Why that is sound with edge-triggered epoll: data arriving after the draining
    /// read's syscall makes the kernel queue a new event, which the poller dispatches
    /// (counting it in `note_read_event`) before it wakes the waiter; so either the count
    /// moved (this returns false) or the event is still to come and the wait will see
    /// it. Data that arrived before the ticket was taken was read by that syscall. Only
    /// valid for waits through this poller (a goroutine's), and for stream sockets whose
    /// short read means an empty queue (TCP; not while urgent data is pending, which
    /// stops a read early: a peer that sends urgent data delays its own connection's
    /// reads until it sends more, closes, or resets).
    ///
    /// ```
    /// use gmp_netpoll::Poller;
    /// use std::net::{TcpListener, TcpStream};
    /// # fn main() -> std::io::Result<()> {
    /// let l = TcpListener::bind("127.0.0.1:0")?;
    /// let s = TcpStream::connect(l.local_addr()?)?;
    /// let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    /// let poller = Poller::new()?;
    /// let pd = poller.register(&mut mio::unix::SourceFd(&fd))?;
    /// assert!(!pd.read_drained()); // nothing read yet: try the syscall
    /// let ticket = pd.read_ticket();
    /// // ... a read syscall returns fewer bytes than asked ...
    /// pd.set_read_drained(ticket);
    /// assert!(pd.read_drained()); // until the poller reports another read event
    /// # pd.deregister(&mut mio::unix::SourceFd(&fd))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_drained(&self) -> bool {
        let d = self.desc();
        let now = d.rd_events.load(SeqCst);
        now & 1 == 0 && d.rd_drained.load(SeqCst) == now
    }

    /// The persistent deadline of `dir`.
    pub fn deadline(&self, dir: Direction) -> Option<Instant> {
        self.desc().half(dir).deadline()
    }

    /// Marks the descriptor closed and wakes every waiter of both directions; they, and
    /// every later wait, fail with an error for which [`is_closed_error`] is true. Go:
    /// `poll.runtime_pollUnblock`. Idempotent.
    pub fn close(&self) {
        let d = self.desc();
        // SeqCst: see `check`.
        d.closing.store(true, SeqCst);
        for half in [&d.rd, &d.wr] {
            if let Some(u) = half.word.unblock(false, &self.inner.waiters) {
                u.unpark();
            }
            half.wake_queued();
        }
    }

    /// True once [`PollDesc::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.desc().closing.load(SeqCst)
    }

    /// Removes `source` from the poller (`epoll_ctl(DEL)`). Go: `netpollclose`.
    pub fn deregister<S: mio::event::Source + ?Sized>(&self, source: &mut S) -> io::Result<()> {
        self.inner.registry.deregister(source)
    }
}

impl Drop for PollDesc {
    fn drop(&mut self) {
        let d = self.desc();
        // Bump the generation first, so that events still queued for the old registration
        // are recognised as stale from now on (table.rs).
        d.seq.store(self.seq.wrapping_add(1) & GEN_MASK, SeqCst);
        d.closing.store(false, SeqCst);
        // The next registration starts without a drained mark and without the closed
        // bit; `rd_events` keeps counting (a stale event's bump or closed bit arriving
        // after this only disables the hint for the next registration).
        d.rd_drained.store(NEVER_DRAINED, SeqCst);
        d.rd_events.fetch_and(!1, SeqCst);
        for half in [&d.rd, &d.wr] {
            // `&mut self`: nobody can be waiting through this handle (an unwinding waiter
            // removes itself first); a leftover READY is simply forgotten.
            half.word.reset();
            half.deadline.store(0, SeqCst);
            let mut q = half.queue.lock();
            debug_assert!(
                !q.busy && q.waiting.is_empty(),
                "netpoll: PollDesc dropped with waiters"
            );
            q.busy = false;
            q.waiting.clear();
        }
        self.inner.table.free(self.index);
    }
}

/// The primary waiter of a direction leaves (normally or unwinding): the next caller may
/// become primary, and the queued ones retry.
struct Primary<'a>(&'a Half);

impl Drop for Primary<'_> {
    fn drop(&mut self) {
        let woken = {
            let mut q = self.0.queue.lock();
            q.busy = false;
            std::mem::take(&mut q.waiting)
        };
        for (_, u) in woken {
            u.unpark();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    // A descriptor whose connection ended (closed bit set) and was then reused must
    // not carry the bit over: the drained hint works again for the next registration.
    #[test]
    fn a_reused_descriptor_forgets_the_closed_bit() {
        let poller = crate::Poller::new().unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        let pd = poller.register(&mut mio::unix::SourceFd(&fd)).unwrap();
        let index = pd.index;
        pd.desc().note_read_event(true);
        pd.set_read_drained(pd.read_ticket());
        assert!(!pd.read_drained(), "the closed bit must disable the hint");
        pd.deregister(&mut mio::unix::SourceFd(&fd)).unwrap();
        drop(pd);
        let pd = poller.register(&mut mio::unix::SourceFd(&fd)).unwrap();
        assert_eq!(pd.index, index, "the freed descriptor is reused");
        assert!(!pd.read_drained(), "a new registration starts undrained");
        pd.set_read_drained(pd.read_ticket());
        assert!(
            pd.read_drained(),
            "the closed bit of the old registration leaked"
        );
        pd.desc().note_read_event(false);
        assert!(!pd.read_drained(), "an event ends the drained state");
        pd.deregister(&mut mio::unix::SourceFd(&fd)).unwrap();
    }

    #[test]
    fn deadlines_encode_round_trip() {
        assert_eq!(decode(encode(None)), None);
        let t = Instant::now() + Duration::from_millis(1500);
        let back = decode(encode(Some(t))).unwrap();
        assert!(back <= t && t - back < Duration::from_micros(1));
        // Far future saturates instead of wrapping into the past.
        let far = Instant::now() + Duration::from_secs(1 << 40);
        assert!(decode(encode(Some(far))).unwrap() > Instant::now() + Duration::from_secs(1 << 30));
    }

    #[test]
    fn closed_error_is_recognised() {
        assert!(is_closed_error(&closed_error()));
        assert!(!is_closed_error(&timeout_error()));
        assert!(!is_closed_error(&io::Error::from(io::ErrorKind::Other)));
    }
}
