//! Channel throughput and latency on OS threads: gmp-chan against crossbeam-channel and
//! `std::sync::mpsc`, every peer behind the one [`Peer`] trait (adding a peer is one impl).
//!
//! Each measurement moves `MSGS` `u64`s (or `ROUNDS` round trips) between freshly spawned
//! threads; criterion's throughput is set per message, so time per element is ns/msg.
//! Run: `cargo bench -p gmp-chan --bench chan`.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::thread;
use std::time::{Duration, Instant};

const MSGS: u64 = 200_000;
const ROUNDS: u64 = 20_000;

/// A channel implementation under test.
trait Peer: 'static {
    const NAME: &'static str;
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx);
    fn unbounded() -> (Self::Tx, Self::Rx);
    fn clone_tx(tx: &Self::Tx) -> Self::Tx;
    /// `None` if the peer has no multi-consumer channel.
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx>;
    fn send(tx: &Self::Tx, v: u64);
    fn recv(rx: &Self::Rx) -> Option<u64>;
}

struct Gmp;
impl Peer for Gmp {
    const NAME: &'static str = "gmp-chan";
    type Tx = gmp_chan::Sender<u64>;
    type Rx = gmp_chan::Receiver<u64>;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        gmp_chan::bounded(cap)
    }
    fn unbounded() -> (Self::Tx, Self::Rx) {
        gmp_chan::unbounded()
    }
    fn clone_tx(tx: &Self::Tx) -> Self::Tx {
        tx.clone()
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    #[inline]
    fn send(tx: &Self::Tx, v: u64) {
        tx.send(v).unwrap();
    }
    #[inline]
    fn recv(rx: &Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

struct Crossbeam;
impl Peer for Crossbeam {
    const NAME: &'static str = "crossbeam";
    type Tx = crossbeam_channel::Sender<u64>;
    type Rx = crossbeam_channel::Receiver<u64>;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        crossbeam_channel::bounded(cap)
    }
    fn unbounded() -> (Self::Tx, Self::Rx) {
        crossbeam_channel::unbounded()
    }
    fn clone_tx(tx: &Self::Tx) -> Self::Tx {
        tx.clone()
    }
    fn clone_rx(rx: &Self::Rx) -> Option<Self::Rx> {
        Some(rx.clone())
    }
    #[inline]
    fn send(tx: &Self::Tx, v: u64) {
        tx.send(v).unwrap();
    }
    #[inline]
    fn recv(rx: &Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

struct Std;
enum StdTx {
    Sync(std::sync::mpsc::SyncSender<u64>),
    Async(std::sync::mpsc::Sender<u64>),
}
impl Peer for Std {
    const NAME: &'static str = "std-mpsc";
    type Tx = StdTx;
    type Rx = std::sync::mpsc::Receiver<u64>;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        let (s, r) = std::sync::mpsc::sync_channel(cap);
        (StdTx::Sync(s), r)
    }
    fn unbounded() -> (Self::Tx, Self::Rx) {
        let (s, r) = std::sync::mpsc::channel();
        (StdTx::Async(s), r)
    }
    fn clone_tx(tx: &Self::Tx) -> Self::Tx {
        match tx {
            StdTx::Sync(s) => StdTx::Sync(s.clone()),
            StdTx::Async(s) => StdTx::Async(s.clone()),
        }
    }
    fn clone_rx(_: &Self::Rx) -> Option<Self::Rx> {
        None
    }
    #[inline]
    fn send(tx: &Self::Tx, v: u64) {
        match tx {
            StdTx::Sync(s) => s.send(v).unwrap(),
            StdTx::Async(s) => s.send(v).unwrap(),
        }
    }
    #[inline]
    fn recv(rx: &Self::Rx) -> Option<u64> {
        rx.recv().ok()
    }
}

/// `producers` threads send `MSGS` messages in total to `consumers` threads.
fn mpmc<P: Peer>(cap: Option<usize>, producers: u64, consumers: usize) -> Option<Duration> {
    let (tx, rx) = match cap {
        Some(c) => P::bounded(c),
        None => P::unbounded(),
    };
    let mut rxs = Vec::new();
    for _ in 1..consumers {
        rxs.push(P::clone_rx(&rx)?);
    }
    rxs.push(rx);
    let start = Instant::now();
    let senders: Vec<_> = (0..producers)
        .map(|_| {
            let tx = P::clone_tx(&tx);
            thread::spawn(move || {
                for i in 0..MSGS / producers {
                    P::send(&tx, i);
                }
            })
        })
        .collect();
    drop(tx);
    let receivers: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut n = 0u64;
                while P::recv(&rx).is_some() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let total: u64 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(total, MSGS / producers * producers);
    Some(start.elapsed())
}

/// Round trips over two zero-capacity (rendezvous) channels.
fn pingpong<P: Peer>() -> Duration {
    let (tx1, rx1) = P::bounded(0);
    let (tx2, rx2) = P::bounded(0);
    let start = Instant::now();
    let t = thread::spawn(move || {
        while let Some(v) = P::recv(&rx1) {
            P::send(&tx2, v);
        }
    });
    for i in 0..ROUNDS {
        P::send(&tx1, i);
        P::recv(&rx2).unwrap();
    }
    drop(tx1);
    t.join().unwrap();
    start.elapsed()
}

/// Every peer, back to back, on one workload (so that they share the machine's mood).
macro_rules! each_peer {
    ($f:ident, $($arg:expr),*) => {
        $f::<Gmp>($($arg),*);
        $f::<Crossbeam>($($arg),*);
        $f::<Std>($($arg),*);
    };
}

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
    elements: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements));
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g
}

fn run_mpmc<P: Peer>(c: &mut Criterion, group: &str, cap: Option<usize>, p: u64, r: usize) {
    if mpmc::<P>(Some(1), 1, r).is_none() {
        return; // the peer has no multi-consumer channel
    }
    let mut g = config(c, group, MSGS / p * p);
    g.bench_function(BenchmarkId::from_parameter(P::NAME), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| mpmc::<P>(cap, p, r).unwrap()).sum())
    });
    g.finish();
}

fn run_pingpong<P: Peer>(c: &mut Criterion) {
    let mut g = config(c, "pingpong_rendezvous", ROUNDS);
    g.bench_function(BenchmarkId::from_parameter(P::NAME), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| pingpong::<P>()).sum())
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    each_peer!(run_mpmc, c, "spsc_bounded_1024", Some(1024), 1, 1);
    each_peer!(run_mpmc, c, "mpmc_4x4_bounded_1024", Some(1024), 4, 4);
    each_peer!(run_mpmc, c, "mpsc_4x1_bounded_1024", Some(1024), 4, 1);
    each_peer!(run_mpmc, c, "spsc_unbounded", None, 1, 1);
    each_peer!(run_mpmc, c, "mpmc_4x4_unbounded", None, 4, 4);
    each_peer!(run_mpmc, c, "mpmc_4x4_rendezvous", Some(0), 4, 4);
    each_peer!(run_pingpong, c);
}

criterion_group!(benches, all);
criterion_main!(benches);
