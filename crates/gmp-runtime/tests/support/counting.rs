//! A counting global allocator for the tests that measure heap (memory_budget,
//! shutdown_frees): the system allocator, counting the bytes it has handed out and not
//! taken back. A test binary installs it with
//! `#[global_allocator] static ALLOC: counting::Counting = counting::Counting;`
//! (`#[path = "support/counting.rs"] mod counting;`, not through `support`: only these
//! binaries want it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// The allocator.
pub struct Counting;

/// Bytes allocated and not yet freed, by the whole process.
pub static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments; the counter
// changes nothing about the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which we forward.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            // Relaxed: a statistic, read after the goroutines have settled.
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        q
    }
}
