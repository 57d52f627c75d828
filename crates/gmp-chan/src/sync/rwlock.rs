//! [`RawRwLock`]: a reader-writer lock with Go's writer preference, and [`RwLock`] over it.
//!
//! # The state word
//!
//! `WRITER` (held exclusively), `WRITER_WAITING` (a writer is queued: new readers must
//! queue too, so a stream of readers cannot starve a writer — Go's `RWMutex`),
//! `READERS_PARKED` (a reader is queued), and the number of readers holding the lock in
//! the bits above (`ONE_READER` each). The two queue bits mirror the one wait queue
//! (readers and writers, each waiter tagged) whenever its internal lock is free.
//!
//! Fast paths are one CAS (read lock when no writer holds or waits; write lock from an
//! idle word), one `fetch_sub` (read unlock), one CAS (write unlock with nobody queued).
//! Everything else runs under the queue lock and *hands the lock over*: [`grant`] looks at
//! the word and the queue and, if the lock can be given, sets the bits for the receivers
//! and decides them `GRANTED`. A woken waiter therefore never competes again. Who is
//! served:
//!
//! - when the last reader leaves and a writer waits, the oldest writer;
//! - when a writer unlocks, every queued reader first (they arrived while it wrote; Go's
//!   `Unlock` releases them likewise), else the next writer;
//! - a reader arriving while a writer waits queues behind it.
//!
//! Timeouts and unwinding follow the mutex (see `mutex.rs`): a waiter that leaves still
//! queued removes itself and fixes the bits (and a leaving writer lets the readers it held
//! back in); one that was granted the lock keeps it on a timeout and releases it on an
//! unwind.
//!
//! Go: sync.(*RWMutex).RLock / RUnlock / Lock / Unlock.
//!
//! [`grant`]: RawRwLock

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, GRANTED};
use gmp_core::park::{Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicUsize, Ordering};
use std::fmt;
#[cfg(not(loom))]
use std::time::Duration;
use std::time::Instant;

const WRITER: usize = 1;
const WRITER_WAITING: usize = 2;
const READERS_PARKED: usize = 4;
const ONE_READER: usize = 8;

const READ: u8 = 0;
const WRITE: u8 = 1;

/// The raw lock behind [`RwLock`] (see the module docs).
pub struct RawRwLock {
    state: AtomicUsize,
    queue: WaitQueue,
}

impl fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawRwLock")
            .field("writer", &(s & WRITER != 0))
            .field("readers", &(s / ONE_READER))
            .finish()
    }
}

impl Default for RawRwLock {
    fn default() -> Self {
        RawRwLock::new()
    }
}

impl RawRwLock {
    /// An unlocked lock.
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_shared();
    /// assert!(!l.try_lock_exclusive());
    /// // SAFETY: we hold a read share.
    /// unsafe { l.unlock_shared() };
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RawRwLock {
            state: AtomicUsize::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        RawRwLock {
            state: AtomicUsize::new(0),
            queue: WaitQueue::new(()),
        }
    }

    /// Takes a read share, parking while a writer holds the lock or waits for it.
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_shared();
    /// l.lock_shared();
    /// // SAFETY: we hold two read shares.
    /// unsafe { l.unlock_shared(); l.unlock_shared() };
    /// ```
    #[inline]
    pub fn lock_shared(&self) {
        if !self.try_lock_shared() {
            self.lock_shared_slow(None);
        }
    }

    /// Takes a read share if no writer holds the lock or waits for it.
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// assert!(l.try_lock_shared());
    /// # unsafe { l.unlock_shared() };
    /// ```
    #[inline]
    pub fn try_lock_shared(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (WRITER | WRITER_WAITING) != 0 {
                return false;
            }
            // Acquire: the read section starts after the last writer's Release.
            match self.state.compare_exchange_weak(
                s,
                s + ONE_READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Takes a read share, giving up at `deadline`; true if taken.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_exclusive();
    /// assert!(!l.lock_shared_until(Instant::now() + Duration::from_millis(2)));
    /// # unsafe { l.unlock_exclusive() };
    /// ```
    pub fn lock_shared_until(&self, deadline: Instant) -> bool {
        self.try_lock_shared() || self.lock_shared_slow(Some(deadline))
    }

    /// Releases a read share.
    ///
    /// # Safety
    ///
    /// The caller holds a read share (taken by any thread or goroutine).
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_shared();
    /// // SAFETY: taken just above.
    /// unsafe { l.unlock_shared() };
    /// assert!(!l.is_locked());
    /// ```
    #[inline]
    pub unsafe fn unlock_shared(&self) {
        // Release: the read section happens before the next writer's Acquire.
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(prev >= ONE_READER, "gmp sync: unlock of an unlocked RwLock");
        if prev & !(WRITER_WAITING | READERS_PARKED) == ONE_READER
            && prev & (WRITER_WAITING | READERS_PARKED) != 0
        {
            self.release_slow();
        }
    }

    /// Takes the lock exclusively, parking while it is held.
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_exclusive();
    /// assert!(l.is_locked_exclusive());
    /// // SAFETY: taken just above.
    /// unsafe { l.unlock_exclusive() };
    /// ```
    #[inline]
    pub fn lock_exclusive(&self) {
        // Acquire: the write section starts after every previous Release.
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_exclusive_slow(None);
        }
    }

    /// Takes the lock exclusively if nobody holds it or waits for it.
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// assert!(l.try_lock_exclusive());
    /// assert!(!l.try_lock_shared());
    /// # unsafe { l.unlock_exclusive() };
    /// ```
    #[inline]
    pub fn try_lock_exclusive(&self) -> bool {
        // Acquire: as in `lock_exclusive`.
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock exclusively, giving up at `deadline`; true if taken.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_shared();
    /// assert!(!l.lock_exclusive_until(Instant::now() + Duration::from_millis(2)));
    /// assert!(l.try_lock_shared()); // the writer that gave up no longer blocks readers
    /// # unsafe { l.unlock_shared(); l.unlock_shared() };
    /// ```
    pub fn lock_exclusive_until(&self, deadline: Instant) -> bool {
        self.try_lock_exclusive() || self.lock_exclusive_slow(Some(deadline))
    }

    /// Releases the exclusive lock.
    ///
    /// # Safety
    ///
    /// The caller holds the lock exclusively (taken by any thread or goroutine).
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// l.lock_exclusive();
    /// // SAFETY: taken just above.
    /// unsafe { l.unlock_exclusive() };
    /// assert!(!l.is_locked());
    /// ```
    #[inline]
    pub unsafe fn unlock_exclusive(&self) {
        // Release: publishes the write section.
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_exclusive_slow();
        }
    }

    /// True if a reader or a writer holds the lock (a snapshot).
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// assert!(!l.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & WRITER != 0 || s >= ONE_READER
    }

    /// True if a writer holds the lock (a snapshot).
    ///
    /// ```
    /// let l = gmp_chan::sync::RawRwLock::new();
    /// assert!(!l.is_locked_exclusive());
    /// ```
    pub fn is_locked_exclusive(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }

    /// Hands the lock to whoever can have it now (queue lock held); returns whom to wake.
    /// `prefer_readers`: a writer just unlocked, so queued readers go before the next
    /// writer.
    fn grant(&self, q: &mut Queue<()>, prefer_readers: bool) -> Vec<Unparker> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WRITER != 0 {
                return Vec::new();
            }
            let readers = s / ONE_READER;
            let has_w = q.has_kind(WRITE);
            let has_r = q.has_kind(READ);
            if has_r && (!has_w || prefer_readers) {
                let n = q.waiters.iter().filter(|w| w.kind == READ).count();
                let new = (s & !READERS_PARKED) + n * ONE_READER;
                // AcqRel: acquires the readers' and writer's Release on the word, and
                // the decisions below publish it to the granted readers.
                match self
                    .state
                    .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => {
                        let mut wake = Vec::with_capacity(n);
                        while let Some(u) = q.pop_kind(READ, GRANTED) {
                            wake.push(u);
                        }
                        return wake;
                    }
                    Err(x) => s = x,
                }
            } else if has_w && readers == 0 {
                let more = q.waiters.iter().filter(|w| w.kind == WRITE).count() > 1;
                let mut new = (s | WRITER) & !WRITER_WAITING;
                if more {
                    new |= WRITER_WAITING;
                }
                // AcqRel: as above.
                match self
                    .state
                    .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => return q.pop_kind(WRITE, GRANTED).into_iter().collect(),
                    Err(x) => s = x,
                }
            } else {
                return Vec::new();
            }
        }
    }

    /// Re-derives the queue bits after a waiter left (queue lock held).
    fn fix_bits(&self, q: &mut Queue<()>) {
        let mut clear = 0;
        if !q.has_kind(WRITE) {
            clear |= WRITER_WAITING;
        }
        if !q.has_kind(READ) {
            clear |= READERS_PARKED;
        }
        // Relaxed: under the queue lock; bits only steer the fast paths into the queue.
        self.state.fetch_and(!clear, Ordering::Relaxed);
    }

    #[cold]
    fn release_slow(&self) {
        let mut q = self.queue.lock();
        let wake = self.grant(&mut q, false);
        drop(q);
        wake_all(wake);
    }

    #[cold]
    fn unlock_exclusive_slow(&self) {
        let mut q = self.queue.lock();
        // Release: publishes the write section (to fast-path lockers too).
        self.state.fetch_and(!WRITER, Ordering::Release);
        let wake = self.grant(&mut q, true);
        drop(q);
        wake_all(wake);
    }

    /// A waiter leaves without having been granted anything: removed (queue lock held).
    fn leave(&self, q: &mut Queue<()>) -> Vec<Unparker> {
        self.fix_bits(q);
        self.grant(q, false)
    }

    /// A waiter unwound out of its park (queue lock held).
    fn abandon(&self, q: &mut Queue<()>, queued: bool, decision: u8, kind: u8) -> Vec<Unparker> {
        if queued {
            return self.leave(q);
        }
        if decision != GRANTED {
            return Vec::new();
        }
        if kind == WRITE {
            // Release: nothing was written under the lock, but keep the unlock's shape.
            self.state.fetch_and(!WRITER, Ordering::Release);
            self.grant(q, true)
        } else {
            self.state.fetch_sub(ONE_READER, Ordering::Release);
            self.grant(q, false)
        }
    }

    /// Queues a waiter of `kind` and parks (queue lock `q` held on entry).
    fn park(
        &self,
        mut q: gmp_core::sync::MutexGuard<'_, Queue<()>>,
        kind: u8,
        deadline: Option<Instant>,
    ) -> bool {
        let w = Waiter::new(1, kind);
        q.waiters.push_back(w.clone());
        let bit = if kind == WRITE {
            WRITER_WAITING
        } else {
            READERS_PARKED
        };
        // Relaxed: under the queue lock; the CAS in `grant` re-reads the word.
        self.state.fetch_or(bit, Ordering::Relaxed);
        // The word may have changed between the caller's check and the bit: settle it.
        let wake = self.grant(&mut q, false);
        drop(q);
        wake_all(wake);
        let reg = super::waiter::Registration::new(&self.queue, &w, |q, queued, decision| {
            self.abandon(q, queued, decision, kind)
        });
        let decision = w.wait(
            deadline,
            if kind == WRITE {
                WaitReason::RwLockWrite
            } else {
                WaitReason::RwLockRead
            },
        );
        reg.disarm();
        if decision == GRANTED {
            return true;
        }
        let mut q = self.queue.lock();
        if q.remove(&w) {
            let wake = self.leave(&mut q);
            drop(q);
            wake_all(wake);
            return false;
        }
        // Granted as the deadline passed: we hold it.
        debug_assert_eq!(w.state(), GRANTED);
        true
    }

    #[cold]
    fn lock_shared_slow(&self, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let q = self.queue.lock();
        if self.try_lock_shared() {
            return true;
        }
        self.park(q, READ, deadline)
    }

    #[cold]
    fn lock_exclusive_slow(&self, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let q = self.queue.lock();
        let mut s = self.state.load(Ordering::Relaxed);
        // Free and nobody queued ahead of us: take it (a writer in the queue goes first).
        while s & WRITER == 0 && s < ONE_READER && s & WRITER_WAITING == 0 {
            // Acquire: as in `lock_exclusive`.
            match self.state.compare_exchange_weak(
                s,
                s | WRITER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
        self.park(q, WRITE, deadline)
    }
}

#[cfg(not(loom))]
// SAFETY: a writer is admitted only when WRITER is clear and no reader holds a share (one
// CAS, or a grant under the queue lock that checks both); readers only when WRITER is
// clear. Unlocks publish with Release. No owner thread: guards may be sent.
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawRwLock::new();
    type GuardMarker = lock_api::GuardSend;

    #[inline]
    fn lock_shared(&self) {
        RawRwLock::lock_shared(self);
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        RawRwLock::try_lock_shared(self)
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        // SAFETY: forwarded from lock_api's contract (a share is held).
        unsafe { RawRwLock::unlock_shared(self) }
    }

    #[inline]
    fn lock_exclusive(&self) {
        RawRwLock::lock_exclusive(self);
    }

    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        RawRwLock::try_lock_exclusive(self)
    }

    #[inline]
    unsafe fn unlock_exclusive(&self) {
        // SAFETY: forwarded from lock_api's contract (the lock is held exclusively).
        unsafe { RawRwLock::unlock_exclusive(self) }
    }

    fn is_locked(&self) -> bool {
        RawRwLock::is_locked(self)
    }

    fn is_locked_exclusive(&self) -> bool {
        RawRwLock::is_locked_exclusive(self)
    }
}

#[cfg(not(loom))]
// SAFETY: the timed forms take the lock exactly when they return true.
unsafe impl lock_api::RawRwLockTimed for RawRwLock {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_shared_for(&self, timeout: Duration) -> bool {
        self.lock_shared_until(super::deadline_after(timeout))
    }

    fn try_lock_shared_until(&self, deadline: Instant) -> bool {
        self.lock_shared_until(deadline)
    }

    fn try_lock_exclusive_for(&self, timeout: Duration) -> bool {
        self.lock_exclusive_until(super::deadline_after(timeout))
    }

    fn try_lock_exclusive_until(&self, deadline: Instant) -> bool {
        self.lock_exclusive_until(deadline)
    }
}

/// A reader-writer lock that parks the goroutine, not the thread: parking_lot's
/// [`lock_api::RwLock`] over [`RawRwLock`] (Go's `sync.RWMutex`: a waiting writer blocks
/// new readers).
///
/// ```
/// use gmp_chan::sync::RwLock;
/// use std::time::Duration;
///
/// let l = RwLock::new(vec![1, 2]);
/// {
///     let a = l.read();
///     let b = l.read(); // many readers at once
///     assert_eq!(a.len() + b.len(), 4);
///     assert!(l.try_write_for(Duration::from_millis(1)).is_none());
/// }
/// l.write().push(3);
/// assert_eq!(*l.read(), [1, 2, 3]);
/// ```
#[cfg(not(loom))]
pub type RwLock<T> = lock_api::RwLock<RawRwLock, T>;

/// A read guard of [`RwLock`].
#[cfg(not(loom))]
pub type RwLockReadGuard<'a, T> = lock_api::RwLockReadGuard<'a, RawRwLock, T>;

/// A write guard of [`RwLock`].
#[cfg(not(loom))]
pub type RwLockWriteGuard<'a, T> = lock_api::RwLockWriteGuard<'a, RawRwLock, T>;
