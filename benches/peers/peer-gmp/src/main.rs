//! Peer "gmp": goroutines on gmp's M:N runtime with `procs` Ps, through the public API
//! of `gmp-runtime` only (design/API.md): `Runtime::builder().procs(n)`, `spawn`,
//! `park`/`unpark`, `sleep`, `yield_now`, `chan::bounded` (capacity 0 is Go's
//! unbuffered channel) and `net`. The bench body runs as the main goroutine
//! (`Runtime::block_on`), as Go runs `main`. Every workload runs at full size.

use common::*;
use gmp_runtime::chan::{bounded, Sender};
use gmp_runtime::net::{TcpListener, TcpStream};
use gmp_runtime::{park, sleep, yield_now, Goroutine, JoinHandle, Runtime};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let a = parse_args("gmp");
    let rt = Runtime::builder().procs(a.procs).build().expect("gmp runtime");
    // SAFETY: as for `go` below: no bench holds thread-local state across a call that
    // may suspend the goroutine.
    unsafe { rt.block_on(move || run(&a)) }
}

/// Starts a goroutine.
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: no bench holds thread-local state (a `thread_local!` borrow, a
    // `StdoutLock`) across a call that may suspend it and resume it on another thread.
    unsafe { gmp_runtime::spawn(f) }
}

fn run(a: &Args) {
    match a.bench.as_str() {
        "spawn" => spawn(a),
        "skynet" => skynet(a),
        "pingpong" => pingpong(a),
        "yield" => yield_(a),
        "mpmc" => mpmc(a, MPMC_CAP),
        "mpmc0" => mpmc(a, 0),
        "timers" => timers(a),
        "mutex" => mutex(a),
        "semaphore" => semaphore(a),
        "waitgroup" => waitgroup(a),
        "idlemem" => idle(a, "idlemem", a.sizes.idle),
        "park1m" => idle(a, "park1m", a.sizes.park1m),
        "starve" => starve(a),
        "echo" => serve(a, echo_conn::<TcpStream>),
        "http" => serve(a, http_conn::<TcpStream>),
        "conns" => conns(a),
        _ => a.unknown_bench(),
    }
}

/// Go's `sync.WaitGroup` for `n` goroutines, built on park/unpark: each calls `done`;
/// the last one unparks the goroutine that made the group, which calls `wait` once.
struct Group {
    left: Latch,
    all_done: AtomicBool,
    waiter: Goroutine,
}

impl Group {
    fn new(n: usize) -> Arc<Self> {
        let waiter = gmp_runtime::current();
        Arc::new(Group { left: Latch::new(n), all_done: AtomicBool::new(false), waiter })
    }
    fn done(&self) {
        if self.left.done() {
            self.all_done.store(true, Release);
            self.waiter.unpark();
        }
    }
    fn wait(&self) {
        // park may return spuriously: the flag is the truth.
        while !self.all_done.load(Acquire) {
            park();
        }
    }
}

fn spawn(a: &Args) {
    let n = a.sizes.spawn;
    // Shared by reference, as Go's closure captures pointers: a reference count
    // per task would be the bench's cost, not the runtime's (leaked once per run).
    let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let g: &'static Group = Box::leak(Box::new(Group::new(n)));
    let t = Instant::now();
    for _ in 0..n {
        go(move || {
            count.fetch_add(1, Relaxed);
            g.done();
        });
    }
    g.wait();
    let el = t.elapsed();
    assert_eq!(count.load(Relaxed), n);
    a.report("spawn", ns_per(el, n as u64), "ns/task", "");
}

fn skynet_node(out: Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        out.send(num).unwrap();
        return;
    }
    let (tx, rx) = bounded(SKYNET_DIV as usize);
    let step = size / SKYNET_DIV;
    for i in 0..SKYNET_DIV {
        let tx = tx.clone();
        go(move || skynet_node(tx, num + i * step, step));
    }
    let sum: u64 = (0..SKYNET_DIV).map(|_| rx.recv().unwrap()).sum();
    out.send(sum).unwrap();
}

fn skynet(a: &Args) {
    let leaves = a.sizes.skynet_leaves;
    let t = Instant::now();
    let (tx, rx) = bounded(1);
    go(move || skynet_node(tx, 0, leaves));
    let sum = rx.recv().unwrap();
    let el = t.elapsed();
    assert_eq!(sum, skynet_expected(leaves));
    a.report("skynet", ms(el), "ms", "");
}

fn pingpong(a: &Args) {
    let n = a.sizes.pingpong;
    let (ping_tx, ping_rx) = bounded::<u64>(0);
    let (pong_tx, pong_rx) = bounded::<u64>(0);
    let t = Instant::now();
    let echo = go(move || {
        for _ in 0..n {
            pong_tx.send(ping_rx.recv().unwrap()).unwrap();
        }
    });
    let ping = go(move || {
        for i in 0..n {
            ping_tx.send(i).unwrap();
            assert_eq!(pong_rx.recv().unwrap(), i);
        }
    });
    ping.join().unwrap();
    echo.join().unwrap();
    a.report("pingpong", ns_per(t.elapsed(), n), "ns/rt", "");
}

fn yield_(a: &Args) {
    let n = a.sizes.yields;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            go(move || {
                for _ in 0..n {
                    yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    a.report("yield", ns_per(t.elapsed(), 2 * n as u64), "ns/yield", "");
}

fn mpmc(a: &Args, cap: usize) {
    let name = if cap == 0 { "mpmc0" } else { "mpmc" };
    let n = a.sizes.mpmc;
    let (tx, rx) = bounded::<u64>(cap);
    let t = Instant::now();
    for _ in 0..MPMC_PRODUCERS {
        let tx = tx.clone();
        go(move || {
            for i in 0..n / MPMC_PRODUCERS {
                tx.send(i).unwrap();
            }
        });
    }
    drop(tx); // closed once every producer is done
    let consumers: Vec<_> = (0..MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            go(move || rx.iter().sum::<u64>())
        })
        .collect();
    let sum: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t.elapsed();
    assert_eq!(sum, mpmc_expected(n));
    a.report(name, ns_per(el, n), "ns/msg", "");
}

fn timers(a: &Args) {
    let n = a.sizes.timer_tasks;
    let late_ns = Arc::new(AtomicI64::new(0));
    let g = Group::new(n);
    let t = Instant::now();
    for _ in 0..n {
        let (late_ns, g) = (late_ns.clone(), g.clone());
        go(move || {
            for _ in 0..TIMER_ROUNDS {
                let s = Instant::now();
                sleep(TIMER_SLEEP);
                late_ns.fetch_add(late(s, TIMER_SLEEP), Relaxed);
            }
            g.done();
        });
    }
    g.wait();
    let wall = t.elapsed();
    let sleeps = (n * TIMER_ROUNDS) as f64;
    a.report("timers-wall", ms(wall), "ms", "");
    a.report("timers-late", late_ns.load(Relaxed) as f64 / sleeps / 1e3, "us", "");
}

/// `MUTEX_TASKS` goroutines each take gmp's `sync::Mutex` `mutex_ops` times around an
/// increment (a waiter parks the goroutine, never the M).
fn mutex(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let m = Arc::new(gmp_runtime::sync::Mutex::new(0u64));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (m, g) = (m.clone(), g.clone());
        go(move || {
            for _ in 0..ops {
                *m.lock() += 1;
            }
            g.done();
        });
    }
    g.wait();
    let el = t.elapsed();
    let total = MUTEX_TASKS as u64 * ops;
    assert_eq!(*m.lock(), total);
    a.report("mutex", ns_per(el, total), "ns/lock", "");
}

/// `MUTEX_TASKS` goroutines share `SEM_PERMITS` permits of gmp's `sync::Semaphore`,
/// each acquiring and releasing `mutex_ops` times around an atomic increment.
fn semaphore(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let sem = Arc::new(gmp_runtime::sync::Semaphore::new(SEM_PERMITS));
    let count = Arc::new(AtomicUsize::new(0));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (sem, count, g) = (sem.clone(), count.clone(), g.clone());
        go(move || {
            for _ in 0..ops {
                let _permit = sem.acquire();
                count.fetch_add(1, Relaxed);
            }
            g.done();
        });
    }
    g.wait();
    let el = t.elapsed();
    let total = MUTEX_TASKS as u64 * ops;
    assert_eq!(count.load(Relaxed) as u64, total);
    a.report("semaphore", ns_per(el, total), "ns/acquire", "");
}

/// `wg_rounds` rounds: start `WG_TASKS` goroutines that each call `done` once on gmp's
/// `sync::WaitGroup`, then `wait`. Reported per `done` (spawning included, as in Go).
fn waitgroup(a: &Args) {
    let rounds = a.sizes.wg_rounds;
    let count = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    for _ in 0..rounds {
        let wg = Arc::new(gmp_runtime::sync::WaitGroup::new());
        wg.add(WG_TASKS as isize);
        for _ in 0..WG_TASKS {
            let (wg, count) = (wg.clone(), count.clone());
            go(move || {
                count.fetch_add(1, Relaxed);
                wg.done();
            });
        }
        wg.wait();
    }
    let el = t.elapsed();
    let total = (rounds * WG_TASKS) as u64;
    assert_eq!(count.load(Relaxed) as u64, total);
    a.report("waitgroup", ns_per(el, total), "ns/done", "");
}

/// idlemem and park1m: `n` goroutines each block receiving on their own channel.
/// Reports the RSS growth per goroutine once all have started, and for park1m also the
/// time from the first spawn until the last has started (and so is about to park).
fn idle(a: &Args, bench: &str, n: usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let g = Group::new(n);
    let before = rss_kib();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = bounded::<()>(0);
            let (started, g) = (started.clone(), g.clone());
            go(move || {
                started.fetch_add(1, Relaxed);
                let _ = rx.recv();
                g.done();
            });
            tx
        })
        .collect();
    while started.load(Relaxed) < n {
        sleep(Duration::from_millis(1));
    }
    let all_started = t.elapsed();
    let after = rss_kib();
    drop(senders); // closes every channel: releases every goroutine
    g.wait();
    let per_task = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    report_idle(a, bench, all_started, per_task, "");
}

fn starve(a: &Args) {
    let stop = stop_after(a.sizes.starve_hog); // set by a plain OS thread
    let hog_task = go(move || hog(&stop));
    let mut worst = Duration::ZERO;
    for _ in 0..STARVE_SLEEPS {
        let t = Instant::now();
        sleep(STARVE_SLEEP);
        worst = worst.max(t.elapsed().saturating_sub(STARVE_SLEEP));
    }
    std::hint::black_box(hog_task.join().unwrap());
    a.report("starve", ms(worst), "ms", "");
}

fn serve(a: &Args, conn: impl Fn(TcpStream) + Clone + Send + 'static) {
    let listener = TcpListener::bind(a.listen_addr()).expect("bind");
    for s in listener.incoming() {
        let s = s.expect("accept");
        s.set_nodelay(true).expect("TCP_NODELAY");
        let conn = conn.clone();
        go(move || conn(s));
    }
}

/// The RSS baseline is taken before the listener is bound (one socket: nothing per
/// connection).
fn conns(a: &Args) {
    let meter = ConnsMeter::new(a);
    serve(a, move |s| conns_conn(s, &meter));
}
