//! [`WaitGroup`]: Go's `sync.WaitGroup`.
//!
//! One 64-bit word holds the counter (high half, signed) and the number of parked waiters
//! (low half), as in Go. `add` changes the counter with one `fetch_add`; only the call
//! that brings it to zero while waiters are parked takes the queue lock, resets the word
//! and wakes them all. A waiter increments the waiter count and queues *under the queue
//! lock*, and the zeroing `add` resets and drains under the same lock, so a waiter is
//! either counted and queued before the drain (and woken by it) or sees the counter at
//! zero (its CAS fails on the changed word and it re-reads).
//!
//! A waiter unwound out of its park removes itself and uncounts itself (drop guard).
//!
//! Go: sync.(*WaitGroup).Add / Wait.

use super::waiter::{wake_all, Queue, WaitQueue, Waiter};
use gmp_core::park::{Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU64, Ordering};
use std::fmt;

/// Waits for a collection of goroutines (or threads) to finish: Go's `sync.WaitGroup`.
///
/// ```
/// use gmp_chan::sync::WaitGroup;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let wg = Arc::new(WaitGroup::new());
/// let n = Arc::new(AtomicUsize::new(0));
/// for _ in 0..4 {
///     wg.add(1);
///     let (wg, n) = (wg.clone(), n.clone());
///     std::thread::spawn(move || {
///         n.fetch_add(1, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(n.load(Ordering::Relaxed), 4);
/// ```
pub struct WaitGroup {
    state: AtomicU64,
    queue: WaitQueue,
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("WaitGroup")
            .field("count", &((s >> 32) as i32))
            .field("waiters", &(s as u32))
            .finish()
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl WaitGroup {
    /// A wait group with a zero counter.
    ///
    /// ```
    /// let wg = gmp_chan::sync::WaitGroup::new();
    /// wg.wait(); // zero: returns at once
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> WaitGroup {
        WaitGroup {
            state: AtomicU64::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// A wait group with a zero counter.
    #[cfg(loom)]
    pub fn new() -> WaitGroup {
        WaitGroup {
            state: AtomicU64::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// Adds `delta` (which may be negative) to the counter; when it reaches zero, every
    /// waiter is released.
    ///
    /// # Panics
    ///
    /// With `sync: negative WaitGroup counter` if the counter goes below zero, and if it
    /// would leave the range of an `i32`.
    ///
    /// ```
    /// let wg = gmp_chan::sync::WaitGroup::new();
    /// wg.add(2);
    /// wg.add(-2);
    /// wg.wait();
    /// ```
    pub fn add(&self, delta: isize) {
        let d = i32::try_from(delta)
            .unwrap_or_else(|_| panic!("sync: WaitGroup delta {delta} out of range"));
        // AcqRel: Release publishes the caller's work to the waiter; Acquire lets the
        // zeroing call publish everyone's work onward when it wakes the waiters.
        let prev = self
            .state
            .fetch_add(((d as i64) << 32) as u64, Ordering::AcqRel);
        let count = ((prev >> 32) as i32 as i64) + d as i64;
        if count < 0 {
            panic!("sync: negative WaitGroup counter");
        }
        if count > i32::MAX as i64 {
            panic!("sync: WaitGroup counter overflow");
        }
        let waiters = prev as u32;
        if count > 0 || waiters == 0 || d == 0 {
            return;
        }
        // Go: the counter is zero and waiters are counted: reset and release them.
        let mut q = self.queue.lock();
        // Release: as above (the waiters read the word with Acquire).
        self.state.store(0, Ordering::Release);
        let wake: Vec<Unparker> = q
            .waiters
            .drain(..)
            .map(|w| w.decide(super::waiter::GRANTED))
            .collect();
        drop(q);
        wake_all(wake);
    }

    /// Decrements the counter by one (`add(-1)`).
    ///
    /// # Panics
    ///
    /// With `sync: negative WaitGroup counter` if the counter was zero.
    ///
    /// ```
    /// let wg = gmp_chan::sync::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// wg.wait();
    /// ```
    pub fn done(&self) {
        self.add(-1);
    }

    /// Parks until the counter is zero.
    ///
    /// ```
    /// let wg = gmp_chan::sync::WaitGroup::new();
    /// wg.add(1);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| wg.done());
    ///     wg.wait();
    /// });
    /// ```
    pub fn wait(&self) {
        // Acquire: pairs with the AcqRel of the `add` that reached zero.
        if self.state.load(Ordering::Acquire) >> 32 == 0 {
            return;
        }
        let mut q = self.queue.lock();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s >> 32 == 0 {
                return;
            }
            // Acquire on failure: we may return on the re-read zero.
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Relaxed, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        let w = Waiter::new(1, 0);
        q.waiters.push_back(w.clone());
        drop(q);
        let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, _| {
            self.abandon(q, queued)
        });
        // Never times out: returns only once decided.
        w.wait(None, WaitReason::WaitGroupWait);
        reg.disarm();
    }

    /// An unwound waiter that is still queued uncounts itself (queue lock held).
    fn abandon(&self, _q: &mut Queue<()>, queued: bool) -> Vec<Unparker> {
        if queued {
            // Relaxed: the waiter count is only read under the queue lock's protocol.
            self.state.fetch_sub(1, Ordering::Relaxed);
        }
        Vec::new()
    }
}
