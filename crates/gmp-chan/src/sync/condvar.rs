//! [`Condvar`]: a condition variable for [`Mutex`](super::Mutex), in parking_lot's shape.
//!
//! A waiter queues itself *before* it releases the mutex (`MutexGuard::unlocked`), so a
//! notifier that changes the condition under the mutex and then notifies cannot miss it.
//! `notify_one` pops the oldest waiter and decides it `GRANTED` (one notification handed
//! to exactly one waiter); `notify_all` decides them all. A waiter that times out removes
//! itself under the queue lock, unless a notification reached it first (then it reports
//! "not timed out", as it was notified). A waiter unwound out of its park removes itself,
//! or passes a notification it had already been handed to the next waiter, so a
//! `notify_one` is never swallowed by a goroutine that is going away.
//!
//! Go: sync.Cond (notifyList).

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED};
use super::MutexGuard;
use gmp_core::park::{Unparker, WaitReason};
use std::fmt;
use std::time::{Duration, Instant};

/// The result of a timed wait: whether it timed out (parking_lot's `WaitTimeoutResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed, not because of a notification.
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::time::Duration;
    /// let (m, c) = (Mutex::new(()), Condvar::new());
    /// let mut g = m.lock();
    /// assert!(c.wait_for(&mut g, Duration::from_millis(1)).timed_out());
    /// ```
    pub fn timed_out(self) -> bool {
        self.0
    }
}

/// A condition variable whose waits park the goroutine, not the thread.
///
/// ```
/// use gmp_chan::sync::{Condvar, Mutex};
/// use std::sync::Arc;
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let p = pair.clone();
/// let t = std::thread::spawn(move || {
///     *p.0.lock() = true;
///     p.1.notify_one();
/// });
/// let (m, c) = &*pair;
/// let mut ready = m.lock();
/// c.wait_while(&mut ready, |r| !*r);
/// assert!(*ready);
/// t.join().unwrap();
/// ```
pub struct Condvar {
    queue: WaitQueue,
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Condvar::new()
    }
}

impl Condvar {
    /// A condition variable with no waiters.
    ///
    /// ```
    /// static C: gmp_chan::sync::Condvar = gmp_chan::sync::Condvar::new();
    /// assert!(!C.notify_one());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(()),
        }
    }

    /// A condition variable with no waiters.
    #[cfg(loom)]
    pub fn new() -> Condvar {
        Condvar {
            queue: WaitQueue::new(()),
        }
    }

    /// Wakes the oldest waiter; true if there was one.
    ///
    /// ```
    /// let c = gmp_chan::sync::Condvar::new();
    /// assert!(!c.notify_one());
    /// ```
    pub fn notify_one(&self) -> bool {
        let mut q = self.queue.lock();
        let u = q.waiters.pop_front().map(|w| w.decide(GRANTED));
        drop(q);
        let woke = u.is_some();
        wake_all(u);
        woke
    }

    /// Wakes every waiter; returns how many.
    ///
    /// ```
    /// let c = gmp_chan::sync::Condvar::new();
    /// assert_eq!(c.notify_all(), 0);
    /// ```
    pub fn notify_all(&self) -> usize {
        let mut q = self.queue.lock();
        let wake: Vec<Unparker> = q.waiters.drain(..).map(|w| w.decide(GRANTED)).collect();
        drop(q);
        let n = wake.len();
        wake_all(wake);
        n
    }

    /// Releases the guard's mutex, parks until notified, and locks the mutex again before
    /// returning. Only a notification wakes it (no spurious wake-ups), but as with every
    /// condition variable the condition may have changed again by the time it has the
    /// lock: check it in a loop, or use [`wait_while`](Condvar::wait_while).
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::sync::Arc;
    /// let pair = Arc::new((Mutex::new(0), Condvar::new()));
    /// let p = pair.clone();
    /// std::thread::spawn(move || {
    ///     *p.0.lock() = 1;
    ///     p.1.notify_all();
    /// });
    /// let mut g = pair.0.lock();
    /// while *g == 0 {
    ///     pair.1.wait(&mut g);
    /// }
    /// ```
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        self.wait_inner(guard, None);
    }

    /// As [`wait`](Condvar::wait), giving up at `deadline`.
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::time::{Duration, Instant};
    /// let (m, c) = (Mutex::new(()), Condvar::new());
    /// let mut g = m.lock();
    /// let r = c.wait_until(&mut g, Instant::now() + Duration::from_millis(1));
    /// assert!(r.timed_out());
    /// ```
    pub fn wait_until<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        WaitTimeoutResult(!self.wait_inner(guard, Some(deadline)))
    }

    /// As [`wait`](Condvar::wait), giving up after `timeout`.
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::time::Duration;
    /// let (m, c) = (Mutex::new(()), Condvar::new());
    /// let mut g = m.lock();
    /// assert!(c.wait_for(&mut g, Duration::from_millis(1)).timed_out());
    /// ```
    pub fn wait_for<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        self.wait_until(guard, super::deadline_after(timeout))
    }

    /// Waits while `condition` returns true (checked under the lock before each wait).
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// let (m, c) = (Mutex::new(3), Condvar::new());
    /// let mut g = m.lock();
    /// c.wait_while(&mut g, |n| *n == 0); // returns at once: the condition is false
    /// ```
    pub fn wait_while<T, F>(&self, guard: &mut MutexGuard<'_, T>, mut condition: F)
    where
        T: ?Sized,
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            self.wait(guard);
        }
    }

    /// Waits while `condition` returns true, giving up at `deadline`. The result says
    /// whether it timed out with the condition still true.
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::time::{Duration, Instant};
    /// let (m, c) = (Mutex::new(0), Condvar::new());
    /// let mut g = m.lock();
    /// let d = Instant::now() + Duration::from_millis(1);
    /// assert!(c.wait_while_until(&mut g, |n| *n == 0, d).timed_out());
    /// ```
    pub fn wait_while_until<T, F>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut condition: F,
        deadline: Instant,
    ) -> WaitTimeoutResult
    where
        T: ?Sized,
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            if self.wait_until(guard, deadline).timed_out() {
                return WaitTimeoutResult(condition(&mut *guard));
            }
        }
        WaitTimeoutResult(false)
    }

    /// Waits while `condition` returns true, giving up after `timeout`.
    ///
    /// ```
    /// use gmp_chan::sync::{Condvar, Mutex};
    /// use std::time::Duration;
    /// let (m, c) = (Mutex::new(1), Condvar::new());
    /// let mut g = m.lock();
    /// assert!(!c.wait_while_for(&mut g, |n| *n == 0, Duration::from_millis(1)).timed_out());
    /// ```
    pub fn wait_while_for<T, F>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        condition: F,
        timeout: Duration,
    ) -> WaitTimeoutResult
    where
        T: ?Sized,
        F: FnMut(&mut T) -> bool,
    {
        self.wait_while_until(guard, condition, super::deadline_after(timeout))
    }

    /// Queues, unlocks, parks, re-locks. True if notified, false if timed out.
    fn wait_inner<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> bool {
        let w = Waiter::new(1, 0);
        self.queue.lock().waiters.push_back(w.clone());
        let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, decision| {
            abandon(q, queued, decision)
        });
        let decision = MutexGuard::unlocked(guard, || w.wait(deadline, WaitReason::CondWait));
        reg.disarm();
        if decision == GRANTED {
            return true;
        }
        let mut q = self.queue.lock();
        // Still queued: timed out. Otherwise a notification reached us first.
        !q.remove(&w)
    }
}

/// A waiter unwound: a notification it was handed goes to the next waiter.
fn abandon(q: &mut Queue<()>, queued: bool, decision: u8) -> Vec<Unparker> {
    if !queued && decision == GRANTED {
        q.waiters
            .pop_front()
            .map(|w| w.decide(GRANTED))
            .into_iter()
            .collect()
    } else {
        Vec::new()
    }
}
