//! Wait queues: the channel side of blocking (Go's `waitq` of sudogs).
//!
//! A [`Waker`] holds two lists. *Selectors* are blocked operations (a `send`, a `recv`, an
//! arm of a `select`): FIFO, so that waiters on one channel are served first come, first
//! served. *Observers* are `Select::ready` callers, which only want to hear that something
//! changed and are all woken at once.
//!
//! Invariants:
//! - an entry is removed either by its owner (`unregister`, after it gave up or was
//!   disconnected) or by the peer that won the entry's decision word (`try_select`);
//!   never by both, because the owner only unregisters when the decision was not a
//!   selection by a peer, and a peer only removes after winning;
//! - an entry whose decision word was already taken by another channel (a `select`
//!   registered elsewhere too) is skipped, not removed: its owner will remove it. So a
//!   value is never offered to a waiter that cannot take it;
//! - an entry never matches a waiter with itself (`exclude`), which matters when one
//!   `select` both sends and receives on the same zero-capacity channel.
//!
//! [`SyncWaker`] wraps a `Waker` in a mutex plus an `is_empty` flag for the lock-free
//! flavours: the fast path of `send`/`recv` only loads the flag. The flag's `SeqCst`
//! store (by a registering waiter) and `SeqCst` load (by a notifier) pair with the
//! `SeqCst` index updates of the array flavour: either the notifier sees the waiter, or
//! the waiter's re-check after registering sees the notifier's message. No lost wake-up.
//! (That argument uses the single total order of `SeqCst` operations, which loom does not
//! model for loads and stores; under `cfg(loom)` explicit `SeqCst` fences stand in for it
//! at exactly those two points, so the models check the protocol, not loom's weaker
//! reading of `SeqCst`.)

use crate::context::{Context, OnUnwind, Operation, Selected, WaiterRef};
use crate::utils;
use gmp_core::park::WaitReason;
use gmp_core::sync::atomic::{AtomicBool, Ordering};
use gmp_core::sync::Mutex;
use std::collections::VecDeque;
use std::ptr;
use std::time::Instant;

/// One registration in a wait queue.
pub(crate) struct Entry {
    /// Which of the owner's operations this is.
    pub(crate) oper: Operation,
    /// The owner's exchange slot (zero-capacity channels), or null.
    pub(crate) packet: *mut (),
    /// The owner's record (see `context.rs` for how long it may be used).
    pub(crate) cx: WaiterRef,
}

/// The blocked operations of one wait queue, oldest first.
///
/// Most wait queues never hold more than one waiter at a time (a goroutine parked on its
/// own channel: a connection's, a reply's), so a lone waiter's entry lives inline: a
/// parked goroutine costs no queue allocation (a one-slot `VecDeque` was a 32-byte heap
/// chunk per parked goroutine, idlemem). A second waiter moves the queue to a
/// `VecDeque`, which stays (with its buffer) once made, as before: a queue that has been
/// busy once works exactly as it did (a version that went back to inline whenever it
/// could touched one more cache line per operation under contention: mpmc0 8% slower).
/// 32 bytes, as a `VecDeque` alone (the layout keeps the variant in the deque's
/// capacity word).
enum Selectors {
    Empty,
    One(Entry),
    Many(VecDeque<Entry>),
}

impl Selectors {
    #[inline]
    fn is_empty(&self) -> bool {
        match self {
            Selectors::Empty => true,
            Selectors::One(_) => false,
            Selectors::Many(q) => q.is_empty(),
        }
    }

    /// Adds an entry at the back. Takes the entry's parts, not an `Entry`: built in each
    /// arm, it is stored from registers, where an `Entry` built by the caller went
    /// through the stack and its 16-byte reload missed store forwarding (a ping-pong
    /// round trip 4% slower, `perf annotate`).
    #[inline]
    fn push_back(&mut self, oper: Operation, packet: *mut (), cx: WaiterRef) {
        match self {
            Selectors::Empty => *self = Selectors::One(Entry { oper, packet, cx }),
            Selectors::Many(q) => q.push_back(Entry { oper, packet, cx }),
            Selectors::One(_) => self.push_second(Entry { oper, packet, cx }),
        }
    }

    /// A second waiter: the queue becomes a `VecDeque` for good.
    #[cold]
    #[inline(never)]
    fn push_second(&mut self, e: Entry) {
        let Selectors::One(first) = std::mem::replace(self, Selectors::Empty) else {
            unreachable!("gmp_chan: push_second on a queue without one entry")
        };
        *self = Selectors::Many(VecDeque::from([first, e]));
    }

    /// The position of the oldest entry that satisfies `pred` (0 is the oldest).
    #[inline]
    fn position(&self, pred: impl FnMut(&Entry) -> bool) -> Option<usize> {
        match self {
            Selectors::Empty => None,
            Selectors::One(e) => std::iter::once(e).position(pred),
            Selectors::Many(q) => q.iter().position(pred),
        }
    }

    /// Removes entry `i`. The oldest is the common case (FIFO), and `pop_front` skips
    /// `VecDeque::remove`'s general shifting (`wrap_copy`, 1% of a channel ping-pong).
    #[inline]
    fn remove(&mut self, i: usize) -> Option<Entry> {
        match self {
            Selectors::Empty => None,
            Selectors::One(_) if i == 0 => match std::mem::replace(self, Selectors::Empty) {
                Selectors::One(e) => Some(e),
                _ => unreachable!(),
            },
            Selectors::One(_) => None,
            Selectors::Many(q) if i == 0 => q.pop_front(),
            Selectors::Many(q) => q.remove(i),
        }
    }

    /// Every entry, oldest first.
    fn for_each(&self, f: impl FnMut(&Entry)) {
        match self {
            Selectors::Empty => {}
            Selectors::One(e) => std::iter::once(e).for_each(f),
            Selectors::Many(q) => q.iter().for_each(f),
        }
    }
}

/// A channel's wait queue for one direction. Not synchronized: callers hold a lock.
pub(crate) struct Waker {
    selectors: Selectors,
    /// Readiness observers ([`Select::ready`](crate::Select::ready) and friends): rare,
    /// so the list is boxed on first use: 8 bytes in every wait queue instead of 24, and
    /// a zero-capacity channel (two queues) is 32 bytes smaller.
    #[allow(clippy::box_collection)] // on purpose: the box is the thin part (8 bytes)
    observers: Option<Box<Vec<Entry>>>,
}

// SAFETY: the raw `packet` pointers are only dereferenced by the flavour that created
// them, under the protocol of that flavour (zero.rs), whose exchange slots hold `T: Send`.
unsafe impl Send for Waker {}

impl Waker {
    pub(crate) fn new() -> Self {
        Waker {
            selectors: Selectors::Empty,
            observers: None,
        }
    }

    /// Adds a blocked operation with no exchange slot.
    #[inline]
    pub(crate) fn register(&mut self, oper: Operation, cx: &Context) {
        self.register_with_packet(oper, ptr::null_mut(), cx);
    }

    /// Adds a blocked operation whose exchange slot is `packet`.
    #[inline]
    pub(crate) fn register_with_packet(&mut self, oper: Operation, packet: *mut (), cx: &Context) {
        self.selectors.push_back(oper, packet, cx.waiter());
    }

    /// Removes the owner's registration, if a peer has not already taken it.
    pub(crate) fn unregister(&mut self, oper: Operation, cx: &Context) -> Option<Entry> {
        let i = self
            .selectors
            .position(|e| e.oper == oper && e.cx.same(cx))?;
        self.take(i)
    }

    /// Takes the oldest waiter whose decision this call wins (skipping `exclude`'s own
    /// entries). The caller completes the exchange and then unparks `entry.cx` with
    /// `unpark_release`, its last touch of the record.
    // Go: runtime.(*waitq).dequeue (which skips a select's sudog whose selectDone CAS fails)
    pub(crate) fn try_select(&mut self, exclude: Option<&Context>) -> Option<Entry> {
        let i = self.selectors.position(|e| {
            !matches!(exclude, Some(me) if e.cx.same(me))
                && e.cx.try_select(Selected::Operation(e.oper)).is_ok()
        })?;
        self.take(i)
    }

    #[inline]
    fn take(&mut self, i: usize) -> Option<Entry> {
        self.selectors.remove(i)
    }

    /// True if some waiter other than `exclude` is still undecided, i.e. could be paired.
    pub(crate) fn can_select(&self, exclude: Option<&Context>) -> bool {
        self.selectors
            .position(|e| {
                !matches!(exclude, Some(me) if e.cx.same(me))
                    && e.cx.selected() == Selected::Waiting
            })
            .is_some()
    }

    /// Adds a readiness observer.
    pub(crate) fn watch(&mut self, oper: Operation, cx: &Context) {
        self.observers.get_or_insert_default().push(Entry {
            oper,
            packet: ptr::null_mut(),
            cx: cx.waiter(),
        });
    }

    /// Removes a readiness observer.
    pub(crate) fn unwatch(&mut self, oper: Operation, cx: &Context) {
        if let Some(o) = &mut self.observers {
            o.retain(|e| !(e.oper == oper && e.cx.same(cx)));
        }
    }

    /// Tells every observer that the channel changed.
    pub(crate) fn notify_observers(&mut self) {
        let Some(o) = &mut self.observers else {
            return;
        };
        for e in o.drain(..) {
            if e.cx.try_select(Selected::Operation(e.oper)).is_ok() {
                e.cx.unpark_release();
            }
        }
    }

    /// The channel closed: every undecided waiter learns it, observers too. Entries stay
    /// until their owners unregister them.
    pub(crate) fn disconnect(&mut self) {
        self.selectors.for_each(|e| {
            if e.cx.try_select(Selected::Disconnected).is_ok() {
                e.cx.unpark_release();
            }
        });
        self.notify_observers();
    }

    /// No waiters and no observers.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.selectors.is_empty() && !self.has_observers()
    }

    /// True if there are observers to notify.
    #[inline]
    pub(crate) fn has_observers(&self) -> bool {
        self.observers.as_ref().is_some_and(|o| !o.is_empty())
    }
}

/// A [`Waker`] behind a mutex, with a flag that lets notifiers skip the lock when nobody
/// waits. See the module docs for the ordering argument.
pub(crate) struct SyncWaker {
    inner: Mutex<Waker>,
    is_empty: AtomicBool,
}

impl SyncWaker {
    pub(crate) fn new() -> Self {
        SyncWaker {
            inner: Mutex::new(Waker::new()),
            is_empty: AtomicBool::new(true),
        }
    }

    /// Registers a blocked operation. The caller must re-check readiness afterwards.
    pub(crate) fn register(&self, oper: Operation, cx: &Context) {
        let mut w = self.inner.lock();
        w.register(oper, cx);
        // SeqCst: ordered before the caller's SeqCst re-check of the channel state, against
        // the notifier's SeqCst state change then SeqCst load of this flag.
        self.is_empty.store(false, Ordering::SeqCst);
        #[cfg(loom)]
        gmp_core::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Removes a registration that no peer took.
    pub(crate) fn unregister(&self, oper: Operation, cx: &Context) -> Option<Entry> {
        let mut w = self.inner.lock();
        let e = w.unregister(oper, cx);
        // SeqCst for symmetry with `register`; only ever turns the flag on when needed.
        self.is_empty.store(w.is_empty(), Ordering::SeqCst);
        e
    }

    /// Registers a readiness observer. The caller must re-check readiness afterwards.
    pub(crate) fn watch(&self, oper: Operation, cx: &Context) {
        let mut w = self.inner.lock();
        w.watch(oper, cx);
        // SeqCst: as in `register`.
        self.is_empty.store(false, Ordering::SeqCst);
        #[cfg(loom)]
        gmp_core::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Removes a readiness observer.
    pub(crate) fn unwatch(&self, oper: Operation, cx: &Context) {
        let mut w = self.inner.lock();
        w.unwatch(oper, cx);
        // SeqCst: as in `unregister`.
        self.is_empty.store(w.is_empty(), Ordering::SeqCst);
    }

    /// The channel state changed (a message or a free slot appeared): wake the oldest
    /// waiter that can still be selected, and every observer.
    #[inline]
    pub(crate) fn notify(&self) {
        #[cfg(loom)]
        gmp_core::sync::atomic::fence(Ordering::SeqCst);
        // SeqCst: see the module docs (pairs with `register`'s store).
        if !self.is_empty.load(Ordering::SeqCst) {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        let mut w = self.inner.lock();
        // Relaxed: under the lock the flag only mirrors `w`.
        if self.is_empty.load(Ordering::Relaxed) {
            return;
        }
        let entry = w.try_select(None);
        w.notify_observers();
        // SeqCst: as in `unregister`.
        self.is_empty.store(w.is_empty(), Ordering::SeqCst);
        drop(w);
        if let Some(e) = entry {
            // After the lock (Go readies goroutines after unlocking, too); the owner
            // waits for this before its record dies (context.rs).
            e.cx.unpark_release();
        }
    }

    /// Parks the caller once on this queue: registers a waiter, re-checks `ready` (the
    /// channel state it waits for, read with SeqCst: see the module docs), and waits
    /// until a peer's `notify` chooses it, the channel disconnects, or `deadline` passes.
    /// The caller then retries its operation (nothing is handed over). If the caller
    /// unwinds out of the park, its entry is removed, or a wake-up it was chosen for is
    /// passed on ([`SyncWaker::abandon`]). The blocking step of the array flavour's
    /// `send`/`recv` and the list flavour's `recv`.
    ///
    /// Returns false, without parking, if `deadline` has passed (`waited`: the caller
    /// has parked before in this operation; see [`utils::timed_out`]).
    pub(crate) fn wait_once(
        &self,
        deadline: Option<Instant>,
        waited: bool,
        reason: WaitReason,
        ready: impl Fn() -> bool,
    ) -> bool {
        if let Some(d) = deadline {
            if utils::timed_out(d, waited) {
                return false;
            }
        }
        Context::with(|cx| {
            let oper = Operation::new(0);
            self.register(oper, cx);
            let guard = OnUnwind::new(|| self.abandon(oper, cx));
            if ready() {
                cx.abort();
            }
            let sel = cx.wait_until(deadline, reason);
            guard.disarm();
            match sel {
                Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                Selected::Aborted | Selected::Disconnected => {
                    self.unregister(oper, cx);
                }
                Selected::Operation(_) => {}
            }
        });
        true
    }

    /// The owner of a blocked registration leaves by unwinding: it decides `Aborted` and
    /// removes its entry, or, if a peer had already chosen it, passes that wake-up on to
    /// the next waiter (the entry is gone with it, and a live waiter must not be left
    /// asleep next to a message or a free slot). Never parks.
    pub(crate) fn abandon(&self, oper: Operation, cx: &Context) {
        match cx.abort() {
            Selected::Operation(_) => self.notify(),
            _ => {
                self.unregister(oper, cx);
            }
        }
    }

    /// The channel closed: wake everyone.
    pub(crate) fn disconnect(&self) {
        let mut w = self.inner.lock();
        w.disconnect();
        // SeqCst: as in `unregister`.
        self.is_empty.store(w.is_empty(), Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::context::BoxedContext;

    /// Waiters on one channel are served first come, first served; a waiter already
    /// decided elsewhere is skipped (and left for its owner to remove); a waiter is never
    /// paired with itself.
    #[test]
    fn fifo_skips_decided_and_self() {
        let cxs: Vec<BoxedContext> = (0..4).map(|_| BoxedContext::current()).collect();
        let mut w = Waker::new();
        for cx in &cxs {
            w.register(Operation::new(0), cx);
        }
        assert!(cxs[1].try_select(Selected::Aborted).is_ok()); // decided elsewhere
        let first = w.try_select(None).unwrap();
        assert!(first.cx.same(&cxs[0]));
        let next = w.try_select(Some(&cxs[2])).unwrap(); // 1 skipped, 2 excluded
        assert!(next.cx.same(&cxs[3]));
        assert!(w.can_select(None)); // 2 is still undecided
        assert!(!w.can_select(Some(&cxs[2])));
        let last = w.try_select(None).unwrap();
        assert!(last.cx.same(&cxs[2]));
        // A winner gives each record back (else its owner would wait for it forever).
        for e in [first, next, last] {
            e.cx.unpark_release();
        }
        assert!(w.try_select(None).is_none());
        // The skipped entry stays until its owner unregisters it.
        assert!(w.unregister(Operation::new(0), &cxs[1]).is_some());
        assert!(w.is_empty());
    }

    #[test]
    fn disconnect_decides_every_waiter_and_notifies_observers() {
        let (a, b, o) = (
            BoxedContext::current(),
            BoxedContext::current(),
            BoxedContext::current(),
        );
        let mut w = Waker::new();
        w.register(Operation::new(0), &a);
        w.register(Operation::new(1), &b);
        w.watch(Operation::new(2), &o);
        assert!(a.try_select(Selected::Operation(Operation::new(0))).is_ok());
        w.disconnect();
        assert_eq!(a.selected(), Selected::Operation(Operation::new(0)));
        assert_eq!(b.selected(), Selected::Disconnected);
        assert_eq!(o.selected(), Selected::Operation(Operation::new(2)));
        assert!(w.unregister(Operation::new(0), &a).is_some());
        assert!(w.unregister(Operation::new(1), &b).is_some());
        assert!(w.is_empty());
    }

    /// A peer that won a record keeps it until `unpark_release`: the owner's record does
    /// not die before (context.rs); without the wait the drop finishes at once.
    #[test]
    fn owner_waits_for_the_winner_to_release() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let cx = BoxedContext::current();
        let mut w = Waker::new();
        w.register(Operation::new(0), &cx);
        let won = w.try_select(None).expect("one waiter queued");
        let dropped = Arc::new(AtomicBool::new(false));
        let t = std::thread::spawn({
            let dropped = dropped.clone();
            move || {
                drop(cx);
                dropped.store(true, Ordering::SeqCst);
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the record died while the peer that won it still held it"
        );
        won.cx.unpark_release();
        t.join().unwrap();
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// The same for a record on its owner's stack (`Context::with`) whose owner unwinds
    /// while a peer holds it: the frame is not popped before the peer let go.
    #[test]
    fn an_unwinding_owner_waits_for_the_winner_before_its_frame_goes() {
        use std::sync::atomic::AtomicBool;
        use std::sync::{mpsc, Arc, Mutex};
        let w = Arc::new(Mutex::new(Waker::new()));
        let unwound = Arc::new(AtomicBool::new(false));
        let (won_tx, won_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn({
            let (w, unwound) = (w.clone(), unwound.clone());
            move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Context::with(|cx| {
                        w.lock().unwrap().register(Operation::new(0), cx);
                        won_rx.recv().unwrap();
                        // Unwinds without the panic hook (whose message and backtrace
                        // would take longer than the wait below).
                        std::panic::resume_unwind(Box::new("owner unwinds"))
                    })
                }));
                assert!(r.is_err());
                unwound.store(true, Ordering::SeqCst);
            }
        });
        let won = loop {
            if let Some(e) = w.lock().unwrap().try_select(None) {
                break e;
            }
            std::thread::yield_now();
        };
        won_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !unwound.load(Ordering::SeqCst),
            "the stack record died while the peer that won it still held it"
        );
        won.cx.unpark_release();
        t.join().unwrap();
        assert!(unwound.load(Ordering::SeqCst));
    }

    /// A lone waiter lives inline (no allocation); later waiters queue behind it in
    /// order, and removing any of them keeps the order of the rest.
    #[test]
    fn a_lone_waiter_is_inline_and_order_is_kept() {
        let mut w = Waker::new();
        let cxs: Vec<BoxedContext> = (0..5).map(|_| BoxedContext::current()).collect();
        w.register(Operation::new(0), &cxs[0]);
        assert!(
            matches!(w.selectors, Selectors::One(_)),
            "a lone waiter allocated"
        );
        assert!(w.unregister(Operation::new(0), &cxs[0]).is_some());
        assert!(matches!(w.selectors, Selectors::Empty));
        for (i, cx) in cxs.iter().enumerate() {
            w.register(Operation::new(i), cx);
        }
        // Remove one from the middle and the oldest, as owners giving up do.
        assert!(w.unregister(Operation::new(2), &cxs[2]).is_some());
        assert!(w.unregister(Operation::new(0), &cxs[0]).is_some());
        assert!(
            w.unregister(Operation::new(2), &cxs[2]).is_none(),
            "removed twice"
        );
        let order: Vec<usize> = std::iter::from_fn(|| w.try_select(None))
            .map(|e| {
                e.cx.unpark_release();
                e.oper.position()
            })
            .collect();
        assert_eq!(order, [1, 3, 4], "waiters served out of order");
        assert!(w.is_empty());
    }

    /// A wait queue is no larger than the `VecDeque` plus observer box it had before (a
    /// zero-capacity channel holds two).
    #[test]
    fn a_waker_is_five_words() {
        assert_eq!(std::mem::size_of::<Selectors>(), 32);
        assert_eq!(std::mem::size_of::<Waker>(), 40);
    }
}
