//! Scoped goroutines that may borrow from the caller, as [`std::thread::scope`].
//!
//! The scope counts its goroutines; each goroutine's result packet decrements the count
//! when it is dropped (after the goroutine has finished and its handle is gone), and
//! [`scope`] does not return until the count is zero. That is what makes borrowing
//! sound: no goroutine can outlive the data it borrows.

use crate::goroutine::{Goroutine, JoinHandle};
use crate::spawn::{current_sched, spawn_in};
use gmp_core::park::Unparker;
use gmp_core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A scope to spawn scoped goroutines in (see [`scope`]).
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

pub(crate) struct ScopeData {
    running: AtomicUsize,
    a_goroutine_panicked: AtomicBool,
    main: Unparker,
}

impl ScopeData {
    /// A scoped goroutine's packet was made (see `Packet::new`).
    pub(crate) fn increment(&self) {
        // Relaxed: the count only has to be positive before the goroutine can end; the
        // RMW is ordered before the spawn that publishes the goroutine.
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// A scoped goroutine's packet was dropped.
    pub(crate) fn decrement(&self, panicked: bool) {
        if panicked {
            self.a_goroutine_panicked.store(true, Ordering::Relaxed);
        }
        // Release: the goroutine's writes (through its borrows) happen before the
        // scope sees the count reach zero (its Acquire load).
        if self.running.fetch_sub(1, Ordering::Release) == 1 {
            self.main.unpark();
        }
    }
}

/// An owned permission to join a scoped goroutine.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

/// Creates a scope for spawning goroutines that borrow from the caller; every
/// goroutine spawned in it is joined before `scope` returns.
///
/// # Panics
/// If `f` panics, or if any goroutine that was not joined explicitly panicked (as
/// [`std::thread::scope`]).
///
/// ```
/// let mut a = vec![1, 2, 3];
/// let mut x = 0;
/// gmp_runtime::scope(|s| {
///     // SAFETY: no thread-local state is held across a suspension point.
///     unsafe {
///         s.spawn(|| println!("borrowed: {a:?}"));
///         s.spawn(|| x += a[0] + a[2]);
///     }
/// });
/// a.push(4);
/// assert_eq!(x, a.len());
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_goroutine_panicked: AtomicBool::new(false),
            main: gmp_core::park::current(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    // The children borrow from this frame: an abort of this goroutine must wait until
    // they are gone (it is raised at the first suspension point after the wait).
    crate::proc::without_abort(|| {
        // Acquire: see `decrement`.
        while scope.data.running.load(Ordering::Acquire) != 0 {
            gmp_core::park::park();
        }
    });
    match result {
        Err(e) => resume_unwind(e),
        Ok(_) if scope.data.a_goroutine_panicked.load(Ordering::Relaxed) => {
            panic!("a scoped goroutine panicked")
        }
        Ok(r) => r,
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a scoped goroutine that may borrow anything that outlives the scope.
    ///
    /// # Panics
    /// If a stack cannot be allocated.
    ///
    /// # Safety
    /// As [`spawn`](crate::spawn()): `f` must not hold thread-local state across a
    /// suspension point.
    ///
    /// ```
    /// let words = ["go", "rust", "gmp"];
    /// let mut lens = Vec::new();
    /// gmp_runtime::scope(|s| {
    ///     // SAFETY: the goroutines hold no thread-local state across a suspension point.
    ///     let hs: Vec<_> = words.iter().map(|w| unsafe { s.spawn(move || w.len()) }).collect();
    ///     lens = hs.into_iter().map(|h| h.join().unwrap()).collect();
    /// });
    /// assert_eq!(lens, [2, 4, 3]);
    /// ```
    #[track_caller]
    pub unsafe fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // SAFETY: passed on from our caller.
        unsafe { self.spawn_with(None, None, f) }
            .unwrap_or_else(|e| panic!("gmp: failed to spawn a scoped goroutine: {e}"))
    }

    /// `spawn` with a name and stack size (`Builder::spawn_scoped`).
    ///
    /// # Safety
    /// As [`spawn`](crate::spawn()).
    #[track_caller]
    pub(crate) unsafe fn spawn_with<F, T>(
        &'scope self,
        name: Option<String>,
        stack_size: Option<usize>,
        f: F,
    ) -> std::io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let sched = current_sched();
        let eager = stack_size.is_some();
        // SAFETY: `scope` waits for `running` to reach zero, which happens only after
        // this goroutine's packet is dropped, after it finished: `f`'s borrows of
        // `'scope` data outlive it. The packet counts itself (`Packet::new`) and a
        // failed spawn drops it, so the count is undone exactly once. The
        // thread-local contract comes from our caller.
        let inner =
            unsafe { spawn_in(&sched, name, stack_size, eager, f, Some(self.data.clone())) };
        crate::proc::resched_if_lost_p();
        let inner = inner?;
        Ok(ScopedJoinHandle {
            inner,
            _scope: PhantomData,
        })
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the goroutine and returns its result (`Err(payload)` on panic).
    ///
    /// ```
    /// gmp_runtime::scope(|s| {
    ///     // SAFETY: the goroutine holds no thread-local state across a suspension point.
    ///     let h = unsafe { s.spawn(|| 6 * 7) };
    ///     assert_eq!(h.join().unwrap(), 42);
    /// });
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }

    /// True once the goroutine has finished.
    ///
    /// ```
    /// gmp_runtime::scope(|s| {
    ///     // SAFETY: the goroutine holds no thread-local state across a suspension point.
    ///     let h = unsafe { s.spawn(|| 1) };
    ///     while !h.is_finished() {
    ///         gmp_runtime::yield_now();
    ///     }
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The goroutine's handle.
    ///
    /// ```
    /// gmp_runtime::scope(|s| {
    ///     // SAFETY: the goroutine holds no thread-local state across a suspension point.
    ///     let h = unsafe { s.spawn(|| gmp_runtime::current().id()) };
    ///     let id = h.goroutine().id();
    ///     assert_eq!(h.join().unwrap(), id);
    /// });
    /// ```
    pub fn goroutine(&self) -> &Goroutine {
        self.inner.goroutine()
    }

    /// Ends the goroutine from outside, as [`JoinHandle::abort`].
    ///
    /// ```
    /// use gmp_runtime::Aborted;
    /// use std::time::Duration;
    ///
    /// gmp_runtime::scope(|s| {
    ///     let hour = Duration::from_secs(3600);
    ///     // SAFETY: the goroutine holds no thread-local state across a suspension point.
    ///     let h = unsafe { s.spawn(move || gmp_runtime::sleep(hour)) };
    ///     h.abort(); // it unwinds from its sleep (or its first suspension point)
    ///     assert!(h.join().unwrap_err().is::<Aborted>());
    /// });
    /// ```
    pub fn abort(&self) {
        self.inner.abort()
    }
}

// As `std::thread::Scope`.
impl std::panic::RefUnwindSafe for Scope<'_, '_> {}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("goroutine", self.goroutine())
            .finish_non_exhaustive()
    }
}

/// Awaiting a scoped goroutine, as [`JoinHandle`]'s `Future` impl does (the scope still
/// joins every goroutine before it returns).
///
/// ```
/// use gmp_runtime::future::block_on;
///
/// let data = [1, 2, 3];
/// let sum = gmp_runtime::scope(|s| {
///     // SAFETY: the goroutines hold no thread-local state across a suspension point.
///     let (a, b) = unsafe { (s.spawn(|| data[0] + data[1]), s.spawn(|| data[2])) };
///     block_on(async { a.await.unwrap() + b.await.unwrap() })
/// });
/// assert_eq!(sum, 6);
/// ```
impl<T> std::future::Future for ScopedJoinHandle<'_, T> {
    type Output = std::thread::Result<T>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::thread::Result<T>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}
