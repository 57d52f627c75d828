//! The local run queue: Go's per-P ring (`p.runq`, `runqhead`, `runqtail`, `runnext`).
//!
//! # Algorithm
//!
//! A fixed ring of [`LOCAL_CAPACITY`] slots indexed by two wrapping `u32` counters. The
//! live elements are the slots at indices `head..tail` (mod 2^32, each index taken mod the
//! capacity). One thread, the owner, holds the [`Local`] handle: only it writes `tail` and
//! only it writes slots. Any thread may consume — the owner popping, thieves stealing —
//! and every consumer claims elements the same way: read the slots at `head..head+n`,
//! then compare-and-swap `head` from `head` to `head+n`. The CAS decides who owns the
//! elements; a loser throws away what it read and starts again. (The owner's pop reads
//! its slot after the CAS instead: no one but the owner can overwrite it.)
//!
//! Beside the ring sits `runnext`, one element that runs before the ring (Go: a G that a
//! running G just readied, so a communicate-and-wait pair runs back to back). A push to
//! `runnext` kicks the previous occupant to the ring's tail. The owner takes it with a
//! swap; a thief may take it only when asked to (`steal_runnext`), because Go does so only
//! on its last stealing pass, after backing off so the victim can run it itself.
//!
//! A push to a full ring does not block: the owner claims the oldest half with one CAS on
//! `head` and moves it, plus the new element, to the [`Global`] queue under one lock
//! (Go: `runqputslow`, 128 + 1). A steal copies about half of the victim's ring straight
//! into the thief's own ring — the thief owns that ring, so it alone may write there — and
//! returns the newest stolen element to run at once (Go: `runqsteal`/`runqgrab`).
//!
//! # Invariants
//!
//! 1. Only the owner writes `tail` and the slots; `tail` only grows.
//! 2. `head` only grows, and only by a successful CAS of a consumer; a thief reads the
//!    claimed slots *before* its CAS, since the owner may reuse them right after.
//! 3. `0 <= tail - head <= capacity` at every instant; slots outside `head..tail` are
//!    garbage that no one may turn back into an element.
//! 4. `runnext` is either null or owns one element; only the owner stores a non-null
//!    pointer into it, anyone may swap it to null (and thereby owns what was there).
//! 5. The counters never reset, so a CAS on `head` cannot succeed on a recycled value
//!    unless 2^32 elements pass through the ring between one consumer's load and its CAS.
//!
//! # Memory orderings (go-runtime.md §4.1)
//!
//! - The owner publishes a slot with a **Release** store of `tail`; consumers load `tail`
//!   with **Acquire**, so the slot — and the element it points to — are visible to them.
//! - Every successful consumer CAS of `head` is **Release**, and the owner loads `head`
//!   with **Acquire** before reusing a slot: the consumer's read of the slot happens
//!   before the owner overwrites it, so the consumer cannot read a newer element.
//! - Thieves load `head` with **Acquire**, then `tail`: having synchronized with the CAS
//!   that produced `head`, they see a `tail` at least as new as the one that CAS's author
//!   saw, so `tail - head` cannot go negative. It can still exceed the capacity (the owner
//!   may push and others steal between the two loads); that torn pair is retried, as Go.
//! - The owner pushes to `runnext` with a swap that is at least **Release** (it is
//!   **SeqCst**, below) and thieves take it with an **Acquire** swap, so the element is
//!   visible to the thief.
//! - The owner keeps a private copy of the last `head` it acquired and checks for room
//!   against it, loading the real `head` only when the copy says "full". The copy is a
//!   lower bound (`head` only grows), so room is never overstated; and since every write
//!   of `head` is a Release RMW, acquiring one value synchronizes with every CAS before
//!   it (a release sequence), so the slots the copy calls free were read before reuse.
//!
//! # Layout
//!
//! `tail` (written by the owner, read by thieves), `head` (CASed by everyone) and the
//! slots sit on separate cache-line pairs. With the cached `head`, a push touches only the
//! owner's lines, so a thief's CAS does not make the next push miss.
//!
//! # Why the slots are atomics
//!
//! Go reads a slot with a plain load and relies on the failing CAS to discard a value the
//! owner overwrote meanwhile. In Rust that racy plain read is undefined behaviour even if
//! its result is thrown away. So each slot is an `AtomicPtr` accessed with **Relaxed**
//! loads and stores: on x86-64 and AArch64 these compile to the same plain moves Go uses,
//! the race becomes defined, and the Release/Acquire pairs above carry the ordering. The
//! queue shares no non-atomic memory at all, so it is free of data races by construction;
//! the loom models check that the orderings deliver every element exactly once.
//!
//! # What is approximate
//!
//! Lengths read while other threads push or steal are snapshots. A wake-up protocol that
//! pushes and then checks for idle workers (Go's `wakep`) needs a StoreLoad barrier
//! between the two. `push`'s publishing store is only Release, so after it the caller
//! needs a `fence(SeqCst)`. `push_next`'s swap of `runnext` is SeqCst: a caller's
//! SeqCst loads after it are ordered after it in the single total order, which is all
//! such a protocol needs when the other side's re-check follows a SeqCst fence (the
//! proof is in gmp-runtime's `Sched::wakep_after_push_next`). The G that `push_next`
//! moves on to the ring is published by `push`'s Release store only.
//!
//! loom models SeqCst fences but treats SeqCst accesses as AcqRel (its documented
//! limitation), so under `--cfg loom` the swap is followed by a SeqCst fence that stands
//! in for it while its ordering (`RUNNEXT_SWAP`) is SeqCst; gmp-runtime's model
//! `runnext_publish_vs_spinner_giving_up` fails when `RUNNEXT_SWAP` is Release.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use gmp_core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use gmp_core::sync::{spin_loop, Arc};

use crate::{Global, Item, LOCAL_CAPACITY};

/// The ordering of `push_next`'s swap of `runnext`: SeqCst, the StoreLoad point of a
/// scheduler's wake-up protocol (module docs, "What is approximate").
const RUNNEXT_SWAP: Ordering = Ordering::SeqCst;

/// Slots in the ring, as the index type.
const CAP: u32 = LOCAL_CAPACITY as u32;
/// Maps an index to its slot.
const MASK: u32 = CAP - 1;
/// Go: `len(p.runq) / 2`: the overflow batch and the most one steal moves.
pub(crate) const HALF: u32 = CAP / 2;

/// Keeps its content on cache lines of its own (two lines: adjacent-line prefetch pairs
/// them on x86-64).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The ring shared by a [`Local`] and its [`Stealer`]s.
///
/// `head` is written by every consumer, `tail` and `runnext` mostly by the owner: they
/// live on separate cache lines, so that the owner's reads of `tail` are not misses
/// caused by thieves' CASes, and the slots start on a line of their own.
pub(crate) struct Inner<T: Item> {
    /// Next index the owner fills (invariant 1).
    tail: Padded<AtomicU32>,
    /// One element that runs before the ring, or null (invariant 4).
    runnext: AtomicPtr<()>,
    /// Next index to consume; advanced by CAS (invariant 2).
    head: Padded<AtomicU32>,
    slots: Padded<[AtomicPtr<()>; LOCAL_CAPACITY]>,
    /// The ring owns `T`s in raw form.
    _owns: PhantomData<T>,
}

// SAFETY: the ring holds `T`s only as owned raw pointers and hands each one out, by value,
// to exactly one thread (the winner of a CAS or swap); it never gives out `&T`. Moving a
// `T` between threads needs `T: Send`, which `Item` requires; `T: Sync` is not needed.
unsafe impl<T: Item> Send for Inner<T> {}
// SAFETY: as for `Send`: shared access only moves whole `T`s between threads.
unsafe impl<T: Item> Sync for Inner<T> {}

impl<T: Item> Inner<T> {
    fn new(start: u32) -> Self {
        Inner {
            tail: Padded(AtomicU32::new(start)),
            runnext: AtomicPtr::new(ptr::null_mut()),
            head: Padded(AtomicU32::new(start)),
            slots: Padded(std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut()))),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn slot(&self, index: u32) -> &AtomicPtr<()> {
        // Masking keeps the index in bounds, so the check below compiles away.
        &self.slots[(index & MASK) as usize]
    }

    /// Elements in the ring plus `runnext`, from two independent loads: exact only when
    /// no other thread is acting.
    fn len(&self) -> usize {
        // Acquire on both, as a thief: see `tail` at least as new as `head` (essay).
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        // A torn pair may exceed the capacity; clamp rather than report nonsense.
        let ring = tail.wrapping_sub(head).min(CAP) as usize;
        // Relaxed: a snapshot for a count, no element is taken.
        ring + usize::from(!self.runnext.load(Ordering::Relaxed).is_null())
    }

    /// Go: `runqempty`.
    fn is_empty(&self) -> bool {
        // A G may move from `runnext` to the ring (`push_next` kicking the old one) between
        // our reads, so that neither read sees it; Go re-reads until `tail` is stable
        // across the three loads. Acquire on `head`/`tail` as in `len`; Relaxed on
        // `runnext` (a snapshot).
        loop {
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Acquire);
            let next = self.runnext.load(Ordering::Relaxed);
            if tail == self.tail.load(Ordering::Acquire) {
                return head == tail && next.is_null();
            }
            spin_loop();
        }
    }
}

impl<T: Item> Drop for Inner<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread holds the ring, so any ordering sees the last values
        // (the final `Arc` drop synchronized with every other handle's drop). `Local`'s drop
        // already drained the ring; this only runs for leftovers if an element's destructor
        // panicked during that drain.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let mut i = head;
        while i != tail {
            let p = self.slot(i).load(Ordering::Relaxed);
            i = i.wrapping_add(1);
            if let Some(p) = NonNull::new(p) {
                // SAFETY: slots in `head..tail` own elements (invariant 3) and nothing else
                // can claim them now.
                drop(unsafe { T::from_raw(p) });
            }
        }
        if let Some(p) = NonNull::new(self.runnext.load(Ordering::Relaxed)) {
            // SAFETY: a non-null `runnext` owns its element (invariant 4).
            drop(unsafe { T::from_raw(p) });
        }
    }
}

/// Creates a local run queue: the owner's handle and a stealer handle for other threads.
///
/// ```
/// let (owner, stealer) = gmp_queue::local::<Box<&str>>();
/// let global = gmp_queue::Global::new();
/// owner.push(Box::new("work"), &global);
/// assert_eq!(stealer.len(), 1);
/// ```
pub fn local<T: Item>() -> (Local<T>, Stealer<T>) {
    local_starting_at(0)
}

/// Like [`local`] but with both indices starting at `start`, so tests can cross the
/// `u32` wrap-around quickly. Not part of the stable API.
#[doc(hidden)]
pub fn local_starting_at<T: Item>(start: u32) -> (Local<T>, Stealer<T>) {
    let inner = Arc::new(Inner::new(start));
    let stealer = Stealer {
        inner: inner.clone(),
    };
    (
        Local {
            inner,
            head_cache: Cell::new(start),
            _not_sync: PhantomData,
        },
        stealer,
    )
}

/// The owner's handle to a local run queue (Go: the P's own view of `p.runq`).
///
/// Only the owner pushes and pops; it is `Send` (a P may move to another thread) but not
/// `Sync`, so exactly one thread at a time holds `&Local`. That also makes `&Local` a proof
/// of ownership where [`Stealer::steal_into`] and [`Global::pop_batch_into`] write into
/// this ring.
///
/// Dropping it drops every element still in the queue.
pub struct Local<T: Item> {
    inner: Arc<Inner<T>>,
    /// A value of `head` this thread loaded with Acquire: a lower bound of the real one
    /// (it only grows), so room computed from it is never overstated, and the push fast
    /// path need not touch the line that thieves write. Safe to rely on for slot reuse:
    /// every write of `head` is a Release RMW, so acquiring one value synchronizes with
    /// all the CASes before it (release sequence), i.e. with every consumer of an index
    /// below the cached value.
    head_cache: Cell<u32>,
    /// `Cell` is `Send + !Sync`: one owner thread at a time.
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Item> Local<T> {
    /// Pushes `value` to the tail of the ring (Go: `runqput(pp, gp, false)`).
    ///
    /// If the ring is full, its older half and `value` move to `global` in one batch
    /// (Go: `runqputslow`), so the push never blocks and never fails.
    #[inline]
    pub fn push(&self, value: T, global: &Global<T>) {
        self.push_raw(value.into_raw(), global);
    }

    /// Pushes `value` to `runnext`, so that it is popped next; the element that was in
    /// `runnext` moves to the tail of the ring (Go: `runqput(pp, gp, true)`).
    ///
    /// Use it for an element readied by the one running now (Go: `newproc`, `goready`):
    /// the pair then runs back to back. [`Local::pop`] reports such elements with `true`.
    #[inline]
    pub fn push_next(&self, value: T, global: &Global<T>) {
        // Release would publish the element to a thief (it takes it with an Acquire
        // swap), and the old value needs no Acquire: only this thread ever stores a
        // non-null pointer (invariant 4), so whatever non-null value we get back is our
        // own write. SeqCst on top: the swap is then the StoreLoad point a scheduler needs
        // between publishing work and reading whether anyone spins (gmp-runtime's
        // `wakep_after_push_next`), and on x86 it is the same `xchg` either way.
        let old = self
            .inner
            .runnext
            .swap(value.into_raw().as_ptr(), RUNNEXT_SWAP);
        // What the SeqCst swap gives a caller's later SeqCst loads, spelled so that loom
        // can model it (module docs, "What is approximate"). Tied to the swap's ordering,
        // so that weakening it fails gmp-runtime's model.
        #[cfg(loom)]
        if RUNNEXT_SWAP == Ordering::SeqCst {
            gmp_core::sync::atomic::fence(Ordering::SeqCst);
        }
        if let Some(old) = NonNull::new(old) {
            self.push_raw(old, global);
        }
    }

    /// [`push_next`](Local::push_next) without its StoreLoad point, for a caller that
    /// does not look for idle workers after it (a scheduler's only P: there is nobody to
    /// wake). An empty `runnext` then takes the element with a plain Release store
    /// instead of a locked swap (a thief only ever stores null, so whatever it does
    /// between our load and our store leaves `runnext` null, and takes nothing); an
    /// occupied one is swapped.
    #[inline]
    pub fn push_next_unfenced(&self, value: T, global: &Global<T>) {
        let new = value.into_raw().as_ptr();
        // Relaxed: only this thread stores a non-null pointer (invariant 4), so a null we
        // read stays null until our store; a non-null one is our own write.
        let old = if self.inner.runnext.load(Ordering::Relaxed).is_null() {
            // Release: publishes the element to a thief's Acquire swap, as `push_next`.
            self.inner.runnext.store(new, Ordering::Release);
            ptr::null_mut()
        } else {
            // Release: as above. The old element may be taken by a thief meanwhile:
            // the swap returns whatever is left (null then).
            self.inner.runnext.swap(new, Ordering::Release)
        };
        if let Some(old) = NonNull::new(old) {
            self.push_raw(old, global);
        }
    }

    #[inline]
    fn push_raw(&self, mut ptr: NonNull<()>, global: &Global<T>) {
        let inner = &*self.inner;
        loop {
            // Relaxed: only this thread writes `tail` (invariant 1).
            let tail = inner.tail.load(Ordering::Relaxed);
            // Full by the cached `head`? Then look at the real one (which refreshes the
            // cache); still full: overflow.
            if tail.wrapping_sub(self.head_cache.get()) >= CAP && self.room(tail) == 0 {
                match self.push_overflow(ptr, self.head_cache.get(), global) {
                    Ok(()) => return,
                    // A consumer made room meanwhile: retry the fast path.
                    Err(back) => {
                        ptr = back;
                        continue;
                    }
                }
            }
            // Relaxed: published by the Release store of `tail` below.
            inner.slot(tail).store(ptr.as_ptr(), Ordering::Relaxed);
            // Release: makes the slot and the element visible to consumers.
            inner.tail.store(tail.wrapping_add(1), Ordering::Release);
            return;
        }
    }

    /// Moves the older half of the full ring and `ptr` to `global`.
    /// Returns `ptr` back if a consumer freed a slot first.
    // Go: runtime.runqputslow
    #[cold]
    #[inline(never)]
    fn push_overflow(
        &self,
        ptr: NonNull<()>,
        head: u32,
        global: &Global<T>,
    ) -> Result<(), NonNull<()>> {
        let inner = &*self.inner;
        let mut batch = [ptr::null_mut::<()>(); HALF as usize + 1];
        for (i, b) in batch[..HALF as usize].iter_mut().enumerate() {
            // Relaxed: this thread wrote these slots.
            *b = inner
                .slot(head.wrapping_add(i as u32))
                .load(Ordering::Relaxed);
        }
        // Release on success, as every consumer CAS (essay). Relaxed on failure: we retry
        // from a fresh Acquire load.
        if inner
            .head
            .compare_exchange(
                head,
                head.wrapping_add(HALF),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(ptr);
        }
        batch[HALF as usize] = ptr.as_ptr();
        // SAFETY: the CAS gave us the elements of slots `head..head+HALF`, which are
        // non-null element pointers (invariant 3); the last one is `ptr`, ours.
        global.push_raw_batch(batch.iter().map(|&p| unsafe { NonNull::new_unchecked(p) }));
        Ok(())
    }

    /// Pushes every element of `values` to the tail, in order, with the same overflow
    /// rule as [`Local::push`] (equivalent to pushing them one by one, but reads the
    /// consumers' index once per batch instead of once per element).
    pub fn push_batch(&self, values: impl Iterator<Item = T>, global: &Global<T>) {
        let inner = &*self.inner;
        let mut values = values;
        // Relaxed: our own `tail`.
        let mut tail = inner.tail.load(Ordering::Relaxed);
        // A lower bound (`head` only grows).
        let mut room = self.room(tail);
        while room > 0 {
            let Some(v) = values.next() else { return };
            // Relaxed, then Release per element: as in `push_raw`. Publishing each element
            // keeps the ring consistent if `values` panics.
            inner
                .slot(tail)
                .store(v.into_raw().as_ptr(), Ordering::Relaxed);
            tail = tail.wrapping_add(1);
            inner.tail.store(tail, Ordering::Release);
            room -= 1;
        }
        for v in values {
            self.push(v, global);
        }
    }

    /// Pops the next element: `runnext` first, else the head of the ring
    /// (Go: `runqget`). The flag is `true` when it came from `runnext`; Go lets such a G
    /// inherit the current time slice.
    #[inline]
    pub fn pop(&self) -> Option<(T, bool)> {
        let inner = &*self.inner;
        // Relaxed peek first, to avoid a write to the line on the common empty case.
        // Relaxed swap: any non-null value is this thread's own write (invariant 4); if a
        // thief took it, the swap returns null and we fall through to the ring (as Go,
        // which does not retry).
        if !inner.runnext.load(Ordering::Relaxed).is_null() {
            if let Some(p) = NonNull::new(inner.runnext.swap(ptr::null_mut(), Ordering::Relaxed)) {
                // SAFETY: the swap gave us the element `runnext` owned (invariant 4).
                return Some((unsafe { T::from_raw(p) }, true));
            }
        }
        loop {
            // Relaxed: the CAS below validates the value, and the slot it claims was
            // written by this thread, so no synchronization is needed to read it.
            let head = inner.head.load(Ordering::Relaxed);
            // Relaxed: our own `tail`.
            let tail = inner.tail.load(Ordering::Relaxed);
            if head == tail {
                return None;
            }
            // Release on success: a thief that acquires the new `head` then also sees a
            // `tail` at least this new (essay). Relaxed on failure: we reload.
            if inner
                .head
                .compare_exchange(
                    head,
                    head.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // Unlike a thief, the owner may read the slot after claiming it: only this
                // thread writes slots, so nobody can reuse it before our next push. This
                // keeps the slot load out of the way of the locked CAS.
                // Relaxed: our own write.
                let p = inner.slot(head).load(Ordering::Relaxed);
                // SAFETY: the CAS claimed slot `head`, which holds an element (invariant 3).
                return Some((unsafe { T::from_raw(NonNull::new_unchecked(p)) }, false));
            }
            spin_loop();
        }
    }

    /// Number of elements: the ring plus one if `runnext` is occupied.
    ///
    /// Exact when no thief is acting; thieves only remove elements, so otherwise it is an
    /// upper bound at the time of the call.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True if neither the ring nor `runnext` holds an element (Go: `runqempty`).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Slots in the ring: [`LOCAL_CAPACITY`]. `runnext` holds one more, so the queue holds
    /// at most `capacity() + 1` elements; a push beyond that overflows to the global queue.
    pub fn capacity(&self) -> usize {
        LOCAL_CAPACITY
    }

    /// True if `runnext` holds an element.
    pub fn has_runnext(&self) -> bool {
        // Relaxed: a snapshot; only the owner stores non-null, so it is exact for the owner
        // up to a concurrent steal.
        !self.inner.runnext.load(Ordering::Relaxed).is_null()
    }

    /// Another handle for thieves of this queue.
    pub fn stealer(&self) -> Stealer<T> {
        Stealer {
            inner: self.inner.clone(),
        }
    }

    /// Removes every element, `runnext` first then the ring in order, as [`Local::pop`]
    /// would (for a destroyed P, or shutdown). Elements stolen concurrently are not
    /// yielded; dropping the iterator early leaves the rest in the queue.
    pub fn drain(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.pop().map(|(v, _)| v))
    }

    /// Free slots in the ring: a lower bound, since consumers only add room.
    pub(crate) fn free_slots(&self) -> u32 {
        // Relaxed: our own `tail`.
        self.room(self.inner.tail.load(Ordering::Relaxed))
    }

    /// Free slots given our `tail`, from a fresh load of `head` (refreshing the cache).
    #[inline]
    fn room(&self, tail: u32) -> u32 {
        // Acquire: pairs with consumers' Release CAS, so their reads of the slots we are
        // about to reuse happened before our writes (essay).
        let head = self.inner.head.load(Ordering::Acquire);
        self.head_cache.set(head);
        CAP - tail.wrapping_sub(head)
    }

    /// Appends `ptrs` to the ring and publishes them with one store.
    ///
    /// # Safety
    ///
    /// Each pointer must own an element (from `T::into_raw`), and there must be at most
    /// [`Local::free_slots`] of them (read after the last push).
    pub(crate) unsafe fn extend_raw(&self, ptrs: impl Iterator<Item = NonNull<()>>) {
        let inner = &*self.inner;
        // Relaxed: our own `tail`.
        let start = inner.tail.load(Ordering::Relaxed);
        let mut tail = start;
        for p in ptrs {
            // Relaxed: published by the Release store below. The caller's room check made
            // after an Acquire load of `head` ordered the readers of this slot before us.
            inner.slot(tail).store(p.as_ptr(), Ordering::Relaxed);
            tail = tail.wrapping_add(1);
        }
        debug_assert!(tail.wrapping_sub(start) <= CAP);
        // Release: publishes the slots (essay).
        inner.tail.store(tail, Ordering::Release);
    }
}

impl<T: Item> Drop for Local<T> {
    fn drop(&mut self) {
        // Thieves may still hold the ring; popping races them correctly.
        for v in self.drain() {
            drop(v);
        }
    }
}

impl<T: Item> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("len", &self.len())
            .field("has_runnext", &self.has_runnext())
            .field("capacity", &LOCAL_CAPACITY)
            .finish()
    }
}

/// A handle through which other threads steal from a local run queue.
///
/// Cheap to clone (an `Arc`); `Send + Sync`.
pub struct Stealer<T: Item> {
    inner: Arc<Inner<T>>,
}

impl<T: Item> Stealer<T> {
    /// Steals about half of this queue into `dest` and returns one element to run now
    /// (Go: `runqsteal`).
    ///
    /// Takes `ceil(n / 2)` of the `n` elements in the victim's ring (the oldest), moves all
    /// but the newest of them to the tail of `dest`'s ring in one batch, and returns the
    /// newest. It takes no more than fits in `dest` (plus the one returned), so it never
    /// overflows `dest`. Stealing from one's own queue is allowed: it rotates the ring.
    ///
    /// `steal_runnext`: if the victim's ring is empty, also take its `runnext`. Go does
    /// this only on the last of its stealing passes, and first, if the victim is running,
    /// sleeps about 3 µs so the victim can run the element it just readied itself (a
    /// synchronous hand-off takes ~50 ns; stealing it would bounce it to another core).
    /// That back-off is the caller's policy: pass `false` on early passes and `true` after
    /// backing off.
    ///
    /// Returns `None` if there was nothing to take.
    pub fn steal_into(&self, dest: &Local<T>, steal_runnext: bool) -> Option<T> {
        let p = self.grab_into(dest, steal_runnext)?;
        // SAFETY: `grab_into` returns a pointer it claimed from the victim (a ring slot
        // by CAS, or `runnext` by swap), which owns an element.
        Some(unsafe { T::from_raw(p) })
    }

    // Go: runtime.runqgrab (writing straight into the thief's ring, as runqsteal does)
    fn grab_into(&self, dest: &Local<T>, steal_runnext: bool) -> Option<NonNull<()>> {
        let src = &*self.inner;
        let dst = &*dest.inner;
        // `&Local` proves this thread owns `dest` (it is `!Sync`), so it alone writes the
        // slots of `dest` and its `tail`.
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        // One more than the free slots: the newest stolen element is returned, not stored.
        let limit = dest.free_slots() + 1;
        loop {
            // Acquire on both: see the essay (`tail` at least as new as `head`; slots
            // published by `tail`).
            let head = src.head.load(Ordering::Acquire);
            let tail = src.tail.load(Ordering::Acquire);
            let avail = tail.wrapping_sub(head);
            if avail > CAP {
                // Torn pair: the owner and other thieves moved between our loads.
                spin_loop();
                continue;
            }
            let n = (avail - avail / 2).min(limit);
            if n == 0 {
                if steal_runnext {
                    // Relaxed peek: avoid writing the victim's line when there is nothing.
                    if !src.runnext.load(Ordering::Relaxed).is_null() {
                        // Acquire: pairs with the owner's Release swap in `push_next`, so
                        // the element is visible to us.
                        match NonNull::new(src.runnext.swap(ptr::null_mut(), Ordering::Acquire)) {
                            Some(p) => return Some(p),
                            // The owner took it meanwhile and may have pushed more: look
                            // again (Go: `continue`).
                            None => {
                                spin_loop();
                                continue;
                            }
                        }
                    }
                }
                return None;
            }
            for i in 0..n - 1 {
                // Relaxed load: published by the Acquire load of `tail`. Relaxed store:
                // `dest`'s `tail` is published below with Release; these slots are free
                // (`limit`), and a failed CAS leaves them unpublished for the retry.
                let p = src.slot(head.wrapping_add(i)).load(Ordering::Relaxed);
                dst.slot(dst_tail.wrapping_add(i))
                    .store(p, Ordering::Relaxed);
            }
            // Relaxed: as above.
            let last = src.slot(head.wrapping_add(n - 1)).load(Ordering::Relaxed);
            // Release on success: our slot reads happen before the victim's owner reuses
            // them (essay). Relaxed on failure: we reload with Acquire.
            if src
                .head
                .compare_exchange(
                    head,
                    head.wrapping_add(n),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                if n > 1 {
                    // Release: publishes the copied slots to `dest`'s consumers.
                    dst.tail
                        .store(dst_tail.wrapping_add(n - 1), Ordering::Release);
                }
                // SAFETY: the CAS claimed slot `head+n-1`, non-null (invariant 3).
                return Some(unsafe { NonNull::new_unchecked(last) });
            }
            spin_loop();
        }
    }

    /// Number of elements in the victim's ring plus one if its `runnext` is occupied.
    ///
    /// Approximate: a snapshot that may be stale by the time it returns while the owner
    /// pushes or others steal.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True if neither the ring nor `runnext` holds an element (Go: `runqempty`).
    ///
    /// Re-reads until it sees a consistent `tail`, so an element moving from `runnext` to
    /// the ring is not missed; still a snapshot of a moving queue.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T: Item> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Stealer {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Item> fmt::Debug for Stealer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stealer").field("len", &self.len()).finish()
    }
}
