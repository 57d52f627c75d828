//! Goroutine-local storage: [`goroutine_local!`](crate::goroutine_local) and
//! [`LocalKey`], the safe alternative to `thread_local!` in goroutines.
//!
//! A goroutine may resume on another OS thread after any suspension, so a
//! `thread_local!` borrow held across one would touch another thread's value. A
//! goroutine-local value lives in the goroutine itself (its `G`), created on first use
//! and dropped when the goroutine ends — however it ends: return, panic, `abort`, or
//! the shutdown's forced unwind — while it is still the running goroutine, so a
//! destructor may use the runtime. A borrow of it may be held across a suspension
//! point. On a plain thread the same key gives one value per thread.
//!
//! Each value is boxed: the box never moves while the goroutine (or thread) lives, so
//! `with` can lend a reference while the closure uses other keys, which may add
//! entries to the same list.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;

/// `(key address, value)` pairs.
type List = Vec<(usize, Box<dyn Any>)>;

/// The values of one goroutine (or plain thread). Boxed, and only once a value is made:
/// every G carries a `Locals` and few goroutines use any (8 bytes in each G, not 24).
#[derive(Default)]
pub(crate) struct Locals {
    entries: Option<Box<List>>,
}

impl Locals {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.as_ref().is_none_or(|e| e.is_empty())
    }

    fn find(&self, key: usize) -> Option<*const dyn Any> {
        self.entries
            .as_deref()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| &**v as *const dyn Any)
    }
}

impl Drop for Locals {
    fn drop(&mut self) {
        if let Some(e) = &mut self.entries {
            drain(e);
        }
    }
}

/// Drops values until none is left (a destructor may create new ones; give up after a
/// few rounds, as std does for thread-locals re-initialised during destruction).
fn drain(entries: &mut List) {
    for _ in 0..8 {
        if entries.is_empty() {
            return;
        }
        // Last created, first dropped; each destructor runs with the list empty.
        let batch = std::mem::take(entries);
        for (_, v) in batch.into_iter().rev() {
            drop(v);
        }
    }
    // Values re-created by destructors eight rounds in a row are leaked.
    std::mem::forget(std::mem::take(entries));
}

std::thread_local! {
    static THREAD_LOCALS: UnsafeCell<Locals> = UnsafeCell::new(Locals::default());
}

/// The calling goroutine's (or plain thread's) list, for the duration of `f`.
///
/// `f` may add entries but never removes or moves existing boxes.
fn with_locals<R>(f: impl FnOnce(&UnsafeCell<Locals>) -> R) -> R {
    match crate::proc::identity_g() {
        Some(g) => f(&g.locals),
        None => THREAD_LOCALS.with(|l| f(l)),
    }
}

/// Drops the running goroutine's values: the last act of its body (spawn.rs).
pub(crate) fn drop_goroutine_locals() {
    if let Some(g) = crate::proc::identity_g() {
        // The list is taken out before its values drop, so no borrow of the goroutine's
        // own list is live while their destructors run; values those destructors make
        // go to a new list, taken in the next round (eight at most, as in `drain`).
        for _ in 0..8 {
            // SAFETY: only the running goroutine touches its own list, and no `with` of
            // it is active: we are past the body. The borrow ends with the statement.
            let Some(mut taken) = (unsafe { &mut (*g.locals.get()).entries }).take() else {
                return;
            };
            drain(&mut taken);
        }
        // Values re-created by destructors eight rounds in a row are leaked.
        // SAFETY: as above.
        std::mem::forget(unsafe { &mut (*g.locals.get()).entries }.take());
    }
}

/// A key for goroutine-local values, declared with
/// [`goroutine_local!`](crate::goroutine_local) (the counterpart of
/// [`std::thread::LocalKey`]).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    fn id(&'static self) -> usize {
        self as *const LocalKey<T> as usize
    }

    /// A pointer to this goroutine's value, created with `make` if absent.
    fn get_or_insert_with(&'static self, make: impl FnOnce() -> T) -> *const T {
        let key = self.id();
        let found = with_locals(|l| {
            // SAFETY: only the owning goroutine (or thread) reaches its list; the
            // shared borrow ends before any user code runs.
            unsafe { (*l.get()).find(key) }
        });
        if let Some(p) = found {
            return p as *const T;
        }
        // User code: may itself use goroutine-locals (even this key).
        let v: Box<dyn Any> = Box::new(make());
        with_locals(|l| {
            // SAFETY: as above; we only push, so existing boxes stay where they are.
            let locals = unsafe { &mut *l.get() };
            if let Some(p) = locals.find(key) {
                // `make` initialised this key recursively: keep the first value.
                return p as *const T;
            }
            let p = &*v as *const dyn Any as *const T;
            locals.entries.get_or_insert_default().push((key, v));
            p
        })
    }

    /// Calls `f` with a reference to this goroutine's value, creating it on first use.
    /// The reference may be held across a suspension point (the value lives in the
    /// goroutine, not in the thread).
    ///
    /// ```
    /// use std::cell::Cell;
    /// gmp_runtime::goroutine_local! { static COUNT: Cell<u32> = Cell::new(0); }
    /// // SAFETY: nothing thread-local is held across a suspension point.
    /// let h = unsafe {
    ///     gmp_runtime::spawn(|| {
    ///         COUNT.with(|c| {
    ///             c.set(c.get() + 1);
    ///             gmp_runtime::yield_now(); // may resume on another thread
    ///             c.set(c.get() + 1);
    ///         });
    ///         COUNT.get()
    ///     })
    /// };
    /// assert_eq!(h.join().unwrap(), 2);
    /// ```
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        let p = self.get_or_insert_with(self.init);
        // SAFETY: the box behind `p` is dropped only when its goroutine (or thread)
        // ends, which cannot happen while that goroutine runs `f`; it never moves.
        f(unsafe { &*p })
    }
}

impl<T: 'static> LocalKey<Cell<T>> {
    /// Sets the value (initialising it with `value`, without running the initialiser,
    /// if it was absent).
    ///
    /// ```
    /// use std::cell::Cell;
    /// gmp_runtime::goroutine_local! { static N: Cell<u32> = Cell::new(1); }
    /// // SAFETY: nothing thread-local is held across a suspension point.
    /// let h = unsafe {
    ///     gmp_runtime::spawn(|| {
    ///         N.set(5);
    ///         gmp_runtime::yield_now(); // may resume on another thread: the value moves along
    ///         N.get()
    ///     })
    /// };
    /// assert_eq!(h.join().unwrap(), 5);
    /// assert_eq!(N.get(), 1); // this thread has its own
    /// ```
    pub fn set(&'static self, value: T) {
        let mut value = Some(value);
        let p = self.get_or_insert_with(|| Cell::new(value.take().expect("set once")));
        if let Some(v) = value {
            // SAFETY: as in `with`.
            unsafe { &*p }.set(v);
        }
    }

    /// A copy of the value.
    ///
    /// ```
    /// use std::cell::Cell;
    /// gmp_runtime::goroutine_local! { static ID: Cell<u64> = Cell::new(7); }
    /// assert_eq!(ID.get(), 7);
    /// ```
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(Cell::get)
    }

    /// Takes the value, leaving `Default::default()`.
    ///
    /// ```
    /// use std::cell::Cell;
    /// gmp_runtime::goroutine_local! { static HITS: Cell<u32> = Cell::new(3); }
    /// assert_eq!(HITS.take(), 3);
    /// assert_eq!(HITS.get(), 0);
    /// ```
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(Cell::take)
    }

    /// Replaces the value, returning the old one.
    ///
    /// ```
    /// use std::cell::Cell;
    /// gmp_runtime::goroutine_local! { static STATE: Cell<u8> = Cell::new(1); }
    /// assert_eq!(STATE.replace(2), 1);
    /// assert_eq!(STATE.get(), 2);
    /// ```
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }
}

impl<T: 'static> LocalKey<RefCell<T>> {
    /// Sets the value (initialising it with `value`, without running the initialiser,
    /// if it was absent).
    ///
    /// # Panics
    /// If the value is currently borrowed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// gmp_runtime::goroutine_local! { static LOG: RefCell<Vec<u32>> = RefCell::new(Vec::new()); }
    /// LOG.set(vec![1, 2]);
    /// assert_eq!(LOG.with_borrow(|v| v.len()), 2);
    /// ```
    pub fn set(&'static self, value: T) {
        let mut value = Some(value);
        let p = self.get_or_insert_with(|| RefCell::new(value.take().expect("set once")));
        if let Some(v) = value {
            // SAFETY: as in `with`.
            *unsafe { &*p }.borrow_mut() = v;
        }
    }

    /// Takes the value, leaving `Default::default()`.
    ///
    /// # Panics
    /// If the value is currently borrowed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// gmp_runtime::goroutine_local! { static BUF: RefCell<String> = RefCell::new("abc".into()); }
    /// assert_eq!(BUF.take(), "abc");
    /// assert_eq!(BUF.with_borrow(|s| s.len()), 0);
    /// ```
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(RefCell::take)
    }

    /// Replaces the value, returning the old one.
    ///
    /// # Panics
    /// If the value is currently borrowed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// gmp_runtime::goroutine_local! { static NAME: RefCell<String> = RefCell::new("a".into()); }
    /// assert_eq!(NAME.replace("b".into()), "a");
    /// assert_eq!(NAME.with_borrow(|s| s.clone()), "b");
    /// ```
    pub fn replace(&'static self, value: T) -> T {
        self.with(|c| c.replace(value))
    }

    /// Calls `f` with a shared borrow of the value.
    ///
    /// # Panics
    /// If the value is currently mutably borrowed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// gmp_runtime::goroutine_local! { static SEEN: RefCell<Vec<u32>> = RefCell::new(vec![4, 5]); }
    /// assert_eq!(SEEN.with_borrow(|v| v.iter().sum::<u32>()), 9);
    /// ```
    pub fn with_borrow<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.with(|c| f(&c.borrow()))
    }

    /// Calls `f` with a mutable borrow of the value.
    ///
    /// # Panics
    /// If the value is currently borrowed.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// gmp_runtime::goroutine_local! { static STACK: RefCell<Vec<u32>> = RefCell::new(Vec::new()); }
    /// // SAFETY: nothing thread-local is held across a suspension point.
    /// let h = unsafe {
    ///     gmp_runtime::spawn(|| {
    ///         STACK.with_borrow_mut(|v| v.push(1));
    ///         gmp_runtime::yield_now();
    ///         STACK.with_borrow_mut(|v| v.push(2));
    ///         STACK.take()
    ///     })
    /// };
    /// assert_eq!(h.join().unwrap(), [1, 2]);
    /// ```
    pub fn with_borrow_mut<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R,
    {
        self.with(|c| f(&mut c.borrow_mut()))
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Declares goroutine-local keys, as `thread_local!` declares thread-local ones: one
/// value per goroutine, created on first use and dropped when the goroutine ends
/// (also when it is aborted or unwound at shutdown); per thread on plain threads.
///
/// This is the answer to "what do I use instead of `thread_local!`" in a goroutine:
/// a borrow from it may be held across a suspension point.
///
/// ```
/// use std::cell::RefCell;
/// gmp_runtime::goroutine_local! {
///     static NAME: RefCell<String> = RefCell::new(String::new());
///     pub static DEPTH: std::cell::Cell<usize> = std::cell::Cell::new(0);
/// }
/// NAME.with_borrow_mut(|n| n.push_str("main thread"));
/// assert_eq!(NAME.with_borrow(|n| n.len()), 11);
/// ```
#[macro_export]
macro_rules! goroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __gmp_init() -> $t {
                $init
            }
            __gmp_init
        });
        $crate::goroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::goroutine_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
