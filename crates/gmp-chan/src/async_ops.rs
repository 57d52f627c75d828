//! Async channel operations: [`Sender::send_async`], [`Receiver::recv_async`] and
//! `Receiver::stream` (feature `futures`), so that async tasks (tokio's, any
//! executor's) and goroutines or threads share channels.
//!
//! # How a future waits
//!
//! A future cannot park, so it waits in the channel's own wait queue with a waiter
//! record (a [`BoxedContext`], on the heap) whose unparker wakes the task's [`Waker`]
//! instead of a goroutine or thread. The same queue holds blocked goroutines and threads, so a channel may have
//! a tokio task on one end and goroutines on the other, and each side wakes the other
//! exactly as two goroutines would.
//!
//! - A receive future registers as an *observer* of the receive side (the record a
//!   `Select::ready` leaves): it is woken whenever a message arrives or the channel
//!   closes, and then takes the message itself with `try_recv`. So it never holds a
//!   message it has not returned: **dropping a `recv_async` future loses no message**.
//! - A send future on a buffered channel observes the send side the same way and puts
//!   its message in with `try_send` once there is room. On a zero-capacity channel it
//!   registers as a blocked sender whose message waits in a heap packet, which a
//!   receiver takes exactly as from a blocked `send` (two observers alone would never
//!   meet). **Dropping a `send_async` future that has not completed drops its message**,
//!   unless a receiver had already taken it (then it was delivered); nobody gets it back,
//!   as with a `send` that fails on disconnection.
//!
//! A registration is removed when its future completes or is dropped: it never outlives
//! the future.
//!
//! Go has no futures; the waiting itself mirrors `runtime.chanrecv`/`chansend` with the
//! task in place of the goroutine (a `sudog` whose `g` is a waker).

use super::{Receiver, ReceiverFlavor, Sender, SenderFlavor};
use crate::context::{BoxedContext, Operation};
use crate::err::{RecvError, SendError, TryRecvError, TrySendError};
use crate::flavors::zero::AsyncSend;
use crate::select::SelectHandle;
use gmp_core::park::{Unpark, Unparker};
use gmp_core::sync::Mutex;
// The slot's reference count is plain std: `Unparker` holds a std `Arc<dyn Unpark>`
// (loom's `Arc` cannot hold a trait object), and it is no part of a checked protocol.
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

/// The task side of a registration: the waker of the task that polled last. Shared (by
/// reference count) by the future and by the records it registers, whose unparker it is.
struct TaskSlot {
    waker: Mutex<Option<Waker>>,
}

impl TaskSlot {
    fn new(waker: &Waker) -> TaskSlot {
        TaskSlot {
            waker: Mutex::new(Some(waker.clone())),
        }
    }

    /// Remembers the waker of the current poll (a clone only if it changed). Done before
    /// the future re-checks the channel, so a wake-up that comes after the check goes to
    /// this waker: no lost wake-up.
    fn set(&self, waker: &Waker) {
        let mut w = self.waker.lock();
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }
}

impl Unpark for TaskSlot {
    fn unpark(&self) {
        // Called with a channel lock held (as every unpark is): waking only schedules the
        // task, it never runs it here.
        if let Some(w) = &*self.waker.lock() {
            w.wake_by_ref();
        }
    }
}

/// The wait state common to the futures: the task slot, made on the first `Pending`,
/// and the current observer record, if registered.
#[derive(Default)]
struct Wait {
    slot: Option<Arc<TaskSlot>>,
    watching: Option<BoxedContext>,
}

impl Wait {
    /// A fresh record for the task polling with `waker`.
    fn context(&mut self, waker: &Waker) -> BoxedContext {
        let slot = match &self.slot {
            Some(s) => {
                s.set(waker);
                s.clone()
            }
            None => {
                let s = Arc::new(TaskSlot::new(waker));
                self.slot = Some(s.clone());
                s
            }
        };
        BoxedContext::with_unparker(Unparker::new(slot))
    }

    /// Observes `handle`: registers a fresh record; true if the operation is ready now
    /// (then the caller retries it at once).
    fn watch(&mut self, handle: &dyn SelectHandle, waker: &Waker) -> bool {
        let cx = self.context(waker);
        let ready = handle.watch(oper(), &cx);
        self.watching = Some(cx);
        if let Some(d) = handle.deadline() {
            // A timer channel (`after`, `at`, `tick`): nothing in the channel wakes it.
            if let Some(slot) = &self.slot {
                timer::wake_at(d, slot);
            }
        }
        ready
    }

    /// Withdraws the observer record, if any (a no-op when the channel already woke and
    /// dropped it).
    fn unwatch(&mut self, handle: &dyn SelectHandle) {
        if let Some(cx) = self.watching.take() {
            handle.unwatch(oper(), &cx);
        }
    }
}

/// Every async registration is the single operation of its record.
fn oper() -> Operation {
    Operation::new(0)
}

impl<T> Receiver<T> {
    /// Receives a message asynchronously: a future that resolves to the next message, or
    /// to [`RecvError`] once the channel is empty and disconnected — the results of
    /// [`recv`](Receiver::recv), without blocking the executor's thread.
    ///
    /// Cancel-safe: dropping the future before it completes loses no message (it never
    /// takes one it does not return; see the module docs of `async_ops`).
    ///
    /// ```
    /// use gmp_chan::unbounded;
    ///
    /// let (s, r) = unbounded();
    /// let t = std::thread::spawn(move || s.send(7).unwrap());
    /// // Any executor will do; a minimal one for the example:
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(&w)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// assert_eq!(block_on(r.recv_async()), Ok(7));
    /// t.join().unwrap();
    /// assert!(block_on(r.recv_async()).is_err()); // empty and disconnected
    /// ```
    pub fn recv_async(&self) -> RecvFut<'_, T> {
        RecvFut {
            rx: self,
            wait: Wait::default(),
        }
    }

    /// The shared body of [`RecvFut`] and `RecvStream`.
    fn poll_recv(&self, wait: &mut Wait, cx: &mut TaskContext<'_>) -> Poll<Result<T, RecvError>> {
        loop {
            wait.unwatch(self);
            match self.try_recv() {
                Ok(msg) => return Poll::Ready(Ok(msg)),
                Err(TryRecvError::Disconnected) => return Poll::Ready(Err(RecvError)),
                Err(TryRecvError::Empty) => {}
            }
            if let ReceiverFlavor::Never(_) = &self.flavor {
                // Nothing will ever arrive, and there is nothing to observe.
                return Poll::Pending;
            }
            if !wait.watch(self, cx.waker()) {
                return Poll::Pending;
            }
            // Ready right after registering: retry (the observer record goes first).
        }
    }

    /// A [`Stream`](futures_core::Stream) of the messages, ending when the channel is
    /// empty and disconnected (feature `futures`, which brings in `futures-core`).
    /// Dropping it between items loses no message.
    ///
    /// ```
    /// use futures_core::Stream;
    /// use gmp_chan::unbounded;
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let (s, r) = unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// drop(s);
    /// let mut st = pin!(r.stream());
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(st.as_mut().poll_next(&mut cx), Poll::Ready(Some(1)));
    /// assert_eq!(st.as_mut().poll_next(&mut cx), Poll::Ready(Some(2)));
    /// assert_eq!(st.as_mut().poll_next(&mut cx), Poll::Ready(None));
    /// ```
    #[cfg(feature = "futures")]
    pub fn stream(&self) -> RecvStream<'_, T> {
        RecvStream {
            rx: self,
            wait: Wait::default(),
            done: false,
        }
    }
}

/// The future of [`Receiver::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvFut<'a, T> {
    rx: &'a Receiver<T>,
    wait: Wait,
}

impl<T> Future for RecvFut<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.rx.poll_recv(&mut this.wait, cx)
    }
}

impl<T> Drop for RecvFut<'_, T> {
    fn drop(&mut self) {
        self.wait.unwatch(self.rx);
    }
}

impl<T> fmt::Debug for RecvFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFut")
            .field("waiting", &self.wait.watching.is_some())
            .finish()
    }
}

/// The stream of [`Receiver::stream`] (feature `futures`).
#[cfg(feature = "futures")]
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a, T> {
    rx: &'a Receiver<T>,
    wait: Wait,
    done: bool,
}

#[cfg(feature = "futures")]
impl<T> futures_core::Stream for RecvStream<'_, T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(&mut this.wait, cx) {
            Poll::Ready(Ok(msg)) => Poll::Ready(Some(msg)),
            Poll::Ready(Err(RecvError)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(feature = "futures")]
impl<T> futures_core::FusedStream for RecvStream<'_, T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

#[cfg(feature = "futures")]
impl<T> Drop for RecvStream<'_, T> {
    fn drop(&mut self) {
        self.wait.unwatch(self.rx);
    }
}

#[cfg(feature = "futures")]
impl<T> fmt::Debug for RecvStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("done", &self.done)
            .finish()
    }
}

impl<T> Sender<T> {
    /// Sends a message asynchronously: a future that resolves once the message is in
    /// the channel (zero capacity: once a receiver has taken it), or to
    /// [`SendError`] with the message if the channel is or becomes disconnected — the
    /// results of [`send`](Sender::send), without blocking the executor's thread.
    ///
    /// Dropping the future before it completes drops the message, unless a receiver of
    /// a zero-capacity channel had already taken it (then it was delivered); see the
    /// module docs of `async_ops`.
    ///
    /// ```
    /// use gmp_chan::bounded;
    ///
    /// let (s, r) = bounded(0);
    /// let t = std::thread::spawn(move || r.recv().unwrap());
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(&w)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// block_on(s.send_async(5)).unwrap(); // completes when the thread has it
    /// assert_eq!(t.join().unwrap(), 5);
    /// assert_eq!(block_on(s.send_async(6)).unwrap_err().into_inner(), 6);
    /// ```
    pub fn send_async(&self, msg: T) -> SendFut<'_, T> {
        SendFut {
            tx: self,
            msg: Some(msg),
            wait: Wait::default(),
            zero: None,
        }
    }
}

/// The future of [`Sender::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFut<'a, T> {
    tx: &'a Sender<T>,
    /// The message, until it is in the channel (or in `zero`'s packet).
    msg: Option<T>,
    wait: Wait,
    /// A zero-capacity channel's registration: the heap packet holding the message and
    /// the record it is queued under.
    zero: Option<(*mut (), BoxedContext)>,
}

// SAFETY: the only non-`Send` field is `zero`'s raw pointer, to a packet that holds a
// `T` and is shared with receivers under the zero-capacity flavour's protocol (as a
// blocked sender's stack packet is): moving the future to another thread moves only
// the right to poll or cancel it, which needs `T: Send` as sending does.
unsafe impl<T: Send> Send for SendFut<'_, T> {}

impl<T> Unpin for SendFut<'_, T> {}

impl<T> Future for SendFut<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((packet, record)) = &this.zero {
            let SenderFlavor::Zero(chan) = &this.tx.flavor else {
                unreachable!("gmp_chan: zero-capacity registration on another flavour")
            };
            if let Some(s) = &this.wait.slot {
                s.set(cx.waker());
            }
            // SAFETY: `packet` came from `start_send_async` on this channel with `record`,
            // and is cleared below as soon as a result is returned.
            let res = unsafe { chan.poll_send_async(*packet, oper(), record) };
            match res {
                None => return Poll::Pending,
                Some(AsyncSend::Sent) => {
                    this.zero = None;
                    return Poll::Ready(Ok(()));
                }
                Some(AsyncSend::Disconnected(msg)) => {
                    this.zero = None;
                    return Poll::Ready(Err(SendError(msg)));
                }
                Some(AsyncSend::Retry(msg)) => {
                    // A receiver chose us and gave up: offer the message again.
                    this.zero = None;
                    this.msg = Some(msg);
                }
            }
        }
        loop {
            this.wait.unwatch(this.tx);
            let msg = this
                .msg
                .take()
                .expect("gmp_chan: SendFut polled after completion");
            if let SenderFlavor::Zero(chan) = &this.tx.flavor {
                let record = this.wait.context(cx.waker());
                return match chan.start_send_async(msg, oper(), &record) {
                    Ok(None) => Poll::Ready(Ok(())),
                    Err(msg) => Poll::Ready(Err(SendError(msg))),
                    Ok(Some(packet)) => {
                        this.zero = Some((packet, record));
                        // A receiver may have taken it between registration and now: its
                        // wake-up reaches the slot, which already holds this waker.
                        Poll::Pending
                    }
                };
            }
            match this.tx.try_send(msg) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(TrySendError::Disconnected(msg)) => return Poll::Ready(Err(SendError(msg))),
                Err(TrySendError::Full(msg)) => this.msg = Some(msg),
            }
            if !this.wait.watch(this.tx, cx.waker()) {
                return Poll::Pending;
            }
        }
    }
}

impl<T> Drop for SendFut<'_, T> {
    fn drop(&mut self) {
        self.wait.unwatch(self.tx);
        if let Some((packet, record)) = self.zero.take() {
            let SenderFlavor::Zero(chan) = &self.tx.flavor else {
                unreachable!("gmp_chan: zero-capacity registration on another flavour")
            };
            // SAFETY: as in `poll`: a live registration, withdrawn once.
            unsafe { chan.cancel_send_async(packet, oper(), &record) };
        }
    }
}

impl<T> fmt::Debug for SendFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFut")
            .field("sent", &self.msg.is_none())
            .finish()
    }
}

/// Wake-ups at a deadline for futures on timer channels (`after`, `at`, `tick`), which
/// nothing else wakes: one lazily started thread sleeping until the earliest deadline.
mod timer {
    use super::TaskSlot;
    use gmp_core::park::Unpark;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
    use std::time::Instant;

    struct Entry {
        at: Instant,
        seq: u64,
        slot: Weak<TaskSlot>,
    }

    impl PartialEq for Entry {
        fn eq(&self, o: &Self) -> bool {
            (self.at, self.seq) == (o.at, o.seq)
        }
    }
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Entry {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            (self.at, self.seq).cmp(&(o.at, o.seq))
        }
    }

    struct Timers {
        heap: Mutex<(BinaryHeap<Reverse<Entry>>, u64)>,
        cvar: Condvar,
    }

    fn timers() -> &'static Timers {
        static T: OnceLock<Timers> = OnceLock::new();
        T.get_or_init(|| {
            std::thread::Builder::new()
                .name("gmp-chan-async-timer".into())
                .spawn(run)
                .expect("gmp_chan: cannot start the timer thread of async receives");
            Timers {
                heap: Mutex::new((BinaryHeap::new(), 0)),
                cvar: Condvar::new(),
            }
        })
    }

    /// Wakes `slot`'s task at `at` (or later). A slot whose future is gone is skipped.
    pub(super) fn wake_at(at: Instant, slot: &Arc<TaskSlot>) {
        let t = timers();
        let mut g = t.heap.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        let seq = g.1;
        let earliest = g.0.peek().is_none_or(|Reverse(e)| at < e.at);
        g.0.push(Reverse(Entry {
            at,
            seq,
            slot: Arc::downgrade(slot),
        }));
        drop(g);
        if earliest {
            t.cvar.notify_one();
        }
    }

    fn run() {
        let t = timers();
        let mut g = t.heap.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while g.0.peek().is_some_and(|Reverse(e)| e.at <= now) {
                let Reverse(e) = g.0.pop().expect("peeked");
                due.push(e.slot);
            }
            if !due.is_empty() {
                drop(g);
                for s in due.into_iter().filter_map(|w| w.upgrade()) {
                    s.unpark();
                }
                g = t.heap.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            g = match g.0.peek().map(|Reverse(e)| e.at) {
                Some(at) => {
                    t.cvar
                        .wait_timeout(g, at.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => t.cvar.wait(g).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
