//! The heap a parked goroutine keeps (issue 16: idlemem and park1m; issue 17: conns).
//!
//! A counting global allocator measures the live heap bytes that a few thousand
//! detached goroutines, each parked receiving on its own channel, keep between them,
//! and the test holds that figure to a budget: a change that adds an allocation to
//! every parked goroutine fails it. (The stack, one touched page per goroutine, is
//! `mmap`ed and not counted; `bench-results/profiles/memory-per-goroutine.txt` has
//! the full table.) One test in this binary, so no other test allocates beside it.

use gmp_runtime::chan::bounded;
use gmp_runtime::{__spawn_blocks_in_use, go, sleep, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[path = "support/counting.rs"]
mod counting;
use counting::LIVE;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Live heap bytes: what the counting allocator saw, plus the spawn blocks, which come
/// from gmp's own slabs (128 bytes each), not from the global allocator.
fn live() -> isize {
    LIVE.load(Relaxed) + 128 * __spawn_blocks_in_use() as isize
}

const N: usize = 4000;

/// What the requests of one parked goroutine add up to today (x86-64, glibc; request
/// sizes, not chunks): its G in an `Arc` (104), the zero-capacity channel the test makes
/// for it (104, both counts in one word, no `Arc`) and the exchange slot (24), 232 bytes
/// (a lone waiter's wait-queue entry lives in the channel, its waiter record on its own
/// stack), plus a few bytes each of shared tables that grow with the number of
/// goroutines: 252 measured. The spawn's Job (closure and result slot, a 128-byte block
/// from gmp's slabs, counted here too) is given back when a detached goroutine starts;
/// were it kept, this budget would fail, as would any new allocation of 24 bytes or more
/// per parked goroutine. Given back means to the M's cache of free blocks and the
/// runtime's pool (job.rs), which keep at most 64 + 256 of them here: 10 bytes per
/// goroutine at this N.
const BUDGET: isize = 272;

#[test]
fn a_parked_detached_goroutine_keeps_a_small_heap() {
    // One P: no goroutine starts before the spawner has dropped its `JoinHandle` (with
    // two, the other P could steal and start one first, and it would keep its Job).
    let rt = Runtime::builder().procs(1).build().expect("runtime");
    // SAFETY: neither the main goroutine nor the ones it starts hold thread-local state
    // across a suspension point; they borrow nothing (statics and moved values only).
    let per_goroutine = unsafe {
        rt.block_on(|| {
            static STARTED: AtomicUsize = AtomicUsize::new(0);
            static DONE: AtomicUsize = AtomicUsize::new(0);
            let mut senders = Vec::with_capacity(N);
            let before = live();
            for _ in 0..N {
                let (tx, rx) = bounded::<()>(0);
                go!(move || {
                    STARTED.fetch_add(1, Relaxed);
                    let _ = rx.recv();
                    DONE.fetch_add(1, Relaxed);
                });
                senders.push(tx);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while STARTED.load(Relaxed) < N {
                assert!(
                    Instant::now() < deadline,
                    "the goroutines did not all start"
                );
                sleep(Duration::from_millis(1));
            }
            // All have started; give the last ones time to reach their park.
            sleep(Duration::from_millis(50));
            let after = live();
            drop(senders); // closes every channel: releases every goroutine
            while DONE.load(Relaxed) < N {
                assert!(
                    Instant::now() < deadline,
                    "the goroutines did not all finish"
                );
                sleep(Duration::from_millis(1));
            }
            (after - before) / N as isize
        })
    };
    eprintln!("live heap per parked goroutine: {per_goroutine} bytes (budget {BUDGET})");
    assert!(
        per_goroutine <= BUDGET,
        "a parked goroutine keeps {per_goroutine} bytes of heap, over the budget of {BUDGET}"
    );
}
