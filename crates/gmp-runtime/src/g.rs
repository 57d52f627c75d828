//! G: a goroutine — its coroutine, its status, its permit, its identity.
//!
//! A `G` lives in an `Arc`. The run queues, timers, join handles and unparkers all hold
//! clones, so a G is freed when the last of them lets go. A parked G without a deadline
//! is also held by its *park*: the scheduler's reference from the run queue is not
//! dropped when the park commits but handed to whoever readies the G
//! ([`G::commit_park`], [`G::take_park_ref`]) — Go's `gopark`/`goready` pass the G
//! itself — so a park and its wake-up make no reference-count change.
//!
//! Exactly one owner may *run* a G at a time: a runnable G sits in at most one run queue
//! (or runnext slot), and a G that parks is readied by exactly one waker — the one whose
//! transition of the permit word (`ParkState`) found it `PARKED`. That exclusivity is
//! what makes the unsynchronised access to the coroutine (`G::co`) sound; every access
//! below names it.
//!
//! Status follows Go's `_G*` states with only Go's legal transitions (`casgstatus`):
//! the table [`TRANSITIONS`], which debug builds check every [`G::set_status`] against
//! and from which the guide's diagram (`src/guide/g-status.svg`) is drawn.

use crate::origin::Origin;
use crate::sched::Sched;
use gmp_core::coroutine::{Coroutine, Suspender};
use gmp_core::park::{ParkState, Unpark};
use gmp_core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::sync::Arc;

/// A goroutine's status (Go: `_Gidle` … `_Gdead`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    /// Just allocated, not yet runnable.
    Idle = 0,
    /// On a run queue; its stack is not in use.
    Runnable = 1,
    /// Running on an M.
    Running = 2,
    /// In a `blocking` call: running on an M that may have lost its P.
    Syscall = 3,
    /// Parked on something that will ready it (a channel, a timer, the poller).
    Waiting = 4,
    /// Finished.
    Dead = 6,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Idle,
            1 => Status::Runnable,
            2 => Status::Running,
            3 => Status::Syscall,
            4 => Status::Waiting,
            _ => Status::Dead,
        }
    }

    /// One of Go's legal transitions ([`TRANSITIONS`]).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    fn can_become(self, to: Status) -> bool {
        TRANSITIONS
            .iter()
            .any(|&(from, into, _)| (from, into) == (self, to))
    }
}

/// Go's legal goroutine status transitions (`casgstatus` and its callers), each with the
/// Go function that makes it. Debug builds check every [`G::set_status`] against this
/// table; the guide's G state diagram is generated from it (`guide::render` tests).
#[cfg_attr(not(any(debug_assertions, test)), allow(dead_code))]
pub(crate) const TRANSITIONS: &[(Status, Status, &str)] = &[
    (Status::Idle, Status::Runnable, "newproc"),
    (Status::Runnable, Status::Running, "execute"),
    (Status::Running, Status::Waiting, "gopark"),
    (Status::Waiting, Status::Runnable, "goready"),
    (Status::Running, Status::Runnable, "goyield / lost P"),
    (Status::Running, Status::Syscall, "entersyscall"),
    (Status::Syscall, Status::Running, "exitsyscall"),
    (Status::Syscall, Status::Runnable, "exitsyscall0"),
    (Status::Running, Status::Dead, "goexit0"),
];

/// Why a goroutine is parked (Go's `waitReason`); `None` while it is not.
pub(crate) type WaitReason = Option<gmp_core::park::WaitReason>;

/// Every reason, in the order of their codes in `G::wait_reason` (code = index + 1).
const REASONS: [gmp_core::park::WaitReason; 15] = {
    use gmp_core::park::WaitReason as W;
    [
        W::Park,
        W::ChanReceive,
        W::ChanSend,
        W::Select,
        W::SelectNoCases,
        W::Sleep,
        W::IoWait,
        W::MutexLock,
        W::RwLockRead,
        W::RwLockWrite,
        W::Semacquire,
        W::WaitGroupWait,
        W::CondWait,
        W::Join,
        W::Future,
    ]
};

fn reason_code(r: WaitReason) -> u8 {
    match r {
        None => 0,
        Some(r) => REASONS
            .iter()
            .position(|x| *x == r)
            .map_or(1, |i| i as u8 + 1),
    }
}

/// What a goroutine asks its M to do once it has switched out (Go: the argument
/// of `mcall`). Set by the goroutine just before `suspend`, read by the scheduler
/// just after `resume` returns — so it needs no synchronisation beyond the switch.
/// Kept in the G packed into one word ([`ActionCell`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing pending.
    None,
    /// Park until unparked (or the deadline, in nanoseconds since the timer epoch:
    /// `timers::nanos`): Go's `gopark` + its commit function. The goroutine has set
    /// its wait reason ([`G::set_wait_reason`]).
    Park { deadline: Option<u64> },
    /// Go to the back of the local queue: Go's `goyield`.
    Yield,
    /// The M lost its P while this goroutine ran (sysmon retook it, or a blocking
    /// call returned without one): queue the G globally and find a P or sleep.
    /// Go: `exitsyscall0`.
    Requeue,
}

/// An [`Action`] in one word (a `Cell<Action>` is two: every G is 8 bytes smaller):
/// `0` none, `1` yield, `2` requeue, `3` park without a deadline, `4 + d` park until
/// `d` (saturating: a deadline 584 years away is as good as one a few ns sooner).
pub(crate) struct ActionCell(Cell<u64>);

impl ActionCell {
    const NONE: u64 = 0;
    const YIELD: u64 = 1;
    const REQUEUE: u64 = 2;
    const PARK: u64 = 3;
    const PARK_UNTIL: u64 = 4;

    fn new() -> ActionCell {
        ActionCell(Cell::new(Self::NONE))
    }

    #[inline]
    pub(crate) fn set(&self, a: Action) {
        self.0.set(match a {
            Action::None => Self::NONE,
            Action::Yield => Self::YIELD,
            Action::Requeue => Self::REQUEUE,
            Action::Park { deadline: None } => Self::PARK,
            Action::Park { deadline: Some(d) } => d.saturating_add(Self::PARK_UNTIL),
        })
    }

    /// The action, leaving `None`.
    #[inline]
    pub(crate) fn take(&self) -> Action {
        match self.0.replace(Self::NONE) {
            Self::NONE => Action::None,
            Self::YIELD => Action::Yield,
            Self::REQUEUE => Action::Requeue,
            Self::PARK => Action::Park { deadline: None },
            d => Action::Park {
                deadline: Some(d - Self::PARK_UNTIL),
            },
        }
    }
}

/// A goroutine.
pub(crate) struct G {
    pub(crate) id: u64,
    /// Its name and where it was spawned, in one word (origin.rs).
    origin: Origin,
    /// The runtime that runs it; `ready` sends it back there.
    pub(crate) sched: Arc<Sched>,
    /// The permit of `park`/`unpark` (see `gmp_core::park`).
    pub(crate) park: ParkState,
    /// Incremented at each park, so that a timer armed for an earlier park does not
    /// wake a later one (Go keeps a `seq` on timers for the same reason).
    pub(crate) park_seq: AtomicU64,
    status: AtomicU8,
    wait_reason: AtomicU8,
    /// Set by the goroutine before it suspends (see [`Action`]).
    pub(crate) action: ActionCell,
    /// The coroutine: only the M running this G touches it (module docs). `None`
    /// until the G first runs: its stack is taken only then (see `entry`).
    co: UnsafeCell<Option<Coroutine<()>>>,
    /// The goroutine's body until its coroutine is made at its first run (called with
    /// `Some(error)` instead, on the scheduler's stack, if no stack can be had); then
    /// its suspender, published by the coroutine. One word for the two ([`Body`]).
    body: Body,
    /// Its slot in the runtime's registry (set at its first park; [`NO_SLOT`] before).
    /// 32 bits: it packs beside the one-byte fields (a slot per live goroutine).
    pub(crate) registry_slot: Cell<u32>,
    /// Set on a main goroutine that `block_on` gave up on (deadlock): it may borrow from
    /// a frame that is gone, so it must never run again; unparks are ignored.
    pub(crate) abandoned: gmp_core::sync::atomic::AtomicBool,
    /// `JoinHandle::abort`: `ABORT_NONE`, `ABORT_REQUESTED` (raise at the next
    /// suspension point) or `ABORT_RAISED` (done once).
    pub(crate) abort: AtomicU8,
    /// Regions where an abort must wait (a `scope` waiting for its children, a nested
    /// `block_on`): only the running goroutine touches it.
    pub(crate) abort_mask: Cell<u32>,
    /// `goroutine_local!` values (local.rs): only the running goroutine touches them.
    pub(crate) locals: UnsafeCell<crate::local::Locals>,
    /// When it last parked (timers.rs `coarse_nanos`), for the wait time in dumps.
    pub(crate) parked_at: AtomicU64,
    /// Set by a goroutine dump that has borrowed the parked goroutine to take its
    /// backtrace (debug.rs; `ParkState::begin_capture` hands the G over). The
    /// goroutine, resumed on the dumper's thread, leaves the backtrace there, in a
    /// thread-local (`debug::capture_backtrace`), not in every G.
    pub(crate) capture: Cell<bool>,
    /// Set by the timer of the current park when it readies the G (timers.rs `fire`),
    /// cleared by `sleep_until` before it parks: a sleep woken by its timer knows its
    /// deadline has passed without reading the clock again. Relaxed: the run queue's
    /// Release/Acquire hand-off of the G publishes it.
    pub(crate) timer_fired: gmp_core::sync::atomic::AtomicBool,
    /// Set while the current park holds a reference to this G (`commit_park` without a
    /// deadline: the timer of a timed park holds the scheduler's instead). Written by
    /// the scheduler before the commit, read by whoever takes the G out of `PARKED`:
    /// Relaxed, the `ParkState` hand-over orders it.
    park_ref: gmp_core::sync::atomic::AtomicBool,
}

// Every goroutine carries a G, parked ones included (idlemem, park1m): keep its
// allocation (with `Arc`'s two counts) at most 104 bytes, which glibc serves from a
// 112-byte chunk (a request's chunk is its size + 8, rounded up to 16). Rare state goes
// behind a `Box` (`locals`, a name: `origin`) or lives with whoever uses it (a dump's
// backtrace, `capture`); the wait reason is not repeated in `action`, which is one word;
// the coroutine is one pointer (its stack descriptor, state, label and closure dropper
// live in the header on its stack's top page); the body and the suspender, never both,
// share a word (`body`), as the name and the spawn site do (`origin`).
#[cfg(not(loom))] // loom's atomics are larger
const _: () = assert!(std::mem::size_of::<G>() + 16 <= 104);

/// `G::registry_slot` of a goroutine that has never parked.
pub(crate) const NO_SLOT: u32 = u32::MAX;

pub(crate) const ABORT_NONE: u8 = 0;
pub(crate) const ABORT_REQUESTED: u8 = 1;
pub(crate) const ABORT_RAISED: u8 = 2;

// SAFETY: every `Cell`/`UnsafeCell` field of `G` is touched only by the single M that
// currently runs the G, or by the thread that creates it before it is published.
// Handing a G between Ms goes through a run queue or a `ParkState` RMW, both of which
// are release/acquire edges, so each new owner sees the previous owner's writes. The
// coroutine is `!Send` because a closure could hold thread-affine state across a
// suspension; that is exactly the contract `spawn` makes unsafe and the user accepts.
unsafe impl Send for G {}
// SAFETY: as above; shared references from other threads only use the atomic fields
// (`park`, `park_seq`, `status`, `wait_reason`) and the immutable ones.
unsafe impl Sync for G {}

impl G {
    pub(crate) fn new(
        id: u64,
        origin: Origin,
        sched: Arc<Sched>,
        co: Option<Coroutine<()>>,
        entry: Option<Entry>,
    ) -> Arc<G> {
        Arc::new(G {
            id,
            origin,
            sched,
            park: ParkState::new(),
            park_seq: AtomicU64::new(0),
            status: AtomicU8::new(Status::Idle as u8),
            wait_reason: AtomicU8::new(0),
            action: ActionCell::new(),
            co: UnsafeCell::new(co),
            body: Body::new(entry),
            registry_slot: Cell::new(NO_SLOT),
            abandoned: gmp_core::sync::atomic::AtomicBool::new(false),
            abort: AtomicU8::new(ABORT_NONE),
            abort_mask: Cell::new(0),
            locals: UnsafeCell::new(crate::local::Locals::default()),
            parked_at: AtomicU64::new(0),
            capture: Cell::new(false),
            timer_fired: gmp_core::sync::atomic::AtomicBool::new(false),
            park_ref: gmp_core::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The goroutine's name, if it was given one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.origin.name()
    }

    /// Where the goroutine was spawned, if known.
    pub(crate) fn created_by(&self) -> Option<&'static std::panic::Location<'static>> {
        self.origin.created_by()
    }

    /// The suspender its coroutine published when it first ran (null before).
    #[inline]
    pub(crate) fn suspender(&self) -> *const Suspender {
        self.body.suspender()
    }

    /// Publishes the suspender (by the coroutine, at its first run: the body has been
    /// taken by then).
    #[inline]
    pub(crate) fn set_suspender(&self, s: *const Suspender) {
        self.body.set_suspender(s);
    }

    /// Go: `gfget`'s reinitialisation of a dead G for a new goroutine. The caller holds
    /// the only reference (`Arc::get_mut` succeeded).
    pub(crate) fn reinit(
        &mut self,
        id: u64,
        origin: Origin,
        co: Option<Coroutine<()>>,
        entry: Option<Entry>,
    ) {
        debug_assert_eq!(self.status(), Status::Dead);
        self.id = id;
        self.origin = origin;
        self.park = ParkState::new();
        self.status.store(Status::Idle as u8, Ordering::Relaxed);
        self.wait_reason.store(0, Ordering::Relaxed);
        self.action.set(Action::None);
        debug_assert!(!self.capture.get());
        *self.co.get_mut() = co;
        self.body = Body::new(entry);
        self.registry_slot.set(NO_SLOT);
        self.abandoned.store(false, Ordering::Relaxed);
        self.abort.store(ABORT_NONE, Ordering::Relaxed);
        self.abort_mask.set(0);
        debug_assert!(self.locals.get_mut().is_empty());
    }

    /// Go: `park_m`'s commit. Commits the park of `g` (the scheduler's reference, from
    /// the run queue) that its goroutine asked for. Without a deadline the reference
    /// becomes the park's (`Ok(None)`: after it the G may already be running on another
    /// M, and the caller must not touch it); a timed park gives it back (`Ok(Some)`) for
    /// the timer to hold, and holds none itself. `Err(g)`: an unpark slipped in first,
    /// and the G is the caller's to run again.
    #[inline]
    pub(crate) fn commit_park(g: GRef, timed: bool) -> Result<Option<GRef>, GRef> {
        // Relaxed: published by the commit's Release, read by the waker after its
        // Acquire of `PARKED` (`take_park_ref`).
        g.park_ref.store(!timed, Ordering::Relaxed);
        if timed {
            return if g.park.commit_park() {
                Ok(Some(g))
            } else {
                Err(g)
            };
        }
        let raw = Arc::into_raw(g);
        // SAFETY: `raw` is the reference we just turned into a pointer: alive until our
        // commit hands it over (the CAS is our last access).
        if unsafe { &*raw }.park.commit_park() {
            Ok(None)
        } else {
            // SAFETY: not committed: the reference is still ours.
            Err(unsafe { Arc::from_raw(raw) })
        }
    }

    /// A reference for the one who takes this G out of `PARKED` to ready it (an unpark,
    /// a timer, a dump that borrowed it): the park's own if it has one, else a new one.
    ///
    /// # Safety
    ///
    /// The caller won the G's transition out of `PARKED` — `ParkState::unpark` saw it,
    /// `cancel_park` succeeded (the shutdown), or a dump's `end_capture` failed — once
    /// per park, and holds a reference (or `&self` from one) for the duration of the
    /// call.
    #[inline]
    pub(crate) unsafe fn take_park_ref(&self) -> GRef {
        let me = self as *const G;
        // Relaxed: see `park_ref`. Only we touch it now; the next park sets it again.
        if !self.park_ref.load(Ordering::Relaxed) {
            // SAFETY: every `G` lives in an `Arc` (`G::new` is the only constructor) and
            // the caller's reference keeps it alive: one more is sound.
            unsafe { Arc::increment_strong_count(me) };
        }
        // SAFETY: the park's reference (or the one just added), now the caller's.
        unsafe { Arc::from_raw(me) }
    }

    pub(crate) fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Relaxed))
    }

    /// Go: `casgstatus`. Relaxed: the status is informational (traces, deadlock
    /// reports, debug checks); ownership moves through the queues and `ParkState`.
    /// Only the G's current owner changes it, so a load and a store suffice (no locked
    /// RMW on the hot path); debug builds check that the transition is one of Go's.
    #[inline]
    pub(crate) fn set_status(&self, to: Status) {
        #[cfg(debug_assertions)]
        {
            let from = Status::from_u8(self.status.load(Ordering::Relaxed));
            assert!(
                from.can_become(to),
                "gmp: illegal goroutine state transition {from:?} -> {to:?} (goroutine {})",
                self.id
            );
        }
        self.status.store(to as u8, Ordering::Relaxed);
    }

    /// Relaxed: informational (dumps, deadlock reports, metrics).
    pub(crate) fn set_wait_reason(&self, r: WaitReason) {
        self.wait_reason.store(reason_code(r), Ordering::Relaxed);
    }

    pub(crate) fn wait_reason(&self) -> WaitReason {
        match self.wait_reason.load(Ordering::Relaxed) {
            0 => None,
            c => REASONS.get(c as usize - 1).copied(),
        }
    }

    /// The coroutine, for the M that runs this G.
    ///
    /// # Safety
    /// The caller is the G's unique current owner (module docs): it took the G from a
    /// run queue, or is the scheduler that resumed it, or holds the last reference.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn co(&self) -> &mut Option<Coroutine<()>> {
        // SAFETY: exclusivity is the caller's contract.
        unsafe { &mut *self.co.get() }
    }

    /// The body, for the M that starts this G.
    ///
    /// # Safety
    /// As for [`G::co`].
    pub(crate) unsafe fn take_entry(&self) -> Option<Entry> {
        // SAFETY: exclusivity is the caller's contract.
        unsafe { self.body.take_entry() }
    }
}

impl Unpark for G {
    /// Go: `goready`. Only the waker that finds the G `PARKED` readies it.
    fn unpark(&self) {
        if self.abandoned.load(Ordering::Acquire) {
            return;
        }
        // Taking: a G we find `PARKED` is left `EMPTY`, so it resumes with no permit to
        // consume (`park_current` does not swap the word again): one locked RMW less
        // per wake-up. Our writes reach it through the run queue's hand-off in `ready`.
        if self.park.unpark_taking() {
            // SAFETY: we found the G `PARKED`: we are the one waker that readies it,
            // and `&self` keeps it alive for this call.
            let g = unsafe { self.take_park_ref() };
            // `self.sched`, not `g.sched`: the reference the caller holds keeps this G,
            // and so its runtime, alive until we return, while `g` itself moves into the
            // run queue (where another M may finish and free it at once). No clone of
            // the runtime's `Arc`: two locked RMWs less per wake-up, 4% of a channel
            // ping-pong's profile.
            self.sched.ready(g);
        }
    }
}

impl fmt::Debug for G {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("G")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("status", &self.status())
            .finish()
    }
}

/// A goroutine's body before its first run (lifetime-erased: `spawn_in`'s contract).
pub(crate) type Entry = crate::job::Entry;

/// [`G::body`]: the goroutine's [`Entry`] until its first run, then the suspender its
/// coroutine published (on the goroutine's own stack). The two are never needed at
/// once, so they share one word of every G, told apart by the low bit (set for a
/// suspender; an entry's block and a suspender are both 8-byte aligned); null for
/// neither. Touched only by the G's current owner, as the coroutine is (module docs).
struct Body(Cell<*mut ()>);

/// The low bit of a suspender in [`Body`].
const SUSPENDER: usize = 1;

const _: () = assert!(std::mem::align_of::<Suspender>() > SUSPENDER);

impl Body {
    fn new(entry: Option<Entry>) -> Body {
        Body(Cell::new(
            entry.map_or(std::ptr::null_mut(), |e| e.into_raw().as_ptr()),
        ))
    }

    /// Moves the entry out, if the word holds one.
    ///
    /// # Safety
    /// The caller is the G's current owner (as for [`G::co`]).
    unsafe fn take_entry(&self) -> Option<Entry> {
        let p = self.0.get();
        if p.addr() & SUSPENDER != 0 {
            return None;
        }
        let p = std::ptr::NonNull::new(p)?;
        self.0.set(std::ptr::null_mut());
        // SAFETY: an untagged, non-null word is the reference `new` took from an entry,
        // moved back out once (the word is cleared first).
        Some(unsafe { Entry::from_raw(p) })
    }

    fn set_suspender(&self, s: *const Suspender) {
        debug_assert!(
            self.0.get().is_null(),
            "gmp: internal error: a suspender published over a goroutine's body"
        );
        self.0
            .set(s.cast_mut().cast::<()>().map_addr(|a| a | SUSPENDER));
    }

    fn suspender(&self) -> *const Suspender {
        let p = self.0.get();
        if p.addr() & SUSPENDER != 0 {
            p.map_addr(|a| a & !SUSPENDER).cast_const().cast()
        } else {
            std::ptr::null()
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else uses the G any more.
        drop(unsafe { self.take_entry() });
    }
}

/// The run queues hold `Arc<G>`; gmp-queue stores it as a raw pointer.
pub(crate) type GRef = Arc<G>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The body word hands the entry out once, then holds the suspender; a body dropped
    /// before its goroutine ran (a G freed unstarted) gives the entry's reference back,
    /// and one taken out is not released twice.
    #[test]
    fn body_holds_the_entry_then_the_suspender() {
        let token = Arc::new(());
        let b = Body::new(Some(crate::spawn::entry_holding(token.clone())));
        assert!(b.suspender().is_null());
        // SAFETY: this test owns the body.
        let e = unsafe { b.take_entry() }.expect("the body's entry");
        // SAFETY: as above.
        assert!(unsafe { b.take_entry() }.is_none(), "an entry taken twice");
        let slot = 0u64; // any 8-byte aligned place stands in for a suspender
        let s = std::ptr::from_ref(&slot).cast::<Suspender>();
        b.set_suspender(s);
        assert_eq!(b.suspender(), s);
        // SAFETY: as above.
        let taken = unsafe { b.take_entry() };
        assert!(taken.is_none(), "a suspender read as an entry");
        drop(b);
        assert_eq!(Arc::strong_count(&token), 2, "the taken entry was released");
        drop(e);
        assert_eq!(Arc::strong_count(&token), 1);

        let b = Body::new(Some(crate::spawn::entry_holding(token.clone())));
        assert_eq!(Arc::strong_count(&token), 2);
        drop(b);
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "an unstarted body leaked its entry"
        );
    }
}
