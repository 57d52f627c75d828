//! The unbounded channel (`unbounded()`): a `VecDeque` under one mutex, as Go's `hchan`
//! keeps its buffer and wait queues under one lock.
//!
//! # Algorithm and invariants
//!
//! Everything lives in [`Inner`], behind the mutex: the queue, the number of messages
//! *reserved* by `select` (see below), the disconnected flag and the receivers' wait
//! queue. Senders never block, so there is no senders' queue.
//!
//! - A sender pushes, then (still under the lock) takes the oldest receiver whose
//!   decision word it wins and wakes it after unlocking. Because registration happens
//!   under the same lock as the emptiness check, a wake-up cannot be lost.
//! - `available = queue.len() - reserved` is what receivers may claim. A `select` arm
//!   claims one message in `start_recv` (`reserved += 1`) and pops it in `read`; plain
//!   receivers pop directly when `available > 0`. Reservations are anonymous: whoever
//!   pops takes the front, so FIFO order is kept among actual pops.
//! - A receiver that leaves its park by unwinding (a panic, or gmp-core's forced unwind
//!   of a goroutine dropped while parked at a runtime's shutdown) removes its entry from a
//!   guard armed right after registering, or, if a sender had already chosen it, passes
//!   the wake-up on to the next receiver: messages stay queued, none is lost.
//! - Memory follows the backlog: after a burst the queue's capacity is halved each time it
//!   is down to a quarter full (`Inner::pop`), so what a burst allocated is given back
//!   as it drains instead of being kept for the channel's lifetime.
//! - When the last receiver goes, the queue is emptied at once (its messages dropped
//!   outside the lock) and later sends fail, giving their message back. When the last
//!   sender goes, receivers drain the queue, then see "disconnected".

use crate::context::{Context, OnUnwind, Operation, Selected};
use crate::err::{RecvTimeoutError, TryRecvError};
use crate::select::Token;
use crate::utils::{self, Backoff};
use crate::waker::Waker;
use gmp_core::park::WaitReason;
use gmp_core::sync::Mutex;
use std::collections::VecDeque;
use std::time::Instant;

/// What `start_recv` reserved: whether a message was claimed (else: disconnected).
#[derive(Debug, Default)]
pub(crate) struct ListToken {
    reserved: bool,
}

struct Inner<T> {
    queue: VecDeque<T>,
    reserved: usize,
    disconnected: bool,
    receivers: Waker,
}

/// Below this many slots the queue never shrinks (it would only thrash).
const MIN_CAPACITY: usize = 64;

impl<T> Inner<T> {
    /// Pops the front message and gives memory back after a burst: once the queue is at
    /// most a quarter full, its capacity is halved (amortised O(1) per message: each halving
    /// moves at most a quarter of the slots, and follows at least as many pops). So a
    /// queue that once held a million messages does not keep their memory for good: it
    /// holds at most four times what it holds now (and `MIN_CAPACITY`), as
    /// crossbeam-channel's block list, which frees blocks as they empty, roughly does.
    #[inline]
    fn pop(&mut self) -> Option<T> {
        let msg = self.queue.pop_front();
        let cap = self.queue.capacity();
        if cap > MIN_CAPACITY && self.queue.len() <= cap / 4 {
            self.queue.shrink_to(cap / 2);
        }
        msg
    }

    #[inline]
    fn available(&self) -> usize {
        // Saturating: a `SelectedOperation` leaked without completing keeps its claim.
        self.queue.len().saturating_sub(self.reserved)
    }
}

/// An unbounded channel.
pub(crate) struct Channel<T> {
    inner: Mutex<Inner<T>>,
}

impl<T> Channel<T> {
    pub(crate) fn new() -> Self {
        Channel {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                reserved: 0,
                disconnected: false,
                receivers: Waker::new(),
            }),
        }
    }

    /// Sends (never blocks); gives the message back if the receivers are gone.
    // Go: runtime.chansend (a waiting receiver is woken; here it takes the message itself)
    pub(crate) fn send(&self, msg: T) -> Result<(), T> {
        let mut inner = self.inner.lock();
        if inner.disconnected {
            return Err(msg);
        }
        inner.queue.push_back(msg);
        let woken = inner.receivers.try_select(None);
        if inner.receivers.has_observers() {
            inner.receivers.notify_observers();
        }
        drop(inner);
        if let Some(e) = woken {
            e.cx.unpark();
        }
        Ok(())
    }

    /// Claims one message for a later `read`. False if none is available; true with an
    /// empty token if the channel is empty and disconnected.
    pub(crate) fn start_recv(&self, token: &mut Token) -> bool {
        let mut inner = self.inner.lock();
        if inner.available() > 0 {
            inner.reserved += 1;
            token.list.reserved = true;
            true
        } else if inner.disconnected {
            token.list.reserved = false;
            true
        } else {
            false
        }
    }

    /// Pops the message claimed by `start_recv`.
    pub(crate) fn read(&self, token: &mut Token) -> Result<T, ()> {
        if !token.list.reserved {
            return Err(());
        }
        token.list.reserved = false;
        let mut inner = self.inner.lock();
        inner.reserved -= 1;
        // A reservation holds a receiver alive, so the queue was not emptied by a
        // receivers' disconnect: the claimed message is there.
        Ok(inner.pop().expect("gmp_chan: reserved message vanished"))
    }

    /// Receives without blocking.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut inner = self.inner.lock();
        if inner.available() > 0 {
            Ok(inner.pop().expect("available > 0"))
        } else if inner.disconnected {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Receives, blocking while empty, until `deadline` if any.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let backoff = Backoff::new();
        loop {
            match self.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if backoff.is_completed() {
                break;
            }
            backoff.snooze();
        }
        let mut waited = false;
        loop {
            let cx = Context::new();
            let oper = Operation::new(0);
            {
                let mut inner = self.inner.lock();
                if inner.available() > 0 {
                    return Ok(inner.pop().expect("available > 0"));
                }
                if inner.disconnected {
                    return Err(RecvTimeoutError::Disconnected);
                }
                if let Some(d) = deadline {
                    if utils::timed_out(d, waited) {
                        return Err(RecvTimeoutError::Timeout);
                    }
                }
                // Registered under the lock that guards the queue: no lost wake-up.
                inner.receivers.register(oper, &cx);
            }
            let guard = OnUnwind::new(|| self.abandon(oper, &cx));
            let sel = cx.wait_until(deadline, WaitReason::ChanReceive);
            guard.disarm();
            waited = true;
            match sel {
                Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                Selected::Aborted | Selected::Disconnected => {
                    self.inner.lock().receivers.unregister(oper, &cx);
                }
                Selected::Operation(_) => {}
            }
            cx.recycle();
        }
    }

    /// The owner of a blocked receive's registration leaves by unwinding: it decides
    /// `Aborted` and removes its entry, or, if a sender had already chosen it, passes the
    /// wake-up on ([`forward`](Channel::forward)). Never parks.
    pub(crate) fn abandon(&self, oper: Operation, cx: &Context) {
        match cx.abort() {
            Selected::Operation(_) => self.forward(),
            _ => {
                self.inner.lock().receivers.unregister(oper, cx);
            }
        }
    }

    /// A receiver chosen by a sender will not take a message after all (it unwound): wake
    /// the next waiting receiver if a message is available, so none sleeps next to it.
    pub(crate) fn forward(&self) {
        let mut inner = self.inner.lock();
        let woken = if inner.available() > 0 {
            inner.receivers.try_select(None)
        } else {
            None
        };
        drop(inner);
        if let Some(e) = woken {
            e.cx.unpark();
        }
    }

    /// Registers a `select` arm; true if it is ready right now.
    pub(crate) fn register(&self, oper: Operation, cx: &Context) -> bool {
        let mut inner = self.inner.lock();
        inner.receivers.register(oper, cx);
        inner.available() > 0 || inner.disconnected
    }

    /// Removes a `select` arm's registration.
    pub(crate) fn unregister(&self, oper: Operation, cx: &Context) {
        self.inner.lock().receivers.unregister(oper, cx);
    }

    /// Registers a readiness observer; true if ready right now.
    pub(crate) fn watch(&self, oper: Operation, cx: &Context) -> bool {
        let mut inner = self.inner.lock();
        inner.receivers.watch(oper, cx);
        inner.available() > 0 || inner.disconnected
    }

    /// Removes a readiness observer.
    pub(crate) fn unwatch(&self, oper: Operation, cx: &Context) {
        self.inner.lock().receivers.unwatch(oper, cx);
    }

    /// True if a receive would not block.
    pub(crate) fn is_ready(&self) -> bool {
        let inner = self.inner.lock();
        inner.available() > 0 || inner.disconnected
    }

    /// Messages available to receive.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().available()
    }

    /// The last sender is gone: wake the receivers. True if this call disconnected.
    pub(crate) fn disconnect_senders(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.disconnected {
            return false;
        }
        inner.disconnected = true;
        inner.receivers.disconnect();
        true
    }

    /// The last receiver is gone: fail later sends and drop the queued messages now.
    pub(crate) fn disconnect_receivers(&self) -> bool {
        let mut inner = self.inner.lock();
        let first = !inner.disconnected;
        inner.disconnected = true;
        inner.receivers.disconnect();
        let dropped = std::mem::take(&mut inner.queue);
        inner.reserved = 0;
        drop(inner);
        // Messages' destructors run outside the lock: they may use channels too.
        drop(dropped);
        first
    }
}
