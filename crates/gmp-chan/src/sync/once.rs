//! [`Once`] and [`OnceLock`]: std's one-time initialisation, parking the goroutine.
//!
//! The state word is `INCOMPLETE`, `RUNNING`, `COMPLETE` or `POISONED` (an initialiser
//! panicked). The caller that moves it to `RUNNING` runs the initialiser; callers that
//! arrive meanwhile queue under the queue lock *after checking, under that lock, that it is
//! still `RUNNING`*, and the initialiser stores the final state before taking the queue
//! lock to wake them all, so none can miss the wake-up. Woken callers re-read the state:
//! `COMPLETE` returns, `POISONED` panics (or, for `call_once_force`, runs its own
//! initialiser), `INCOMPLETE` (an `OnceLock` initialiser that panicked) races to run it.
//!
//! Go: sync.Once (doSlow), with std's poisoning.

use super::waiter::{wake_all, Queue, WaitQueue, Waiter, WOKEN};
use gmp_core::park::{Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::panic::{RefUnwindSafe, UnwindSafe};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;
const POISONED: u8 = 3;

/// Runs a one-time initialisation; as `std::sync::Once`, but callers that arrive while
/// another runs it park as goroutines.
///
/// ```
/// use gmp_chan::sync::Once;
/// static INIT: Once = Once::new();
/// let mut runs = 0;
/// INIT.call_once(|| runs += 1);
/// INIT.call_once(|| runs += 1);
/// assert_eq!(runs, 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue,
}

/// What [`Once::call_once_force`] tells its initialiser.
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// True if an earlier initialiser panicked.
    ///
    /// ```
    /// use gmp_chan::sync::Once;
    /// let o = Once::new();
    /// o.call_once_force(|s| assert!(!s.is_poisoned()));
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

impl Default for Once {
    fn default() -> Self {
        Once::new()
    }
}

impl UnwindSafe for Once {}
impl RefUnwindSafe for Once {}

/// Sets the final state and wakes the waiters when the initialiser returns or unwinds.
struct Finish<'a> {
    once: &'a Once,
    state: u8,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        // Release: publishes the initialiser's writes to every Acquire of the state.
        self.once.state.store(self.state, Ordering::Release);
        let mut q = self.once.queue.lock();
        let wake: Vec<Unparker> = q.waiters.drain(..).map(|w| w.decide(WOKEN)).collect();
        drop(q);
        wake_all(wake);
    }
}

impl Once {
    /// A `Once` that has not run.
    ///
    /// ```
    /// let o = gmp_chan::sync::Once::new();
    /// assert!(!o.is_completed());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::new(()),
        }
    }

    /// A `Once` that has not run.
    #[cfg(loom)]
    pub fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            queue: WaitQueue::new(()),
        }
    }

    /// Runs `f` if no call has completed yet; returns once some call has. Callers that
    /// arrive while another runs its initialiser park until it finishes.
    ///
    /// # Panics
    ///
    /// If an earlier initialiser panicked (the `Once` is poisoned).
    ///
    /// ```
    /// let o = gmp_chan::sync::Once::new();
    /// o.call_once(|| println!("once"));
    /// ```
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        // Acquire: pairs with the Release in `Finish::drop`.
        if self.state.load(Ordering::Acquire) == COMPLETE {
            return;
        }
        let mut f = Some(f);
        self.call(false, &mut |_| (f.take().expect("called once"))());
    }

    /// As [`call_once`](Once::call_once), but runs even if poisoned, telling `f` so.
    ///
    /// ```
    /// use gmp_chan::sync::Once;
    /// let o = Once::new();
    /// let _ = std::panic::catch_unwind(|| o.call_once(|| panic!("boom")));
    /// o.call_once_force(|s| assert!(s.is_poisoned()));
    /// assert!(o.is_completed());
    /// ```
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        // Acquire: as in `call_once`.
        if self.state.load(Ordering::Acquire) == COMPLETE {
            return;
        }
        let mut f = Some(f);
        self.call(true, &mut |s| (f.take().expect("called once"))(s));
    }

    /// True once some initialiser has completed.
    ///
    /// ```
    /// let o = gmp_chan::sync::Once::new();
    /// o.call_once(|| {});
    /// assert!(o.is_completed());
    /// ```
    pub fn is_completed(&self) -> bool {
        // Acquire: as in `call_once`.
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Parks until some initialiser has completed (std's `Once::wait`).
    ///
    /// # Panics
    ///
    /// If the `Once` is poisoned (now or while waiting).
    ///
    /// ```
    /// use gmp_chan::sync::Once;
    /// use std::sync::Arc;
    /// let o = Arc::new(Once::new());
    /// let o2 = o.clone();
    /// let t = std::thread::spawn(move || o2.wait());
    /// o.call_once(|| {});
    /// t.join().unwrap();
    /// ```
    pub fn wait(&self) {
        self.wait_inner(false);
    }

    /// Parks until completed; `ignore_poison`: a poisoned state counts as not yet.
    fn wait_inner(&self, ignore_poison: bool) {
        loop {
            // Acquire: as in `call_once`.
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED if !ignore_poison => panic!("Once instance has previously been poisoned"),
                _ => {}
            }
            let mut q = self.queue.lock();
            // Relaxed: re-read with Acquire at the top of the loop.
            if self.state.load(Ordering::Relaxed) == COMPLETE {
                return;
            }
            let w = Waiter::new(1, 0);
            q.waiters.push_back(w.clone());
            drop(q);
            let reg =
                super::waiter::Registration::new(&self.queue, &w, |_: &mut Queue<()>, _, _| {
                    Vec::new()
                });
            w.wait(None, WaitReason::Semacquire);
            reg.disarm();
        }
    }

    /// Runs `f` as the initialiser if the state allows, or waits for the one running.
    /// `panic_state`: what a panicking initialiser leaves (`POISONED` for `Once`,
    /// `INCOMPLETE` for `OnceLock`).
    fn call(&self, ignore_poison: bool, f: &mut dyn FnMut(&OnceState)) {
        self.call_inner(ignore_poison, POISONED, f);
    }

    fn call_inner(&self, ignore_poison: bool, panic_state: u8, f: &mut dyn FnMut(&OnceState)) {
        loop {
            // Acquire: as in `call_once`.
            let s = self.state.load(Ordering::Acquire);
            match s {
                COMPLETE => return,
                POISONED if !ignore_poison => panic!("Once instance has previously been poisoned"),
                INCOMPLETE | POISONED => {
                    // Acquire: a poisoned run's writes are visible to the forced one.
                    if self
                        .state
                        .compare_exchange(s, RUNNING, Ordering::Acquire, Ordering::Acquire)
                        .is_err()
                    {
                        continue;
                    }
                    let mut finish = Finish {
                        once: self,
                        state: panic_state,
                    };
                    f(&OnceState {
                        poisoned: s == POISONED,
                    });
                    finish.state = COMPLETE;
                    return;
                }
                _ => self.wait_running(),
            }
        }
    }

    /// Parks until the running initialiser finishes (returns at once if it already has).
    fn wait_running(&self) {
        let mut q = self.queue.lock();
        // Relaxed: the caller re-reads with Acquire after we return.
        if self.state.load(Ordering::Relaxed) != RUNNING {
            return;
        }
        let w = Waiter::new(1, 0);
        q.waiters.push_back(w.clone());
        drop(q);
        let reg =
            super::waiter::Registration::new(&self.queue, &w, |_: &mut Queue<()>, _, _| Vec::new());
        w.wait(None, WaitReason::Semacquire);
        reg.disarm();
    }
}

/// A cell written once; as `std::sync::OnceLock`, but goroutines that arrive while
/// another initialises it park.
///
/// ```
/// use gmp_chan::sync::OnceLock;
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// assert_eq!(CONFIG.get_or_init(|| "a".to_string()), "a");
/// assert_eq!(CONFIG.set("b".to_string()), Err("b".to_string()));
/// assert_eq!(CONFIG.get().map(String::as_str), Some("a"));
/// ```
pub struct OnceLock<T> {
    once: Once,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the initialiser that won the `Once`, before the
// Release that completes it; readers read it only after an Acquire that saw COMPLETE.
// Sharing it hands `&T` to other threads (T: Sync) and the initialiser may run on
// another thread than the one that drops it (T: Send).
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the `T` (T: Send).
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell.
    ///
    /// ```
    /// let c: gmp_chan::sync::OnceLock<u8> = gmp_chan::sync::OnceLock::new();
    /// assert!(c.get().is_none());
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// An empty cell.
    #[cfg(loom)]
    pub fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if initialised (never blocks).
    ///
    /// ```
    /// let c = gmp_chan::sync::OnceLock::new();
    /// c.set(1).unwrap();
    /// assert_eq!(c.get(), Some(&1));
    /// ```
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: completed: the value was written before the Release that our
            // Acquire (in `is_completed`) saw, and is never written again while shared.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// The value, mutably, if initialised.
    ///
    /// ```
    /// let mut c = gmp_chan::sync::OnceLock::new();
    /// c.set(1).unwrap();
    /// *c.get_mut().unwrap() += 1;
    /// assert_eq!(c.get(), Some(&2));
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.is_completed() {
            // SAFETY: completed (so initialised), and `&mut self` is exclusive.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Parks until the cell is initialised (by another caller), then returns the value
    /// (std's `OnceLock::wait`).
    ///
    /// ```
    /// use gmp_chan::sync::OnceLock;
    /// use std::sync::Arc;
    /// let c = Arc::new(OnceLock::new());
    /// let c2 = c.clone();
    /// let t = std::thread::spawn(move || *c2.wait());
    /// c.set(9).unwrap();
    /// assert_eq!(t.join().unwrap(), 9);
    /// ```
    pub fn wait(&self) -> &T {
        self.once.wait_inner(true);
        self.get().expect("initialised")
    }

    /// Stores `value` if the cell is empty; otherwise gives it back. Parks if another
    /// caller is initialising the cell right now.
    ///
    /// ```
    /// let c = gmp_chan::sync::OnceLock::new();
    /// assert_eq!(c.set(1), Ok(()));
    /// assert_eq!(c.set(2), Err(2));
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initialising it with `f` if empty. Exactly one `f` runs; callers that
    /// arrive meanwhile park. If `f` panics the cell stays empty and the panic
    /// propagates; a later caller initialises it.
    ///
    /// ```
    /// let c = gmp_chan::sync::OnceLock::new();
    /// assert_eq!(*c.get_or_init(|| 7), 7);
    /// assert_eq!(*c.get_or_init(|| 8), 7);
    /// ```
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let mut f = Some(f);
        let slot = &self.value;
        self.once.call_inner(true, INCOMPLETE, &mut |_| {
            let v = (f.take().expect("called once"))();
            // SAFETY: we won the RUNNING state: nobody else reads or writes the slot
            // until we complete, and it was never initialised (a panicking initialiser
            // leaves it untouched: it panics before writing).
            unsafe { (*slot.get()).write(v) };
        });
        self.get().expect("initialised")
    }

    /// The value, if initialised, consuming the cell.
    ///
    /// ```
    /// let c = gmp_chan::sync::OnceLock::new();
    /// c.set("x").unwrap();
    /// assert_eq!(c.into_inner(), Some("x"));
    /// ```
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    ///
    /// ```
    /// let mut c = gmp_chan::sync::OnceLock::new();
    /// c.set(3).unwrap();
    /// assert_eq!(c.take(), Some(3));
    /// assert!(c.get().is_none());
    /// ```
    pub fn take(&mut self) -> Option<T> {
        if self.once.is_completed() {
            self.once = Once::new();
            // SAFETY: it was initialised, and resetting the `Once` above means it is no
            // longer considered so: it is read out exactly once.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.is_completed() {
            // SAFETY: initialised, and dropped exactly once (here).
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> Self {
        OnceLock::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> Self {
        let c = OnceLock::new();
        if let Some(v) = self.get() {
            let _ = c.set(v.clone());
        }
        c
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> Self {
        let c = OnceLock::new();
        let _ = c.set(value);
        c
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}
