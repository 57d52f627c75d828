//! The waiter record: what a blocked operation leaves in a channel's wait queue.
//!
//! Go calls it a `sudog` and decides `select` races with `g.selectDone`; here one
//! [`Context`] is created each time a thread or goroutine is about to block and owned by
//! it, on its own stack ([`Context::with`]; an async operation's on the heap,
//! [`BoxedContext`]); every wait queue it is registered in holds a [`WaiterRef`], a
//! plain pointer to it with no reference count (the entry's clone and drop of a counted
//! handle were two locked instructions per blocking operation, 11% of a channel
//! ping-pong). It holds three things:
//!
//! - `select`: the decision word. It starts `WAITING`; exactly one compare-and-swap moves
//!   it away, to `ABORTED` (the waiter gave up: timeout, or it noticed readiness itself),
//!   `DISCONNECTED` (a channel it waits on closed), or the [`Operation`] a peer chose for
//!   it. Whoever wins that CAS owns the outcome; every other peer sees it fail and leaves
//!   its value in its channel. This is what makes exactly one arm of a blocked `select`
//!   fire: a peer may only hand a value to (or take one from) a waiter after winning it.
//! - `packet`: for zero-capacity channels, the address of the waiter's exchange slot,
//!   published by the peer that selected it (after winning the CAS, never before, so two
//!   peers cannot overwrite each other), so that a `select` learns which of its slots
//!   was chosen.
//! - the waiter's [`Unparker`], taken from `gmp_core::park::current()` when the context is
//!   created: the goroutine or thread to wake.
//!
//! # Who may touch a record, and until when
//!
//! The owner keeps its record alive (and does not reuse it) until no peer can touch it:
//!
//! - while an entry is queued, peers reach the record only under that queue's lock, and
//!   the owner removes its entries under the same lock before letting go;
//! - a peer that wins the decision word takes the record *busy* (a high bit of the
//!   word, set by its winning CAS) and may keep using it after the lock: it publishes
//!   the exchange slot, then unparks the waiter and clears the bit with a Release store
//!   ([`WaiterRef::unpark_release`]), its last touch (a waiter that is not a goroutine
//!   is woken just after, through a clone of its unparker). The owner waits for the bit
//!   to clear (Acquire) before its record dies (`Context::quiesce`, from `with` or the
//!   record's `Drop`).
//!   That wait is short: between its CAS and the release a peer runs no user code and
//!   never parks, except a zero-capacity pairing held by a `select`'s
//!   `SelectedOperation`, which only touches the record again after the owner's packet
//!   reached its final state (zero.rs), so an owner that has seen that state waits only
//!   for the unpark in progress;
//! - an owner that must leave before a peer is done (it unwinds out of its park) uses
//!   the zero-capacity flavour's `LEFT` mark: if it lets go of the packet first, the
//!   peer will not touch the record again, and the owner says so
//!   ([`Context::peer_gone`]); otherwise the peer is already finishing and the owner
//!   waits for it as above.
//!
//! Go needs none of this because a `sudog` belongs to a goroutine that is never freed
//! and whose `gopark` returns only once it is readied; here a park may return
//! spuriously, and a waiter may unwind.
//!
//! A record lives for one blocking operation (an iteration of its retry loop). So while
//! registered, an `(operation, context)` pair names one registration uniquely, and a
//! late `unpark` can at worst cause one spurious wake-up of a later park (all parks here
//! loop on their condition). On the stack it costs no allocation, and a parked
//! goroutine's record lies in the stack page it has anyway (a heap record was a 48-byte
//! chunk per parked goroutine).
//!
//! The unparker of a record that ends normally goes to a one-slot per-thread cache, and
//! the next record made on that thread takes it back while its waiter is the one running
//! ([`park::is_current`]): a waiter that blocks again on the same thread — a thread, or
//! the goroutines of a ping-pong pair that hand their M back and forth — reuses it
//! without cloning a fresh unparker and dropping the old one (two locked reference-count
//! changes per blocking operation; a ping-pong round trip on one P 303 -> 275 ns). The
//! cache is skipped under loom. A goroutine's unparker is its G, which the runtime
//! reuses for a new goroutine only when nothing else refers to it: the runtime therefore
//! drops a cached unparker of a goroutine that ends ([`runtime_support::forget_waiter`])
//! and empties an M's cache when the M exits ([`runtime_support::clear_thread_cache`]).

use crate::utils;
use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
#[cfg(loom)]
use gmp_core::sync::Arc;
use std::ptr;
use std::time::Instant;

const WAITING: usize = 0;
const ABORTED: usize = 1;
const DISCONNECTED: usize = 2;
const FIRST_OPERATION: usize = 3;
/// Or-ed into the decision word by a peer that won it, until its last touch of the
/// record (module docs).
const BUSY: usize = 1 << (usize::BITS - 1);

/// Identifies one operation of a waiter (an arm of a `select`, or the single operation of
/// a plain `send`/`recv`). Only unique together with its [`Context`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operation(usize);

impl Operation {
    /// The operation at position `i` of a waiter's list.
    #[inline]
    pub(crate) fn new(i: usize) -> Operation {
        Operation(i + FIRST_OPERATION)
    }

    /// The position `i` this operation was created with.
    #[inline]
    pub(crate) fn position(self) -> usize {
        self.0 - FIRST_OPERATION
    }
}

/// The value of the decision word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selected {
    /// Still blocked; nothing decided.
    Waiting,
    /// The waiter gave up (timeout), or aborted because it saw an operation become ready.
    Aborted,
    /// A channel the waiter was registered on got disconnected.
    Disconnected,
    /// A peer chose this operation.
    Operation(Operation),
}

impl From<usize> for Selected {
    #[inline]
    fn from(v: usize) -> Selected {
        match v & !BUSY {
            WAITING => Selected::Waiting,
            ABORTED => Selected::Aborted,
            DISCONNECTED => Selected::Disconnected,
            op => Selected::Operation(Operation(op)),
        }
    }
}

impl From<Selected> for usize {
    #[inline]
    fn from(s: Selected) -> usize {
        match s {
            Selected::Waiting => WAITING,
            Selected::Aborted => ABORTED,
            Selected::Disconnected => DISCONNECTED,
            Selected::Operation(Operation(op)) => op,
        }
    }
}

struct Inner {
    select: AtomicUsize,
    packet: AtomicPtr<()>,
    /// The waiter; `None` in the cache once its waiter has gone (module docs).
    unparker: Option<Unparker>,
    /// The waiter is not a goroutine (a thread, or an async task's waker): a peer then
    /// gives the record back *before* waking it, with a handle of its own (see
    /// [`WaiterRef::unpark_release`]).
    wake_after_release: bool,
    /// Under loom, every touch of the record through a [`WaiterRef`] reads this cell and
    /// the owner writes it just before the record dies: a peer touch that is not ordered
    /// before the owner's end (a use after free) fails the model as a data race.
    #[cfg(loom)]
    life: gmp_core::sync::UnsafeCell<()>,
}

impl Inner {
    fn new(unparker: Option<Unparker>, wake_after_release: bool) -> Inner {
        Inner {
            select: AtomicUsize::new(WAITING),
            packet: AtomicPtr::new(ptr::null_mut()),
            unparker,
            wake_after_release,
            #[cfg(loom)]
            life: gmp_core::sync::UnsafeCell::new(()),
        }
    }
}

/// A waiter record, owned by the waiter; see the module docs. Wait queues hold
/// [`WaiterRef`]s to it ([`Context::waiter`]).
///
/// A blocking operation keeps its record on its own stack ([`Context::with`]): a parked
/// goroutine's record lies in the stack page it has anyway, not in a heap block of its
/// own (a 48-byte chunk per parked goroutine). An async operation, whose future may move
/// between polls, keeps it on the heap ([`BoxedContext`]). Either way the record never
/// moves while a wait queue may point at it: `with` only lends it out, and a
/// `BoxedContext` only derefs to it.
pub(crate) struct Context {
    #[cfg(not(loom))]
    inner: Inner,
    /// Under loom a counted handle: each `WaiterRef` keeps the model's memory valid, and
    /// `Inner::life` checks the lifetime rules instead.
    #[cfg(loom)]
    inner: Arc<Inner>,
    /// Peers point at the record: it must stay where it is while it is lent out.
    _pinned: std::marker::PhantomPinned,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("selected", &self.selected())
            .finish()
    }
}

impl Context {
    fn from_inner(inner: Inner) -> Context {
        Context {
            #[cfg(not(loom))]
            inner,
            #[cfg(loom)]
            inner: Arc::new(inner),
            _pinned: std::marker::PhantomPinned,
        }
    }

    /// Runs `f` with a fresh record for whoever is running (goroutine or thread), kept
    /// in this stack frame. The record outlives every peer's use of it: `f` removes the
    /// entries it registered before it returns (or while it unwinds), and the record
    /// waits for a peer that won it to let go before it dies (`quiesce`, also when `f`
    /// unwinds: the record's `Drop`).
    #[inline]
    pub(crate) fn with<R>(f: impl FnOnce(&Context) -> R) -> R {
        #[cfg_attr(loom, allow(unused_mut))]
        let mut cx = fresh();
        let r = f(&cx);
        // The normal path keeps the unparker for this thread's next blocking operation
        // (module docs); only the owner gets here, after its last registration is gone.
        cx.quiesce();
        #[cfg(not(loom))]
        if let Some(u) = cx.inner.unparker.take() {
            put_waiter(u, cx.inner.wake_after_release);
        }
        r
    }

    /// What a wait queue keeps of this record (module docs).
    #[inline]
    pub(crate) fn waiter(&self) -> WaiterRef {
        WaiterRef {
            #[cfg(not(loom))]
            inner: ptr::NonNull::from(&self.inner),
            #[cfg(loom)]
            inner: Arc::clone(&self.inner),
        }
    }

    /// Waits until no peer that won the decision word still uses the record (module
    /// docs): at most the unpark a peer is finishing, which never blocks.
    #[inline]
    fn quiesce(&self) {
        if self.word() & BUSY != 0 {
            self.quiesce_slow();
        }
        #[cfg(loom)]
        self.inner.life.with_mut(|_| ());
    }

    #[cold]
    #[inline(never)]
    fn quiesce_slow(&self) {
        let backoff = crate::utils::Backoff::new();
        while self.word() & BUSY != 0 {
            backoff.snooze();
        }
    }

    /// The decision word, Acquire: pairs with the Release of a peer's `unpark_release`
    /// (and of its winning CAS), so every use the peer made of the record happens before
    /// the owner's next step.
    #[inline]
    fn word(&self) -> usize {
        // Under loom a load may keep reading an old value however often it spins; a
        // compare-and-swap reads the latest one, and one that fails (the word is never
        // all ones) writes nothing (see spinlock.rs).
        #[cfg(loom)]
        return match self.inner.select.compare_exchange(
            usize::MAX,
            usize::MAX,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(w) | Err(w) => w,
        };
        #[cfg(not(loom))]
        self.inner.select.load(Ordering::Acquire)
    }

    /// The owner has let go of its exchange slot before the peer that chose it finished
    /// (zero.rs `LEFT`): that peer will not touch the record again, so the owner need not
    /// wait for it.
    pub(crate) fn peer_gone(&self) {
        // Relaxed: no peer touches the word any more (the caller's `LEFT` came first); only
        // this thread reads it again.
        let w = self.inner.select.load(Ordering::Relaxed);
        self.inner.select.store(w & !BUSY, Ordering::Relaxed);
    }

    /// The owner decides its own outcome: `WAITING -> sel` (no peer is involved, so the
    /// record is not taken busy). On failure returns the outcome someone else decided.
    #[inline]
    pub(crate) fn try_select(&self, sel: Selected) -> Result<(), Selected> {
        // AcqRel/Acquire: as in `WaiterRef::try_select`.
        self.inner
            .select
            .compare_exchange(WAITING, sel.into(), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Selected::from)
    }

    /// The current outcome.
    #[inline]
    pub(crate) fn selected(&self) -> Selected {
        // Acquire: pairs with the AcqRel of the deciding CAS.
        Selected::from(self.inner.select.load(Ordering::Acquire))
    }

    /// The exchange slot published by the peer that selected this waiter (null if none).
    /// The peer publishes it in the same critical section of the channel's lock as its
    /// winning CAS, so an owner that saw the selection and then took that lock reads it.
    #[inline]
    pub(crate) fn packet(&self) -> *mut () {
        // Acquire: pairs with the Release in `store_packet`.
        self.inner.packet.load(Ordering::Acquire)
    }

    /// Blocks until the outcome is decided or `deadline` passes; in the latter case tries
    /// to decide `Aborted` itself. Returns the outcome (never `Waiting`).
    pub(crate) fn wait_until(&self, deadline: Option<Instant>, reason: WaitReason) -> Selected {
        loop {
            let sel = self.selected();
            if sel != Selected::Waiting {
                return sel;
            }
            match deadline {
                None => park::park_for(reason),
                Some(d) => {
                    if utils::passed(d) {
                        return self.abort();
                    }
                    park::park_deadline_for(d, reason);
                    // Under loom a timed park returns at once, modelling a timeout that
                    // races with whatever a peer is doing right now.
                    if cfg!(loom) {
                        let sel = self.selected();
                        return if sel != Selected::Waiting {
                            sel
                        } else {
                            self.abort()
                        };
                    }
                }
            }
        }
    }

    /// Decides `Aborted` unless something else was decided first; returns the outcome.
    #[inline]
    pub(crate) fn abort(&self) -> Selected {
        match self.try_select(Selected::Aborted) {
            Ok(()) => Selected::Aborted,
            Err(s) => s,
        }
    }
}

/// Whether a record made here is for a waiter that is woken after the release (see
/// [`WaiterRef::unpark_release`]): any waiter that is not a goroutine. Under loom, whose
/// models run threads, the records of blocking operations take the goroutines' order
/// (wake, then release) so that the models check it; async records (`with_unparker`) take
/// the other.
fn wakes_after_release() -> bool {
    !cfg!(loom) && !park::in_goroutine()
}

impl Drop for Context {
    fn drop(&mut self) {
        // A record dies only once no peer uses it (module docs): after `with`'s `f`
        // returned or unwound, or when its `BoxedContext` is dropped.
        self.quiesce();
    }
}

/// A record on the heap, for an async operation (its future may move between polls):
/// owned by the future, with no count (nothing shares the ownership; wait queues hold
/// uncounted [`WaiterRef`]s). A raw pointer rather than a `Box`: a `Box` asserts that
/// nothing else reaches its contents while it lives, and peers do, through their
/// `WaiterRef`s.
pub(crate) struct BoxedContext(ptr::NonNull<Context>);

impl BoxedContext {
    /// A fresh record whose waiter is `unparker` (an async task's waker, see
    /// `async_ops`), not whoever is running. Such a waiter is woken after the release
    /// ([`WaiterRef::unpark_release`]).
    pub(crate) fn with_unparker(unparker: Unparker) -> BoxedContext {
        Self::new(Inner::new(Some(unparker), true))
    }

    /// A boxed record for whoever is running, as [`Context::with`] makes (tests that
    /// keep several records at once).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn current() -> BoxedContext {
        Self::new(Inner::new(Some(park::current()), wakes_after_release()))
    }

    fn new(inner: Inner) -> BoxedContext {
        BoxedContext(ptr::NonNull::from(Box::leak(Box::new(
            Context::from_inner(inner),
        ))))
    }
}

impl std::ops::Deref for BoxedContext {
    type Target = Context;
    fn deref(&self) -> &Context {
        // SAFETY: the block lives until our `Drop`; peers only read it through shared
        // references and atomics, as this one does.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for BoxedContext {
    fn drop(&mut self) {
        // SAFETY: made by `Box::leak` in `new` and dropped once, here; the record's own
        // `Drop` quiesces it first, so no peer uses it any more when the block is freed.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// SAFETY: the record holds atomics and an unparker (`Send + Sync`); the handle is its
// owner, moved with the future that holds it.
unsafe impl Send for BoxedContext {}

impl std::fmt::Debug for BoxedContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A wait queue's pointer to a waiter's record: no reference count (module docs). Valid
/// while the entry holding it is queued (under the queue's lock), and for the peer that
/// won the record's decision word until its [`unpark_release`](Self::unpark_release),
/// unless the owner let go first through zero.rs's `LEFT`.
pub(crate) struct WaiterRef {
    #[cfg(not(loom))]
    inner: ptr::NonNull<Inner>,
    /// Under loom, a counted handle keeps the memory of the model itself valid; the
    /// lifetime rules are checked by `Inner::life`.
    #[cfg(loom)]
    inner: Arc<Inner>,
}

// SAFETY: a `WaiterRef` only reads atomics and the unparker (`Send + Sync`) of a record
// that the protocol above keeps alive; moving it between threads moves that right.
unsafe impl Send for WaiterRef {}
// SAFETY: as above; every method takes `&self` and uses only atomics or the unparker.
unsafe impl Sync for WaiterRef {}

impl std::fmt::Debug for WaiterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaiterRef").finish_non_exhaustive()
    }
}

impl WaiterRef {
    #[inline]
    fn inner(&self) -> &Inner {
        #[cfg(not(loom))]
        // SAFETY: the record is alive while this handle may be used (type docs): its owner
        // removes the queued entry under the lock we hold, or waits for our
        // `unpark_release`, before the record dies.
        let inner = unsafe { self.inner.as_ref() };
        #[cfg(loom)]
        let inner = &*self.inner;
        #[cfg(loom)]
        inner.life.with(|_| ());
        inner
    }

    /// True if this is `cx`'s record.
    #[inline]
    pub(crate) fn same(&self, cx: &Context) -> bool {
        #[cfg(not(loom))]
        return ptr::eq(self.inner.as_ptr(), &cx.inner);
        #[cfg(loom)]
        Arc::ptr_eq(&self.inner, &cx.inner)
    }

    /// Tries to decide the waiter's outcome for it: `WAITING -> sel`, taking the record
    /// busy. On success the caller must end with [`unpark_release`](Self::unpark_release)
    /// (or, for a zero-capacity pairing whose owner has left first, not touch the record
    /// again). On failure returns the outcome someone else decided.
    #[inline]
    pub(crate) fn try_select(&self, sel: Selected) -> Result<(), Selected> {
        // AcqRel: the winner publishes what it wrote before (a packet's waiter field) to
        // whoever later reads the word with Acquire, and acquires the waiter's
        // registration. A loser only needs to see the winner's value (Acquire).
        self.inner()
            .select
            .compare_exchange(
                WAITING,
                usize::from(sel) | BUSY,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(Selected::from)
    }

    /// The current outcome.
    #[inline]
    pub(crate) fn selected(&self) -> Selected {
        // Acquire: pairs with the AcqRel of the deciding CAS.
        Selected::from(self.inner().select.load(Ordering::Acquire))
    }

    /// Publishes the exchange slot of the selected operation (zero-capacity channels).
    /// Called by the peer that won the decision, under the channel's lock.
    #[inline]
    pub(crate) fn store_packet(&self, packet: *mut ()) {
        // Release: the owner's Acquire in `packet` then sees what the peer wrote before.
        self.inner().packet.store(packet, Ordering::Release);
    }

    /// Wakes the waiter and gives the record back to its owner: the winner's last touch.
    ///
    /// A goroutine is woken first, through the record (no reference-count change): its
    /// wake-up is a few stores and at most a futex wake of an idle M, and its owner waits
    /// for the release only if another M runs it meanwhile. A thread or an async task is
    /// woken after the release, through a clone of its unparker: its wake-up is a system
    /// call (or a task waker, user code) during which the woken thread would wait for
    /// the release, often preempted by its waker on a shared CPU (threads' ping-pong on
    /// a rendezvous channel took 12% longer). The record is given back even if the
    /// wake-up panics, so that its owner is never left waiting.
    #[inline]
    pub(crate) fn unpark_release(&self) {
        /// Clears the busy bit when dropped: after the unpark, or while it unwinds.
        struct Release<'a>(&'a Inner);
        impl Drop for Release<'_> {
            #[inline]
            fn drop(&mut self) {
                // Only the winner writes the word after its CAS (the owner's own CAS
                // fails, and `peer_gone` is for a winner that will not come back): a load
                // and a store. Relaxed load: it reads our own CAS's value. Release store:
                // every use we made of the record happens before the owner's Acquire that
                // sees the bit clear.
                let w = self.0.select.load(Ordering::Relaxed);
                debug_assert!(w & BUSY != 0, "gmp_chan: released a record it did not win");
                self.0.select.store(w & !BUSY, Ordering::Release);
            }
        }
        let inner = self.inner();
        if inner.wake_after_release {
            let waiter = inner.unparker.clone();
            drop(Release(inner));
            if let Some(u) = waiter {
                u.unpark();
            }
            return;
        }
        let _release = Release(inner);
        if let Some(u) = &inner.unparker {
            u.unpark();
        }
    }
}

/// Runs its closure when dropped, unless [`disarm`](OnUnwind::disarm)ed first.
///
/// The cleanup of a registration whose owner leaves its park by unwinding: a panic, or
/// gmp-core's forced unwind of a goroutine dropped while parked (a runtime's shutdown).
/// Every blocking operation of this crate arms one on its own stack right after it
/// registers, and disarms it once the normal path has removed the registration, so that
/// no wait queue ever keeps an entry (or a packet, or a pending wake-up) of a waiter whose
/// stack is gone (ARCHITECTURE.md: "a registration never outlives the stack it points
/// into"). Closures run from here must not park: while gmp-core unwinds a goroutine, its
/// parks return at once, so waiting for a peer would spin (and the peer may be another
/// goroutine that the shutdown never runs again).
pub(crate) struct OnUnwind<F: FnMut()> {
    f: Option<F>,
}

impl<F: FnMut()> OnUnwind<F> {
    /// Arms `f`.
    #[inline]
    pub(crate) fn new(f: F) -> Self {
        OnUnwind { f: Some(f) }
    }

    /// The normal path took over: `f` will not run.
    #[inline]
    pub(crate) fn disarm(mut self) {
        self.f = None;
    }
}

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if let Some(mut f) = self.f.take() {
            f();
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// The unparker of this thread's last blocking operation, and its
    /// `wake_after_release` (module docs).
    static SPARE: std::cell::Cell<Option<(Unparker, bool)>> =
        const { std::cell::Cell::new(None) };
}

/// A fresh record for whoever is running, with the handle cached by its last blocking
/// operation on this thread when it is the same waiter (module docs).
///
/// Builds the whole record in the caller's slot: returning the handle alone, to be
/// copied in by the caller, cost a channel ping-pong 5% (the 16-byte reload of a handle
/// just written as two words missed store forwarding).
// Never inlined: the caller may be a goroutine that moves between threads (rust#33368).
#[cfg(not(loom))]
#[inline(never)]
fn fresh() -> Context {
    // In a thread-local destructor the cache may be gone: then there is nothing to take.
    if let Some((u, wake_after_release)) = SPARE.try_with(|s| s.take()).ok().flatten() {
        if park::is_current(&u) {
            return Context::from_inner(Inner::new(Some(u), wake_after_release));
        }
        // Another waiter's handle, dropped outside the thread-local access.
        drop(u);
    }
    Context::from_inner(Inner::new(Some(park::current()), wakes_after_release()))
}

#[cfg(loom)]
fn fresh() -> Context {
    Context::from_inner(Inner::new(Some(park::current()), wakes_after_release()))
}

/// Keeps the waiter's handle for its next blocking operation on this thread.
#[cfg(not(loom))]
#[inline(never)]
fn put_waiter(u: Unparker, wake_after_release: bool) {
    // A handle already cached is dropped here, outside the thread-local access.
    let old = SPARE.try_with(|s| s.replace(Some((u, wake_after_release))));
    drop(old);
}

#[cfg(not(loom))]
fn take_spare() -> Option<(Unparker, bool)> {
    SPARE.try_with(|s| s.take()).ok().flatten()
}

/// Hooks for the runtime (gmp-runtime) that keep the cache from pinning goroutines; see
/// the module docs. Not for other callers: they only drop cached handles, so a stray
/// call costs a reference-count change later, never correctness.
pub mod runtime_support {
    #[cfg(not(loom))]
    use super::{put_waiter, take_spare};

    /// Drops this thread's cached unparker if it wakes the waiter at `addr` (see
    /// [`Unparker::addr`](gmp_core::park::Unparker::addr)). The runtime calls it when
    /// a goroutine ends, on the M where it ended, so that the goroutine's G is not kept
    /// alive (and from reuse) by the cache of its last blocking operation.
    pub fn forget_waiter(addr: *const ()) {
        #[cfg(not(loom))]
        {
            let Some((u, wake_after_release)) = take_spare() else {
                return;
            };
            if std::ptr::addr_eq(u.addr(), addr) {
                // Dropped outside the thread-local access (it may be the G's last handle).
                drop(u);
            } else {
                put_waiter(u, wake_after_release);
            }
        }
        #[cfg(loom)]
        let _ = addr;
    }

    /// Empties this thread's cache (the runtime calls it when an M exits, so that no
    /// goroutine's G outlives the runtime's shutdown in a thread-local).
    pub fn clear_thread_cache() {
        #[cfg(not(loom))]
        drop(take_spare());
    }
}
