//! The wait queue every lock here parks on (Go's `semaRoot` queue of sudogs).
//!
//! A blocked caller allocates a [`Waiter`] (its decision word and its
//! `gmp_core::park::current()` unparker), pushes it on the lock's [`WaitQueue`] under the
//! queue's short internal lock, and parks until a releaser decides it: `WOKEN` (normal
//! mode: go and compete again) or `GRANTED` (the releaser handed it the lock, the read
//! share, the permits or the notification directly). Whoever decides a waiter pops it from
//! the queue first, under the queue lock, so a waiter is decided at most once and a waiter
//! still in the queue is undecided.
//!
//! A waiter leaves the queue on every way out of its park: decided (popped by the
//! releaser), timed out, or unwound (a forced unwind of a goroutine at shutdown, or any
//! panic raised out of the park). The last two go through [`Registration`], a drop guard on
//! the waiter's own stack that takes the queue lock, removes the waiter if it is still
//! queued, and otherwise tells the caller what it had been given so the caller can pass it
//! on (a granted lock is unlocked again, a consumed wake-up is handed to the next waiter).
//! No registration outlives the park that made it (ARCHITECTURE.md, "Second wave").
//!
//! Ordering: a decision is published with a `Release` store after the releaser's writes
//! (the state word it changed for the waiter) and read with `Acquire`, so a waiter that sees
//! `GRANTED` sees the state the releaser left. Everything else is under the queue lock.

use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use gmp_core::sync::{Arc, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::time::Instant;

/// Undecided: still in the queue.
pub(crate) const WAITING: u8 = 0;
/// Woken to compete again (normal mode); nothing was handed over.
pub(crate) const WOKEN: u8 = 1;
/// Handed the resource directly (the lock, a read share, permits, a notification).
pub(crate) const GRANTED: u8 = 2;

/// One blocked caller.
#[derive(Debug)]
pub(crate) struct Waiter {
    state: AtomicU8,
    unparker: Unparker,
    /// What the waiter asks for (a semaphore's permit count; 1 elsewhere).
    pub(crate) n: usize,
    /// Which queue of the lock it waits in (RwLock: readers or writers).
    pub(crate) kind: u8,
}

impl Waiter {
    /// A fresh, undecided waiter for whoever runs (goroutine or thread).
    pub(crate) fn new(n: usize, kind: u8) -> Arc<Waiter> {
        Arc::new(Waiter {
            state: AtomicU8::new(WAITING),
            unparker: park::current(),
            n,
            kind,
        })
    }

    /// Decides the waiter (the caller popped it under the queue lock) and returns the
    /// unparker to wake it with once the queue lock is dropped.
    pub(crate) fn decide(&self, outcome: u8) -> Unparker {
        // Release: publishes the releaser's state changes to the waiter's Acquire load.
        self.state.store(outcome, Ordering::Release);
        self.unparker.clone()
    }

    /// The current decision.
    pub(crate) fn state(&self) -> u8 {
        // Acquire: pairs with the Release store in `decide`.
        self.state.load(Ordering::Acquire)
    }

    /// Parks until decided or `deadline`; returns the decision, `WAITING` if it timed out
    /// still undecided (the caller then settles it under the queue lock).
    pub(crate) fn wait(&self, deadline: Option<Instant>, reason: WaitReason) -> u8 {
        loop {
            let s = self.state();
            if s != WAITING {
                return s;
            }
            match deadline {
                None => park::park_for(reason),
                Some(d) => {
                    if Instant::now() >= d {
                        return WAITING;
                    }
                    park::park_deadline_for(d, reason);
                    // Under loom a timed park returns at once: the timeout fires here,
                    // racing whatever the releasers do.
                    if cfg!(loom) {
                        return self.state();
                    }
                }
            }
        }
    }
}

/// A FIFO of waiters behind a short internal lock (held for a few instructions, never
/// across a park).
#[derive(Debug)]
pub(crate) struct WaitQueue<Q = ()> {
    inner: Mutex<Queue<Q>>,
}

/// The queue proper plus the extra state a lock keeps under the same lock.
#[derive(Debug)]
pub(crate) struct Queue<Q> {
    pub(crate) waiters: VecDeque<Arc<Waiter>>,
    pub(crate) extra: Q,
}

impl<Q> Queue<Q> {
    /// Removes `w` if it is still queued; true if it was.
    pub(crate) fn remove(&mut self, w: &Arc<Waiter>) -> bool {
        match self.waiters.iter().position(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                self.waiters.remove(i);
                true
            }
            None => false,
        }
    }

    /// Pops the oldest waiter of `kind` and decides it.
    pub(crate) fn pop_kind(&mut self, kind: u8, outcome: u8) -> Option<Unparker> {
        let i = self.waiters.iter().position(|w| w.kind == kind)?;
        let w = self.waiters.remove(i).expect("index in range");
        Some(w.decide(outcome))
    }

    /// True if some waiter of `kind` is queued.
    pub(crate) fn has_kind(&self, kind: u8) -> bool {
        self.waiters.iter().any(|w| w.kind == kind)
    }
}

impl<Q> WaitQueue<Q> {
    /// An empty queue.
    #[cfg(not(loom))]
    pub(crate) const fn new(extra: Q) -> Self {
        WaitQueue {
            inner: Mutex::new(Queue {
                waiters: VecDeque::new(),
                extra,
            }),
        }
    }

    /// An empty queue.
    #[cfg(loom)]
    pub(crate) fn new(extra: Q) -> Self {
        WaitQueue {
            inner: Mutex::new(Queue {
                waiters: VecDeque::new(),
                extra,
            }),
        }
    }

    /// Takes the queue lock.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue<Q>> {
        self.inner.lock()
    }
}

/// Unparks a batch of decided waiters after the queue lock is dropped.
pub(crate) fn wake_all(us: impl IntoIterator<Item = Unparker>) {
    for u in us {
        u.unpark();
    }
}

/// The drop guard of one registration (see the module docs): while armed, dropping it
/// (an unwind out of the park) runs `on_unwind(queue, was_still_queued, decision)` under
/// the queue lock after removing the waiter if it is still queued.
pub(crate) struct Registration<'a, Q, F: FnMut(&mut Queue<Q>, bool, u8) -> Vec<Unparker>> {
    queue: &'a WaitQueue<Q>,
    waiter: &'a Arc<Waiter>,
    on_unwind: F,
    armed: bool,
}

impl<'a, Q, F: FnMut(&mut Queue<Q>, bool, u8) -> Vec<Unparker>> Registration<'a, Q, F> {
    /// Arms the guard for `waiter`, already pushed on `queue`.
    pub(crate) fn new(queue: &'a WaitQueue<Q>, waiter: &'a Arc<Waiter>, on_unwind: F) -> Self {
        Registration {
            queue,
            waiter,
            on_unwind,
            armed: true,
        }
    }

    /// The park is over normally: nothing to undo.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl<Q, F: FnMut(&mut Queue<Q>, bool, u8) -> Vec<Unparker>> Drop for Registration<'_, Q, F> {
    fn drop(&mut self) {
        if self.armed {
            let mut q = self.queue.lock();
            let queued = q.remove(self.waiter);
            let wake = (self.on_unwind)(&mut q, queued, self.waiter.state());
            drop(q);
            wake_all(wake);
        }
    }
}
