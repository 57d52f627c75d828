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
//! futex (4 rounds of pauses between looks at the word, then `sched_yield`), with rounds
//! of about 2 µs instead of Go's 30 pauses. A round is a time, not a count, because a
//! pause takes 11 ns on the development machine and about 40 ns on Skylake servers (140
//! cycles; 3 ns on older cores): the number of pauses is measured once, the first time a
//! lock is contended ([`pauses_per_round`]). Why so long: under sustained contention (mpmc0:
//! 8 goroutines on one rendezvous channel, 2 Ps) a waiter that looks at the word often
//! pulls its line, and with it the wait queue and the waiters' records, away from the
//! holder's core between the holder's critical sections; one that stands back lets that
//! core run them back to back on warm lines. Interleaved direct runs of mpmc0 by the
//! time between looks: 1 to 64 pauses growing (`Backoff::snooze`, then yields) 494-530
//! ns a message; 30 pauses (0.33 µs, Go's count) 367-434; 60, 320; 120 (1.3 µs) 200-206;
//! 180 (2 µs) 167-174; 240, 153-158; 480, 133-136 (one P: 111; Go 391-427). `perf`
//! (cpu-clock) of one run each, per message on both cores: 686 ns at 30 pauses, of which
//! 495 outside the wait (`try_select` 78 ns, the scheduler loop 123: lines crossing the
//! cores), 348 ns at 180 pauses, of which 205 outside it (`try_select` 22, the loop 47;
//! `bench-results/profiles/spawn-mpmc0.txt`). Ping-pong
//! on 2 Ps (two goroutines, rarely contending) and skynet were level at every setting.
//! With more Ps than CPUs (holders descheduled by the OS mid-section), mpmc0 on 4 and 8
//! Ps: 400-405 -> 146-147 and 238-247 -> 143-145 ns, ping-pong on 4 Ps 187-190 -> 190-196.
//! What it costs: a waiter waits at least one round (2 µs) once it finds the lock held,
//! and its core spins meanwhile (as Go's does for its 30 pauses); rounds much longer
//! would make that latency the rule, so 2 µs and not more. The critical sections never
//! block — no park, no user code (messages are dropped after the lock is released), at
//! most an allocation (a waiter's exchange slot, a wait queue's growth) or the wake-up of
//! other waiters (`disconnect`) — so a holder that is running releases it soon, and one
//! that its OS descheduled is run again by the yields (after about 8 µs of spinning).
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
        // lock): rounds of pauses between looks at the word, 4 rounds, then
        // `sched_yield`, and again.
        let pauses = pauses_per_round();
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
                for _ in 0..pauses {
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

/// How long one round lasts (see the module docs for the measurements behind it).
#[cfg(not(loom))]
const ROUND: std::time::Duration = std::time::Duration::from_micros(2);

/// Pauses in one round: `ROUND` divided by a pause's time on this CPU, measured the
/// first time a lock is contended (best of three timings of 256 pauses, about 3 µs each
/// here: an interrupted timing only reads longer) and kept. Never fewer than Go's 30
/// (a clock too coarse to time 256 pauses reads 0), never more than 2,000.
#[cfg(not(loom))]
fn pauses_per_round() -> u32 {
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;
    // Relaxed: the value is a tuning number; two threads that both measure store
    // numbers equally good, and no other memory is published with it.
    static PAUSES: AtomicU32 = AtomicU32::new(0);
    let known = PAUSES.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    const SAMPLE: u32 = 256;
    let mut best = std::time::Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..SAMPLE {
            std::hint::spin_loop();
        }
        best = best.min(t.elapsed());
    }
    let pauses = match best.as_nanos() {
        0 => 30,
        ns => (ROUND.as_nanos() * u128::from(SAMPLE) / ns).clamp(30, 2_000) as u32,
    };
    PAUSES.store(pauses, Ordering::Relaxed);
    pauses
}

/// Under loom a pause is a yield to loom's scheduler: one per round.
#[cfg(loom)]
fn pauses_per_round() -> u32 {
    1
}

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

    #[test]
    fn a_round_is_measured_once_and_bounded() {
        let first = super::pauses_per_round();
        assert!((30..=2_000).contains(&first), "{first} pauses a round");
        assert_eq!(super::pauses_per_round(), first, "measured again");
    }

    #[test]
    fn a_waiter_gets_the_lock_a_long_holder_releases() {
        // The waiter is in its rounds (and yields) for the whole hold: it must still
        // see the release and take the lock, with the holder's write visible.
        let lock = Arc::new(SpinLock::new(0u64));
        let mut held = lock.lock();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || *lock.lock())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        *held = 7;
        drop(held);
        assert_eq!(waiter.join().unwrap(), 7);
    }
}
