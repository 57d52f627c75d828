//! A goroutine that ends is reused for the next spawn (Go's `gfput`/`gfget`), also when
//! its last act was a blocking channel operation, whose waiter record a thread-local
//! cache of gmp-chan keeps with the goroutine's unparker (gmp-chan context.rs): the
//! runtime makes the cache let go of it when the goroutine ends. Were the unparker kept,
//! every such goroutine's G would stay referenced and the next spawn would allocate a
//! fresh one. One test in this binary: a counting allocator counts every allocation.

use gmp_runtime::chan::bounded;
use gmp_runtime::{go, yield_now, Runtime};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting allocations (not bytes) of at least `MIN` bytes.
struct Counting;

/// Smaller blocks (channel queue slots, a `Vec` growing) are not counted: a G is 200
/// bytes or more, and the test counts G-sized allocations.
const MIN: usize = 192;

static BIG: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments; the counter
// changes nothing about the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= MIN {
            // Relaxed: a statistic, read by the thread that made the allocations.
            BIG.fetch_add(1, Relaxed);
        }
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which we forward.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as in `alloc`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_goroutine_that_ended_blocked_on_a_channel_is_reused() {
    const N: usize = 2000;
    // One P: the child runs on the parent's M, where its record is cached.
    let rt = Runtime::builder().procs(1).build().expect("runtime");
    // SAFETY: the goroutines hold no thread-local state across a suspension point and
    // borrow nothing.
    let big = unsafe {
        rt.block_on(|| {
            // A detached child (no `JoinHandle` left to refer to its G when it ends)
            // blocks receiving (the parent yields to let it run first), is handed a
            // value, and ends (the parent yields again to let it).
            let round = || {
                let (tx, rx) = bounded::<u64>(0);
                drop(go!(move || assert_eq!(rx.recv(), Ok(7))));
                yield_now();
                tx.send(7).unwrap();
                yield_now();
            };
            // Warm the caches (Gs, stacks, spawn blocks, packets).
            for _ in 0..100 {
                round();
            }
            let before = BIG.load(Relaxed);
            for _ in 0..N {
                round();
            }
            BIG.load(Relaxed) - before
        })
    };
    assert!(
        big < N / 10,
        "{big} allocations of {MIN}+ bytes in {N} spawns of a goroutine that ends after \
         a blocking receive: its G is not being reused"
    );
}
