//! [`Semaphore`]: a counting semaphore with FIFO waiters, whose permits release on drop.
//!
//! The word holds the free permits shifted left by one and a `WAITERS` bit that mirrors
//! the (FIFO) wait queue. With no waiters, acquiring and releasing are one CAS each.
//! Once someone waits, every change goes through the queue lock: a release adds its
//! permits and then hands them out in queue order, as long as the oldest waiter's request
//! fits (so a large request is not overtaken by a stream of small ones, tokio's
//! fairness). A waiter is *granted* its permits directly: it never competes after waking.
//! A waiter that times out or unwinds removes itself (and, since it may have been holding
//! up smaller requests behind it, runs the hand-out again); one unwound after being
//! granted gives its permits back.
//!
//! Go: golang.org/x/sync/semaphore.Weighted (FIFO, hand-out in order).

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED};
use gmp_core::park::{Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicUsize, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

const WAITERS: usize = 1;
const SHIFT: u32 = 1;

/// The largest number of permits a semaphore can hold.
pub const MAX_PERMITS: usize = usize::MAX >> SHIFT;

/// A counting semaphore that parks the goroutine, not the thread.
///
/// ```
/// use gmp_chan::sync::Semaphore;
/// use std::time::Duration;
///
/// let s = Semaphore::new(2);
/// let a = s.acquire();
/// let b = s.try_acquire().unwrap();
/// assert!(s.try_acquire().is_none());
/// assert!(s.acquire_timeout(Duration::from_millis(1)).is_none());
/// drop(a); // the permit goes back
/// assert_eq!(s.available_permits(), 1);
/// drop(b);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    queue: WaitQueue,
}

/// Permits taken from a [`Semaphore`]; they are released when this is dropped.
#[must_use = "the permits are released at once if the permit is not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.available_permits())
            .finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`MAX_PERMITS`].
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(3);
    /// assert_eq!(s.available_permits(), 3);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= MAX_PERMITS, "Semaphore: too many permits");
        Semaphore {
            state: AtomicUsize::new(permits << SHIFT),
            queue: WaitQueue::new(()),
        }
    }

    /// A semaphore with `permits` free permits.
    #[cfg(loom)]
    pub fn new(permits: usize) -> Semaphore {
        assert!(permits <= MAX_PERMITS, "Semaphore: too many permits");
        Semaphore {
            state: AtomicUsize::new(permits << SHIFT),
            queue: WaitQueue::new(()),
        }
    }

    /// Takes one permit, parking until one is free.
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(1);
    /// let p = s.acquire();
    /// assert_eq!(s.available_permits(), 0);
    /// drop(p);
    /// ```
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, parking until they are free (waiters are served in
    /// arrival order).
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(5);
    /// let p = s.acquire_many(3);
    /// assert_eq!(p.num_permits(), 3);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        let ok = self.try_take(n) || self.acquire_slow(n, None);
        debug_assert!(ok);
        SemaphorePermit {
            sem: self,
            permits: n,
        }
    }

    /// Takes one permit if one is free and nobody waits for one.
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(1);
    /// let p = s.try_acquire();
    /// assert!(p.is_some());
    /// assert!(s.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody waits.
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(2);
    /// assert!(s.try_acquire_many(3).is_none());
    /// assert!(s.try_acquire_many(2).is_some());
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        // Not `then_some`: a permit built eagerly would release on drop.
        if self.try_take(n) {
            Some(SemaphorePermit {
                sem: self,
                permits: n,
            })
        } else {
            None
        }
    }

    /// Takes one permit, giving up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = gmp_chan::sync::Semaphore::new(0);
    /// assert!(s.acquire_timeout(Duration::from_millis(1)).is_none());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        self.acquire_many_timeout(1, timeout)
    }

    /// Takes `n` permits, giving up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = gmp_chan::sync::Semaphore::new(1);
    /// assert!(s.acquire_many_timeout(2, Duration::from_millis(1)).is_none());
    /// ```
    pub fn acquire_many_timeout(&self, n: usize, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        let deadline = super::deadline_after(timeout);
        if self.try_take(n) || self.acquire_slow(n, Some(deadline)) {
            Some(SemaphorePermit {
                sem: self,
                permits: n,
            })
        } else {
            None
        }
    }

    /// Adds `n` permits (handing them to waiters first).
    ///
    /// # Panics
    ///
    /// If the total would exceed [`MAX_PERMITS`].
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(0);
    /// s.add_permits(2);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        self.release(n);
    }

    /// The number of free permits (a snapshot).
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(4);
    /// assert_eq!(s.available_permits(), 4);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Relaxed) >> SHIFT
    }

    fn try_take(&self, n: usize) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WAITERS != 0 || s >> SHIFT < n {
                return false;
            }
            // Acquire: pairs with the Release of the permits' previous holder.
            match self.state.compare_exchange_weak(
                s,
                s - (n << SHIFT),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    #[cold]
    fn acquire_slow(&self, n: usize, deadline: Option<Instant>) -> bool {
        let mut q = self.queue.lock();
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WAITERS == 0 && s >> SHIFT >= n {
                // Acquire: as in `try_take`.
                match self.state.compare_exchange_weak(
                    s,
                    s - (n << SHIFT),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(x) => s = x,
                }
            } else if s & WAITERS != 0 {
                break;
            } else {
                // Relaxed: from here on the word changes only under the queue lock.
                match self.state.compare_exchange_weak(
                    s,
                    s | WAITERS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(x) => s = x,
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let wake = self.hand_out(&mut q);
            drop(q);
            wake_all(wake);
            return false;
        }
        let w = Waiter::new(n, 0);
        q.waiters.push_back(w.clone());
        drop(q);
        let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, decision| {
            if queued {
                self.hand_out(q)
            } else if decision == GRANTED {
                self.add_locked(q, n)
            } else {
                Vec::new()
            }
        });
        let decision = w.wait(deadline, WaitReason::Semacquire);
        reg.disarm();
        if decision == GRANTED {
            return true;
        }
        let mut q = self.queue.lock();
        if q.remove(&w) {
            let wake = self.hand_out(&mut q);
            drop(q);
            wake_all(wake);
            return false;
        }
        true
    }

    /// Hands free permits to waiters in order while the oldest fits; keeps `WAITERS`
    /// right (queue lock held, `WAITERS` set or the queue empty).
    fn hand_out(&self, q: &mut Queue<()>) -> Vec<Unparker> {
        // Acquire: the permits' releasers published with Release.
        let s = self.state.load(Ordering::Acquire);
        let mut free = s >> SHIFT;
        let mut wake = Vec::new();
        while let Some(w) = q.waiters.front() {
            if w.n > free {
                break;
            }
            free -= w.n;
            let w = q.waiters.pop_front().expect("front exists");
            wake.push(w.decide(GRANTED));
        }
        let bit = if q.waiters.is_empty() { 0 } else { WAITERS };
        // Release: the granted waiters' Acquire (through their decision) and later
        // fast-path acquirers see the releasers' writes. With WAITERS set (or the queue
        // empty and so no fast path racing that matters: see below) the word is ours.
        // A fast path could only have changed the word if WAITERS was clear, which
        // happens only when the queue was empty on entry: then nothing is handed out and
        // we re-store what we read, so CAS instead of store.
        let _ = self.state.compare_exchange(
            s,
            (free << SHIFT) | bit,
            Ordering::Release,
            Ordering::Relaxed,
        );
        wake
    }

    /// Adds permits with the queue lock held and hands them out.
    fn add_locked(&self, q: &mut Queue<()>, n: usize) -> Vec<Unparker> {
        let prev = self.state.fetch_add(n << SHIFT, Ordering::Release);
        assert!(
            (prev >> SHIFT)
                .checked_add(n)
                .is_some_and(|t| t <= MAX_PERMITS),
            "Semaphore: too many permits"
        );
        if q.waiters.is_empty() {
            return Vec::new();
        }
        self.hand_out(q)
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITERS == 0 {
            let total = (s >> SHIFT)
                .checked_add(n)
                .filter(|&t| t <= MAX_PERMITS)
                .expect("Semaphore: too many permits");
            // Release: publishes the permit holder's work to the next acquirer.
            match self.state.compare_exchange_weak(
                s,
                total << SHIFT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(x) => s = x,
            }
        }
        let mut q = self.queue.lock();
        let wake = self.add_locked(&mut q, n);
        drop(q);
        wake_all(wake);
    }
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(2);
    /// assert_eq!(s.acquire_many(2).num_permits(), 2);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Drops the permit without releasing it: the semaphore loses those permits.
    ///
    /// ```
    /// let s = gmp_chan::sync::Semaphore::new(2);
    /// s.acquire().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.permits = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}
