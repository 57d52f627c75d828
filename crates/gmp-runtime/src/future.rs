//! Async interop: drive futures from goroutines, and await goroutines from async code.
//!
//! - [`block_on`] runs a future to completion on the caller's stack. In a goroutine, the
//!   goroutine parks while the future is pending (its M runs other goroutines) and the
//!   future's [`Waker`] readies it again, through the same park/unpark path as channels;
//!   on a plain thread, the thread blocks.
//! - [`JoinHandle`](crate::JoinHandle) is a [`Future`]: a tokio task (or any executor)
//!   can `.await` a goroutine without blocking its thread.
//! - gmp-chan's `Sender::send_async`, `Receiver::recv_async` and `Receiver::stream`
//!   (feature `futures`) let tasks and goroutines share channels.
//! - [`in_context`] wraps a future so that a reactor's context (tokio's
//!   `Handle::enter`) is entered on each poll, on whichever thread the poll runs.
//!
//! # Calling an async crate from a goroutine
//!
//! The future must find the reactor it needs (tokio's I/O driver and timers) when it
//! is polled. Two correct patterns, shown with tokio in [`block_on`]'s docs: hand the
//! future to the runtime that owns the reactor (`block_on(handle.spawn(fut))`), or wrap
//! it with [`in_context`] so that every poll enters the context on the current thread.

use crate::g::G;
use crate::proc;
use gmp_core::park::Unpark;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};

/// Runs `fut` to completion and returns its output.
///
/// In a goroutine, `fut` is polled on the goroutine's own stack; while it is pending the
/// goroutine parks — not its M, which goes on running other goroutines — and the
/// [`Waker`] handed to the future readies it, exactly as a channel operation would.
/// That waker is `Send + Sync`, cheap to clone (a reference count), and may be woken
/// from any thread, any number of times, also after `block_on` has returned or the
/// goroutine has finished: a late wake-up is at most one spurious return from the
/// goroutine's next park, which every blocking operation of gmp tolerates. On a plain
/// thread (or in a [`blocking`](crate::blocking) call) `block_on` blocks the thread.
///
/// While a goroutine waits here, the runtime does not report a deadlock: the future may
/// be completed by a thread it cannot see (a tokio worker, an I/O driver).
///
/// # Reactors: enter the context on each poll, never across a park
///
/// Futures from tokio (sockets, timers, `hyper` and `reqwest` clients) need tokio's
/// runtime context when they are polled. The naive
///
/// ```text
/// let _guard = handle.enter(); // WRONG in a goroutine
/// gmp_runtime::future::block_on(fut);
/// ```
///
/// is wrong: an `EnterGuard` is thread-local state of the thread that made it, and
/// `block_on` parks the goroutine between polls. The goroutine may resume on another M —
/// another OS thread — where the context was never entered (the future then panics with
/// "no reactor running", or worse, finds another runtime's context), and the guard is
/// later dropped on a thread that did not create it (tokio panics, or corrupts that
/// thread's context stack). It is the thread-local-across-a-suspension case that
/// [`spawn`](fn@crate::spawn)'s safety contract forbids. Use one of these instead:
///
/// 1. Run the future on the tokio runtime and wait for it from the goroutine: the
///    goroutine parks until tokio's `JoinHandle` completes.
///
/// ```
/// use gmp_runtime::future::block_on;
///
/// let tokio_rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .enable_all()
///     .build()
///     .unwrap();
/// let handle = tokio_rt.handle().clone();
/// let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
/// // SAFETY: no goroutine holds thread-local state across a suspension point.
/// let out = unsafe {
///     rt.block_on(move || {
///         let task = handle.spawn(async {
///             tokio::time::sleep(std::time::Duration::from_millis(5)).await;
///             21 * 2
///         });
///         block_on(task).unwrap() // parks this goroutine, not its M
///     })
/// };
/// assert_eq!(out, 42);
/// ```
///
/// 2. Poll the future in the goroutine, entering the context for each poll with
///    [`in_context`] (the guard lives only as long as one poll, on one thread). Build
///    the tokio future inside an `async` block: some tokio constructors need the
///    context when they are called, not only when polled.
///
/// ```
/// use gmp_runtime::future::{block_on, in_context};
///
/// let tokio_rt = tokio::runtime::Builder::new_multi_thread()
///     .worker_threads(1)
///     .enable_all()
///     .build()
///     .unwrap();
/// let handle = tokio_rt.handle().clone();
/// let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
/// // SAFETY: the only thread-local state, tokio's context, is entered per poll.
/// let waited = unsafe {
///     rt.block_on(move || {
///         let start = std::time::Instant::now();
///         // The `async` block defers creating the sleep to its first poll, inside the
///         // context: tokio's constructors (`sleep`, `TcpStream::connect`) look for it.
///         block_on(in_context(|| handle.enter(), async {
///             tokio::time::sleep(std::time::Duration::from_millis(5)).await
///         }));
///         start.elapsed()
///     })
/// };
/// assert!(waited >= std::time::Duration::from_millis(5));
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match goroutine() {
        Some(g) => {
            // Go: runtime.gopark / runtime.goready, as for a channel wait: the G parks
            // and whoever completes the future readies it.
            let waker = goroutine_waker(g);
            let mut cx = Context::from_waker(&waker);
            loop {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
                let _waiting = FutureWait::new();
                // The park hook parks this goroutine (`goroutine()` agreed with it: a
                // running, non-unwinding goroutine); a wake-up may be spurious, and a
                // spurious poll is allowed by `Future`'s contract. Dumps show `future`.
                gmp_core::park::park_for(gmp_core::park::WaitReason::Future);
            }
        }
        None => {
            let waker = thread_waker();
            let mut cx = Context::from_waker(&waker);
            loop {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
                // A plain thread (or a goroutine in `blocking`, or unwinding): the hook
                // parks the thread, whose unparker the waker holds.
                gmp_core::park::park();
            }
        }
    }
}

/// The running goroutine whose parking the park hook would do, if any: the same test
/// as the hook's own (`proc::Hook`), so the waker we make wakes whoever `park` parks.
fn goroutine() -> Option<&'static G> {
    proc::current_g().filter(|_| !std::thread::panicking())
}

/// Goroutines parked in [`block_on`] right now, in every runtime of the process.
///
/// A plain std atomic: it is a statistic for the deadlock detector (like
/// `gmp_core::park::parked_threads`), not part of any protocol a model checks.
static FUTURE_WAITERS: AtomicUsize = AtomicUsize::new(0);

/// How many goroutines wait in [`block_on`] (the deadlock detector stays quiet while
/// any do: the future may be completed by a thread the runtime cannot see).
pub(crate) fn future_waiters() -> usize {
    // Relaxed: as `parked_threads`, an approximate count read by a periodic check.
    FUTURE_WAITERS.load(Ordering::Relaxed)
}

/// Counts a goroutine as waiting on a future for as long as it lives.
struct FutureWait;

impl FutureWait {
    fn new() -> FutureWait {
        // SeqCst: ordered before the goroutine's park (its status becomes Waiting), so
        // a detector that sees the goroutine waiting sees the count too.
        FUTURE_WAITERS.fetch_add(1, Ordering::SeqCst);
        FutureWait
    }
}

impl Drop for FutureWait {
    fn drop(&mut self) {
        // SeqCst: as above.
        FUTURE_WAITERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A waker that readies goroutine `g`: the data pointer is an `Arc<G>` (so a clone is a
/// reference-count increment, no allocation), waking is `G::unpark` (Go: `goready`,
/// done only by the waker that finds the G parked).
fn goroutine_waker(g: &'static G) -> Waker {
    let g: Arc<G> = G::arc(g);
    let raw = RawWaker::new(Arc::into_raw(g) as *const (), &G_WAKER);
    // SAFETY: `G_WAKER`'s functions implement the `RawWaker` contract for a pointer
    // from `Arc::into_raw::<G>`: clone adds a reference, wake consumes one, wake_by_ref
    // borrows, drop releases one. `G` is `Send + Sync`, so the waker may move and be
    // shared between threads. Waking a G in any state is harmless: `G::unpark` readies
    // it only if it is parked, and a G is never reused for another goroutine while an
    // `Arc` to it lives (`G::reinit` needs the only reference).
    unsafe { Waker::from_raw(raw) }
}

static G_WAKER: RawWakerVTable = RawWakerVTable::new(g_clone, g_wake, g_wake_by_ref, g_drop);

/// # Safety
/// `p` comes from `Arc::into_raw::<G>` and its reference is alive (the waker's).
unsafe fn g_clone(p: *const ()) -> RawWaker {
    // SAFETY: the caller's reference keeps the G alive; we add one for the clone.
    unsafe { Arc::increment_strong_count(p as *const G) };
    RawWaker::new(p, &G_WAKER)
}

/// # Safety
/// As [`g_clone`]; consumes the waker's reference.
unsafe fn g_wake(p: *const ()) {
    // SAFETY: takes back the reference the waker owned.
    let g = unsafe { Arc::from_raw(p as *const G) };
    Unpark::unpark(&*g);
}

/// # Safety
/// As [`g_clone`].
unsafe fn g_wake_by_ref(p: *const ()) {
    // SAFETY: the waker's reference keeps the G alive for this call.
    let g = unsafe { &*(p as *const G) };
    Unpark::unpark(g);
}

/// # Safety
/// As [`g_clone`]; releases the waker's reference.
unsafe fn g_drop(p: *const ()) {
    // SAFETY: takes back the reference the waker owned, and drops it.
    drop(unsafe { Arc::from_raw(p as *const G) });
}

/// Wakes an [`Unparker`](gmp_core::park::Unparker): a thread (or an unwinding
/// goroutine's M).
struct UnparkWake(gmp_core::park::Unparker);

impl Wake for UnparkWake {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// An [`Unpark`] that wakes a task's [`Waker`]: how an async caller waits on something
/// that wakes through an [`Unparker`](gmp_core::park::Unparker) (a goroutine's result).
pub(crate) struct WakerUnpark(pub(crate) Waker);

impl Unpark for WakerUnpark {
    fn unpark(&self) {
        self.0.wake_by_ref();
    }
}

/// The waker of whoever `gmp_core::park::park` would park when no goroutine is running:
/// this thread. Made once per thread (a thread never moves, and neither does an
/// unwinding goroutine).
fn thread_waker() -> Waker {
    std::thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(UnparkWake(gmp_core::park::thread_unparker())));
    }
    // In a thread-local destructor the cache may be gone: make one for this call.
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(UnparkWake(gmp_core::park::thread_unparker()))))
}

/// A future that calls `enter` before each poll of the inner future and drops the
/// guard it returns right after; see [`in_context`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InContext<F, E> {
    fut: F,
    enter: E,
}

/// Wraps `fut` so that each poll runs inside `enter()`'s guard — for a reactor whose
/// context is thread-local state, such as tokio's `Handle::enter`.
///
/// The guard lives for one poll only, on the thread that polls, so it is never held
/// across a goroutine's park (which may resume it on another thread); see
/// [`block_on`]. gmp does not depend on tokio: `enter` is any closure returning a guard.
///
/// ```
/// use gmp_runtime::future::{block_on, in_context};
/// use std::cell::Cell;
///
/// std::thread_local!(static DEPTH: Cell<u32> = const { Cell::new(0) });
/// struct Guard;
/// impl Drop for Guard {
///     fn drop(&mut self) { DEPTH.with(|d| d.set(d.get() - 1)); }
/// }
/// let enter = || { DEPTH.with(|d| d.set(d.get() + 1)); Guard };
/// // The inner future sees the context entered, on the polling thread.
/// let seen = block_on(in_context(enter, async { DEPTH.with(|d| d.get()) }));
/// assert_eq!(seen, 1);
/// assert_eq!(DEPTH.with(|d| d.get()), 0);
/// ```
pub fn in_context<F, E, Guard>(enter: E, fut: F) -> InContext<F, E>
where
    F: Future,
    E: FnMut() -> Guard,
{
    InContext { fut, enter }
}

impl<F, E, Guard> Future for InContext<F, E>
where
    F: Future,
    E: FnMut() -> Guard,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned and `enter` is not: `fut` is never moved
        // out of `self` (there is no `Drop` impl or accessor that could), `InContext` is
        // `Unpin` only when `F` is (the auto trait), and `enter` is only used through
        // `&mut`, which pinning does not promise anything about.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = (this.enter)();
        // SAFETY: as above: `this.fut` stays where it is until `self` is dropped.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        fut.poll(cx)
    }
}
