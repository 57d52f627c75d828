//! An unbounded channel gives back the memory of a burst as it drains (issue 10, finding
//! 11: crossbeam-channel's `golang.rs` `select2` measured the growth of allocated bytes
//! between two identical rounds, and failed when the second round's backlog crossed a
//! capacity the first had not reached, because the queue kept its high-water capacity for
//! good).
//!
//! Alone in its binary: it counts every allocation of the process.

use gmp_chan::unbounded;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_drained_burst_gives_its_memory_back() {
    const BURST: u64 = 100_000;
    let (s, r) = unbounded::<u64>();
    s.send(0).unwrap();
    assert_eq!(r.recv(), Ok(0));
    let before = LIVE.load(Ordering::SeqCst);
    for i in 0..BURST {
        s.send(i).unwrap();
    }
    let peak = LIVE.load(Ordering::SeqCst);
    assert!(
        peak - before >= 8 * BURST as usize,
        "the burst was not queued"
    );
    for i in 0..BURST {
        assert_eq!(r.try_recv(), Ok(i));
    }
    let after = LIVE.load(Ordering::SeqCst);
    // The queue keeps at most a small fixed capacity once empty (not the burst's 800 kB).
    assert!(
        after <= before + 4096,
        "an empty unbounded channel still holds {} bytes after a burst",
        after.saturating_sub(before)
    );
}
