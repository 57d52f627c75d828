//! Async interop costs (issue 13), measured with criterion:
//!
//! - `block_on` of a ready future, in a goroutine and on a plain thread;
//! - a ping-pong over tokio `oneshot` channels between a goroutine (in `block_on`) and a
//!   tokio task, beside the same ping-pong between two tokio tasks (target: within 1.5×);
//! - `recv_async` throughput: 4 goroutines send into a gmp channel that one tokio task
//!   drains with `recv_async`, beside 4 tokio tasks and one receiver on
//!   `tokio::sync::mpsc`.
//!
//! Run: `cargo bench -p gmp-runtime --bench async` (about a minute).

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gmp_runtime::future::block_on;
use gmp_runtime::{JoinHandle, Runtime};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Spawns a goroutine.
fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: no goroutine here holds thread-local state across a suspension point
    // (tokio's context is entered per poll, by `in_context`, never across a park).
    unsafe { gmp_runtime::spawn(f) }
}

fn gmp(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .build()
        .expect("start a runtime")
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("start tokio")
}

fn ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("block_on_ready");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(1));
    let rt = gmp(1);
    g.bench_function("goroutine", |b| {
        b.iter_custom(|iters| {
            // SAFETY: no thread-local state is held across a suspension point.
            unsafe {
                rt.block_on(move || {
                    let t = Instant::now();
                    for i in 0..iters {
                        black_box(block_on(async move { black_box(i) }));
                    }
                    t.elapsed()
                })
            }
        })
    });
    g.bench_function("thread", |b| {
        b.iter(|| black_box(block_on(async { black_box(1u64) })))
    });
    g.finish();
}

/// A ping carries the value and where to send the pong.
struct Msg(u64, oneshot::Sender<Msg>);

/// The answering side: receives a ping, answers with value + 1 and the next sender.
async fn ponger(mut rx: oneshot::Receiver<Msg>) {
    while let Ok(Msg(v, back)) = rx.await {
        let (tx, next) = oneshot::channel();
        if back.send(Msg(v + 1, tx)).is_err() {
            return;
        }
        rx = next;
    }
}

/// `n` round trips from the caller's side, awaiting each pong with `wait`.
fn ping(n: u64, mut to: oneshot::Sender<Msg>, wait: impl Fn(oneshot::Receiver<Msg>) -> Msg) {
    for i in 0..n {
        let (tx, rx) = oneshot::channel();
        assert!(to.send(Msg(i, tx)).is_ok());
        let Msg(v, next) = wait(rx);
        assert_eq!(v, i + 1);
        to = next;
    }
}

fn ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("oneshot_ping_pong");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    g.throughput(Throughput::Elements(1)); // one round trip
    let trt = tokio_rt(1);
    let rt = gmp(1);
    g.bench_function("goroutine<->tokio_task", |b| {
        b.iter_custom(|iters| {
            let (to, first) = oneshot::channel();
            let pong = trt.spawn(ponger(first));
            // SAFETY: no thread-local state is held across a suspension point.
            let d = unsafe {
                rt.block_on(move || {
                    let t = Instant::now();
                    ping(iters, to, |rx| block_on(rx).expect("pong"));
                    t.elapsed()
                })
            };
            trt.block_on(pong).expect("ponger");
            d
        })
    });
    // The cross-thread reference: a plain OS thread in place of the goroutine (every
    // round trip then wakes a sleeping thread on each side, as the mixed case does).
    g.bench_function("thread<->tokio_task", |b| {
        b.iter_custom(|iters| {
            let (to, first) = oneshot::channel();
            let pong = trt.spawn(ponger(first));
            let t = Instant::now();
            ping(iters, to, |rx| block_on(rx).expect("pong"));
            let d = t.elapsed();
            trt.block_on(pong).expect("ponger");
            d
        })
    });
    let trt2 = tokio_rt(2);
    g.bench_function("tokio_task<->tokio_task", |b| {
        b.iter_custom(|iters| {
            trt2.block_on(async move {
                let (to, first) = oneshot::channel();
                let pong = tokio::spawn(ponger(first));
                let pinger = tokio::spawn(async move {
                    let t = Instant::now();
                    let mut to = to;
                    for i in 0..iters {
                        let (tx, rx) = oneshot::channel();
                        assert!(to.send(Msg(i, tx)).is_ok());
                        let Msg(v, next) = rx.await.expect("pong");
                        assert_eq!(v, i + 1);
                        to = next;
                    }
                    t.elapsed()
                });
                let d = pinger.await.expect("pinger");
                pong.await.expect("ponger");
                d
            })
        })
    });
    g.finish();
}

const MSGS: u64 = 100_000;

fn recv_async(c: &mut Criterion) {
    let mut g = c.benchmark_group("recv_async_4_to_1");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(10);
    g.throughput(Throughput::Elements(MSGS));
    let trt = tokio_rt(1);
    let rt = gmp(2);
    g.bench_function("goroutines->gmp_chan->tokio_task", |b| {
        b.iter(|| {
            let (tx, rx) = gmp_runtime::chan::bounded::<u64>(1024);
            let task = trt.spawn(async move {
                let mut sum = 0u64;
                while let Ok(v) = rx.recv_async().await {
                    sum += v;
                }
                sum
            });
            // SAFETY: no thread-local state is held across a suspension point.
            unsafe {
                rt.block_on(move || {
                    let hs: Vec<_> = (0..4)
                        .map(|_| {
                            let tx = tx.clone();
                            go(move || {
                                for i in 0..MSGS / 4 {
                                    tx.send(i).expect("send");
                                }
                            })
                        })
                        .collect();
                    drop(tx);
                    for h in hs {
                        h.join().expect("sender");
                    }
                })
            };
            black_box(trt.block_on(task).expect("receiver"))
        })
    });
    let trt2 = tokio_rt(2);
    g.bench_function("tokio_tasks->tokio_mpsc->tokio_task", |b| {
        b.iter(|| {
            trt2.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
                let task = tokio::spawn(async move {
                    let mut sum = 0u64;
                    while let Some(v) = rx.recv().await {
                        sum += v;
                    }
                    sum
                });
                for _ in 0..4 {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for i in 0..MSGS / 4 {
                            tx.send(i).await.expect("send");
                        }
                    });
                }
                drop(tx);
                black_box(task.await.expect("receiver"))
            })
        })
    });
    g.finish();
}

criterion_group!(benches, ready, ping_pong, recv_async);
criterion_main!(benches);
