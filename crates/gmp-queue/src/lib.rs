//! Go's run queues, generic over the element: a lock-free per-P ring with a `runnext`
//! slot and work stealing, and the global MPMC queue the rings overflow into.
//!
//! ```
//! use gmp_queue::{local, Global};
//!
//! let global = Global::new();
//! let (owner, stealer) = local::<Box<u32>>();
//!
//! owner.push(Box::new(1), &global); // to the tail of the ring
//! owner.push(Box::new(2), &global);
//! owner.push_next(Box::new(3), &global); // to `runnext`: runs next
//!
//! // The owner pops `runnext` first; `true` says it inherits the time slice.
//! let (value, from_runnext) = owner.pop().unwrap();
//! assert_eq!((*value, from_runnext), (3, true));
//!
//! // Another processor steals half of the ring (here: one of two elements) into its
//! // own ring and gets one element to run at once.
//! let (thief, _thief_stealer) = local::<Box<u32>>();
//! let stolen = stealer.steal_into(&thief, false).unwrap();
//! assert_eq!(*stolen, 1);
//! assert_eq!(owner.len(), 1);
//!
//! // A full ring never blocks: half of it moves to the global queue in one batch.
//! for i in 0..gmp_queue::LOCAL_CAPACITY as u32 {
//!     owner.push(Box::new(i), &global);
//! }
//! assert_eq!(global.len(), gmp_queue::LOCAL_CAPACITY / 2 + 1);
//! ```
//!
//! The crate knows nothing of goroutines. An element is anything that can travel as one
//! non-null pointer ([`Item`]): `Box<T>`, `Arc<T>`, or a runtime's own handle type. The
//! pieces mirror the Go runtime (`runtime/proc.go`):
//!
//! | here | Go |
//! |---|---|
//! | [`Local::push`], [`Local::push_next`] | `runqput(pp, gp, next)`, overflow `runqputslow` |
//! | [`Local::pop`] | `runqget` |
//! | [`Stealer::steal_into`] | `runqsteal` / `runqgrab` |
//! | [`Stealer::is_empty`] | `runqempty` |
//! | [`Global::pop_batch_into`] | `globrunqget` |
//! | [`Global::push_front`] | `globrunqputhead` (a destroyed P's queue, `procresize`) |
//!
//! The algorithms and their memory orderings are explained in the `runq` and `global`
//! module sources. Under `cfg(loom)` the ring shrinks to [`LOCAL_CAPACITY`] = 4 so that
//! loom models can reach its full and wrap-around states.
#![cfg_attr(not(test), warn(missing_docs))]

use std::ptr::NonNull;

mod global;
mod runq;

pub use global::Global;
pub use runq::{local, Local, Stealer};

#[doc(hidden)]
pub use runq::local_starting_at;

/// Slots in a local ring (Go: `len(p.runq)`): 256, or 4 under `cfg(loom)`.
///
/// A power of two, so that wrapping `u32` indices map onto slots with a mask. `runnext`
/// holds one element more.
pub const LOCAL_CAPACITY: usize = if cfg!(loom) { 4 } else { 256 };

const _: () = assert!(LOCAL_CAPACITY.is_power_of_two() && LOCAL_CAPACITY >= 2);

/// An element the queues can hold: a value that converts to one non-null pointer and back.
///
/// The queues store raw pointers, so that a slot and `runnext` are single atomic words (as
/// Go's `guintptr`). They never dereference the pointer: it only has to identify the value
/// until it is turned back into it.
///
/// # Safety
///
/// Implementors guarantee that for every value `v`, `Self::from_raw(v.into_raw())` gives
/// back `v` (the same value, with its ownership), and that the raw pointer stands in for
/// the value in the meantime: holding the pointer owns the value, so the queues may move
/// it to another thread (hence `Send`) and turn it back exactly once.
pub unsafe trait Item: Send + 'static {
    /// Gives up the value for a pointer that owns it.
    fn into_raw(self) -> NonNull<()>;

    /// Takes the value back.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Item::into_raw`] of the same type, and be turned back at most
    /// once.
    unsafe fn from_raw(ptr: NonNull<()>) -> Self;
}

// SAFETY: `Box::leak` gives a unique, non-null pointer to the heap value, and
// `Box::from_raw` of that pointer restores the box that owned it. `T: Send` makes the box
// `Send`.
unsafe impl<T: Send + 'static> Item for Box<T> {
    #[inline]
    fn into_raw(self) -> NonNull<()> {
        NonNull::from(Box::leak(self)).cast()
    }

    #[inline]
    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: per this function's contract `ptr` came from `into_raw` above, i.e. from
        // `Box::leak` of a `Box<T>`, and is turned back once.
        unsafe { Box::from_raw(ptr.cast::<T>().as_ptr()) }
    }
}

// SAFETY: `Arc::into_raw` keeps the reference count of this handle alive behind a
// non-null pointer and `Arc::from_raw` takes that count back. `T: Send + Sync` makes the
// `Arc` `Send`.
unsafe impl<T: Send + Sync + 'static> Item for std::sync::Arc<T> {
    #[inline]
    fn into_raw(self) -> NonNull<()> {
        let ptr = std::sync::Arc::into_raw(self).cast_mut();
        // SAFETY: `Arc::into_raw` points into a live allocation, never null.
        unsafe { NonNull::new_unchecked(ptr) }.cast()
    }

    #[inline]
    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: per this function's contract `ptr` came from `Arc::into_raw` of an
        // `Arc<T>` in `into_raw` above, and is turned back once.
        unsafe { std::sync::Arc::from_raw(ptr.cast::<T>().as_ptr()) }
    }
}
