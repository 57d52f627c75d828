#![doc = include_str!("../README.md")]
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
