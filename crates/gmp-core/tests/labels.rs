//! A coroutine's label name lives in its stack's header (a `Box<str>` leaked by
//! `Coroutine::set_label`, so that `Coroutine` stays small: a runtime's G carries one per
//! goroutine). Every end of the coroutine must free it, and relabelling must free the
//! old one. A counting global allocator checks that no name outlives its coroutine; one
//! test in this binary, so nothing else allocates beside it.

use gmp_core::{Coroutine, Resume, Stack};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

struct Counting;

/// Bytes allocated and not yet freed, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments; the counter
// changes nothing about the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which we forward.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            // Relaxed: a statistic, read by this thread only.
            LIVE.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn stack() -> Stack {
    Stack::new(64 * 1024).expect("stack")
}

/// One coroutine of each end, labelled twice: dropped fresh, dropped while suspended
/// (a forced unwind), finished then dropped, and taken apart by `into_stack`.
fn every_end() {
    let mut fresh = Coroutine::<()>::new(stack(), |_| ());
    fresh.set_label(1, Some("first name"));
    fresh.set_label(1, Some("second name"));
    assert_eq!(fresh.name(), Some("second name"));
    drop(fresh);

    let mut suspended = Coroutine::new(stack(), |s| s.suspend());
    suspended.set_label(2, Some("suspended"));
    assert!(matches!(suspended.resume(), Resume::Suspended));
    assert_eq!(suspended.name(), Some("suspended"));
    drop(suspended);

    let mut finished = Coroutine::new(stack(), |_| 5);
    finished.set_label(3, Some("finished"));
    assert!(matches!(finished.resume(), Resume::Returned(5)));
    assert_eq!(finished.name(), Some("finished"));
    drop(finished);

    let mut recycled = Coroutine::new(stack(), |s| s.suspend());
    recycled.set_label(4, Some("recycled"));
    assert!(matches!(recycled.resume(), Resume::Suspended));
    let st = recycled.into_stack().expect("stack back");
    // The header, and the name it recorded, was on this stack: a new coroutine on it
    // starts unlabelled.
    let mut again = Coroutine::<()>::new(st, |_| ());
    assert_eq!(again.name(), None);
    again.set_label(5, None);
    assert_eq!(again.name(), None);
}

#[test]
fn labels_are_freed_on_every_end() {
    // Warm up (the forced unwind's first panic, thread-locals, the stack code's tables).
    every_end();
    let before = LIVE.load(Relaxed);
    for _ in 0..1000 {
        every_end();
    }
    let grew = LIVE.load(Relaxed) - before;
    // Five names of 9-11 bytes per round: a lost one would leave ~10 KB.
    assert!(
        grew < 1000,
        "{grew} bytes still allocated after 1000 rounds: a label's name outlived its coroutine"
    );
}
