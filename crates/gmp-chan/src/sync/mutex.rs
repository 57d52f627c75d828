//! [`RawMutex`]: Go's `sync.Mutex` algorithm on gmp's park hook, and [`Mutex`] over it.
//!
//! # The state word
//!
//! One byte: `LOCKED` (someone holds the lock), `AWAKE` (a waiter is awake and about to
//! compete: a woken waiter, or a spinner that claimed the bit, so that unlocks do not
//! wake a second one — Go's `mutexWoken`), `STARVING` (hand-off mode), `PARKED` (the wait
//! queue is not empty; Go keeps a waiter count instead). `PARKED` mirrors the queue
//! whenever the queue's internal lock is free: only code holding that lock pushes or pops
//! a waiter, and it updates the bit in the same critical section.
//!
//! - **Uncontended**: `lock` is one CAS `0 -> LOCKED`, `unlock` one CAS `LOCKED -> 0`.
//! - **Normal mode** (Go's default): a caller that finds the lock taken spins a few
//!   rounds while the holder runs in normal mode, then queues and parks. `unlock` clears
//!   `LOCKED` first and then wakes the oldest waiter only if the lock is still free,
//!   someone is queued and nobody is already awake (`AWAKE`); the woken waiter competes
//!   with newly arriving lockers (barging: a running goroutine takes the lock at once,
//!   which is what makes a mutex fast under load). A woken waiter that loses goes back to
//!   the *front* of the queue (Go's LIFO re-queue).
//! - **Starvation mode**: a woken waiter that has waited more than 1 ms in total sets
//!   `STARVING` when it queues again (only while the lock is held, as in Go). From then on
//!   `unlock` hands the lock directly to the oldest waiter: it clears `LOCKED` and decides
//!   the waiter `GRANTED`, the waiter sets `LOCKED` itself, and in between `STARVING`
//!   keeps newcomers out (they neither barge nor spin but queue at the back, and
//!   `try_lock` fails). The mode ends when the queue empties, or when a waiter that was
//!   handed the lock had waited less than 1 ms (Go's two exit conditions).
//!
//! # Timeouts and unwinding
//!
//! `try_lock_for`/`try_lock_until` give up when the deadline passes: under the queue lock
//! the waiter removes itself (clearing `PARKED`/`STARVING` if the queue empties). If a
//! releaser decided it first, it keeps what it got: a hand-off means it owns the lock (and
//! returns `true`); a normal-mode wake-up (the `AWAKE` bit) means it tries once to take a
//! free lock and otherwise gives the bit back, waking the next waiter if the lock is free
//! (Go's unlock check). A waiter that unwinds out of its park (a goroutine unwound at
//! runtime shutdown) does the same through a drop guard, except that a lock it was handed
//! is passed on at once: nothing is lost, nothing stays registered.
//!
//! There is no owner thread: the guard may be sent, held across a suspension point of a
//! goroutine, and dropped on whatever thread the goroutine resumed on.
//!
//! Go: sync.Mutex.Lock / lockSlow / Unlock / unlockSlow, runtime.semacquire1 / semrelease1.

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED, WOKEN};
use gmp_core::park::{Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

const LOCKED: u8 = 1;
const AWAKE: u8 = 2;
const STARVING: u8 = 4;
const PARKED: u8 = 8;

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

    /// True if some caller holds the lock, or it is being handed to a waiter (a
    /// snapshot).
    ///
    /// ```
    /// let m = gmp_chan::sync::RawMutex::new();
    /// assert!(!m.is_locked());
    /// ```
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & (LOCKED | STARVING) != 0
    }

    // Go: sync.(*Mutex).lockSlow
    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        #[cfg(not(loom))]
        let mut spins = 0u32;
        let mut started: Option<Instant> = None;
        let mut requeue = false;
        // We hold the AWAKE bit: we were woken by an unlock, or we claimed it while
        // spinning so that unlocks do not wake a second waiter meanwhile.
        let mut awoke = false;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            // Go: sync.runtime_canSpin. Spin while the lock is held in normal mode: its
            // holder is likely running and about to unlock.
            #[cfg(not(loom))]
            if s & (LOCKED | STARVING) == LOCKED && spins < SPIN_ROUNDS {
                if !awoke
                    && s & AWAKE == 0
                    && s & PARKED != 0
                    && self
                        .state
                        .compare_exchange_weak(s, s | AWAKE, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                spins += 1;
                for _ in 0..(1u32 << spins) {
                    gmp_core::sync::spin_loop();
                }
                continue;
            }
            if s & (LOCKED | STARVING) == 0 {
                let mut new = s | LOCKED;
                if awoke {
                    new &= !AWAKE;
                }
                // Acquire: as in `lock`.
                if self
                    .state
                    .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if awoke {
                    self.release_woken();
                }
                return false;
            }
            let since = *started.get_or_insert_with(Instant::now);
            let starving = requeue && since.elapsed() >= STARVATION_THRESHOLD;
            let w = Waiter::new(1, 0);
            {
                let mut q = self.queue.lock();
                let mut s = self.state.load(Ordering::Relaxed);
                let queued = loop {
                    if s & (LOCKED | STARVING) == 0 {
                        break false;
                    }
                    let mut new = s | PARKED;
                    // Go: only a held lock switches to starvation mode, so the bit never
                    // appears on a lock that an unlock has just released.
                    if starving && s & LOCKED != 0 {
                        new |= STARVING;
                    }
                    if awoke {
                        new &= !AWAKE;
                    }
                    // Relaxed: the queue lock orders this against every other writer of
                    // PARKED; the word's other bits are re-read by whoever acts on them.
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break true,
                        Err(x) => s = x,
                    }
                };
                if !queued {
                    // Released meanwhile: compete instead of queueing.
                    continue;
                }
                // The CAS gave the AWAKE bit back (if we held it); every way out of the
                // park below sets `awoke` afresh.
                if requeue {
                    q.waiters.push_front(w.clone());
                } else {
                    q.waiters.push_back(w.clone());
                }
            }
            let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, decision| {
                self.abandon(q, queued, decision)
            });
            let decision = w.wait(deadline, WaitReason::MutexLock);
            reg.disarm();
            match decision {
                GRANTED => return self.take_handoff(since),
                WOKEN => {
                    // The unlock that woke us set AWAKE on our behalf.
                    awoke = true;
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
                    if w.state() == GRANTED {
                        return self.take_handoff(since);
                    }
                    // Woken as the deadline passed: one last try, else give the wake-up
                    // back (it may be owed to the next waiter).
                    let s = self.state.load(Ordering::Relaxed);
                    // Acquire: as in `lock`.
                    if s & (LOCKED | STARVING) == 0
                        && self
                            .state
                            .compare_exchange(
                                s,
                                (s | LOCKED) & !AWAKE,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        return true;
                    }
                    self.release_woken();
                    return false;
                }
            }
        }
    }

    /// A waiter was handed the lock in starvation mode: it sets `LOCKED` (the unlock left
    /// it clear; `STARVING` kept everyone else out meanwhile). Go leaves starvation mode
    /// when this waiter had not waited long, or nobody else waits.
    fn take_handoff(&self, since: Instant) -> bool {
        let short = since.elapsed() < STARVATION_THRESHOLD;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(s & LOCKED == 0 && s & STARVING != 0);
            let mut new = s | LOCKED;
            if short || s & PARKED == 0 {
                new &= !STARVING;
            }
            // Acquire: the critical section starts after the unlock's Release (also
            // carried by the decision).
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Keeps `PARKED` right after a waiter left the queue (queue lock held); an empty
    /// queue also ends starvation mode, unless a hand-off is under way (`LOCKED` clear:
    /// its receiver decides).
    fn fix_bits(&self, q: &mut Queue<()>) {
        if !q.waiters.is_empty() {
            return;
        }
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let mut new = s & !PARKED;
            if s & LOCKED != 0 {
                new &= !STARVING;
            }
            // Relaxed: under the queue lock; no lock-word data is published.
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(x) => s = x,
            }
        }
    }

    /// A waiter unwound out of its park (queue lock held): pass on what it was given.
    fn abandon(&self, q: &mut Queue<()>, queued: bool, decision: u8) -> Vec<Unparker> {
        if queued {
            self.fix_bits(q);
            return Vec::new();
        }
        match decision {
            // It was handed the lock: take it and unlock on its behalf.
            GRANTED => {
                // Acquire/Release: as in `take_handoff` and `unlock`.
                self.state.fetch_or(LOCKED, Ordering::Acquire);
                self.unlock_locked(q).into_iter().collect()
            }
            // It held the AWAKE bit: give it back, waking the next waiter if needed.
            WOKEN => self.release_woken_locked(q).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Gives back the AWAKE bit without taking the lock; if that leaves a free lock with
    /// waiters and nobody awake, wakes one (Go's unlockSlow check).
    fn release_woken(&self) {
        let mut q = self.queue.lock();
        let u = self.release_woken_locked(&mut q);
        drop(q);
        wake_all(u);
    }

    fn release_woken_locked(&self, q: &mut Queue<()>) -> Option<Unparker> {
        // Relaxed: only steers who gets woken; the lock's data is published by unlocks.
        let s = self.state.fetch_and(!AWAKE, Ordering::Relaxed) & !AWAKE;
        self.wake_if_needed(q, s)
    }

    // Go: sync.(*Mutex).unlockSlow
    #[cold]
    fn unlock_slow(&self) {
        // Go: the lock is released first; whether to wake someone is decided after.
        // Release: publishes the critical section to the next locker.
        let s = self.state.fetch_and(!LOCKED, Ordering::Release) & !LOCKED;
        if s & STARVING == 0 && (s & PARKED == 0 || s & (LOCKED | AWAKE) != 0) {
            // Nobody to wake, or a locker already took it, or a woken (or spinning)
            // waiter is about to.
            return;
        }
        let mut q = self.queue.lock();
        let u = self.after_unlock(&mut q, s);
        drop(q);
        wake_all(u);
    }

    /// Unlocks with the queue lock held (an unwound waiter that had been handed the
    /// lock); returns the waiter to unpark.
    fn unlock_locked(&self, q: &mut Queue<()>) -> Option<Unparker> {
        // Release: as in `unlock_slow`.
        let s = self.state.fetch_and(!LOCKED, Ordering::Release) & !LOCKED;
        self.after_unlock(q, s)
    }

    /// The unlock's second half (queue lock held; `s` the word just after the release):
    /// hand-off in starvation mode, else wake one waiter if nobody is awake.
    fn after_unlock(&self, q: &mut Queue<()>, s: u8) -> Option<Unparker> {
        if s & STARVING == 0 {
            return self.wake_if_needed(q, s);
        }
        // Go: starvation mode hands the lock to the oldest waiter. LOCKED stays clear
        // until it sets it; STARVING keeps newcomers and `try_lock` out meanwhile.
        match q.waiters.pop_front() {
            Some(w) => {
                if q.waiters.is_empty() {
                    // Relaxed: under the queue lock (PARKED mirrors the queue).
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
                Some(w.decide(GRANTED))
            }
            None => {
                // Everyone timed out: leave starvation mode with a free lock.
                self.state
                    .fetch_and(!(STARVING | PARKED), Ordering::Relaxed);
                None
            }
        }
    }

    /// Wakes the oldest waiter (setting AWAKE for it) if the lock is free, waiters are
    /// queued and nobody is awake to take it (queue lock held).
    fn wake_if_needed(&self, q: &mut Queue<()>, mut s: u8) -> Option<Unparker> {
        loop {
            if s & PARKED == 0 || s & (LOCKED | AWAKE | STARVING) != 0 {
                return None;
            }
            let w = q.waiters.front()?.clone();
            let mut new = s | AWAKE;
            if q.waiters.len() == 1 {
                new &= !PARKED;
            }
            // Relaxed: the decision below carries what the waiter needs.
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let u = w.decide(WOKEN);
                    q.waiters.pop_front();
                    return Some(u);
                }
                Err(x) => s = x,
            }
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
        let mut q = self.queue.lock();
        if !q.waiters.is_empty() {
            // Relaxed: we hold LOCKED, so the bit may be set (as a waiter would).
            self.state.fetch_or(STARVING, Ordering::Relaxed);
        }
        let u = self.unlock_locked(&mut q);
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

/// The loom build's [`Mutex`]: `lock_api::Mutex` cannot be built there (its
/// `RawMutex::INIT` must be a `const`, and loom's atomics have no `const` constructor), so
/// this stand-in gives the shape [`Condvar`](super::Condvar) needs (`lock`, the guard's
/// `Deref`/`DerefMut`, [`MutexGuard::unlocked`]) over the same [`RawMutex`]: the loom models
/// drive the real condition variable and the real lock. The data cell itself is not
/// loom-tracked; the lock around it is.
#[cfg(loom)]
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    data: std::cell::UnsafeCell<T>,
}

#[cfg(loom)]
// SAFETY: the data is reached only through a `MutexGuard`, which exists only while `raw`
// is held, so one thread at a time touches it (lock_api's `Mutex` makes the same claim).
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

#[cfg(loom)]
impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

#[cfg(loom)]
impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            raw: RawMutex::new(),
            data: std::cell::UnsafeCell::new(value),
        }
    }
}

#[cfg(loom)]
impl<T: ?Sized> Mutex<T> {
    /// Locks, parking while the lock is taken.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard { mutex: self }
    }
}

/// The loom build's [`MutexGuard`] (see [`Mutex`]): the lock is held while it lives.
#[cfg(loom)]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

#[cfg(loom)]
impl<T: ?Sized> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard").finish_non_exhaustive()
    }
}

#[cfg(loom)]
impl<T: ?Sized> MutexGuard<'_, T> {
    /// Releases the lock, runs `f`, and locks again, also if `f` unwinds (as
    /// `lock_api::MutexGuard::unlocked`).
    pub fn unlocked<F: FnOnce() -> U, U>(s: &mut Self, f: F) -> U {
        struct Relock<'b>(&'b RawMutex);
        impl Drop for Relock<'_> {
            fn drop(&mut self) {
                self.0.lock();
            }
        }
        // SAFETY: the guard holds the lock; `Relock` takes it back before the guard can be
        // used or dropped again.
        unsafe { s.mutex.raw.unlock() };
        let _relock = Relock(&s.mutex.raw);
        f()
    }
}

#[cfg(loom)]
impl<T: ?Sized> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock (see `Mutex`'s `Sync`).
        unsafe { &*self.mutex.data.get() }
    }
}

#[cfg(loom)]
impl<T: ?Sized> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.mutex.data.get() }
    }
}

#[cfg(loom)]
impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock.
        unsafe { self.mutex.raw.unlock() };
    }
}
