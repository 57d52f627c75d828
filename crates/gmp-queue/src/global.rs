//! The global run queue (Go: `sched.runq` under `sched.lock`).
//!
//! # Design
//!
//! A `VecDeque` of element pointers behind one mutex, plus the length in an atomic that is
//! updated before every unlock. Go uses an intrusive linked list through `g.schedlink`; a
//! generic crate cannot thread a link through its elements, and a ring buffer is the next
//! best thing: once it has grown to the high-water mark, a push or pop is O(1) with no
//! allocation, and batches (129 from an overflowing local ring, a batch into a local ring)
//! take the lock once.
//!
//! The queue is fed rarely compared to the local rings — overflow, yields, preemption,
//! elements readied by threads that own no ring — and read on a slow path, so a lock is
//! what Go uses too. What must be fast is asking "is there anything?" on every scheduling
//! round: that is [`Global::len`], a lock-free load of the atomic length.
//!
//! # Orderings
//!
//! The length is written with **SeqCst** (inside the lock) and read with **SeqCst**. The
//! lock orders the contents; the length's only job is the lock-free emptiness check, and
//! SeqCst lets a runtime's wake-up protocol (push, then check for idle workers / drop the
//! spinning state, then re-check the queue; go-runtime.md Implications §8) rely on it
//! without reasoning about extra fences. On x86-64 the load is a plain move and the store
//! one `xchg` per locked operation.
//!
//! # Memory
//!
//! The ring grows to the longest the queue has been, and a burst (a million spawns
//! from outside the runtime, or overflowing a local ring) can make that megabytes. A
//! pop that empties a ring of more than [`KEEP`] slots swaps in an empty one and frees
//! the old outside the lock, so a burst's ring does not stay for the process's life
//! (Go's intrusive list needs no memory of its own).
//!
//! # Fairness (Go: `globrunqget`)
//!
//! [`Global::pop_batch_into`] takes `min(len, len / nprocs + 1, capacity / 2)` elements:
//! enough to amortize the lock, few enough that every processor gets a share and the
//! local ring keeps room.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use gmp_core::sync::atomic::{AtomicUsize, Ordering};
use gmp_core::sync::{Mutex, MutexGuard};

use crate::runq::HALF;
use crate::{Item, Local};

/// Slots a drained ring keeps (32 KiB of pointers): beyond, emptying it frees it.
pub(crate) const KEEP: usize = 4096;

/// The global run queue: multi-producer, multi-consumer, FIFO.
///
/// ```
/// use gmp_queue::{local, Global};
///
/// let global = Global::new();
/// global.push_batch((0..10).map(Box::new));
/// global.push_front(Box::new(-1));
/// assert_eq!(global.pop().map(|v| *v), Some(-1));
///
/// // A fair share for one of 4 processors: 10 / 4 + 1 = 3, one of them to run now.
/// let (owner, _) = local();
/// assert_eq!(global.pop_batch_into(&owner, 4).map(|v| *v), Some(0));
/// assert_eq!(owner.len(), 2);
/// assert_eq!(global.len(), 7);
/// ```
///
/// Dropping it drops every element still in it.
pub struct Global<T: Item> {
    queue: Mutex<VecDeque<NonNull<()>>>,
    /// `queue.len()` as of the last unlock.
    len: AtomicUsize,
    _owns: PhantomData<T>,
}

// SAFETY: the queue holds `T`s only as owned raw pointers behind a mutex and hands each
// one out by value to exactly one caller; moving a `T` between threads needs only
// `T: Send`, which `Item` requires.
unsafe impl<T: Item> Send for Global<T> {}
// SAFETY: as for `Send`: shared access only moves whole `T`s, under the mutex.
unsafe impl<T: Item> Sync for Global<T> {}

/// The locked queue; publishes the length when dropped, so no exit path (panics included)
/// leaves it stale.
struct Locked<'a> {
    queue: MutexGuard<'a, VecDeque<NonNull<()>>>,
    len: &'a AtomicUsize,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SeqCst: see the module essay.
        self.len.store(self.queue.len(), Ordering::SeqCst);
    }
}

impl Deref for Locked<'_> {
    type Target = VecDeque<NonNull<()>>;
    fn deref(&self) -> &Self::Target {
        &self.queue
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.queue
    }
}

impl<T: Item> Global<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Global {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            _owns: PhantomData,
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            queue: self.queue.lock(),
            len: &self.len,
        }
    }

    /// Unlocks `q`; if that pop emptied a ring larger than [`KEEP`] slots, frees the
    /// ring after the unlock (module docs).
    fn unlock_after_pop(mut q: Locked<'_>) {
        let drained = (q.is_empty() && q.capacity() > KEEP).then(|| std::mem::take(&mut *q.queue));
        drop(q);
        drop(drained);
    }

    /// Pushes to the tail (Go: `globrunqput`).
    pub fn push(&self, value: T) {
        let p = value.into_raw();
        self.lock().push_back(p);
    }

    /// Pushes to the head, so it is popped first (Go: `globrunqputhead`; a destroyed P's
    /// queue goes there in `procresize`).
    pub fn push_front(&self, value: T) {
        let p = value.into_raw();
        self.lock().push_front(p);
    }

    /// Pushes every element of `values` to the tail in order, under one lock
    /// (Go: `globrunqputbatch`).
    pub fn push_batch(&self, values: impl IntoIterator<Item = T>) {
        let mut q = self.lock();
        for v in values {
            q.push_back(v.into_raw());
        }
    }

    /// `push_batch` for pointers that already own elements (the local ring's overflow).
    pub(crate) fn push_raw_batch(&self, ptrs: impl Iterator<Item = NonNull<()>>) {
        let mut q = self.lock();
        q.extend(ptrs);
    }

    /// Pops from the head.
    pub fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let mut q = self.lock();
        let p = q.pop_front();
        Self::unlock_after_pop(q);
        let p = p?;
        // SAFETY: every pointer in the queue owns an element (from `into_raw` here or a
        // claimed ring slot), and popping removed it from the queue.
        Some(unsafe { T::from_raw(p) })
    }

    /// Takes a fair share into `dest` and returns one of them to run now
    /// (Go: `globrunqget`).
    ///
    /// Takes `min(len, len / nprocs + 1, LOCAL_CAPACITY / 2)` elements from the head, and
    /// no more than fit in `dest`'s ring plus the one returned (Go relies on the ring
    /// being empty here; a caller that keeps a full ring gets just one). The first is
    /// returned, the rest go to the tail of `dest`'s ring in order, published at once.
    ///
    /// # Panics
    ///
    /// If `nprocs` is 0: it is the number of processors sharing the queue.
    ///
    /// [`LOCAL_CAPACITY`]: crate::LOCAL_CAPACITY
    pub fn pop_batch_into(&self, dest: &Local<T>, nprocs: usize) -> Option<T> {
        assert!(
            nprocs > 0,
            "Global::pop_batch_into: nprocs must be at least 1"
        );
        if self.is_empty() {
            return None;
        }
        let mut q = self.lock();
        let len = q.len();
        let room = dest.free_slots() as usize + 1;
        let n = len.min(len / nprocs + 1).min(HALF as usize).min(room);
        let first = q.pop_front()?;
        // SAFETY: the pointers own elements (as in `pop`) and are removed from the queue;
        // `n - 1` is within `dest.free_slots()`, read just above, and `&Local` proves this
        // thread owns `dest`.
        unsafe { dest.extend_raw(q.drain(..n - 1)) };
        Self::unlock_after_pop(q);
        // SAFETY: as in `pop`.
        Some(unsafe { T::from_raw(first) })
    }

    /// Number of elements, read without the lock.
    ///
    /// Approximate: exact as of the last unlock, and stale as soon as another thread
    /// pushes or pops.
    pub fn len(&self) -> usize {
        // SeqCst: see the module essay.
        self.len.load(Ordering::SeqCst)
    }

    /// True if [`Global::len`] is 0 (the same snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns every element, in order.
    pub fn drain(&self) -> Vec<T> {
        let mut q = self.lock();
        q.drain(..)
            // SAFETY: as in `pop`.
            .map(|p| unsafe { T::from_raw(p) })
            .collect()
    }
}

impl<T: Item> Default for Global<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Item> Drop for Global<T> {
    fn drop(&mut self) {
        drop(self.drain());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A drained ring larger than `KEEP` is freed; a small one is kept.
    #[test]
    fn a_drained_burst_frees_its_ring() {
        let global = Global::new();
        global.push_batch((0..3 * KEEP).map(Box::new));
        assert!(global.queue.lock().capacity() >= 3 * KEEP);
        for i in 0..3 * KEEP {
            assert_eq!(global.pop().map(|v| *v), Some(i));
        }
        assert_eq!(global.queue.lock().capacity(), 0, "the burst's ring stayed");
        global.push_batch((0..10).map(Box::new));
        while global.pop().is_some() {}
        assert!(
            global.queue.lock().capacity() >= 10,
            "a small ring was freed"
        );
        // Through batches into a local ring as well.
        global.push_batch((0..3 * KEEP).map(Box::new));
        let (owner, _) = crate::local();
        while let Some(v) = global.pop_batch_into(&owner, 1) {
            drop(v);
            while owner.pop().is_some() {}
        }
        assert_eq!(global.queue.lock().capacity(), 0, "the burst's ring stayed");
    }
}

impl<T: Item> fmt::Debug for Global<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Global").field("len", &self.len()).finish()
    }
}
