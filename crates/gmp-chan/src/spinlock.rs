//! The zero-capacity channel's lock: test-and-test-and-set, released with a plain store.
//!
//! A rendezvous takes its channel's lock twice (the side that registers and the side that
//! pairs), and a blocking mutex pays a locked instruction to release as well as to take:
//! parking_lot's `unlock` is a `compare_exchange` that looks for parked threads. Here the
//! release is a Release store, as in crossbeam-channel's zero-capacity channel (its
//! `Spinlock`): one locked instruction per critical section instead of two (a channel
//! ping-pong on one P: 8 of its locked instructions per round trip were the channel's
//! mutex).
//!
//! Waiting is spinning, then yielding the CPU, never sleeping: Go's `lock2` without its
//! futex (4 rounds of 30 pauses between looks at the word, then `sched_yield`). With
//! `Backoff::snooze` instead (1, 2, 4 … 64 pauses, then yields), mpmc0 (8 goroutines on
//! one rendezvous channel, 2 Ps) took 494-530 ns a message against 367-410 now (Go
//! 391-427), ping-pong on 1 and 2 Ps level (interleaved direct runs): most likely the
//! early, frequent looks pulled the lock's line away from the holder's core. The
//! critical sections never block — no park, no user code (messages are dropped after the
//! lock is released), at most an allocation (a waiter's record or exchange slot, a wait
//! queue's growth) or the wake-up of other waiters (`disconnect`) — so a holder that is
//! running releases it soon, and one that its OS descheduled is run again by the yields.
//! A goroutine never parks while holding it, so on one P the holder is never a goroutine
//! waiting for its M to come back.

use gmp_core::sync::atomic::{AtomicBool, Ordering};
use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};

/// A spin lock guarding a `T` (see the module docs).
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time (the Acquire
// CAS that takes it and the Release store that gives it back order those accesses), so
// sharing the lock shares `T` only by moving access between threads: `T: Send` suffices,
// as for `std::sync::Mutex`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: owning the lock owns the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning (then yielding) while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if !self.try_take() {
            self.lock_contended();
        }
        SpinGuard { lock: self }
    }

    /// One attempt: `false -> true`. A compare-and-swap rather than a swap: a failed
    /// attempt then writes nothing (and under loom adds no store for later loads to
    /// choose from).
    #[inline]
    fn try_take(&self) -> bool {
        // Acquire: what the previous holder wrote under the lock (before its Release
        // store in `SpinGuard::drop`) is visible to us. Relaxed on failure: nothing read.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        // Go: runtime.lock2's wait (without its futex sleep: nobody sleeps on this
        // lock): rounds of 30 pauses between looks at the word, 4 rounds, then
        // `sched_yield`, and again.
        loop {
            for _ in 0..ACTIVE_SPIN {
                // Test before test-and-set: look with a load, so that the waiters share
                // the line instead of taking it from the holder with a locked write
                // each. Relaxed: the CAS is the Acquire that matters. (Under loom,
                // which lets a load read an old value again and again, only the CAS.)
                #[cfg(not(loom))]
                let free = !self.locked.load(Ordering::Relaxed);
                #[cfg(loom)]
                let free = true;
                if free && self.try_take() {
                    return;
                }
                for _ in 0..ACTIVE_SPIN_PAUSES {
                    gmp_core::sync::spin_loop();
                }
            }
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }
}

/// Rounds of pauses before a contended `lock` yields the thread (Go: `active_spin`).
const ACTIVE_SPIN: u32 = 4;
/// Pauses per round (Go: `active_spin_cnt`).
#[cfg(not(loom))]
const ACTIVE_SPIN_PAUSES: u32 = 30;
#[cfg(loom)]
const ACTIVE_SPIN_PAUSES: u32 = 1;

/// Access to a [`SpinLock`]'s value; releases the lock when dropped (also on unwinding).
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its thread holds the lock: no other
        // reference to the value exists meanwhile.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through
        // this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: our writes under the lock happen before the next holder's Acquire.
        // A plain store, not an RMW: nobody sleeps on this lock, so there is nobody to
        // look for (module docs).
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SpinLock;
    use std::sync::Arc;

    /// Threads incrementing a counter under the lock lose no increment.
    #[test]
    fn excludes_across_threads() {
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 80_000);
    }

    /// A guard dropped by unwinding releases the lock.
    #[test]
    fn unwinding_releases() {
        let lock = SpinLock::new(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.lock();
            panic!("inside the critical section");
        }));
        assert!(r.is_err());
        assert_eq!(*lock.lock(), 1);
    }
}
