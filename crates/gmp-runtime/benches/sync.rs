//! `gmp_runtime::sync` measured with criterion.
//!
//! - `mutex_uncontended`: one lock + unlock on one thread, ours against `parking_lot` and
//!   `std` (the target: ours ≤ parking_lot's; both are one CAS each way).
//! - `mutex_contended`: 1,000 goroutines on 2 Ps, each taking the lock `OPS` times around a
//!   short critical section (an increment), ours against `std::sync::Mutex` used from the
//!   same goroutines (which blocks the M while it waits) and parking_lot's (the same).
//! - `wait_group`: 1,000 goroutines each `done()` once, the main goroutine `wait()`s.
//! - `semaphore`: 1,000 goroutines on 2 Ps share 4 permits, `OPS` acquire/release each.
//!
//! Run: `cargo bench -p gmp-runtime --bench sync` (about a minute; only on a quiet
//! machine). The contended cases report throughput in lock operations per second.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gmp_runtime::sync::{Mutex, Semaphore, WaitGroup};
use gmp_runtime::{JoinHandle, Runtime};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GOROUTINES: u64 = 1000;
const OPS: u64 = 100;

/// Starts a goroutine.
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: no goroutine here holds thread-local state across a suspension point (the
    // locks' guards have no owner thread, and a std guard is never held across one).
    unsafe { gmp_runtime::spawn(f) }
}

fn rt(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .build()
        .expect("start a runtime")
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(1));
    let ours = Mutex::new(0u64);
    g.bench_function("gmp", |b| b.iter(|| *black_box(&ours).lock() += 1));
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| b.iter(|| *black_box(&pl).lock() += 1));
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1)
    });
    g.finish();
}

/// A lock the contended benchmark can drive: ours, std's and parking_lot's.
trait Lock: Send + Sync + 'static {
    fn new() -> Self;
    fn incr(&self);
    fn get(&self) -> u64;
}

impl Lock for Mutex<u64> {
    fn new() -> Self {
        Mutex::new(0)
    }
    fn incr(&self) {
        *self.lock() += 1;
    }
    fn get(&self) -> u64 {
        *self.lock()
    }
}

impl Lock for std::sync::Mutex<u64> {
    fn new() -> Self {
        std::sync::Mutex::new(0)
    }
    fn incr(&self) {
        *self.lock().unwrap() += 1;
    }
    fn get(&self) -> u64 {
        *self.lock().unwrap()
    }
}

impl Lock for parking_lot::Mutex<u64> {
    fn new() -> Self {
        parking_lot::Mutex::new(0)
    }
    fn incr(&self) {
        *self.lock() += 1;
    }
    fn get(&self) -> u64 {
        *self.lock()
    }
}

/// `GOROUTINES` goroutines × `OPS` increments under one lock; returns the elapsed time.
fn contend<L: Lock>(rt: &Runtime) -> Duration {
    // SAFETY: the goroutines hold no thread-local state across suspension points (a std
    // guard is never held across one: the critical section is an increment).
    unsafe {
        rt.block_on(|| {
            let m = Arc::new(L::new());
            let wg = Arc::new(WaitGroup::new());
            wg.add(GOROUTINES as isize);
            let t = Instant::now();
            for _ in 0..GOROUTINES {
                let (m, wg) = (m.clone(), wg.clone());
                go(move || {
                    for _ in 0..OPS {
                        m.incr();
                    }
                    wg.done();
                });
            }
            wg.wait();
            let e = t.elapsed();
            assert_eq!(m.get(), GOROUTINES * OPS);
            e
        })
    }
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_contended");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    g.throughput(Throughput::Elements(GOROUTINES * OPS));
    let rt2 = rt(2);
    g.bench_function("gmp/1000g_2p", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| contend::<Mutex<u64>>(&rt2)).sum())
    });
    g.bench_function("std_from_goroutines/1000g_2p", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| contend::<std::sync::Mutex<u64>>(&rt2))
                .sum()
        })
    });
    g.bench_function("parking_lot_from_goroutines/1000g_2p", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| contend::<parking_lot::Mutex<u64>>(&rt2))
                .sum()
        })
    });
    g.finish();
}

fn wait_group_and_semaphore(c: &mut Criterion) {
    let mut g = c.benchmark_group("wait_group");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    g.throughput(Throughput::Elements(GOROUTINES));
    let rt2 = rt(2);
    g.bench_function("1000g_2p", |b| {
        b.iter_custom(|iters| {
            // SAFETY: as in `contend`.
            unsafe {
                rt2.block_on(|| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        let wg = Arc::new(WaitGroup::new());
                        wg.add(GOROUTINES as isize);
                        for _ in 0..GOROUTINES {
                            let wg = wg.clone();
                            go(move || wg.done());
                        }
                        wg.wait();
                    }
                    t.elapsed()
                })
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("semaphore");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    g.throughput(Throughput::Elements(GOROUTINES * OPS));
    g.bench_function("4_permits/1000g_2p", |b| {
        b.iter_custom(|iters| {
            // SAFETY: as in `contend`.
            unsafe {
                rt2.block_on(|| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        let s = Arc::new(Semaphore::new(4));
                        let wg = Arc::new(WaitGroup::new());
                        wg.add(GOROUTINES as isize);
                        for _ in 0..GOROUTINES {
                            let (s, wg) = (s.clone(), wg.clone());
                            go(move || {
                                for _ in 0..OPS {
                                    let p = s.acquire();
                                    black_box(&p);
                                    drop(p);
                                }
                                wg.done();
                            });
                        }
                        wg.wait();
                    }
                    t.elapsed()
                })
            }
        })
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended, wait_group_and_semaphore);
criterion_main!(benches);
