//! A runtime dropped with goroutines still parked gives back their memory: the
//! shutdown unwinds each parked goroutine and releases every reference to its G —
//! including the one an untimed park holds for its waker (g.rs `commit_park`), which no
//! waker will take now. A leaked G would also keep its runtime (`Arc<Sched>`, the Ps, the
//! stack pool) alive. One test in this binary: a counting allocator measures the live
//! heap of the whole process.

use gmp_runtime::chan::{bounded, Sender};
use gmp_runtime::{go, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[path = "support/counting.rs"]
mod counting;
use counting::LIVE;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

const N: usize = 2000;

#[test]
fn a_dropped_runtime_frees_its_parked_goroutines() {
    static PARKED: AtomicUsize = AtomicUsize::new(0);
    // A first runtime warms what stays for the process (thread-locals of this thread,
    // lazily made statics), so that the second one's leftovers are measured alone.
    let round = || -> Vec<Sender<()>> {
        let rt = Runtime::builder().procs(2).build().expect("runtime");
        // SAFETY: the goroutines hold no thread-local state across a suspension point
        // and borrow nothing.
        let senders = unsafe {
            rt.block_on(|| {
                PARKED.store(0, Relaxed);
                let senders: Vec<Sender<()>> = (0..N)
                    .map(|_| {
                        let (tx, rx) = bounded::<()>(0);
                        drop(go!(move || {
                            PARKED.fetch_add(1, Relaxed);
                            let _ = rx.recv();
                        }));
                        tx
                    })
                    .collect();
                let deadline = Instant::now() + Duration::from_secs(30);
                while PARKED.load(Relaxed) < N {
                    assert!(Instant::now() < deadline, "the goroutines did not start");
                    gmp_runtime::sleep(Duration::from_millis(1));
                }
                // Let the last ones reach their park.
                gmp_runtime::sleep(Duration::from_millis(20));
                senders
            })
        };
        // The goroutines are parked in `recv` (their senders are alive): the drop
        // unwinds them.
        drop(rt);
        senders
    };
    drop(round());
    let before = LIVE.load(Relaxed);
    drop(round());
    let after = LIVE.load(Relaxed);
    let left = after - before;
    // Each G alone is ~200 bytes: 2,000 leaked ones would leave ~400 KB, plus their
    // runtime's. The allowance covers the allocator-independent noise (a thread-local
    // of a new M thread that outlives the join, caches bounded by size).
    assert!(
        left < 64 * 1024,
        "{left} bytes still allocated after dropping a runtime with {N} parked goroutines"
    );
}
