//! [`RawMutex`]: Go's `sync.Mutex` algorithm on gmp's park hook, and [`Mutex`] over it.
//!
//! # The state word
//!
//! One byte: `LOCKED` (someone holds the lock), `PARKED` (the wait queue is not empty),
//! `STARVING` (hand-off mode). `PARKED` mirrors the queue exactly whenever the queue's
//! internal lock is free: only code holding that lock pushes or pops a waiter, and it
//! updates the bit in the same critical section.
//!
//! - **Uncontended**: `lock` is one CAS `0 -> LOCKED`, `unlock` one CAS `LOCKED -> 0`.
//! - **Normal mode** (Go's default): a caller that finds the lock taken spins a few
//!   rounds (only while nobody is queued: once someone parks, spinning only steals from
//!   the queue), then queues and parks. `unlock` wakes the oldest waiter, which competes
//!   with newly arriving lockers (barging: a running goroutine takes the lock at once,
//!   which is what makes a mutex fast under load). A woken waiter that loses goes back to
//!   the *front* of the queue (Go's LIFO re-queue).
//! - **Starvation mode**: a woken waiter that has waited more than 1 ms in total sets
//!   `STARVING` when it queues again. From then on `unlock` hands the lock directly to the
//!   oldest waiter (`LOCKED` never clears), newcomers do not barge or spin but queue at the
//!   back, and `try_lock` fails. The mode ends when the queue empties, or when a waiter
//!   that was handed the lock had waited less than 1 ms (Go's two exit conditions).
//!
//! # Timeouts and unwinding
//!
//! `try_lock_for`/`try_lock_until` give up when the deadline passes: under the queue lock
//! the waiter removes itself (clearing `PARKED`/`STARVING` if the queue empties). If a
//! releaser decided it first, it keeps what it got: a hand-off means it owns the lock (and
//! returns `true`); a normal-mode wake-up means it tries once to take a free lock. A
//! waiter that unwinds out of its park (a goroutine unwound at runtime shutdown) does the
//! same through a drop guard, except that a lock it was handed is passed on at once and a
//! wake-up it consumed is passed to the next waiter: nothing is lost, nothing stays
//! registered.
//!
//! There is no owner thread: the guard may be sent, held across a suspension point of a
//! goroutine, and dropped on whatever thread the goroutine resumed on.
//!
//! Go: sync.Mutex.Lock / lockSlow / Unlock / unlockSlow, runtime.semacquire1 / semrelease1.

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED, WAITING, WOKEN};
use gmp_core::park::Unparker;
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

const LOCKED: u8 = 1;
const PARKED: u8 = 2;
const STARVING: u8 = 4;

/// How long a waiter waits before it switches the lock to hand-off mode (Go's
/// `starvationThresholdNs`).
#[cfg(not(loom))]
pub(crate) const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);
/// Under loom time does not pass: every re-queued waiter starves, so the models explore
/// hand-off mode.
#[cfg(loom)]
pub(crate) const STARVATION_THRESHOLD: Duration = Duration::ZERO;

/// Rounds of exponential spinning before parking (2^1 + ... + 2^6 pause instructions).
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 6;

/// The raw lock behind [`Mutex`]: Go's `sync.Mutex` (see the module docs).
///
/// Usable on its own through [`lock_api::RawMutex`] and [`lock_api::RawMutexTimed`].
pub struct RawMutex {
    state: AtomicU8,
    queue: WaitQueue,
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMutex")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        RawMutex::new()
    }
}

impl RawMutex {
    /// An unlocked mutex.
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// assert!(m.try_lock());
    /// // SAFETY: we hold the lock.
    /// unsafe { m.unlock() };
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RawMutex {
            state: AtomicU8::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// An unlocked mutex.
    #[cfg(loom)]
    pub fn new() -> Self {
        RawMutex {
            state: AtomicU8::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// Locks, parking the goroutine (or thread) while the lock is taken.
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// m.lock();
    /// assert!(m.is_locked());
    /// // SAFETY: we hold the lock.
    /// unsafe { m.unlock() };
    /// ```
    #[inline]
    pub fn lock(&self) {
        // Acquire: the critical section starts after the previous holder's Release.
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow(None);
        }
    }

    /// Takes the lock if it is free and not in hand-off mode (Go's `TryLock`).
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// assert!(m.try_lock());
    /// assert!(!m.try_lock());
    /// # unsafe { m.unlock() };
    /// ```
    #[inline]
    pub fn try_lock(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (LOCKED | STARVING) != 0 {
                return false;
            }
            // Acquire: as in `lock`.
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Locks, giving up at `deadline`; true if the lock was taken.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let m = gmp_chan::sync::RawMutex::new();
    /// m.lock();
    /// assert!(!m.lock_until(Instant::now() + Duration::from_millis(5)));
    /// # unsafe { m.unlock() };
    /// ```
    pub fn lock_until(&self, deadline: Instant) -> bool {
        // Acquire: as in `lock`.
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            || self.lock_slow(Some(deadline))
    }

    /// Unlocks.
    ///
    /// # Safety
    ///
    /// The lock is held, by the caller or by whatever the caller's guard stands for (it
    /// need not be the same thread or goroutine that locked it).
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// m.lock();
    /// // SAFETY: locked just above.
    /// unsafe { m.unlock() };
    /// assert!(!m.is_locked());
    /// ```
    #[inline]
    pub unsafe fn unlock(&self) {
        // Release: publishes the critical section to the next locker's Acquire.
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// True if some caller holds the lock (a snapshot).
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// assert!(!m.is_locked());
    /// ```
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    // Go: sync.(*Mutex).lockSlow
    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        #[cfg(not(loom))]
        let mut spins = 0u32;
        let mut started: Option<Instant> = None;
        let mut requeue = false;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s & (LOCKED | STARVING) == 0 {
                // Acquire: as in `lock`.
                if self
                    .state
                    .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            // Go: sync.runtime_canSpin. Spin only while nobody is queued and the lock is
            // not in hand-off mode: the holder is likely running and about to unlock.
            #[cfg(not(loom))]
            if s & (PARKED | STARVING) == 0 && spins < SPIN_ROUNDS {
                spins += 1;
                for _ in 0..(1u32 << spins) {
                    gmp_core::sync::spin_loop();
                }
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            let since = *started.get_or_insert_with(Instant::now);
            let starving = requeue && since.elapsed() >= STARVATION_THRESHOLD;
            let w = Waiter::new(1, 0);
            {
                let mut q = self.queue.lock();
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    if s & (LOCKED | STARVING) == 0 {
                        break;
                    }
                    let mut new = s | PARKED;
                    if starving {
                        new |= STARVING;
                    }
                    // Relaxed: the queue lock orders this against every other writer of
                    // PARKED/STARVING; a concurrent unlock's CAS fails on PARKED.
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(x) => s = x,
                    }
                }
                if s & (LOCKED | STARVING) == 0 {
                    // Unlocked meanwhile: compete instead of queueing.
                    continue;
                }
                if requeue {
                    q.waiters.push_front(w.clone());
                } else {
                    q.waiters.push_back(w.clone());
                }
            }
            let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, decision| {
                self.abandon(q, queued, decision)
            });
            let decision = w.wait(deadline);
            reg.disarm();
            match decision {
                GRANTED => return self.handed_over(since),
                WOKEN => {
                    requeue = true;
                    #[cfg(not(loom))]
                    {
                        spins = 0;
                    }
                }
                _ => {
                    // Timed out undecided, as far as we saw: settle under the queue lock.
                    let mut q = self.queue.lock();
                    if q.remove(&w) {
                        self.fix_bits(&mut q);
                        return false;
                    }
                    drop(q);
                    match w.state() {
                        GRANTED => return self.handed_over(since),
                        // Woken as the deadline passed: one last try. If the lock is
                        // taken, its holder wakes the next waiter when it unlocks.
                        _ => return self.try_lock(),
                    }
                }
            }
        }
    }

    /// A waiter was handed the lock in starvation mode. Go leaves starvation mode when
    /// such a waiter had not waited long.
    fn handed_over(&self, since: Instant) -> bool {
        if since.elapsed() < STARVATION_THRESHOLD {
            // Relaxed: we hold the lock; the bit only steers newcomers and `unlock`.
            self.state.fetch_and(!STARVING, Ordering::Relaxed);
        }
        true
    }

    /// Keeps `PARKED`/`STARVING` right after a waiter left the queue (queue lock held).
    fn fix_bits(&self, q: &mut Queue<()>) {
        if q.waiters.is_empty() {
            // Relaxed: under the queue lock; no lock-word data is published.
            self.state
                .fetch_and(!(PARKED | STARVING), Ordering::Relaxed);
        }
    }

    /// A waiter unwound out of its park (queue lock held): pass on what it was given.
    fn abandon(&self, q: &mut Queue<()>, queued: bool, decision: u8) -> Vec<Unparker> {
        if queued {
            self.fix_bits(q);
            return Vec::new();
        }
        match decision {
            // It owns the lock: unlock on its behalf.
            GRANTED => self.unlock_locked(q).into_iter().collect(),
            // It consumed a wake-up: hand it to the next waiter if the lock is free.
            WOKEN if self.state.load(Ordering::Relaxed) & LOCKED == 0 => {
                match q.waiters.pop_front() {
                    Some(w) => {
                        self.fix_bits(q);
                        vec![w.decide(WOKEN)]
                    }
                    None => Vec::new(),
                }
            }
            _ => {
                debug_assert!(decision != WAITING || !queued);
                Vec::new()
            }
        }
    }

    // Go: sync.(*Mutex).unlockSlow
    #[cold]
    fn unlock_slow(&self) {
        let mut q = self.queue.lock();
        let u = self.unlock_locked(&mut q);
        drop(q);
        wake_all(u);
    }

    /// Unlocks with the queue lock held; returns the waiter to unpark.
    fn unlock_locked(&self, q: &mut Queue<()>) -> Option<Unparker> {
        // While LOCKED is set and we hold the queue lock nobody else writes the word:
        // lockers CAS only an unlocked word, and queueing is under the queue lock.
        let s = self.state.load(Ordering::Relaxed);
        debug_assert!(s & LOCKED != 0, "gmp sync: unlock of an unlocked mutex");
        let Some(w) = q.waiters.pop_front() else {
            // Release: publishes the critical section to the next locker.
            self.state.store(0, Ordering::Release);
            return None;
        };
        let empty = q.waiters.is_empty();
        if s & STARVING != 0 {
            // Hand-off: LOCKED stays set and passes to `w`; the decision's Release
            // publishes the critical section to it.
            self.state
                .store(if empty { LOCKED } else { s }, Ordering::Relaxed);
            Some(w.decide(GRANTED))
        } else {
            // Release: as above, for a barging locker.
            self.state
                .store(if empty { 0 } else { PARKED }, Ordering::Release);
            Some(w.decide(WOKEN))
        }
    }

    /// Unlocks handing the lock to the oldest waiter, if there is one, whatever the mode
    /// (parking_lot's `unlock_fair`).
    ///
    /// # Safety
    ///
    /// As [`unlock`](RawMutex::unlock).
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// m.lock();
    /// // SAFETY: locked just above.
    /// unsafe { m.unlock_fair() };
    /// ```
    pub unsafe fn unlock_fair(&self) {
        // Release: as in `unlock`.
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let mut q = self.queue.lock();
        let u = match q.waiters.pop_front() {
            Some(w) => {
                let empty = q.waiters.is_empty();
                let s = self.state.load(Ordering::Relaxed);
                self.state
                    .store(if empty { LOCKED } else { s }, Ordering::Relaxed);
                Some(w.decide(GRANTED))
            }
            None => self.unlock_locked(&mut q),
        };
        drop(q);
        wake_all(u);
    }
}

#[cfg(not(loom))]
// SAFETY: `lock`/`try_lock`/`lock_until` succeed for one caller at a time (the LOCKED bit
// is set by exactly one CAS, or handed over under the queue lock), and `unlock` clears it
// with Release after the critical section; the lock has no owner thread, so the guard may
// be sent (GuardSend).
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawMutex::new();
    type GuardMarker = lock_api::GuardSend;

    #[inline]
    fn lock(&self) {
        RawMutex::lock(self);
    }

    #[inline]
    fn try_lock(&self) -> bool {
        RawMutex::try_lock(self)
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: forwarded from lock_api's contract (the lock is held).
        unsafe { RawMutex::unlock(self) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

#[cfg(not(loom))]
// SAFETY: as for `RawMutex`; a hand-off leaves the lock held for the waiter.
unsafe impl lock_api::RawMutexFair for RawMutex {
    unsafe fn unlock_fair(&self) {
        // SAFETY: forwarded from lock_api's contract (the lock is held).
        unsafe { RawMutex::unlock_fair(self) }
    }
}

#[cfg(not(loom))]
// SAFETY: a timed lock takes the lock exactly when it returns true.
unsafe impl lock_api::RawMutexTimed for RawMutex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> bool {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(super::far_future);
        self.lock_until(deadline)
    }

    fn try_lock_until(&self, deadline: Instant) -> bool {
        self.lock_until(deadline)
    }
}

/// A mutual-exclusion lock that parks the goroutine, not the thread: parking_lot's
/// [`lock_api::Mutex`] over [`RawMutex`] (Go's `sync.Mutex`).
///
/// It works from goroutines and plain threads alike, and the guard may be held across a
/// suspension point (a channel operation, `sleep`, I/O) and dropped on another thread.
/// Fairness is Go's: a waiter that waited more than 1 ms switches the lock to FIFO
/// hand-off, so no goroutine starves. No poisoning.
///
/// ```
/// use gmp_chan::sync::Mutex;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let m = Arc::new(Mutex::new(0));
/// let hs: Vec<_> = (0..4)
///     .map(|_| {
///         let m = m.clone();
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 *m.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(*m.lock(), 4000);
/// let g = m.lock();
/// assert!(m.try_lock_for(Duration::from_millis(1)).is_none());
/// drop(g);
/// ```
#[cfg(not(loom))]
pub type Mutex<T> = lock_api::Mutex<RawMutex, T>;

/// The guard of a [`Mutex`]: the lock is released when it is dropped.
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawMutex, T>;

/// A guard for a part of the data behind a [`Mutex`] (from `MutexGuard::map`).
#[cfg(not(loom))]
pub type MappedMutexGuard<'a, T> = lock_api::MappedMutexGuard<'a, RawMutex, T>;
