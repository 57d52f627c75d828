//! The goroutine side of the scheduler (Go: runtime/proc.go's `gopark`, `goyield`,
//! `entersyscall`/`exitsyscall`): how a running goroutine leaves its M — to park, to
//! yield, to make a blocking call — and comes back, possibly on another M; the park
//! hook the runtime installs on its Ms; aborts; and the shutdown's forced unwind. The
//! M side (the scheduling loop) is `schedule.rs`.

use crate::g::{Action, Status, G};
use crate::m::{self, set_ctx};
use crate::p::{acquirep, enter, own_word, OWN_USER};
use crate::sched::Sched;
use gmp_core::park::{ParkHook, Unparker};
use gmp_core::sync::atomic::Ordering;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

/// The park hook the runtime installs on every M: a goroutine parks by switching
/// out; the scheduler code itself never parks through it.
pub(crate) struct Hook;

pub(crate) static HOOK: Hook = Hook;

impl ParkHook for Hook {
    fn current(&self) -> Option<Unparker> {
        // While unwinding, a goroutine waits as its thread does (see `park`).
        let g = current_g().filter(|_| !std::thread::panicking())?;
        // One strong-count increment (`G::arc` then `unparker` would take three atomic
        // read-modify-writes: increment, clone, drop; every blocking channel operation
        // makes one of these).
        Some(Unparker::new(G::arc(g)))
    }

    fn in_goroutine(&self) -> bool {
        current_g().is_some() && !std::thread::panicking()
    }

    fn current_addr(&self) -> Option<*const ()> {
        // As `current`: the G that `G::arc` hands out, whose address its unparkers carry.
        let g = current_g().filter(|_| !std::thread::panicking())?;
        Some(g as *const G as *const ())
    }

    fn park(&self, deadline: Option<Instant>) -> bool {
        self.park_for(deadline, gmp_core::park::WaitReason::Park)
    }

    fn park_for(&self, deadline: Option<Instant>, reason: gmp_core::park::WaitReason) -> bool {
        match current_g() {
            Some(_) if std::thread::panicking() => {
                // Unwinding: std's panic count is thread-local, so the goroutine must
                // not move to another M. Block this M instead (`current` handed out
                // the thread's unparker), as a blocking call, so its P is handed on.
                blocking_call(|| gmp_core::park::park_thread(deadline));
                true
            }
            Some(g) => {
                park_current(g, deadline, reason);
                true
            }
            None => false,
        }
    }
}

/// The goroutine running on this thread, if any. The reference is valid only until
/// the goroutine next suspends (it may then move to another M; the G itself lives on,
/// but callers should re-fetch).
///
/// Inside `blocking(f)` this is `None`: `f` runs as plain-thread code (a channel
/// operation or a join inside it blocks the M, whose P sysmon has handed on), so that
/// a goroutine never parks while its M is in a system call.
pub(crate) fn current_g() -> Option<&'static G> {
    let g = running_g()?;
    (g.status() != Status::Syscall).then_some(g)
}

/// The goroutine running on this thread, also inside `blocking` (for its identity).
pub(crate) fn running_g() -> Option<&'static G> {
    let c = m::ctx()?;
    let g = c.curg()?;
    // SAFETY: the G is kept alive by the `Arc` its M holds while running it, and the
    // running goroutine is the caller: the G outlives this call frame's use of it.
    Some(unsafe { &*(g as *const G) })
}

/// The goroutine the caller runs as: the running one (also inside `blocking`), or
/// the one a shutdown is unwinding on this thread. For its identity only.
pub(crate) fn identity_g() -> Option<&'static G> {
    if let Some(g) = running_g() {
        return Some(g);
    }
    let (g, _) = UNWINDING.with(|u| u.get());
    // SAFETY: `unwind_goroutine` keeps the G alive while it is published, and only
    // code running on that G's stack (this thread, during the unwind) can observe it.
    (!g.is_null()).then(|| unsafe { &*g })
}

/// `JoinHandle::abort`, at a suspension point: unwinds the goroutine with an
/// [`Aborted`](crate::Aborted) payload if an abort was requested, unless it is already
/// unwinding (a destructor) or inside a region that must finish first (`scope`
/// waiting for its children). Raised once.
#[inline]
pub(crate) fn check_abort(g: &G) {
    // Relaxed: a hint read at every suspension point; the RMW below decides, and the
    // requester's unpark (a release/acquire edge through the park word) makes the
    // request visible at the park that follows it.
    if g.abort.load(Ordering::Relaxed) == crate::g::ABORT_REQUESTED {
        raise_abort(g);
    }
}

#[cold]
#[inline(never)]
fn raise_abort(g: &G) {
    if g.abort_mask.get() != 0 || std::thread::panicking() {
        return;
    }
    if g.abort
        .compare_exchange(
            crate::g::ABORT_REQUESTED,
            crate::g::ABORT_RAISED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        std::panic::resume_unwind(Box::new(crate::Aborted));
    }
}

/// Runs `f` with aborts of the running goroutine held back (they are raised at the
/// first suspension point after `f`): for waits that keep borrowed frames alive.
pub(crate) fn without_abort<R>(f: impl FnOnce() -> R) -> R {
    struct Unmask(Option<&'static G>);
    impl Drop for Unmask {
        fn drop(&mut self) {
            if let Some(g) = self.0 {
                g.abort_mask.set(g.abort_mask.get() - 1);
            }
        }
    }
    let g = running_g();
    if let Some(g) = g {
        g.abort_mask.set(g.abort_mask.get() + 1);
    }
    let unmask = Unmask(g);
    let r = f();
    drop(unmask);
    if let Some(g) = current_g() {
        check_abort(g);
    }
    r
}

/// Go: `gopark`. Parks the running goroutine `g` until its permit is available or
/// `deadline` passes (or spuriously).
pub(crate) fn park_current(g: &G, deadline: Option<Instant>, reason: gmp_core::park::WaitReason) {
    check_abort(g);
    if g.park.try_acquire() {
        return;
    }
    // `sleep` has just checked its deadline itself: spare it a second clock read.
    if reason != gmp_core::park::WaitReason::Sleep && deadline.is_some_and(|d| d <= Instant::now())
    {
        return;
    }
    // The reason is the goroutine's to set (Go's gopark sets `waitreason` before its
    // mcall): the `Action` then fits 16 bytes, and every G is 8 bytes smaller.
    g.set_wait_reason(Some(reason));
    g.action.set(Action::Park {
        deadline: deadline.map(crate::timers::nanos),
    });
    suspend(g);
    // No `finish_park`: whoever resumed us took us out of `PARKED` itself (an unpark
    // leaves `EMPTY`: `ParkState::unpark_taking`; a timer or the shutdown
    // `cancel_park`), and orders its writes before our resumption through the run
    // queue. A permit still there is a later unpark's (or one left in a race), for
    // the next park to take: at worst one spurious return, which callers allow for.
    g.set_wait_reason(None);
    // Resumed, perhaps on another M: re-read nothing thread-local before this.
    check_abort(g);
}

/// Go: `goyield`: to the back of the local queue.
pub(crate) fn yield_current(g: &G) {
    check_abort(g);
    g.action.set(Action::Yield);
    suspend(g);
    check_abort(g);
}

/// Switches from goroutine `g` to its M's scheduler. Returns when `g` is resumed,
/// possibly on another M.
pub(crate) fn suspend(g: &G) {
    let s = g.suspender();
    assert!(
        !s.is_null(),
        "gmp: internal error: goroutine {} has no suspender",
        g.id
    );
    // SAFETY: the suspender lives on `g`'s own stack for the whole life of its body,
    // and we are running on that stack now.
    unsafe { (*s).suspend() };
    // A goroutine dump may have borrowed us while parked, to take our backtrace here
    // on our own stack (debug.rs): do that, and switch back to it.
    while g.capture.get() {
        crate::debug::capture_backtrace();
        // SAFETY: as above.
        unsafe { (*s).suspend() };
    }
}

/// Go: `entersyscall` … `exitsyscall`, around `f`.
pub(crate) fn blocking_call<R>(f: impl FnOnce() -> R) -> R {
    let Some(c) = m::ctx() else { return f() };
    let Some(g) = c.curg() else { return f() };
    if g.status() == Status::Syscall {
        // Nested `blocking`: already accounted for.
        return f();
    }
    let sched = c.sched.clone();
    let owned = enter(c);
    match &owned {
        // The P's counter (`Runtime::metrics` sums them).
        Some(p) => {
            p.p().syscalltick.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            sched
                .stats
                .blocking_calls_outside
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    crate::trace::syscall_enter(c);
    g.set_status(Status::Syscall);
    // With the status `Syscall`, the drop leaves the P in state SYSCALL (Release):
    // sysmon may retake it from now on.
    drop(owned);
    sched.nsyscall.fetch_add(1, Ordering::SeqCst);
    sched.wake_sysmon();

    struct Exit<'a> {
        sched: &'a Arc<Sched>,
    }
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            exitsyscall(self.sched);
        }
    }
    let guard = Exit { sched: &sched };
    let r = f();
    drop(guard);
    crate::trace::syscall_exit();
    // An abort that arrived during the call takes effect now that it has returned.
    if let Some(g) = current_g() {
        check_abort(g);
    }
    r
}

/// Go: `exitsyscall`. Keep our P if sysmon did not take it; else any idle P; else
/// requeue the goroutine globally and let this M sleep.
fn exitsyscall(sched: &Arc<Sched>) {
    sched.nsyscall.fetch_sub(1, Ordering::SeqCst);
    let c = m::ctx().expect("gmp: exitsyscall off an M");
    let g = c.curg().expect("gmp: exitsyscall without a goroutine");
    let me = c.m.id;
    if let Some(p) = c.p.get() {
        let pp = &sched.allp[p];
        // Acquire on success: we own the P again.
        if pp
            .own
            .compare_exchange(
                own_word(me, crate::p::OWN_SYSCALL),
                own_word(me, OWN_USER),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            g.set_status(Status::Running);
            return;
        }
        c.p.set(None);
    }
    // Slow path: any idle P.
    if let Some(p) = sched.pidleget() {
        acquirep(c, p);
        g.set_status(Status::Running);
        sched.allp[p]
            .own
            .store(own_word(me, OWN_USER), Ordering::Release);
        return;
    }
    if std::thread::panicking() {
        // Unwinding must stay on this thread (std's panic count is thread-local): run
        // on without a P, like a goroutine sysmon took the P from.
        g.set_status(Status::Running);
        return;
    }
    // Slowest: no P. Queue the goroutine and switch out; the M sleeps.
    g.action.set(Action::Requeue);
    suspend(g);
    // Resumed, on some M holding a P.
}

/// At a scheduling point: if the running goroutine's M lost its P while it ran user
/// code (sysmon retook it after 10 ms), switch out and get one back through the
/// scheduler (the goroutine is requeued globally). Only called where no runtime lock
/// is held.
pub(crate) fn resched_if_lost_p() {
    let Some(c) = m::ctx() else { return };
    if c.p.get().is_some() {
        return;
    }
    if std::thread::panicking() {
        return; // never migrate while unwinding (see `exitsyscall`)
    }
    if let Some(g) = c.curg().filter(|g| g.status() != Status::Syscall) {
        g.action.set(Action::Requeue);
        // SAFETY: `g` is the running goroutine: this is its own stack.
        let g: &G = unsafe { &*(g as *const G) };
        suspend(g);
    }
}

// ---------------------------------------------------------------------------------
// Shutdown's forced unwind (sched.rs `unwind_all`)
// ---------------------------------------------------------------------------------

/// How often a goroutine may swallow the shutdown's forced unwind (a `catch_unwind`
/// around a suspension point that does not rethrow) before the process aborts.
pub(crate) const MAX_SWALLOWED_UNWINDS: u32 = 100;

std::thread_local! {
    /// The goroutine being unwound on this thread by a shutdown, and how many times it
    /// has swallowed the unwind so far.
    static UNWINDING: Cell<(*const G, u32)> = const { Cell::new((std::ptr::null(), 0)) };
}

/// Runs `f` (which drops a suspended goroutine's coroutine, unwinding its stack) as
/// the shutdown's forced unwind of `g`, on the calling thread.
///
/// The goroutine's code runs here as on a plain thread — this thread's M context, if
/// it is an M of another runtime, is hidden for the duration, so that the goroutine
/// can never switch out through that runtime's scheduler — except that every
/// suspension point (a park through the hook, `yield_now`, `sleep`) raises the forced
/// unwind again if the goroutine caught it and carried on. After
/// [`MAX_SWALLOWED_UNWINDS`] the process aborts with a message naming the goroutine:
/// it would otherwise keep the shutdown waiting forever.
pub(crate) fn unwind_goroutine(g: &G, f: impl FnOnce()) {
    struct Restore(
        *const m::MCtx,
        Option<&'static dyn ParkHook>,
        (*const G, u32),
    );
    impl Drop for Restore {
        fn drop(&mut self) {
            UNWINDING.with(|u| u.set(self.2));
            gmp_core::park::set_hook(self.1);
            set_ctx(self.0);
        }
    }
    let prev_ctx = set_ctx(std::ptr::null());
    let prev_hook = gmp_core::park::set_hook(Some(&UNWIND_HOOK));
    let prev = UNWINDING.with(|u| u.replace((g as *const G, 0)));
    let _restore = Restore(prev_ctx, prev_hook, prev);
    f();
}

/// Called at a suspension point reached without an M context: if this is a goroutine
/// being unwound by a shutdown that swallowed the unwind, raise it again.
#[inline(never)]
pub(crate) fn reraise_if_unwinding() {
    if std::thread::panicking() {
        // A destructor run by the unwind itself: it may wait as a thread does.
        return;
    }
    let (g, n) = UNWINDING.with(|u| u.get());
    if g.is_null() {
        return;
    }
    // SAFETY: `unwind_goroutine` holds an `Arc` of the G for as long as the pointer is
    // published, and we run on that G's stack.
    let g: &G = unsafe { &*g };
    if n >= MAX_SWALLOWED_UNWINDS {
        eprintln!(
            "gmp: goroutine {}{} caught the runtime's shutdown unwind {n} times without \
             rethrowing it; a catch_unwind around code that can suspend must \
             resume_unwind payloads for which gmp_runtime::is_forced_unwind is true. \
             Aborting.",
            g.id,
            g.name().map(|n| format!(" ('{n}')")).unwrap_or_default(),
        );
        std::process::abort();
    }
    UNWINDING.with(|u| u.set((g as *const G, n + 1)));
    // The coroutine's forced-unwind flag is set: `suspend` raises it again at once.
    suspend(g);
}

/// The park hook of a thread running a shutdown's forced unwind.
struct UnwindHook;

static UNWIND_HOOK: UnwindHook = UnwindHook;

impl ParkHook for UnwindHook {
    fn current(&self) -> Option<Unparker> {
        None
    }

    fn park(&self, _deadline: Option<Instant>) -> bool {
        reraise_if_unwinding();
        // In a destructor: wait as a thread.
        false
    }
}

/// A plain-thread fallback used by `sleep` and friends.
pub(crate) fn thread_sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(deadline - now);
    }
}

impl G {
    /// An `Arc` for a G known to be alive.
    pub(crate) fn arc(g: &G) -> Arc<G> {
        // SAFETY: every G lives in an `Arc` (`G::new` is the only constructor) and
        // `g` borrows a live one, so its strong count is at least 1 for this call.
        unsafe {
            Arc::increment_strong_count(g as *const G);
            Arc::from_raw(g as *const G)
        }
    }
}
