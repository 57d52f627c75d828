//! [`Barrier`]: std's barrier, parking the goroutine.
//!
//! The arrival count and the queue share the queue lock. The `n`th arrival resets the
//! count (so the barrier can be reused at once), decides every queued waiter, and returns
//! as the leader. A waiter unwound out of its park before the barrier opened removes
//! itself and takes back its arrival.
//!
//! Go has no barrier in `sync`; this mirrors `std::sync::Barrier`.

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED};
use gmp_core::park::{Unparker, WaitReason};
use std::fmt;

/// Makes `n` goroutines (or threads) wait until all of them have reached it.
///
/// ```
/// use gmp_chan::sync::Barrier;
/// use std::sync::Arc;
///
/// let b = Arc::new(Barrier::new(3));
/// let hs: Vec<_> = (0..3)
///     .map(|_| {
///         let b = b.clone();
///         std::thread::spawn(move || b.wait().is_leader())
///     })
///     .collect();
/// let leaders = hs.into_iter().map(|h| h.join().unwrap());
/// assert_eq!(leaders.filter(|l| *l).count(), 1);
/// ```
pub struct Barrier {
    n: usize,
    queue: WaitQueue<usize>,
}

/// What [`Barrier::wait`] returns: whether this caller was the leader.
pub struct BarrierWaitResult(bool);

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult")
            .field("is_leader", &self.0)
            .finish()
    }
}

impl BarrierWaitResult {
    /// True for exactly one caller of each round (the one that opened the barrier).
    ///
    /// ```
    /// let b = gmp_chan::sync::Barrier::new(1);
    /// assert!(b.wait().is_leader());
    /// ```
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` callers (0 and 1 never block).
    ///
    /// ```
    /// let b = gmp_chan::sync::Barrier::new(2);
    /// # let _ = b;
    /// ```
    #[cfg(not(loom))]
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            n,
            queue: WaitQueue::new(0),
        }
    }

    /// A barrier for `n` callers (0 and 1 never block).
    #[cfg(loom)]
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n,
            queue: WaitQueue::new(0),
        }
    }

    /// Parks until `n` callers have called `wait`; then all return, one as the leader.
    ///
    /// ```
    /// let b = gmp_chan::sync::Barrier::new(2);
    /// std::thread::scope(|s| {
    ///     let t = s.spawn(|| b.wait().is_leader());
    ///     let me = b.wait().is_leader();
    ///     assert!(me != t.join().unwrap());
    /// });
    /// ```
    pub fn wait(&self) -> BarrierWaitResult {
        let mut q = self.queue.lock();
        q.extra += 1;
        if q.extra >= self.n {
            q.extra = 0;
            let wake: Vec<Unparker> = q.waiters.drain(..).map(|w| w.decide(GRANTED)).collect();
            drop(q);
            wake_all(wake);
            return BarrierWaitResult(true);
        }
        let w = Waiter::new(1, 0);
        q.waiters.push_back(w.clone());
        drop(q);
        let reg =
            super::waiter::Registration::new(&self.queue, &w, |q: &mut Queue<usize>, queued, _| {
                if queued {
                    q.extra -= 1;
                }
                Vec::new()
            });
        w.wait(None, WaitReason::Semacquire);
        reg.disarm();
        BarrierWaitResult(false)
    }
}
