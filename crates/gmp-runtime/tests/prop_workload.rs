//! proptest: random workloads on 1–4 Ps — spawn trees, yields, sleeps, blocking calls,
//! channel pipelines, panics — checking that every goroutine finishes exactly once with
//! the result a sequential model computes.

use gmp_runtime::chan::{bounded, unbounded};
use gmp_runtime::{go, Runtime};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    /// Spawn a child running these ops and join it (its result is added).
    Spawn(Vec<Op>),
    /// Spawn a child, join it later (at the end of this goroutine).
    SpawnDetached(Vec<Op>),
    Yield,
    SleepMicros(u16),
    Blocking,
    /// A pipeline of `n` goroutines passing `k` values through channels of capacity `cap`.
    Pipeline {
        n: u8,
        k: u8,
        cap: u8,
    },
    /// A child that panics; its join must be `Err`.
    Panic,
    Add(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        Just(Op::Yield),
        (0u16..300).prop_map(Op::SleepMicros),
        Just(Op::Blocking),
        (1u8..4, 1u8..20, 0u8..3).prop_map(|(n, k, cap)| Op::Pipeline { n, k, cap }),
        Just(Op::Panic),
        any::<u8>().prop_map(Op::Add),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Op::Spawn),
            prop::collection::vec(inner, 0..4).prop_map(Op::SpawnDetached),
        ]
    })
}

/// What a goroutine running `ops` returns, and how many goroutines it starts
/// (itself included).
fn model(ops: &[Op]) -> (u64, usize) {
    let mut v = 0u64;
    let mut n = 1;
    for o in ops {
        match o {
            Op::Spawn(c) | Op::SpawnDetached(c) => {
                let (cv, cn) = model(c);
                v += cv;
                n += cn;
            }
            Op::Pipeline { n: stages, k, .. } => {
                v += (0..*k as u64).map(|x| x + *stages as u64).sum::<u64>();
                n += *stages as usize + 1;
            }
            Op::Panic => n += 1,
            Op::Add(x) => v += *x as u64,
            _ => {}
        }
    }
    (v, n)
}

fn run(ops: Vec<Op>, finished: Arc<AtomicUsize>) -> u64 {
    let mut v = 0u64;
    let mut later = Vec::new();
    for o in ops {
        match o {
            Op::Spawn(c) => {
                let f = finished.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                v += unsafe { go!(move || run(c, f)) }.join().unwrap();
            }
            Op::SpawnDetached(c) => {
                let f = finished.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                later.push(unsafe { go!(move || run(c, f)) });
            }
            Op::Yield => gmp_runtime::yield_now(),
            Op::SleepMicros(us) => gmp_runtime::sleep(Duration::from_micros(us as u64)),
            Op::Blocking => gmp_runtime::blocking(|| std::thread::sleep(Duration::from_micros(50))),
            Op::Pipeline { n, k, cap } => {
                let (tx0, mut rx) = if cap == 0 {
                    bounded::<u64>(0)
                } else {
                    bounded(cap as usize)
                };
                let mut hs = Vec::new();
                for _ in 0..n {
                    let (tx, next_rx) = unbounded::<u64>();
                    let f = finished.clone();
                    // SAFETY: the goroutine holds no thread-local state across a suspension point.
                    hs.push(unsafe {
                        go!(move || {
                            for x in rx.iter() {
                                tx.send(x + 1).unwrap();
                            }
                            f.fetch_add(1, Ordering::SeqCst);
                        })
                    });
                    rx = next_rx;
                }
                let f = finished.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                let producer = unsafe {
                    go!(move || {
                        for x in 0..k as u64 {
                            tx0.send(x).unwrap();
                        }
                        f.fetch_add(1, Ordering::SeqCst);
                    })
                };
                v += rx.iter().sum::<u64>();
                producer.join().unwrap();
                for h in hs {
                    h.join().unwrap();
                }
            }
            Op::Panic => {
                let f = finished.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                let r = unsafe {
                    go!(move || {
                        f.fetch_add(1, Ordering::SeqCst);
                        panic!("planned panic")
                    })
                }
                .join();
                assert!(r.is_err());
            }
            Op::Add(x) => v += x as u64,
        }
    }
    for h in later {
        v += h.join().unwrap();
    }
    finished.fetch_add(1, Ordering::SeqCst);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_workloads_finish_exactly_once(ops in prop::collection::vec(op(), 0..6), procs in 1usize..=4) {
        let (want, goroutines) = model(&ops);
        let rt = Runtime::builder().procs(procs).build().unwrap();
        let finished = Arc::new(AtomicUsize::new(0));
        let f = finished.clone();
        // Silence the planned panics' messages.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        // SAFETY: no thread-local state is held across suspension points.
        let got = unsafe { rt.block_on(move || run(ops, f)) };
        std::panic::set_hook(hook);
        prop_assert_eq!(got, want);
        prop_assert_eq!(finished.load(Ordering::SeqCst), goroutines);
    }
}
