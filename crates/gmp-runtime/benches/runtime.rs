//! The runtime's costs, measured with criterion: spawning and joining goroutines (from a
//! goroutine and from a plain thread), `yield_now`, an unbuffered-channel ping-pong on 1
//! and 2 Ps, and skynet at 100,000 leaves. Where `std` has the same operation it runs
//! beside ours as the baseline (a thread spawn, a ping-pong between two OS threads).
//!
//! Run: `cargo bench -p gmp-runtime --bench runtime` (a few minutes; sample sizes are
//! small on purpose). Every measured body runs inside `Runtime::block_on`, as Go's `main`
//! would, except the "from a thread" cases, which are about exactly that.
//!
//! The runtimes are built once per group and reused across samples, so thread start-up
//! and stack-pool warm-up are not part of the numbers.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use gmp_runtime::chan::{bounded, Sender};
use gmp_runtime::{go, yield_now, Runtime};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .build()
        .expect("start a runtime")
}

/// Spawn + join: one at a time (the latency of a goroutine's whole life) and in batches
/// of 1,000 (throughput: start all, then join all); then from a plain OS thread.
fn spawn(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.throughput(Throughput::Elements(1));
    let rt2 = rt(2);

    g.bench_function("in_runtime/one_at_a_time", |b| {
        b.iter_custom(|iters| {
            // SAFETY: the goroutines keep no thread-local state across suspension points.
            unsafe {
                rt2.block_on(|| {
                    let t = Instant::now();
                    for i in 0..iters {
                        black_box(go!(move || black_box(i)).join().unwrap());
                    }
                    t.elapsed()
                })
            }
        })
    });

    const BATCH: u64 = 1000;
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("in_runtime/batch_1000", |b| {
        b.iter_custom(|iters| {
            // SAFETY: as above.
            unsafe {
                rt2.block_on(|| {
                    let mut hs = Vec::with_capacity(BATCH as usize);
                    let t = Instant::now();
                    for _ in 0..iters {
                        hs.extend((0..BATCH).map(|i| go!(move || black_box(i))));
                        for h in hs.drain(..) {
                            black_box(h.join().unwrap());
                        }
                    }
                    t.elapsed()
                })
            }
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("from_thread/gmp", |b| {
        // SAFETY: as above.
        b.iter(|| unsafe { black_box(rt2.spawn(|| black_box(7u64)).join().unwrap()) })
    });
    g.bench_function("from_thread/std_thread", |b| {
        b.iter(|| black_box(std::thread::spawn(|| black_box(7u64)).join().unwrap()))
    });
    g.finish();
}

/// Two goroutines on one P each call `yield_now` in turn: the cost of one yield
/// (a switch to the scheduler, a run-queue round trip, a switch back).
fn yields(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_now");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.throughput(Throughput::Elements(1));
    let rt1 = rt(1);
    g.bench_function("2_goroutines_1P", |b| {
        b.iter_custom(|iters| {
            // Two goroutines share the `iters` yields of this sample.
            let half = iters.div_ceil(2);
            // SAFETY: the goroutines keep no thread-local state across suspension points.
            let took = unsafe {
                rt1.block_on(|| {
                    let t = Instant::now();
                    let hs: Vec<_> = (0..2)
                        .map(|_| {
                            go!(move || {
                                for _ in 0..half {
                                    yield_now();
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                    t.elapsed()
                })
            };
            // Report per `iters` yields although 2 * half were made (differs by ≤ 1).
            took.mul_f64(iters as f64 / (2 * half) as f64)
        })
    });
    g.finish();
}

/// Round trips of one integer over two unbuffered channels (Go's rendezvous), between
/// two goroutines on 1 and on 2 Ps, and between two OS threads over the same channels.
fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong_unbuffered");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g.throughput(Throughput::Elements(1));
    for procs in [1, 2] {
        let rt = rt(procs);
        g.bench_with_input(
            BenchmarkId::new("goroutines", format!("{procs}P")),
            &procs,
            |b, _| {
                b.iter_custom(|iters| {
                    // SAFETY: the goroutines keep no thread-local state across
                    // suspension points.
                    unsafe { rt.block_on(|| pingpong_round_trips(iters, |f| drop(go!(f)))) }
                })
            },
        );
    }
    g.bench_function("os_threads", |b| {
        b.iter_custom(|iters| pingpong_round_trips(iters, |f| drop(std::thread::spawn(f))))
    });
    g.finish();
}

/// `iters` round trips with an echoing peer started by `start`; returns the time taken.
fn pingpong_round_trips(iters: u64, start: impl FnOnce(Box<dyn FnOnce() + Send>)) -> Duration {
    let (ping_tx, ping_rx) = bounded::<u64>(0);
    let (pong_tx, pong_rx) = bounded::<u64>(0);
    start(Box::new(move || {
        for v in ping_rx {
            if pong_tx.send(v + 1).is_err() {
                return;
            }
        }
    }));
    let t = Instant::now();
    for i in 0..iters {
        ping_tx.send(i).unwrap();
        assert_eq!(pong_rx.recv().unwrap(), i + 1);
    }
    let took = t.elapsed();
    drop(ping_tx); // ends the echoing peer
    took
}

/// Skynet at 100,000 leaves (111,111 goroutines, sums through channels of capacity 10).
fn skynet(c: &mut Criterion) {
    const LEAVES: u64 = 100_000;
    let mut g = c.benchmark_group("skynet");
    g.sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(10);
    let rt2 = rt(2);
    g.bench_function("100k_leaves_2P", |b| {
        b.iter(|| {
            // SAFETY: the tree's goroutines keep no thread-local state across
            // suspension points.
            let sum = unsafe {
                rt2.block_on(|| {
                    let (tx, rx) = bounded(1);
                    go!(move || skynet_node(tx, 0, LEAVES));
                    rx.recv().unwrap()
                })
            };
            assert_eq!(sum, LEAVES * (LEAVES - 1) / 2);
        })
    });
    g.finish();
}

fn skynet_node(out: Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        out.send(num).unwrap();
        return;
    }
    let (tx, rx) = bounded(10);
    let child = size / 10;
    for i in 0..10 {
        let tx = tx.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe { go!(move || skynet_node(tx, num + i * child, child)) };
    }
    drop(tx);
    out.send(rx.iter().take(10).sum()).unwrap();
}

criterion_group!(benches, spawn, yields, pingpong, skynet);
criterion_main!(benches);
