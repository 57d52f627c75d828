//! The public channel types: constructors, [`Sender`], [`Receiver`] and the iterators.
//!
//! A `Sender`/`Receiver` is an enum over the flavours (see [`crate::flavors`]); every
//! method dispatches to the flavour, which does the work. Timer receivers (`after`, `at`,
//! `tick`) exist only as `Receiver<Instant>`; the enum stores, next to the timer, the
//! function that turns its `Instant` into the receiver's `T` (the identity, as `T` is
//! `Instant`), so the generic code needs no unsafe type punning.

use crate::context::{Context, Operation};
use crate::counter::{self, Side, RECEIVER, SENDER};
use crate::err::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::flavors::{array, at, list, never, tick, zero};
use crate::select::{SelectHandle, Token};
use gmp_core::sync::Arc;
use std::fmt;
use std::iter::FusedIterator;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::{Duration, Instant};

#[path = "async_ops.rs"]
pub(crate) mod async_ops;

/// Creates a channel of unbounded capacity.
///
/// Sends never block; receives block while the channel is empty.
///
/// ```
/// use gmp_chan::unbounded;
/// use std::thread;
///
/// let (s, r) = unbounded();
/// thread::spawn(move || {
///     for i in 0..3 {
///         s.send(i).unwrap();
///     }
/// });
/// assert_eq!(r.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let (s, r) = counter::new(list::Channel::new());
    (
        Sender {
            flavor: SenderFlavor::List(s),
        },
        Receiver {
            flavor: ReceiverFlavor::List(r),
        },
    )
}

/// Creates a channel that holds at most `cap` messages.
///
/// With `cap == 0` it is Go's unbuffered channel: a send completes only when a receiver
/// takes the message, handed over directly.
///
/// # Panics
///
/// If `cap` is too large to allocate.
///
/// ```
/// use gmp_chan::bounded;
/// use std::thread;
///
/// let (s, r) = bounded(1);
/// s.send(1).unwrap(); // room for one
/// let t = thread::spawn(move || s.send(2).unwrap()); // blocks until 1 is received
/// assert_eq!(r.recv(), Ok(1));
/// assert_eq!(r.recv(), Ok(2));
/// t.join().unwrap();
///
/// let (s, r) = bounded(0); // rendezvous
/// let t = thread::spawn(move || s.send("hi").unwrap());
/// assert_eq!(r.recv(), Ok("hi"));
/// t.join().unwrap();
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    if cap == 0 {
        let (s, r) = counter::new(zero::Channel::new());
        (
            Sender {
                flavor: SenderFlavor::Zero(s),
            },
            Receiver {
                flavor: ReceiverFlavor::Zero(r),
            },
        )
    } else {
        let (s, r) = counter::new(array::Channel::with_capacity(cap));
        (
            Sender {
                flavor: SenderFlavor::Array(s),
            },
            Receiver {
                flavor: ReceiverFlavor::Array(r),
            },
        )
    }
}

fn identity(t: Instant) -> Instant {
    t
}

/// Creates a receiver that delivers one message, the current instant, after `duration`.
///
/// The channel has capacity one and is never disconnected. No thread is spawned: a
/// receiver sleeps (parks) until the message is due.
///
/// ```
/// use gmp_chan::{after, select, unbounded};
/// use std::time::Duration;
///
/// let (_s, r) = unbounded::<i32>();
/// select! {
///     recv(r) -> _ => panic!("nothing was sent"),
///     recv(after(Duration::from_millis(10))) -> _ => {} // timed out
/// }
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    match Instant::now().checked_add(duration) {
        Some(when) => at(when),
        None => never(),
    }
}

/// Creates a receiver that delivers one message, `when`, at the instant `when` (at once
/// if it is in the past).
///
/// ```
/// use gmp_chan::at;
/// use std::time::{Duration, Instant};
///
/// let when = Instant::now() + Duration::from_millis(10);
/// let r = at(when);
/// assert_eq!(r.recv(), Ok(when));
/// assert!(Instant::now() >= when);
/// ```
pub fn at(when: Instant) -> Receiver<Instant> {
    Receiver {
        flavor: ReceiverFlavor::At(Arc::new(at::Channel::new(when)), identity),
    }
}

/// Creates a receiver that never delivers a message (capacity zero, never disconnected).
///
/// Useful to disable an arm of `select!`:
///
/// ```
/// use gmp_chan::{after, never, select, unbounded};
/// use std::time::Duration;
///
/// let (s, r) = unbounded();
/// s.send(1).unwrap();
/// let timeout: Option<Duration> = None;
/// let timer = timeout.map(after).unwrap_or(never());
/// select! {
///     recv(r) -> msg => assert_eq!(msg, Ok(1)),
///     recv(timer) -> _ => panic!("never fires"),
/// }
/// ```
pub const fn never<T>() -> Receiver<T> {
    Receiver {
        flavor: ReceiverFlavor::Never(never::Channel::new()),
    }
}

/// Creates a receiver that delivers a message every `duration`: the instant it was due.
///
/// The channel has capacity one (ticks missed while nobody receives are not queued) and
/// is never disconnected.
///
/// ```
/// use gmp_chan::tick;
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let ticker = tick(Duration::from_millis(5));
/// for _ in 0..3 {
///     ticker.recv().unwrap();
/// }
/// assert!(start.elapsed() >= Duration::from_millis(15));
/// ```
pub fn tick(duration: Duration) -> Receiver<Instant> {
    match Instant::now().checked_add(duration) {
        Some(first) => Receiver {
            flavor: ReceiverFlavor::Tick(Arc::new(tick::Channel::new(first, duration)), identity),
        },
        None => never(),
    }
}

/// The sending side of a channel. Clone it to have several senders; the channel
/// disconnects when the last one is dropped.
///
/// ```
/// use gmp_chan::unbounded;
/// use std::thread;
///
/// let (s1, r) = unbounded();
/// let s2 = s1.clone();
/// thread::spawn(move || s1.send(1).unwrap());
/// thread::spawn(move || s2.send(2).unwrap());
/// let sum: i32 = r.iter().take(2).sum();
/// assert_eq!(sum, 3);
/// ```
pub struct Sender<T> {
    flavor: SenderFlavor<T>,
}

// A `Sender` is two words, the flavour and one pointer (a server keeps one per
// connection or per parked goroutine it may wake; the side is in the handle's type).
#[cfg(not(loom))] // loom's `Arc` is larger
const _: () = assert!(std::mem::size_of::<Sender<()>>() == 2 * std::mem::size_of::<usize>());

enum SenderFlavor<T> {
    Array(Side<array::Channel<T>, SENDER>),
    List(Side<list::Channel<T>, SENDER>),
    Zero(Side<zero::Channel<T>, SENDER>),
}

// SAFETY: a `Sender` only moves `T`s into the channel, where a `Receiver` (possibly on
// another thread) takes them: `T: Send` is exactly what that needs, as for
// `std::sync::mpsc::Sender`. Shared access (`&Sender`) allows the same.
unsafe impl<T: Send> Send for Sender<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for Sender<T> {}

impl<T> UnwindSafe for Sender<T> {}
impl<T> RefUnwindSafe for Sender<T> {}

impl<T> Sender<T> {
    /// Sends without blocking: fails if the channel is full (zero capacity: if no receiver
    /// is waiting) or disconnected. The message comes back in the error.
    ///
    /// ```
    /// use gmp_chan::{bounded, TrySendError};
    ///
    /// let (s, r) = bounded(1);
    /// assert_eq!(s.try_send(1), Ok(()));
    /// assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
    /// drop(r);
    /// assert_eq!(s.try_send(3), Err(TrySendError::Disconnected(3)));
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        match &self.flavor {
            SenderFlavor::Array(c) => c.try_send(msg),
            SenderFlavor::List(c) => c.send(msg).map_err(TrySendError::Disconnected),
            SenderFlavor::Zero(c) => c.try_send(msg),
        }
    }

    /// Sends, blocking while the channel is full (zero capacity: until a receiver takes
    /// the message). Fails, giving the message back, if the channel is or becomes
    /// disconnected.
    ///
    /// ```
    /// use gmp_chan::{bounded, SendError};
    /// use std::thread;
    ///
    /// let (s, r) = bounded(0);
    /// let t = thread::spawn(move || r.recv().unwrap());
    /// s.send(1).unwrap();
    /// assert_eq!(t.join().unwrap(), 1);
    /// assert_eq!(s.send(2), Err(SendError(2))); // the receiver is gone
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        match &self.flavor {
            SenderFlavor::Array(c) => c.send(msg, None),
            SenderFlavor::List(c) => return c.send(msg).map_err(SendError),
            SenderFlavor::Zero(c) => c.send(msg, None),
        }
        .map_err(|e| match e {
            SendTimeoutError::Disconnected(m) => SendError(m),
            SendTimeoutError::Timeout(_) => {
                unreachable!("gmp_chan: send without deadline timed out")
            }
        })
    }

    /// Sends, blocking for at most `timeout` while the channel is full.
    ///
    /// ```
    /// use gmp_chan::{bounded, SendTimeoutError};
    /// use std::time::Duration;
    ///
    /// let (s, _r) = bounded(1);
    /// s.send(1).unwrap();
    /// let e = s.send_timeout(2, Duration::from_millis(10));
    /// assert_eq!(e, Err(SendTimeoutError::Timeout(2)));
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.send_deadline(msg, deadline),
            None => self.send(msg).map_err(SendTimeoutError::from),
        }
    }

    /// Sends, blocking until `deadline` at the latest while the channel is full.
    ///
    /// ```
    /// use gmp_chan::{bounded, SendTimeoutError};
    /// use std::time::{Duration, Instant};
    ///
    /// let (s, _r) = bounded(0);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(s.send_deadline(1, deadline), Err(SendTimeoutError::Timeout(1)));
    /// ```
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        match &self.flavor {
            SenderFlavor::Array(c) => c.send(msg, Some(deadline)),
            SenderFlavor::List(c) => c.send(msg).map_err(SendTimeoutError::Disconnected),
            SenderFlavor::Zero(c) => c.send(msg, Some(deadline)),
        }
    }

    /// True if the channel holds no message (always true for zero capacity).
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// assert!(s.is_empty());
    /// s.send(0).unwrap();
    /// assert!(!s.is_empty());
    /// # drop(r);
    /// ```
    pub fn is_empty(&self) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => c.is_empty(),
            SenderFlavor::List(c) => c.len() == 0,
            SenderFlavor::Zero(_) => true,
        }
    }

    /// True if the channel cannot take another message without blocking (always true for
    /// zero capacity, never for unbounded).
    ///
    /// ```
    /// use gmp_chan::bounded;
    ///
    /// let (s, r) = bounded(1);
    /// assert!(!s.is_full());
    /// s.send(0).unwrap();
    /// assert!(s.is_full());
    /// # drop(r);
    /// ```
    pub fn is_full(&self) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => c.is_full(),
            SenderFlavor::List(_) => false,
            SenderFlavor::Zero(_) => true,
        }
    }

    /// The number of messages in the channel.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// assert_eq!(s.len(), 2);
    /// # drop(r);
    /// ```
    pub fn len(&self) -> usize {
        match &self.flavor {
            SenderFlavor::Array(c) => c.len(),
            SenderFlavor::List(c) => c.len(),
            SenderFlavor::Zero(_) => 0,
        }
    }

    /// The capacity: `None` for unbounded channels.
    ///
    /// ```
    /// use gmp_chan::{bounded, unbounded};
    ///
    /// assert_eq!(unbounded::<i32>().0.capacity(), None);
    /// assert_eq!(bounded::<i32>(5).0.capacity(), Some(5));
    /// assert_eq!(bounded::<i32>(0).0.capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.flavor {
            SenderFlavor::Array(c) => Some(c.capacity()),
            SenderFlavor::List(_) => None,
            SenderFlavor::Zero(_) => Some(0),
        }
    }

    /// True if both senders belong to the same channel.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, _) = unbounded::<usize>();
    /// let s2 = s.clone();
    /// assert!(s.same_channel(&s2));
    /// let (s3, _) = unbounded();
    /// assert!(!s.same_channel(&s3));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        match (&self.flavor, &other.flavor) {
            (SenderFlavor::Array(a), SenderFlavor::Array(b)) => a.same(b),
            (SenderFlavor::List(a), SenderFlavor::List(b)) => a.same(b),
            (SenderFlavor::Zero(a), SenderFlavor::Zero(b)) => a.same(b),
            _ => false,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        match &self.flavor {
            SenderFlavor::Array(c) => c.release(|c| {
                c.disconnect();
            }),
            SenderFlavor::List(c) => c.release(|c| {
                c.disconnect_senders();
            }),
            SenderFlavor::Zero(c) => c.release(|c| {
                c.disconnect();
            }),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            SenderFlavor::Array(c) => SenderFlavor::Array(c.acquire()),
            SenderFlavor::List(c) => SenderFlavor::List(c.acquire()),
            SenderFlavor::Zero(c) => SenderFlavor::Zero(c.acquire()),
        };
        Sender { flavor }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

/// The receiving side of a channel. Clone it to have several receivers (each message
/// goes to exactly one); the channel disconnects when the last one is dropped.
///
/// ```
/// use gmp_chan::unbounded;
/// use std::thread;
///
/// let (s, r) = unbounded();
/// thread::spawn(move || {
///     s.send(1).unwrap();
///     s.send(2).unwrap();
/// });
/// assert_eq!(r.recv(), Ok(1));
/// assert_eq!(r.recv(), Ok(2));
/// assert!(r.recv().is_err()); // the sender is gone
/// ```
pub struct Receiver<T> {
    flavor: ReceiverFlavor<T>,
}

enum ReceiverFlavor<T> {
    Array(Side<array::Channel<T>, RECEIVER>),
    List(Side<list::Channel<T>, RECEIVER>),
    Zero(Side<zero::Channel<T>, RECEIVER>),
    At(Arc<at::Channel>, fn(Instant) -> T),
    Tick(Arc<tick::Channel>, fn(Instant) -> T),
    Never(never::Channel<T>),
}

// SAFETY: a `Receiver` only moves `T`s out of the channel, sent by a `Sender` possibly on
// another thread: `T: Send` is what that needs (as for `std::sync::mpsc::Receiver`, plus
// `Sync` because several receivers may share a channel, which only hands each message to
// one of them).
unsafe impl<T: Send> Send for Receiver<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for Receiver<T> {}

impl<T> UnwindSafe for Receiver<T> {}
impl<T> RefUnwindSafe for Receiver<T> {}

impl<T> Receiver<T> {
    /// Receives without blocking: fails if the channel is empty (zero capacity: if no
    /// sender is waiting) or empty and disconnected.
    ///
    /// ```
    /// use gmp_chan::{unbounded, TryRecvError};
    ///
    /// let (s, r) = unbounded();
    /// assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    /// s.send(5).unwrap();
    /// drop(s);
    /// assert_eq!(r.try_recv(), Ok(5));
    /// assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.try_recv(),
            ReceiverFlavor::List(c) => c.try_recv(),
            ReceiverFlavor::Zero(c) => c.try_recv(),
            ReceiverFlavor::At(c, conv) => c.try_recv().map(conv),
            ReceiverFlavor::Tick(c, conv) => c.try_recv().map(conv),
            ReceiverFlavor::Never(_) => Err(TryRecvError::Empty),
        }
    }

    /// Receives, blocking while the channel is empty. Fails once the channel is empty and
    /// disconnected.
    ///
    /// ```
    /// use gmp_chan::{unbounded, RecvError};
    /// use std::thread;
    ///
    /// let (s, r) = unbounded();
    /// thread::spawn(move || s.send(5).unwrap());
    /// assert_eq!(r.recv(), Ok(5));
    /// assert_eq!(r.recv(), Err(RecvError));
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_inner(None).map_err(|e| match e {
            RecvTimeoutError::Disconnected => RecvError,
            RecvTimeoutError::Timeout => unreachable!("gmp_chan: recv without deadline timed out"),
        })
    }

    fn recv_inner(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.recv(deadline),
            ReceiverFlavor::List(c) => c.recv(deadline),
            ReceiverFlavor::Zero(c) => c.recv(deadline),
            ReceiverFlavor::At(c, conv) => c.recv(deadline).map(conv),
            ReceiverFlavor::Tick(c, conv) => c.recv(deadline).map(conv),
            ReceiverFlavor::Never(c) => c.recv(deadline),
        }
    }

    /// Receives, blocking for at most `timeout` while the channel is empty.
    ///
    /// ```
    /// use gmp_chan::{unbounded, RecvTimeoutError};
    /// use std::time::Duration;
    ///
    /// let (s, r) = unbounded::<i32>();
    /// assert_eq!(r.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
    /// drop(s);
    /// assert_eq!(r.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Disconnected));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(RecvTimeoutError::from),
        }
    }

    /// Receives, blocking until `deadline` at the latest while the channel is empty.
    ///
    /// ```
    /// use gmp_chan::{unbounded, RecvTimeoutError};
    /// use std::time::{Duration, Instant};
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert_eq!(r.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_inner(Some(deadline))
    }

    /// True if the channel holds no message.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// assert!(r.is_empty());
    /// s.send(0).unwrap();
    /// assert!(!r.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the channel cannot take another message.
    ///
    /// ```
    /// use gmp_chan::bounded;
    ///
    /// let (s, r) = bounded(1);
    /// assert!(!r.is_full());
    /// s.send(0).unwrap();
    /// assert!(r.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.is_full(),
            ReceiverFlavor::List(_) => false,
            ReceiverFlavor::Zero(_) | ReceiverFlavor::Never(_) => true,
            ReceiverFlavor::At(c, _) => c.len() == 1,
            ReceiverFlavor::Tick(c, _) => c.len() == 1,
        }
    }

    /// The number of messages in the channel.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// assert_eq!(r.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.len(),
            ReceiverFlavor::List(c) => c.len(),
            ReceiverFlavor::Zero(_) | ReceiverFlavor::Never(_) => 0,
            ReceiverFlavor::At(c, _) => c.len(),
            ReceiverFlavor::Tick(c, _) => c.len(),
        }
    }

    /// The capacity: `None` for unbounded channels, `Some(1)` for timers, `Some(0)` for
    /// zero-capacity and `never` channels.
    ///
    /// ```
    /// use gmp_chan::{bounded, never, unbounded};
    ///
    /// assert_eq!(unbounded::<i32>().1.capacity(), None);
    /// assert_eq!(bounded::<i32>(5).1.capacity(), Some(5));
    /// assert_eq!(never::<i32>().capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.flavor {
            ReceiverFlavor::Array(c) => Some(c.capacity()),
            ReceiverFlavor::List(_) => None,
            ReceiverFlavor::Zero(_) | ReceiverFlavor::Never(_) => Some(0),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) => Some(1),
        }
    }

    /// A blocking iterator: yields messages until the channel is empty and disconnected.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    /// use std::thread;
    ///
    /// let (s, r) = unbounded();
    /// thread::spawn(move || {
    ///     s.send(1).unwrap();
    ///     s.send(2).unwrap();
    /// });
    /// assert_eq!(r.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// A non-blocking iterator: yields the messages available right now.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// assert_eq!(r.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(r.try_iter().next(), None);
    /// # drop(s);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    /// True if both receivers belong to the same channel.
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (_, r) = unbounded::<usize>();
    /// let r2 = r.clone();
    /// assert!(r.same_channel(&r2));
    /// let (_, r3) = unbounded();
    /// assert!(!r.same_channel(&r3));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        match (&self.flavor, &other.flavor) {
            (ReceiverFlavor::Array(a), ReceiverFlavor::Array(b)) => a.same(b),
            (ReceiverFlavor::List(a), ReceiverFlavor::List(b)) => a.same(b),
            (ReceiverFlavor::Zero(a), ReceiverFlavor::Zero(b)) => a.same(b),
            (ReceiverFlavor::At(a, _), ReceiverFlavor::At(b, _)) => Arc::ptr_eq(a, b),
            (ReceiverFlavor::Tick(a, _), ReceiverFlavor::Tick(b, _)) => Arc::ptr_eq(a, b),
            (ReceiverFlavor::Never(_), ReceiverFlavor::Never(_)) => true,
            _ => false,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.release(|c| {
                c.disconnect();
            }),
            ReceiverFlavor::List(c) => c.release(|c| {
                c.disconnect_receivers();
            }),
            ReceiverFlavor::Zero(c) => c.release(|c| {
                c.disconnect();
            }),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {}
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            ReceiverFlavor::Array(c) => ReceiverFlavor::Array(c.acquire()),
            ReceiverFlavor::List(c) => ReceiverFlavor::List(c.acquire()),
            ReceiverFlavor::Zero(c) => ReceiverFlavor::Zero(c.acquire()),
            ReceiverFlavor::At(c, conv) => ReceiverFlavor::At(c.clone(), *conv),
            ReceiverFlavor::Tick(c, conv) => ReceiverFlavor::Tick(c.clone(), *conv),
            ReceiverFlavor::Never(_) => ReceiverFlavor::Never(never::Channel::new()),
        };
        Receiver { flavor }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        IntoIter { receiver: self }
    }
}

/// A blocking iterator over messages, from [`Receiver::iter`]; ends when the channel is
/// empty and disconnected.
///
/// ```
/// use gmp_chan::unbounded;
///
/// let (s, r) = unbounded();
/// s.send(1).unwrap();
/// drop(s);
/// let mut it = r.iter();
/// assert_eq!(it.next(), Some(1));
/// assert_eq!(it.next(), None);
/// ```
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> FusedIterator for Iter<'_, T> {}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Iter { .. }")
    }
}

/// A non-blocking iterator over the messages available now, from
/// [`Receiver::try_iter`].
///
/// ```
/// use gmp_chan::unbounded;
///
/// let (s, r) = unbounded();
/// s.send(1).unwrap();
/// assert_eq!(r.try_iter().collect::<Vec<_>>(), [1]);
/// # drop(s);
/// ```
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("TryIter { .. }")
    }
}

/// A blocking iterator that owns its [`Receiver`] (from `Receiver::into_iter`).
///
/// ```
/// use gmp_chan::unbounded;
///
/// let (s, r) = unbounded();
/// s.send(1).unwrap();
/// s.send(2).unwrap();
/// drop(s);
/// assert_eq!(r.into_iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> FusedIterator for IntoIter<T> {}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("IntoIter { .. }")
    }
}

impl<T> SelectHandle for Sender<T> {
    fn try_select(&self, token: &mut Token) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => c.start_send(token),
            // Unbounded: always ready; `write` reports a disconnection itself.
            SenderFlavor::List(_) => true,
            SenderFlavor::Zero(c) => c.start_send(token),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn register(&self, oper: Operation, cx: &Context) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => {
                c.senders().register(oper, cx);
                !c.is_full() || c.is_disconnected()
            }
            SenderFlavor::List(_) => true,
            SenderFlavor::Zero(c) => c.register(oper, cx, true),
        }
    }

    fn unregister(&self, oper: Operation, cx: &Context) {
        match &self.flavor {
            SenderFlavor::Array(c) => {
                c.senders().unregister(oper, cx);
            }
            SenderFlavor::List(_) => {}
            SenderFlavor::Zero(c) => c.unregister(oper, cx, true),
        }
    }

    fn accept(&self, token: &mut Token, cx: &Context) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => c.start_send(token),
            SenderFlavor::List(_) => true,
            SenderFlavor::Zero(c) => c.accept(token, cx, true),
        }
    }

    fn abandon(&self, cx: &Context) {
        match &self.flavor {
            SenderFlavor::Array(c) => c.senders().notify(),
            SenderFlavor::List(_) => {}
            SenderFlavor::Zero(c) => c.abandon_selected(cx, true),
        }
    }

    fn is_ready(&self) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => !c.is_full() || c.is_disconnected(),
            SenderFlavor::List(_) => true,
            SenderFlavor::Zero(c) => c.is_ready(true),
        }
    }

    fn watch(&self, oper: Operation, cx: &Context) -> bool {
        match &self.flavor {
            SenderFlavor::Array(c) => {
                c.senders().watch(oper, cx);
                !c.is_full() || c.is_disconnected()
            }
            SenderFlavor::List(_) => true,
            SenderFlavor::Zero(c) => c.watch(oper, cx, true),
        }
    }

    fn unwatch(&self, oper: Operation, cx: &Context) {
        match &self.flavor {
            SenderFlavor::Array(c) => c.senders().unwatch(oper, cx),
            SenderFlavor::List(_) => {}
            SenderFlavor::Zero(c) => c.unwatch(oper, cx, true),
        }
    }
}

impl<T> SelectHandle for Receiver<T> {
    fn try_select(&self, token: &mut Token) -> bool {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.start_recv(token),
            ReceiverFlavor::List(c) => c.start_recv(token),
            ReceiverFlavor::Zero(c) => c.start_recv(token),
            ReceiverFlavor::At(c, _) => claim_instant(c.try_recv(), token),
            ReceiverFlavor::Tick(c, _) => claim_instant(c.try_recv(), token),
            ReceiverFlavor::Never(_) => false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.flavor {
            ReceiverFlavor::At(c, _) => c.deadline(),
            ReceiverFlavor::Tick(c, _) => c.deadline(),
            _ => None,
        }
    }

    fn register(&self, oper: Operation, cx: &Context) -> bool {
        match &self.flavor {
            ReceiverFlavor::Array(c) => {
                c.receivers().register(oper, cx);
                !c.is_empty() || c.is_disconnected()
            }
            ReceiverFlavor::List(c) => c.register(oper, cx),
            ReceiverFlavor::Zero(c) => c.register(oper, cx, false),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {
                self.is_ready()
            }
        }
    }

    fn unregister(&self, oper: Operation, cx: &Context) {
        match &self.flavor {
            ReceiverFlavor::Array(c) => {
                c.receivers().unregister(oper, cx);
            }
            ReceiverFlavor::List(c) => c.unregister(oper, cx),
            ReceiverFlavor::Zero(c) => c.unregister(oper, cx, false),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {}
        }
    }

    fn accept(&self, token: &mut Token, cx: &Context) -> bool {
        match &self.flavor {
            ReceiverFlavor::Zero(c) => c.accept(token, cx, false),
            _ => self.try_select(token),
        }
    }

    fn abandon(&self, cx: &Context) {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.receivers().notify(),
            ReceiverFlavor::List(c) => c.forward(),
            ReceiverFlavor::Zero(c) => c.abandon_selected(cx, false),
            // Timer and `never` channels register nothing a peer could choose.
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {}
        }
    }

    fn is_ready(&self) -> bool {
        match &self.flavor {
            ReceiverFlavor::Array(c) => !c.is_empty() || c.is_disconnected(),
            ReceiverFlavor::List(c) => c.is_ready(),
            ReceiverFlavor::Zero(c) => c.is_ready(false),
            ReceiverFlavor::At(c, _) => c.is_ready(),
            ReceiverFlavor::Tick(c, _) => c.is_ready(),
            ReceiverFlavor::Never(_) => false,
        }
    }

    fn watch(&self, oper: Operation, cx: &Context) -> bool {
        match &self.flavor {
            ReceiverFlavor::Array(c) => {
                c.receivers().watch(oper, cx);
                !c.is_empty() || c.is_disconnected()
            }
            ReceiverFlavor::List(c) => c.watch(oper, cx),
            ReceiverFlavor::Zero(c) => c.watch(oper, cx, false),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {
                self.is_ready()
            }
        }
    }

    fn unwatch(&self, oper: Operation, cx: &Context) {
        match &self.flavor {
            ReceiverFlavor::Array(c) => c.receivers().unwatch(oper, cx),
            ReceiverFlavor::List(c) => c.unwatch(oper, cx),
            ReceiverFlavor::Zero(c) => c.unwatch(oper, cx, false),
            ReceiverFlavor::At(..) | ReceiverFlavor::Tick(..) | ReceiverFlavor::Never(_) => {}
        }
    }
}

fn claim_instant(res: Result<Instant, TryRecvError>, token: &mut Token) -> bool {
    match res {
        Ok(t) => {
            token.instant = Some(t);
            true
        }
        Err(_) => false,
    }
}

/// Completes a send reserved by `select`.
///
/// # Safety
///
/// `token` must have been filled by `try_select`/`accept` of this very `Sender`, and be
/// used once.
pub(crate) unsafe fn write<T>(s: &Sender<T>, token: &mut Token, msg: T) -> Result<(), T> {
    match &s.flavor {
        // SAFETY: forwarded from the caller.
        SenderFlavor::Array(c) => unsafe { c.write(token, msg) },
        SenderFlavor::List(c) => c.send(msg),
        // SAFETY: forwarded from the caller.
        SenderFlavor::Zero(c) => unsafe { c.write(token, msg) },
    }
}

/// Completes a receive reserved by `select`.
///
/// # Safety
///
/// `token` must have been filled by `try_select`/`accept` of this very `Receiver`, and
/// be used once.
pub(crate) unsafe fn read<T>(r: &Receiver<T>, token: &mut Token) -> Result<T, ()> {
    match &r.flavor {
        // SAFETY: forwarded from the caller.
        ReceiverFlavor::Array(c) => unsafe { c.read(token) },
        // SAFETY: forwarded from the caller.
        ReceiverFlavor::List(c) => unsafe { c.read(token) },
        // SAFETY: forwarded from the caller.
        ReceiverFlavor::Zero(c) => unsafe { c.read(token) },
        ReceiverFlavor::At(_, conv) | ReceiverFlavor::Tick(_, conv) => {
            token.instant.take().map(conv).ok_or(())
        }
        ReceiverFlavor::Never(_) => Err(()),
    }
}
