//! The park/unpark hook: how everything above gmp-core blocks.
//!
//! Channels (gmp-chan) and the network poller (gmp-netpoll) never name the runtime.
//! When they must wait they call [`park`] / [`park_deadline`], and to be woken they
//! hand out an [`Unparker`] obtained from [`current`]. What "park" means depends on
//! who is running:
//!
//! - on a plain OS thread it blocks the thread (a mutex + condvar parker, below);
//! - inside a goroutine, the runtime has installed a [`ParkHook`] on the M's thread
//!   ([`set_hook`]) and parking switches the goroutine out, leaving the M free to run
//!   others.
//!
//! Both kinds of waiter can wait on the same channel at the same time, because the
//! channel only ever sees an [`Unparker`].
//!
//! # Semantics (the same as `std::thread::park`)
//!
//! Each waiter has one *permit*. [`Unparker::unpark`] makes it available (unparking
//! twice is the same as once); [`park`] consumes it, blocking until it is available.
//! An unpark that comes *before* the park is therefore not lost. `park` may also
//! return spuriously, so callers always re-check their condition in a loop:
//!
//! ```
//! use gmp_core::park;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//!
//! let done = Arc::new(AtomicBool::new(false));
//! let me = park::current();
//! let d = done.clone();
//! let t = std::thread::spawn(move || {
//!     d.store(true, Ordering::Release);
//!     me.unpark();
//! });
//! while !done.load(Ordering::Acquire) {
//!     park::park();
//! }
//! t.join().unwrap();
//! ```
//!
//! # The state machine
//!
//! [`ParkState`] is the permit word shared by the thread parker here and by the
//! runtime's goroutines: `EMPTY` (no permit, nobody asleep), `PARKED` (the waiter is
//! asleep or committed to sleeping), `NOTIFIED` (a permit is pending). The waker swaps
//! in `NOTIFIED` and wakes the sleeper only if it saw `PARKED`; the waiter commits to
//! sleep with a CAS `EMPTY -> PARKED`, which fails if a permit slipped in. Every
//! transition is a `SeqCst`-free RMW on one word, so there is no lost wake-up: loom
//! models in `tests/loom_park.rs` check unpark-before-park, unpark-during-park and a
//! timeout racing an unpark. A goroutine's waker, which resumes the goroutine itself,
//! takes a parked one straight back to `EMPTY` ([`ParkState::unpark_taking`]), so the
//! goroutine has no permit to consume when it runs (a loom model of that hand-off too).

use crate::sync::atomic::{AtomicU8, Ordering};
// The unparker's refcount is plain std: it is not part of any protocol a model checks,
// and loom's `Arc` cannot hold a `dyn` trait object.
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that can be woken: a parked thread, a parked goroutine.
///
/// Implementations must make `unpark` idempotent until the next park (a permit, not a
/// counter) and must never block for long: it is called with channel locks held.
pub trait Unpark: Send + Sync + 'static {
    /// Makes the permit available, waking the waiter if it is parked.
    fn unpark(&self);
}

/// A handle that wakes one waiter (a goroutine or a thread). Cheap to clone.
#[derive(Clone)]
pub struct Unparker {
    inner: Arc<dyn Unpark>,
}

impl Unparker {
    /// Wraps an [`Unpark`] implementation (the runtime wraps its goroutines this way).
    pub fn new(inner: Arc<dyn Unpark>) -> Self {
        Unparker { inner }
    }

    /// Makes the waiter's permit available, waking it if it is parked.
    #[inline]
    pub fn unpark(&self) {
        self.inner.unpark();
    }

    /// True if both handles wake the same waiter.
    pub fn will_wake(&self, other: &Unparker) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.inner), Arc::as_ptr(&other.inner))
    }

    /// The waiter's identity: the address of its [`Unpark`] object, equal for every
    /// handle that wakes the same waiter. Only for comparing (a runtime may compare it
    /// with its goroutine's address); it is never dereferenced.
    pub fn addr(&self) -> *const () {
        Arc::as_ptr(&self.inner) as *const ()
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unparker")
            .field("waiter", &Arc::as_ptr(&self.inner))
            .finish()
    }
}

/// What a runtime installs on its worker threads so that [`park`] parks a goroutine.
pub trait ParkHook: Sync + 'static {
    /// The unparker of the goroutine running on this thread, or `None` when no
    /// goroutine is running here (then the thread itself is the waiter).
    fn current(&self) -> Option<Unparker>;

    /// Parks the running goroutine until its permit is available, `deadline` passes,
    /// or spuriously. Returns `false`, without parking, when no goroutine is running
    /// on this thread; the caller then parks the thread.
    fn park(&self, deadline: Option<Instant>) -> bool;

    /// True when a goroutine (not the thread itself) is the current waiter. The
    /// default asks [`current`](ParkHook::current); runtimes can answer more cheaply.
    fn in_goroutine(&self) -> bool {
        self.current().is_some()
    }

    /// The identity of the goroutine running on this thread — the address that
    /// [`Unparker::addr`] returns for the unparkers [`current`](ParkHook::current)
    /// makes — or `None` when no goroutine is running here. Lets [`is_current`] answer
    /// without making an unparker (a reference-count increment and decrement);
    /// runtimes should override the default, which makes one.
    fn current_addr(&self) -> Option<*const ()> {
        self.current().map(|u| u.addr())
    }

    /// [`park`](ParkHook::park), saying why the goroutine waits (shown in goroutine
    /// dumps and deadlock reports). The default ignores the reason.
    fn park_for(&self, deadline: Option<Instant>, reason: WaitReason) -> bool {
        let _ = reason;
        self.park(deadline)
    }
}

/// Why a waiter parks, as Go's goroutine dumps print it (Go: `waitReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// A plain [`park`]: no more specific reason given.
    Park,
    /// A channel receive.
    ChanReceive,
    /// A channel send.
    ChanSend,
    /// A `select` with cases.
    Select,
    /// A `select` with no cases (blocks forever).
    SelectNoCases,
    /// A sleep.
    Sleep,
    /// Waiting for a file descriptor to become ready (the network poller).
    IoWait,
    /// `sync::Mutex::lock`.
    MutexLock,
    /// `sync::RwLock::read`.
    RwLockRead,
    /// `sync::RwLock::write`.
    RwLockWrite,
    /// A semaphore acquire (Go's `semacquire`: semaphores, `Once`, barriers).
    Semacquire,
    /// `sync::WaitGroup::wait`.
    WaitGroupWait,
    /// `sync::Condvar::wait`.
    CondWait,
    /// Joining another goroutine.
    Join,
    /// A future polled by `block_on`.
    Future,
}

impl WaitReason {
    /// The text Go prints in `goroutine N [reason]:`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Park => "park",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Sleep => "sleep",
            WaitReason::IoWait => "IO wait",
            WaitReason::MutexLock => "sync.Mutex.Lock",
            WaitReason::RwLockRead => "sync.RWMutex.RLock",
            WaitReason::RwLockWrite => "sync.RWMutex.Lock",
            WaitReason::Semacquire => "semacquire",
            WaitReason::WaitGroupWait => "sync.WaitGroup.Wait",
            WaitReason::CondWait => "sync.Cond.Wait",
            WaitReason::Join => "join",
            WaitReason::Future => "future",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static HOOK: Cell<Option<&'static dyn ParkHook>> = const { Cell::new(None) };
}
#[cfg(loom)]
loom::thread_local! {
    static HOOK: Cell<Option<&'static dyn ParkHook>> = Cell::new(None);
}

/// Installs `hook` for the calling thread (the runtime does this on each M), returning
/// the previous one. `None` removes it.
pub fn set_hook(hook: Option<&'static dyn ParkHook>) -> Option<&'static dyn ParkHook> {
    HOOK.with(|h| h.replace(hook))
}

// Never inlined: a goroutine may move to another thread between two calls, and LLVM
// may cache a thread-local's address within one function (rust-lang/rust#33368).
#[inline(never)]
fn hook() -> Option<&'static dyn ParkHook> {
    HOOK.with(|h| h.get())
}

/// The [`Unparker`] of whoever is running: the current goroutine, else this thread.
pub fn current() -> Unparker {
    if let Some(u) = hook().and_then(|h| h.current()) {
        return u;
    }
    thread_unparker()
}

/// True if `u` wakes whoever is running: the current goroutine, else this thread.
///
/// [`current`] makes a new handle (a reference-count increment, and a decrement when
/// it is dropped); a cache of waiter records asks this instead, to keep the handle
/// it already has when the same waiter blocks again.
///
/// ```
/// use gmp_core::park;
///
/// let me = park::current();
/// assert!(park::is_current(&me));
/// let other = std::thread::spawn(park::current).join().unwrap();
/// assert!(!park::is_current(&other));
/// ```
pub fn is_current(u: &Unparker) -> bool {
    let me = match hook().and_then(|h| h.current_addr()) {
        Some(addr) => addr,
        // `try_with`: in a thread-local destructor the parker may be gone; then no
        // handle made earlier can be this thread's current one (see `thread_unparker`).
        None => match THREAD_PARKER.try_with(|p| Arc::as_ptr(p) as *const ()) {
            Ok(addr) => addr,
            Err(_) => return false,
        },
    };
    std::ptr::addr_eq(u.addr(), me)
}

/// True when the caller runs as a goroutine of a runtime that installed a hook (its
/// parking switches the goroutine out). Blocking code uses it to skip spin-then-yield
/// loops that only make sense for OS threads: a goroutine should park at once, as Go's
/// channel operations do, and let its M run something else.
pub fn in_goroutine() -> bool {
    hook().is_some_and(|h| h.in_goroutine())
}

/// Parks the current goroutine or thread until its permit is available (or
/// spuriously). See the module docs.
pub fn park() {
    park_inner(None);
}

/// Parks for at most `timeout` (or until unparked, or spuriously).
pub fn park_timeout(timeout: Duration) {
    park_inner(Some(
        Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(far_future),
    ));
}

/// Parks until `deadline` at the latest (or until unparked, or spuriously).
pub fn park_deadline(deadline: Instant) {
    park_inner(Some(deadline));
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// [`park`], saying why (goroutine dumps show it).
pub fn park_for(reason: WaitReason) {
    park_inner_for(None, reason);
}

/// [`park_deadline`], saying why (goroutine dumps show it).
pub fn park_deadline_for(deadline: Instant, reason: WaitReason) {
    park_inner_for(Some(deadline), reason);
}

fn park_inner(deadline: Option<Instant>) {
    park_inner_for(deadline, WaitReason::Park);
}

fn park_inner_for(deadline: Option<Instant>, reason: WaitReason) {
    if let Some(h) = hook() {
        if h.park_for(deadline, reason) {
            return;
        }
    }
    park_thread(deadline);
}

/// The permit word shared by every kind of waiter (see the module docs).
///
/// Orderings: acquiring the permit (`NOTIFIED -> EMPTY`) is `Acquire`, and every
/// store of `NOTIFIED` is `Release`, so whatever the waker wrote before `unpark`
/// (a value handed over through a channel slot, a ready flag) is visible to the
/// waiter once it returns from `park`. The other way, committing a park
/// (`EMPTY -> PARKED`) is `Release` and every transition that takes a parked waiter
/// over (`unpark` seeing `PARKED`, `unpark_taking`, `cancel_park`, `begin_capture`) is
/// `Acquire`: the winner may resume the waiter elsewhere and must see what it wrote
/// before parking. No StoreLoad ordering is needed: all transitions are RMWs on this one
/// word (`try_acquire` and `unpark_taking` load it first only to skip a CAS bound to
/// fail).
#[derive(Debug, Default)]
pub struct ParkState(AtomicU8);

const EMPTY: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;
/// A parked goroutine lent to a goroutine dump (see [`ParkState::begin_capture`]).
const CAPTURING: u8 = 3;

impl ParkState {
    /// A state with no permit.
    pub fn new() -> Self {
        ParkState(AtomicU8::new(EMPTY))
    }

    /// Takes a pending permit without blocking; true if there was one.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // A plain load first: a waiter about to park usually has no permit, and a failed
        // `compare_exchange` is still a locked instruction on x86 (a goroutine's park
        // paid one per channel wait). Relaxed: only a hint; the permit is taken by the
        // Acquire CAS. One stored after the load is not lost: it is there for the
        // caller's `commit_park`, whose CAS then fails on it.
        self.0.load(Ordering::Relaxed) == NOTIFIED
            && self
                .0
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// The waiter commits to sleeping: `EMPTY -> PARKED`. Returns `false` if a permit
    /// arrived meanwhile; the permit is then consumed and the waiter must not sleep.
    #[inline]
    pub fn commit_park(&self) -> bool {
        // Success Release: parking hands the waiter over. Whoever wins the right to wake
        // it (an `unpark` that sees PARKED, a timer's `cancel_park`, a dump's
        // `begin_capture`) may resume it on another thread, and must see everything
        // written before the commit — for a goroutine, the context its switch saved on
        // its stack and its G's fields (loom: `committed_context_is_visible_to_whoever_
        // resumes_the_waiter`; ThreadSanitizer found it with an instrumented std).
        // Failure Acquire: pairs with the Release of the unpark that set NOTIFIED (an
        // Acquire on failure rather than a fence after it: the same edge, and one
        // ThreadSanitizer sees).
        match self
            .0
            .compare_exchange(EMPTY, PARKED, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(NOTIFIED) => {
                self.0.store(EMPTY, Ordering::Relaxed);
                false
            }
            Err(s) => panic!("gmp_core::park: two waiters share one park state (state {s})"),
        }
    }

    /// The waker's side: makes the permit available. Returns `true` if the waiter was
    /// `PARKED`: the caller must then wake it (signal the condvar, ready the
    /// goroutine), exactly once.
    #[inline]
    pub fn unpark(&self) -> bool {
        // Release: publishes the waker's writes to the waiter's Acquire. Acquire: a
        // waker that sees PARKED takes the waiter over (it readies it, and someone
        // resumes it): it must see the waiter's writes before `commit_park`.
        self.0.swap(NOTIFIED, Ordering::AcqRel) == PARKED
    }

    /// The waker's side for a waiter that the caller itself resumes (a goroutine, which
    /// its waker readies): as [`unpark`](Self::unpark), but a waiter found `PARKED` is
    /// left `EMPTY` rather than `NOTIFIED`, so that it resumes with no permit to consume
    /// and need not call [`finish_park`](Self::finish_park) (Go's `goready` passes the G
    /// with no word to reset). Returns `true` if the waiter was `PARKED`: the caller must
    /// then resume it, exactly once, and order its own writes before that resumption (a
    /// run queue's Release/Acquire hand-off does), since the waiter reads no permit to
    /// acquire them from. A waiter that resumes with a permit all the same (this call
    /// fell back to `unpark` in a race, or an `unpark` came after) sees one spurious
    /// return from its next park, which every caller allows for.
    #[inline]
    pub fn unpark_taking(&self) -> bool {
        // A plain load first, to try the CAS only on a parked waiter: a failed CAS is a
        // locked instruction too. Relaxed: a hint; the CAS decides.
        if self.0.load(Ordering::Relaxed) == PARKED
            // AcqRel: Acquire takes the waiter over, as in `unpark`; Release publishes
            // our writes to the waiter's next owner, as `unpark`'s swap does.
            && self
                .0
                .compare_exchange(PARKED, EMPTY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
        self.unpark()
    }

    /// A sleeper that woke (signalled, timed out, or spuriously) leaves the parked
    /// state: returns `true` if it was notified (the permit is consumed either way).
    /// If it was still `PARKED` (a timeout or spurious wake), it is `EMPTY` after.
    #[inline]
    pub fn finish_park(&self) -> bool {
        self.0.swap(EMPTY, Ordering::Acquire) == NOTIFIED
    }

    /// Cancels a park that timed out, if no unpark came: `PARKED -> EMPTY`. Returns
    /// `false` if an unparker saw `PARKED` and is (or will be) waking the sleeper;
    /// the caller must then let that wake-up happen rather than wake it itself. (A
    /// sleeper lent to a capture is woken by the capturer: the timeout becomes a
    /// permit, `CAPTURING -> NOTIFIED`, and `end_capture` reports it.)
    #[inline]
    pub fn cancel_park(&self) -> bool {
        match self
            .0
            .compare_exchange(PARKED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(CAPTURING) => {
                let _ = self.0.compare_exchange(
                    CAPTURING,
                    NOTIFIED,
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                false
            }
            Err(_) => false,
        }
    }

    /// Lends a parked waiter to an inspector (a goroutine dump resumes it briefly to
    /// take its backtrace): `PARKED -> CAPTURING`. While it is lent, an unpark (or a
    /// timeout) does not wake it — `unpark` sees `CAPTURING` and returns `false` — but
    /// leaves a permit that [`end_capture`](ParkState::end_capture) reports.
    #[inline]
    pub fn begin_capture(&self) -> bool {
        // Acquire: the inspector sees what the waiter wrote before it parked.
        self.0
            .compare_exchange(PARKED, CAPTURING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives a lent waiter back: `CAPTURING -> PARKED`. Returns `false` if an unpark
    /// (or a timeout) came meanwhile: the inspector must then wake the waiter itself,
    /// exactly as an unparker that had seen `PARKED` would.
    #[inline]
    pub fn end_capture(&self) -> bool {
        // Release: the waiter's next owner sees the inspector's writes.
        self.0
            .compare_exchange(CAPTURING, PARKED, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// True if the waiter is committed to sleeping (for debugging and deadlock reports).
    pub fn is_parked(&self) -> bool {
        self.0.load(Ordering::Relaxed) == PARKED
    }
}

/// The parker of a plain OS thread: a [`ParkState`] plus the thread's own park token
/// (`std::thread::park`, a futex word) for the actual sleep. Public so that loom models
/// and other crates can use it directly.
///
/// Only the thread that made it parks on it (it is a thread-local): an unpark is a swap
/// of the state word and, if the thread sleeps, one `Thread::unpark` (a futex wake). A
/// mutex and condvar here before cost the waker a lock that the woken thread then
/// contended for on its way out (threads blocked on gmp channels were 1.2-1.7x slower
/// than crossbeam-channel's on the same list algorithm, which parks this way).
#[derive(Debug)]
pub struct ThreadParker {
    state: ParkState,
    /// The thread that parks on it: the one that made it. `None` for a stand-in made
    /// while the thread-locals are being destroyed, which nobody parks on.
    thread: Option<crate::sync::thread::Thread>,
}

impl Default for ThreadParker {
    fn default() -> Self {
        ThreadParker::new()
    }
}

impl ThreadParker {
    /// A parker with no permit, for the calling thread: only it may [`park`](Self::park)
    /// on it (another thread's park would sleep without being woken by `unpark`).
    pub fn new() -> Self {
        ThreadParker {
            state: ParkState::new(),
            thread: Some(crate::sync::thread::current()),
        }
    }

    /// A parker that belongs to no thread: its unparks only leave a permit.
    fn detached() -> Self {
        ThreadParker {
            state: ParkState::new(),
            thread: None,
        }
    }

    /// Blocks the calling thread (the parker's) until the permit is available,
    /// `deadline` passes, or spuriously. Consumes the permit.
    pub fn park(&self, deadline: Option<Instant>) {
        if self.state.try_acquire() {
            return;
        }
        if !self.state.commit_park() {
            return;
        }
        let _count = ParkedCount::new(true);
        loop {
            match deadline {
                None => crate::sync::thread::park(),
                Some(d) => {
                    // Under loom time does not pass: a timed park times out at once
                    // (racing whatever the unparker does, see `gmp_core::sync`).
                    let now = Instant::now();
                    if cfg!(loom) || now >= d {
                        // Timed out: leave whether or not a permit came.
                        self.state.finish_park();
                        return;
                    }
                    #[cfg(not(loom))]
                    std::thread::park_timeout(d - now);
                }
            }
            // The unparker swaps NOTIFIED in before it wakes the thread; a wake-up that
            // finds PARKED still is spurious (the thread's token is shared with any
            // other user of `std::thread::park` on this thread).
            if self.state.try_acquire() {
                return;
            }
        }
    }

    /// Makes the permit available, waking the thread if it is parked.
    pub fn unpark(&self) {
        if self.state.unpark() {
            // The thread's token is sticky: an unpark that comes before the sleeper's
            // `park` makes that park return at once, so none is lost between the
            // sleeper's commit and its sleep.
            if let Some(t) = &self.thread {
                t.unpark();
            }
        }
    }
}

impl Unpark for ThreadParker {
    fn unpark(&self) {
        ThreadParker::unpark(self);
    }
}

/// Threads parked (with or without a deadline) on a [`ThreadParker`] right now. A runtime's deadlock
/// detector reads it: such a thread may be about to wake a goroutine, or be waiting on
/// one. A plain std atomic: it is a statistic, not part of any protocol a model checks.
static PARKED_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many OS threads are parked through this module right now
/// (for deadlock detection; approximate by nature).
pub fn parked_threads() -> usize {
    PARKED_THREADS.load(std::sync::atomic::Ordering::Relaxed)
}

struct ParkedCount(bool);

impl ParkedCount {
    fn new(counted: bool) -> ParkedCount {
        if counted {
            PARKED_THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        ParkedCount(counted)
    }
}

impl Drop for ParkedCount {
    fn drop(&mut self) {
        if self.0 {
            PARKED_THREADS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static THREAD_PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
}
#[cfg(loom)]
loom::thread_local! {
    static THREAD_PARKER: Arc<ThreadParker> = Arc::new(ThreadParker::new());
}

/// The unparker of the calling OS thread (ignoring any installed hook).
pub fn thread_unparker() -> Unparker {
    // `try_with`: blocking code may run in another thread-local's destructor, after
    // ours is gone. A fresh parker then stands in; `park_thread` sleeps briefly instead
    // (a spurious wake-up, which every caller tolerates).
    THREAD_PARKER
        .try_with(|p| Unparker::new(p.clone() as Arc<dyn Unpark>))
        .unwrap_or_else(|_| Unparker::new(Arc::new(ThreadParker::detached()) as Arc<dyn Unpark>))
}

/// Parks the calling OS thread (ignoring any installed hook).
pub fn park_thread(deadline: Option<Instant>) {
    if THREAD_PARKER.try_with(|p| p.park(deadline)).is_err() {
        // Thread-locals are being destroyed (see `thread_unparker`): poll gently.
        let nap = Duration::from_millis(1);
        let nap = deadline.map_or(nap, |d| {
            d.saturating_duration_since(Instant::now()).min(nap)
        });
        std::thread::sleep(nap);
    }
}
