//! Locks and coordination that park the goroutine, not the thread (re-exported as
//! `gmp_runtime::sync`).
//!
//! `std::sync::Mutex` and `parking_lot` block the whole OS thread while they wait: inside a
//! goroutine that stalls every other goroutine of its M until sysmon steps in. The types
//! here wait through [`gmp_core::park`], exactly as the channels do: a goroutine parks on
//! the scheduler and its M runs others; a plain thread parks as a thread; both can wait on
//! the same lock. None of them has an owner thread, so a guard may be held across a
//! suspension point (a channel operation, a sleep, I/O) and released after the goroutine
//! moved to another thread.
//!
//! | type | what |
//! |---|---|
//! | [`Mutex`], [`MutexGuard`] | `lock_api::Mutex` over [`RawMutex`]: Go's `sync.Mutex` (barging, then FIFO hand-off after 1 ms) |
//! | [`RwLock`] | `lock_api::RwLock` over [`RawRwLock`]: a waiting writer blocks new readers (Go's `RWMutex`) |
//! | [`Condvar`] | parking_lot's condition variable shape, for [`Mutex`] |
//! | [`WaitGroup`] | Go's `sync.WaitGroup` |
//! | [`Once`], [`OnceLock`] | std's |
//! | [`Semaphore`], [`SemaphorePermit`] | counting semaphore, FIFO, permits released on drop |
//! | [`Barrier`], [`BarrierWaitResult`] | std's |
//!
//! Every type is built on one wait-queue primitive (`waiter.rs`): a waiter record holding
//! the waiter's [`Unparker`](gmp_core::park::Unparker), queued under a short internal lock
//! and *decided* by whoever releases. Each registration is removed on every way out of the
//! park: decided, timed out, or unwound (a drop guard on the waiter's stack). See each
//! file's module docs for its algorithm.
//!
//! ```
//! use gmp_chan::sync::{Mutex, WaitGroup};
//! use std::sync::Arc;
//!
//! let total = Arc::new(Mutex::new(0u64));
//! let wg = Arc::new(WaitGroup::new());
//! for i in 0..8 {
//!     wg.add(1);
//!     let (total, wg) = (total.clone(), wg.clone());
//!     std::thread::spawn(move || {
//!         *total.lock() += i;
//!         wg.done();
//!     });
//! }
//! wg.wait();
//! assert_eq!(*total.lock(), 28);
//! ```

mod barrier;
mod condvar;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
mod wait_group;
mod waiter;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::RawMutex;
// Under loom a stand-in with the same shape over the same `RawMutex` (see `mutex.rs`).
#[cfg(not(loom))]
pub use mutex::{MappedMutexGuard, Mutex, MutexGuard};
#[cfg(loom)]
pub use mutex::{Mutex, MutexGuard};
pub use once::{Once, OnceLock, OnceState};
pub use rwlock::RawRwLock;
#[cfg(not(loom))]
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit, MAX_PERMITS};
pub use wait_group::WaitGroup;

use std::time::{Duration, Instant};

/// A deadline so far away that it never comes (for `Duration::MAX`-like timeouts).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// `now + timeout`, saturating at a far-future deadline.
fn deadline_after(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(far_future)
}
