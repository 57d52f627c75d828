//! The one loom shim of the workspace.
//!
//! Every atomic, lock, cell and thread that a loom model must see is imported from
//! here, never from `std` directly (ARCHITECTURE.md, "Rules of the layering"). Under
//! `RUSTFLAGS="--cfg loom"` these are loom's types; otherwise they are std's and
//! parking_lot's, with the same method names, so the code above does not change.
//!
//! The surface is deliberately small and uniform:
//! - `atomic::*`: the atomics and `fence`;
//! - [`Arc`];
//! - [`Mutex`] and [`Condvar`]: no poisoning (a panic while holding a runtime lock is
//!   already a bug), `lock()` returns the guard directly;
//! - [`UnsafeCell`] with tokio-style `with`/`with_mut`, so loom can track each access;
//! - [`thread`]: `spawn`, `yield_now`, `current`, `park` (and `Thread::unpark`);
//! - [`spin_loop`]: a CPU hint normally, a yield under loom (a spinning loop must give
//!   loom's scheduler a chance to run the thread it is waiting for).

#[cfg(not(loom))]
mod imp {
    pub use std::sync::Arc;

    /// Atomics (std's).
    pub mod atomic {
        pub use std::sync::atomic::{
            fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
            Ordering,
        };
    }

    /// Threads (std's).
    pub mod thread {
        pub use std::thread::{current, park, spawn, yield_now, JoinHandle, Thread};
    }

    /// A mutex without poisoning (parking_lot's).
    pub type Mutex<T> = parking_lot::Mutex<T>;
    /// The guard of [`Mutex`].
    pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// A condition variable for [`Mutex`] (parking_lot's).
    #[derive(Debug, Default)]
    pub struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub const fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }
        /// Blocks until notified (or spuriously).
        pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard);
        }
        /// Blocks until notified, spuriously, or `deadline`; true if the deadline passed.
        pub fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: std::time::Instant,
        ) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
        /// Wakes one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// An `UnsafeCell` whose accesses go through closures, as loom's does.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        pub const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }
        /// Immutable access through a raw pointer.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        /// Mutable access through a raw pointer.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
        /// Unwraps the value.
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    /// A busy-wait hint.
    #[inline(always)]
    pub fn spin_loop() {
        std::hint::spin_loop();
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::Arc;

    /// Atomics (loom's).
    pub mod atomic {
        pub use loom::sync::atomic::{
            fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
            Ordering,
        };
    }

    /// Threads (loom's).
    pub mod thread {
        pub use loom::thread::{current, park, spawn, yield_now, JoinHandle, Thread};
    }

    /// A mutex without poisoning (loom's, unwrapped).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    /// The guard of [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// Wraps `value`.
        pub fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        /// Locks, ignoring poisoning.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
        /// Tries to lock without blocking.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
        /// Unwraps the value.
        pub fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A condition variable for [`Mutex`] (loom's).
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        /// Blocks until notified.
        pub fn wait<'a, T>(&self, guard: &mut MutexGuard<'a, T>) {
            // loom's wait takes the guard by value: swap it out and back in.
            // SAFETY: `guard` is read out, and a valid guard for the same mutex is
            // written back before anything else can observe `*guard`; `wait` does not
            // unwind in a loom model (a panic aborts the model).
            unsafe {
                let g = std::ptr::read(guard);
                let g = self.0.wait(g).unwrap_or_else(|e| e.into_inner());
                std::ptr::write(guard, g);
            }
        }
        /// Under loom time does not pass: a timed wait is modelled as a wait that may
        /// return at once, having "timed out". Returns true (timed out).
        pub fn wait_until<T>(
            &self,
            _guard: &mut MutexGuard<'_, T>,
            _deadline: std::time::Instant,
        ) -> bool {
            true
        }
        /// Wakes one waiter.
        pub fn notify_one(&self) {
            self.0.notify_one();
        }
        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub use loom::cell::UnsafeCell;

    /// A busy-wait hint: under loom, a yield so the awaited thread can run.
    pub fn spin_loop() {
        loom::thread::yield_now();
    }
}

pub use imp::*;
