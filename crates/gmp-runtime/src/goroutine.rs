//! Goroutine handles: [`Goroutine`], [`GoroutineId`], [`JoinHandle`], and the
//! `std::thread`-like free functions that act on the current goroutine.

use crate::g::G;
use crate::proc;
use gmp_core::park::Unparker;
use gmp_core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use gmp_core::sync::Mutex;
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A goroutine's unique identifier, like [`std::thread::ThreadId`].
///
/// Ids are never reused within a process. Plain threads that call [`current`] get
/// one too, from the same sequence.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct GoroutineId(NonZeroU64);

impl GoroutineId {
    /// The id as a number (Go prints goroutine ids as plain integers).
    ///
    /// ```
    /// let id = gmp_runtime::current().id();
    /// assert_eq!(id.as_u64().to_string(), id.to_string());
    /// ```
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

impl fmt::Display for GoroutineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(crate) fn next_goid() -> u64 {
    // A process-wide id counter: plain std (a loom atomic cannot be a static), and
    // not part of any protocol a model checks.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // Relaxed: uniqueness only needs the RMW's atomicity.
    NEXT.fetch_add(1, gmp_core::sync::atomic::Ordering::Relaxed)
}

/// A handle to a goroutine (or, from a plain thread, to that thread), like
/// [`std::thread::Thread`]: its id, its name, and `unpark`.
#[derive(Clone)]
pub struct Goroutine {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    G(Arc<G>),
    Thread {
        id: GoroutineId,
        name: Option<Arc<str>>,
        unparker: Unparker,
    },
}

impl Goroutine {
    pub(crate) fn from_g(g: Arc<G>) -> Goroutine {
        Goroutine { inner: Inner::G(g) }
    }

    /// The goroutine's unique id.
    ///
    /// ```
    /// use gmp_runtime::{current, spawn};
    ///
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { spawn(|| current().id()) };
    /// let id = h.goroutine().id();
    /// assert_eq!(h.join().unwrap(), id); // the goroutine sees the id its handle shows
    /// assert_ne!(id, current().id()); // and this thread has an id of its own
    /// ```
    pub fn id(&self) -> GoroutineId {
        match &self.inner {
            Inner::G(g) => GoroutineId(NonZeroU64::new(g.id).expect("goroutine ids start at 1")),
            Inner::Thread { id, .. } => *id,
        }
    }

    /// The goroutine's name, if it was given one with [`Builder::name`](crate::Builder::name)
    /// (for a plain thread, the thread's name).
    ///
    /// ```
    /// use gmp_runtime::{current, Builder};
    ///
    /// let builder = Builder::new().name("worker".to_string());
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { builder.spawn(|| current().name().map(String::from)) }?;
    /// assert_eq!(h.goroutine().name(), Some("worker"));
    /// assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        match &self.inner {
            Inner::G(g) => g.name(),
            Inner::Thread { name, .. } => name.as_deref(),
        }
    }

    /// Makes the goroutine's park permit available, waking it if it is parked in
    /// [`park`] or [`park_timeout`] (as [`std::thread::Thread::unpark`]).
    ///
    /// An unpark that comes before the park is not lost: the permit waits for it.
    ///
    /// ```
    /// use gmp_runtime::{current, park, spawn};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let done = Arc::new(AtomicBool::new(false));
    /// let (me, d) = (current(), done.clone()); // here: a handle to this thread
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe {
    ///     spawn(move || {
    ///         d.store(true, Ordering::Release);
    ///         me.unpark();
    ///     })
    /// };
    /// while !done.load(Ordering::Acquire) {
    ///     park(); // may return spuriously: re-check the condition
    /// }
    /// h.join().unwrap();
    /// ```
    pub fn unpark(&self) {
        match &self.inner {
            Inner::G(g) => gmp_core::park::Unpark::unpark(&**g),
            Inner::Thread { unparker, .. } => unparker.unpark(),
        }
    }
}

// Like `std::thread::Thread`: a handle is only an id, a name and an unpark switch.
impl std::panic::UnwindSafe for Goroutine {}
impl std::panic::RefUnwindSafe for Goroutine {}

impl Goroutine {
    /// The G behind the handle, if it is a goroutine.
    pub(crate) fn g(&self) -> Option<&Arc<G>> {
        match &self.inner {
            Inner::G(g) => Some(g),
            Inner::Thread { .. } => None,
        }
    }
}

impl fmt::Debug for Goroutine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Goroutine")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

/// A handle to the caller: the running goroutine, or the calling plain thread.
///
/// ```
/// use gmp_runtime::current;
///
/// let me = current(); // on a plain thread: this thread
/// assert_eq!(me.id(), current().id());
/// // SAFETY: the goroutine holds no thread-local state across a suspension point.
/// let main = unsafe { gmp_runtime::run(|| current()) }; // in a goroutine: that goroutine
/// assert_ne!(main.id(), me.id());
/// ```
pub fn current() -> Goroutine {
    if let Some(g) = proc::running_g() {
        return Goroutine::from_g(G::arc(g));
    }
    THREAD.with(|t| t.clone())
}

std::thread_local! {
    static THREAD: Goroutine = Goroutine {
        inner: Inner::Thread {
            id: GoroutineId(NonZeroU64::new(next_goid()).expect("ids start at 1")),
            name: std::thread::current().name().map(Arc::from),
            unparker: gmp_core::park::thread_unparker(),
        },
    };
}

/// Cooperatively gives up the processor (Go: `runtime.Gosched`): the goroutine goes
/// to the back of its P's run queue. On a plain thread, [`std::thread::yield_now`].
///
/// ```
/// use gmp_runtime::{spawn, yield_now, Runtime};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let rt = Runtime::builder().procs(1).build()?;
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// unsafe {
///     rt.block_on(|| {
///         let ran = Arc::new(AtomicBool::new(false));
///         let r = ran.clone();
///         let h = spawn(move || r.store(true, Ordering::Release));
///         // One P: the new goroutine runs only when this one gives the P up.
///         while !ran.load(Ordering::Acquire) {
///             yield_now();
///         }
///         h.join().unwrap();
///     })
/// };
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn yield_now() {
    if std::thread::panicking() {
        // A goroutine must not move to another thread while it unwinds: std keeps the
        // panic count in a thread-local.
        return;
    }
    match proc::current_g() {
        Some(g) => proc::yield_current(g),
        None => {
            proc::reraise_if_unwinding();
            std::thread::yield_now()
        }
    }
}

/// Puts the current goroutine to sleep for at least `dur` (a scheduler timer: the M
/// goes on running other goroutines). On a plain thread, [`std::thread::sleep`].
///
/// An [`unpark`](Goroutine::unpark) does not end a sleep early (the permit is left for
/// the next [`park`]).
///
/// ```
/// use gmp_runtime::{sleep, spawn, Runtime};
/// use std::time::{Duration, Instant};
///
/// let rt = Runtime::builder().procs(1).build()?;
/// let start = Instant::now();
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// unsafe {
///     rt.block_on(|| {
///         // 100 goroutines sleep at once on one P: each waits on a timer, and no
///         // thread is blocked while they do.
///         let hs: Vec<_> = (0..100)
///             .map(|_| spawn(|| sleep(Duration::from_millis(20))))
///             .collect();
///         hs.into_iter().for_each(|h| h.join().unwrap());
///     })
/// };
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep(dur: Duration) {
    if dur.is_zero() {
        return;
    }
    match Instant::now().checked_add(dur) {
        // The deadline is in the future: no need to read the clock again.
        Some(deadline) => sleep_until_inner(deadline, true),
        // Practically forever.
        None => loop {
            sleep(Duration::from_secs(86400 * 365));
        },
    }
}

/// Sleeps until `deadline` (returns at once if it has passed); see [`sleep`].
///
/// ```
/// use gmp_runtime::sleep_until;
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_millis(10);
/// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
/// unsafe { gmp_runtime::run(|| sleep_until(deadline)) };
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) {
    sleep_until_inner(deadline, false)
}

/// `sleep_until`; `in_future` says the caller has just seen `deadline` ahead of the
/// clock (so the first look at the clock is skipped). One clock read per sleep (in
/// `sleep`) is all a sleep woken by its own timer costs.
fn sleep_until_inner(deadline: Instant, mut in_future: bool) {
    loop {
        let Some(g) = proc::current_g() else {
            proc::reraise_if_unwinding();
            return proc::thread_sleep_until(deadline);
        };
        if std::thread::panicking() {
            // Never move to another M mid-unwind (std's panic count is
            // thread-local): sleep the M, as a blocking call so its P is handed on.
            return proc::blocking_call(|| proc::thread_sleep_until(deadline));
        }
        if !std::mem::take(&mut in_future) && Instant::now() >= deadline {
            return;
        }
        // A sleep must not end early on an unpark meant for `park`: loop until the
        // deadline, leaving any permit for the next `park` as std does.
        let had_permit = g.park.try_acquire();
        // Relaxed: only this goroutine and the timer of the park below write it, and
        // that timer is armed after we have switched out.
        g.timer_fired
            .store(false, gmp_core::sync::atomic::Ordering::Relaxed);
        proc::park_current(g, Some(deadline), gmp_core::park::WaitReason::Sleep);
        if had_permit {
            // Give the permit back: a sleep does not consume it.
            gmp_core::park::Unpark::unpark(g);
        }
        if g.timer_fired
            .load(gmp_core::sync::atomic::Ordering::Relaxed)
        {
            // Our timer readied us: it ran at or after the deadline.
            return;
        }
    }
}

/// Blocks the current goroutine until its permit is available (see
/// [`Goroutine::unpark`]); may wake spuriously, as [`std::thread::park`].
///
/// ```
/// use gmp_runtime::{current, park, spawn};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// let got = unsafe {
///     gmp_runtime::run(|| {
///         let slot = Arc::new(AtomicU32::new(0));
///         let (me, s) = (current(), slot.clone());
///         spawn(move || {
///             s.store(42, Ordering::Release);
///             me.unpark();
///         });
///         // The main goroutine parks (its thread runs others) until unparked.
///         while slot.load(Ordering::Acquire) == 0 {
///             park();
///         }
///         slot.load(Ordering::Acquire)
///     })
/// };
/// assert_eq!(got, 42);
/// ```
pub fn park() {
    gmp_core::park::park();
}

/// Like [`park`], for at most `dur`.
///
/// ```
/// use gmp_runtime::park_timeout;
/// use std::time::{Duration, Instant};
///
/// // Nobody unparks: wait out a deadline, re-parking after spurious wake-ups.
/// let deadline = Instant::now() + Duration::from_millis(10);
/// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
/// unsafe {
///     gmp_runtime::run(|| {
///         while let Some(left) = deadline.checked_duration_since(Instant::now()) {
///             park_timeout(left);
///         }
///     })
/// };
/// assert!(Instant::now() >= deadline);
/// ```
pub fn park_timeout(dur: Duration) {
    gmp_core::park::park_timeout(dur);
}

/// Runs a blocking call — file I/O, a C library, a long computation — without holding
/// up the other goroutines (Go: `entersyscall`/`exitsyscall`).
///
/// While `f` runs, the goroutine's M keeps its P only briefly: sysmon hands the P to
/// another M after 20 µs, so the other goroutines keep running. When `f` returns the
/// goroutine takes its P back if it is still free, else any idle P, else it waits in
/// the global queue. On a plain thread, `blocking(f)` is just `f()`.
///
/// ```
/// use gmp_runtime::{blocking, spawn, Runtime};
/// use std::time::Duration;
///
/// let rt = Runtime::builder().procs(1).build()?;
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// let n = unsafe {
///     rt.block_on(|| {
///         // Blocks its OS thread in a system call for 50 ms; with one P, the P is
///         // handed to another thread meanwhile so the goroutines below keep running.
///         let slow = spawn(|| blocking(|| std::thread::sleep(Duration::from_millis(50))));
///         let quick: Vec<_> = (0..10u64).map(|i| spawn(move || i)).collect();
///         let n: u64 = quick.into_iter().map(|h| h.join().unwrap()).sum();
///         slow.join().unwrap();
///         n
///     })
/// };
/// assert_eq!(n, 45);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    proc::blocking_call(f)
}

/// The result slot a goroutine fills and a [`JoinHandle`] takes.
pub(crate) struct Packet<T> {
    state: AtomicU8,
    /// Initialised exactly while `state` is `DONE`: written by `set` before it
    /// publishes `DONE`, moved out by the joiner as it stores `TAKEN` (the state says
    /// whether it holds a value, so no `Option` tag: 8 bytes less in every spawn's
    /// allocation).
    result: UnsafeCell<MaybeUninit<std::thread::Result<T>>>,
    waiter: Mutex<Option<Unparker>>,
    /// Set once a joiner has registered in `waiter`: lets `set` skip the lock when
    /// nobody waits (the common case of detached goroutines).
    has_waiter: AtomicBool,
    /// For scoped goroutines: the scope to tell when the packet is dropped.
    pub(crate) scope: Option<Arc<crate::scope::ScopeData>>,
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const TAKEN: u8 = 2;

// SAFETY: `result` is written once by the goroutine before `state` becomes DONE
// (Release) and read by the joiner only after it observes DONE (Acquire), then never
// touched by the goroutine again.
unsafe impl<T: Send> Sync for Packet<T> {}
// SAFETY: as above; `T: Send` moves between the goroutine and the joiner.
unsafe impl<T: Send> Send for Packet<T> {}

impl<T> Packet<T> {
    /// A packet for a new goroutine; a scoped one counts itself in its scope until it
    /// is dropped (so every way a spawn can fail undoes the count exactly once).
    pub(crate) fn new(scope: Option<Arc<crate::scope::ScopeData>>) -> Packet<T> {
        if let Some(s) = &scope {
            s.increment();
        }
        Packet {
            state: AtomicU8::new(RUNNING),
            result: UnsafeCell::new(MaybeUninit::uninit()),
            waiter: Mutex::new(None),
            has_waiter: AtomicBool::new(false),
            scope,
        }
    }

    /// The goroutine's last act: publish the result and wake the joiner.
    pub(crate) fn set(&self, r: std::thread::Result<T>) {
        assert_eq!(
            self.state.load(Ordering::Relaxed),
            RUNNING,
            "gmp: internal error: a goroutine's result was set twice"
        );
        // SAFETY: only the goroutine writes, once (checked above: the state is still
        // RUNNING, so nothing is in the slot and no joiner reads it), before
        // publishing DONE.
        unsafe { (*self.result.get()).write(r) };
        // SeqCst store then SeqCst load, against the joiner's SeqCst store of
        // `has_waiter` then load of `state` (Dekker): one of us sees the other, so a
        // registered joiner is always woken. The store also releases the result.
        self.state.store(DONE, Ordering::SeqCst);
        if self.has_waiter.load(Ordering::SeqCst) {
            let w = self.waiter.lock().take();
            if let Some(w) = w {
                w.unpark();
            }
        }
    }

    /// Registers who to wake when the result arrives (see `set` for the protocol).
    pub(crate) fn set_waiter(&self, u: Unparker) {
        *self.waiter.lock() = Some(u);
        self.has_waiter.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    /// Waits for the result and takes it.
    pub(crate) fn join(&self) -> std::thread::Result<T> {
        loop {
            if self.state.load(Ordering::Acquire) == DONE {
                break;
            }
            self.set_waiter(gmp_core::park::current());
            if self.state.load(Ordering::SeqCst) == DONE {
                break;
            }
            gmp_core::park::park();
        }
        self.take_result()
    }

    /// Moves the result out and marks it taken.
    ///
    /// Called only after observing `DONE` with Acquire, by the only joiner.
    fn take_result(&self) -> std::thread::Result<T> {
        // Relaxed: `DONE` was observed with Acquire by this thread, and the goroutine
        // never writes the state again; TAKEN only tells our own later calls and the
        // drop that the slot is empty.
        self.state.store(TAKEN, Ordering::Relaxed);
        // SAFETY: DONE was observed with Acquire: the goroutine wrote the result and
        // will not touch it again; we are the only joiner (join takes the handle by
        // value, poll_join by `&mut`), and the state is now TAKEN, so the value is
        // read exactly once and neither `unhandled_panic` nor the drop looks at it.
        unsafe { (*self.result.get()).assume_init_read() }
    }

    /// True if the goroutine ended in a panic nobody collected (for scopes). An
    /// aborted goroutine did not panic: someone asked it to stop.
    pub(crate) fn unhandled_panic(&mut self) -> bool {
        // Relaxed: `&mut self` (the last owner's Arc drop, or the joiner) already
        // synchronised with the goroutine's Release of DONE. (A load, not `get_mut`:
        // loom's atomics have none.)
        if self.state.load(Ordering::Relaxed) != DONE {
            return false;
        }
        // SAFETY: DONE: the slot holds the goroutine's result (`&mut self`: nobody
        // else touches it now).
        let r = unsafe { self.result.get_mut().assume_init_ref() };
        matches!(r, Err(p) if !p.is::<Aborted>())
    }
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        let panicked = self.unhandled_panic();
        // Drop the result (it may borrow from the scope) before telling the scope.
        // Relaxed: as in `unhandled_panic`.
        if self.state.load(Ordering::Relaxed) == DONE {
            self.state.store(TAKEN, Ordering::Relaxed);
            // SAFETY: DONE: the slot holds a value nobody took; `&mut self`.
            unsafe { self.result.get_mut().assume_init_drop() };
        }
        if let Some(scope) = self.scope.take() {
            scope.decrement(panicked);
        }
    }
}

/// An owned permission to join a goroutine (like [`std::thread::JoinHandle`]).
///
/// Dropping the handle detaches the goroutine: it runs on to completion.
pub struct JoinHandle<T> {
    pub(crate) packet: crate::job::PacketRef<Packet<T>>,
    pub(crate) goroutine: Goroutine,
}

impl<T> JoinHandle<T> {
    /// Waits for the goroutine to finish and returns its result; a panic in it comes
    /// back as `Err(payload)`, exactly as with threads. Inside a goroutine this parks
    /// the goroutine; on a plain thread it blocks the thread.
    ///
    /// ```
    /// use gmp_runtime::spawn;
    ///
    /// // SAFETY: the goroutines hold no thread-local state across a suspension point.
    /// let (ok, bad) = unsafe { (spawn(|| 6 * 7), spawn(|| -> u32 { panic!("boom") })) };
    /// assert_eq!(ok.join().unwrap(), 42);
    /// let payload = bad.join().unwrap_err(); // the panic, as with threads
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        self.packet.get().join()
    }

    /// True once the goroutine has finished running its closure.
    ///
    /// ```
    /// use gmp_runtime::{spawn, yield_now};
    ///
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { spawn(|| 1 + 1) };
    /// while !h.is_finished() {
    ///     yield_now(); // here a plain thread: std::thread::yield_now
    /// }
    /// assert_eq!(h.join().unwrap(), 2); // returns at once
    /// ```
    pub fn is_finished(&self) -> bool {
        self.packet.get().is_done()
    }

    /// The handle of the goroutine.
    ///
    /// ```
    /// use gmp_runtime::{current, park, spawn};
    ///
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { spawn(|| { park(); current().id() }) };
    /// let g = h.goroutine().clone();
    /// g.unpark(); // wakes it (or leaves it the permit if it has not parked yet)
    /// assert_eq!(h.join().unwrap(), g.id());
    /// ```
    pub fn goroutine(&self) -> &Goroutine {
        &self.goroutine
    }

    /// Ends the goroutine from outside: it unwinds from its current suspension point
    /// (if parked: a channel operation, `sleep`, I/O, `join`) or from its next one,
    /// running its destructors, and [`join`](JoinHandle::join) returns `Err` with an
    /// [`Aborted`] payload.
    ///
    /// - A goroutine that never suspends again is not interrupted.
    /// - One inside [`blocking`] unwinds when the call returns.
    /// - One inside [`scope`](crate::scope()) waits for its scoped goroutines first, and
    ///   unwinds once the scope's wait is over; nested `block_on` likewise.
    /// - A value a goroutine parked in `recv` had not yet taken stays in the channel.
    /// - Aborting twice is aborting once; aborting a finished goroutine does nothing;
    ///   a goroutine already unwinding (its `Drop` code running) is not interrupted.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let rt = gmp_runtime::Runtime::builder().procs(1).build().unwrap();
    /// // SAFETY: nothing thread-local is held across a suspension point.
    /// let h = unsafe { rt.spawn(|| gmp_runtime::sleep(Duration::from_secs(3600))) };
    /// h.abort();
    /// let err = h.join().unwrap_err();
    /// assert!(err.downcast_ref::<gmp_runtime::Aborted>().is_some());
    /// ```
    pub fn abort(&self) {
        if self.is_finished() {
            return;
        }
        if let Some(g) = self.goroutine.g() {
            if g.abort
                .compare_exchange(
                    crate::g::ABORT_NONE,
                    crate::g::ABORT_REQUESTED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // Wake it if it is parked: its park returns and raises the abort.
                gmp_core::park::Unpark::unpark(&**g);
            }
        }
    }
}

/// The panic payload of a goroutine ended by [`JoinHandle::abort`].
///
/// ```
/// let e = gmp_runtime::Aborted;
/// assert_eq!(e.to_string(), "the goroutine was aborted");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the goroutine was aborted")
    }
}

impl std::error::Error for Aborted {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("goroutine", &self.goroutine)
            .finish_non_exhaustive()
    }
}

/// Awaiting a goroutine from async code (any executor): the task is woken when the
/// goroutine finishes, and its thread is never blocked. Polling again after the
/// result was returned panics, as for any completed future.
///
/// ```
/// let rt = gmp_runtime::Runtime::builder().procs(1).build().unwrap();
/// // SAFETY: the goroutine holds no thread-local state across a suspension point.
/// let h = unsafe { rt.spawn(|| 6 * 7) };
/// // Any executor can await it; gmp's own `block_on` on a plain thread will do here.
/// assert_eq!(gmp_runtime::future::block_on(h).unwrap(), 42);
/// ```
impl<T> std::future::Future for JoinHandle<T> {
    type Output = std::thread::Result<T>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::thread::Result<T>> {
        self.packet.get().poll_join(cx.waker())
    }
}

impl<T> Packet<T> {
    /// [`Packet::join`] for a future: takes the result if the goroutine is done, else
    /// leaves `waker` to be woken by `set` (the same Dekker protocol as `join`).
    pub(crate) fn poll_join(
        &self,
        waker: &std::task::Waker,
    ) -> std::task::Poll<std::thread::Result<T>> {
        if self.state.load(Ordering::Acquire) == RUNNING {
            let w = crate::future::WakerUnpark(waker.clone());
            self.set_waiter(Unparker::new(Arc::new(w)));
            // SeqCst: see `set`.
            if self.state.load(Ordering::SeqCst) == RUNNING {
                return std::task::Poll::Pending;
            }
        }
        assert!(
            self.state.load(Ordering::Acquire) == DONE,
            "gmp: JoinHandle polled after it returned the goroutine's result"
        );
        // DONE was observed with Acquire just above; the handle is the only joiner and
        // polls through `&mut`, so no other poll or `join` runs at the same time.
        std::task::Poll::Ready(self.take_result())
    }
}
