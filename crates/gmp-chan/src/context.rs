//! The waiter record: what a blocked operation leaves in a channel's wait queue.
//!
//! Go calls it a `sudog` and decides `select` races with `g.selectDone`; here one
//! [`Context`] is created each time a thread or goroutine is about to block, shared (by
//! reference count) with every wait queue it is registered in, and dropped when the
//! operation returns. It holds three things:
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
//! A context is reused only once nobody else holds it: the owner calls
//! [`Context::recycle`] when its operation is over, and the record goes to a one-slot
//! per-thread cache if its reference count says no peer kept a clone (a peer may hold one
//! briefly after choosing the waiter, to unpark it). So while registered, an
//! `(operation, context)` pair names one registration uniquely, and a late `unpark` can
//! at worst cause one spurious wake-up of a later park (all parks here loop on their
//! condition). The cache saves an allocation per blocking operation; it is skipped under
//! loom.
//!
//! The cached record keeps its unparker while the waiter that recycled it is the one
//! running ([`park::is_current`]): a waiter that blocks again on the same thread — a
//! thread, or the goroutines of a ping-pong pair that hand their M back and forth —
//! reuses it without cloning a fresh unparker and dropping the old one (two locked
//! reference-count changes per blocking operation; a ping-pong round trip on one P
//! 303 -> 275 ns). A goroutine's unparker is its G, which the runtime reuses for a new
//! goroutine only when nothing else refers to it: the runtime therefore drops a cached
//! unparker of a goroutine that ends ([`runtime_support::forget_waiter`]) and empties
//! an M's cache when the M exits ([`runtime_support::clear_thread_cache`]).

use crate::utils;
use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use gmp_core::sync::Arc;
use std::ptr;
use std::time::Instant;

const WAITING: usize = 0;
const ABORTED: usize = 1;
const DISCONNECTED: usize = 2;
const FIRST_OPERATION: usize = 3;

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
        match v {
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
}

/// A waiter record; see the module docs. Cloning shares the same record.
#[derive(Clone)]
pub(crate) struct Context {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("selected", &self.selected())
            .finish()
    }
}

impl Context {
    /// A fresh record for whoever is running (goroutine or thread).
    #[inline]
    pub(crate) fn new() -> Context {
        #[cfg(not(loom))]
        if let Some(mut inner) = take_spare() {
            if let Some(i) = unique(&mut inner) {
                *i.select.get_mut() = WAITING;
                *i.packet.get_mut() = ptr::null_mut();
                // Kept from the waiter's previous operation on this thread (module
                // docs), else a fresh handle.
                if !i.unparker.as_ref().is_some_and(park::is_current) {
                    i.unparker = Some(park::current());
                }
                return Context { inner };
            }
        }
        let unparker = Some(park::current());
        Context {
            inner: Arc::new(Inner {
                select: AtomicUsize::new(WAITING),
                packet: AtomicPtr::new(ptr::null_mut()),
                unparker,
            }),
        }
    }

    /// A fresh record whose waiter is `unparker` (an async task's waker, see
    /// `async_ops`), not whoever is running.
    pub(crate) fn with_unparker(unparker: Unparker) -> Context {
        Context {
            inner: Arc::new(Inner {
                select: AtomicUsize::new(WAITING),
                packet: AtomicPtr::new(ptr::null_mut()),
                unparker: Some(unparker),
            }),
        }
    }

    /// The owner is done with the record: keep it for this thread's next blocking
    /// operation unless a peer still holds a clone.
    #[inline]
    pub(crate) fn recycle(self) {
        #[cfg(not(loom))]
        {
            let mut inner = self.inner;
            // The unparker stays: it is the current waiter's (only the owner recycles,
            // on its normal path), which its next operation here will likely reuse.
            if unique(&mut inner).is_some() {
                put_spare(inner);
            }
        }
    }

    /// True if both handles name the same waiter.
    #[inline]
    pub(crate) fn same(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Tries to decide the waiter's outcome: `WAITING -> sel`. On failure returns the
    /// outcome someone else decided.
    #[inline]
    pub(crate) fn try_select(&self, sel: Selected) -> Result<(), Selected> {
        // AcqRel: the winner publishes what it wrote before (a packet's waiter field) to
        // whoever later reads the word with Acquire, and acquires the waiter's
        // registration. A loser only needs to see the winner's value (Acquire).
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

    /// Publishes the exchange slot of the selected operation (zero-capacity channels).
    /// Called by the peer that won the decision, before it unparks the waiter.
    #[inline]
    pub(crate) fn store_packet(&self, packet: *mut ()) {
        // Release: the owner's Acquire in `packet` then sees what the peer wrote before.
        self.inner.packet.store(packet, Ordering::Release);
    }

    /// The exchange slot published by the peer that selected this waiter (null if none).
    /// The peer publishes it in the same critical section of the channel's lock as its
    /// winning CAS, so an owner that saw the selection and then took that lock reads it.
    #[inline]
    pub(crate) fn packet(&self) -> *mut () {
        // Acquire: pairs with the Release in `store_packet`.
        self.inner.packet.load(Ordering::Acquire)
    }

    /// Wakes the waiter.
    #[inline]
    pub(crate) fn unpark(&self) {
        if let Some(u) = &self.inner.unparker {
            u.unpark();
        }
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

/// `Arc::get_mut` without its locked compare-and-swap on the weak count (two per
/// blocking operation, a few percent of a channel ping-pong): nothing ever makes a `Weak`
/// of a record, so a strong count of one proves the caller holds the only reference.
///
/// Under ThreadSanitizer (`--cfg gmp_tsan`), which does not model fences, `Arc::get_mut`
/// itself, so that TSan sees the synchronisation.
#[cfg(all(not(loom), not(gmp_tsan)))]
#[inline]
fn unique(inner: &mut Arc<Inner>) -> Option<&mut Inner> {
    if Arc::strong_count(inner) != 1 {
        return None;
    }
    // Acquire: the count's load above is Relaxed; every other holder dropped its clone
    // with a Release decrement, and its uses of the record must happen before ours.
    std::sync::atomic::fence(Ordering::Acquire);
    // SAFETY: a strong count of 1 and no `Weak` (none is ever made of an `Inner`) mean
    // `inner` is the only pointer to the record, and it is borrowed mutably for our
    // lifetime: no other reference to the record exists or can be made meanwhile (the
    // argument of `Arc::get_mut`, whose weak-count lock only guards against `Weak`).
    Some(unsafe { &mut *(Arc::as_ptr(inner) as *mut Inner) })
}

#[cfg(all(not(loom), gmp_tsan))]
#[inline]
fn unique(inner: &mut Arc<Inner>) -> Option<&mut Inner> {
    Arc::get_mut(inner)
}

#[cfg(not(loom))]
std::thread_local! {
    static SPARE: std::cell::Cell<Option<Arc<Inner>>> = const { std::cell::Cell::new(None) };
}

// Never inlined: the caller may be a goroutine that moves between threads (rust#33368).
// A record cached on one thread and taken on another is fine: it is not tied to a thread.
#[cfg(not(loom))]
#[inline(never)]
fn take_spare() -> Option<Arc<Inner>> {
    // In a thread-local destructor the cache may be gone: then there is nothing to take.
    SPARE.try_with(|s| s.take()).ok().flatten()
}

#[cfg(not(loom))]
#[inline(never)]
fn put_spare(inner: Arc<Inner>) {
    // A record already cached is dropped here, outside the thread-local access.
    let old = SPARE.try_with(|s| s.replace(Some(inner)));
    drop(old);
}

/// Hooks for the runtime (gmp-runtime) that keep the cache from pinning goroutines; see
/// the module docs. Not for other callers: they only drop cached handles, so a stray
/// call costs a reference-count change later, never correctness.
pub mod runtime_support {
    #[cfg(not(loom))]
    use super::{put_spare, take_spare, unique};

    /// Drops this thread's cached unparker if it wakes the waiter at `addr` (see
    /// [`Unparker::addr`](gmp_core::park::Unparker::addr)). The runtime calls it when
    /// a goroutine ends, on the M where it ended, so that the goroutine's G is not kept
    /// alive (and from reuse) by the record of its last blocking operation.
    pub fn forget_waiter(addr: *const ()) {
        #[cfg(not(loom))]
        {
            let Some(mut inner) = take_spare() else {
                return;
            };
            let gone = unique(&mut inner).and_then(|i| {
                let wakes = i.unparker.as_ref()?;
                std::ptr::addr_eq(wakes.addr(), addr)
                    .then(|| i.unparker.take())
                    .flatten()
            });
            put_spare(inner);
            // Dropped outside the thread-local access (it may be the G's last handle).
            drop(gone);
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
