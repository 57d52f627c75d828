//! Peer "may": stackful coroutines (the `may` crate) on `procs` workers. The bench body
//! runs as a coroutine, as Go runs `main` as a goroutine. Deviations, each named in its
//! RESULT note: may has no bounded and no rendezvous channel (pingpong and skynet use
//! its unbounded `mpsc`, equivalent there since a sender never has more than one, or
//! ten, messages in flight; mpmc uses the unbounded `mpmc` plus a 1024-slot semaphore;
//! mpmc0 is NA), and at most `LIVE_CAP` coroutines live at once (below).
//! Counters are Relaxed: they are read only after a join or a `Group` wait.

use common::*;
use may::coroutine;
use may::go;
use may::net::TcpListener;
use may::sync::{mpmc, mpsc, Semphore, SyncFlag};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each may coroutine stack is its own mmap plus a guard page: 2 memory maps.
/// With vm.max_map_count = 65530 (the Linux default) about 32k coroutines can
/// be alive at once; past that `go!` panics with ENOMEM. Benches that keep more
/// alive at once run this smaller N and say so.
const LIVE_CAP: usize = 20_000;
const SKYNET_LEAVES_CAPPED: u64 = 10_000;
const CAP_NOTE: &str = "(full_N:stack_mmap_ENOMEM,vm.max_map_count)";

fn main() {
    let a = parse_args("may");
    may::config().set_workers(a.procs);
    go!(move || run(&a)).join().unwrap();
}

fn run(a: &Args) {
    match a.bench.as_str() {
        "spawn" => spawn(a),
        "skynet" => skynet(a),
        "pingpong" => pingpong(a),
        "yield" => yield_(a),
        "mpmc" => mpmc_bench(a, MPMC_CAP),
        "mpmc0" => mpmc_bench(a, 0),
        "timers" => timers(a),
        "mutex" => mutex(a),
        "semaphore" => a.not_available("semaphore", "ns/acquire", "not_written_for_may"),
        "waitgroup" => a.not_available("waitgroup", "ns/done", "not_written_for_may"),
        "idlemem" => idle(a, "idlemem", a.sizes.idle),
        "park1m" => idle(a, "park1m", a.sizes.park1m),
        "starve" => starve(a),
        "echo" => serve(a, echo_conn::<may::net::TcpStream>),
        "http" => serve(a, http_conn::<may::net::TcpStream>),
        "conns" => conns(a),
        _ => a.unknown_bench(),
    }
}

/// Wait for `n` tasks: each calls `done`, the caller calls `wait` once.
struct Group {
    left: Latch,
    all_done: SyncFlag,
}

impl Group {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Group { left: Latch::new(n), all_done: SyncFlag::new() })
    }
    fn done(&self) {
        if self.left.done() {
            self.all_done.fire();
        }
    }
    fn wait(&self) {
        self.all_done.wait();
    }
}

fn spawn(a: &Args) {
    let n = a.sizes.spawn.min(LIVE_CAP);
    // Shared by reference, as Go's closure captures pointers: a reference count
    // per task would be the bench's cost, not the runtime's (leaked once per run).
    let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let g: &'static Group = Box::leak(Box::new(Group::new(n)));
    let t = Instant::now();
    for _ in 0..n {
        go!(move || {
            count.fetch_add(1, Relaxed);
            g.done();
        });
    }
    g.wait();
    let el = t.elapsed();
    assert_eq!(count.load(Relaxed), n);
    a.report(
        "spawn",
        ns_per(el, n as u64),
        "ns/task",
        &a.capped("N", n as u64, a.sizes.spawn as u64, CAP_NOTE),
    );
}

fn skynet_node(out: mpsc::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        out.send(num).unwrap();
        return;
    }
    let (tx, rx) = mpsc::channel();
    let step = size / SKYNET_DIV;
    for i in 0..SKYNET_DIV {
        let tx = tx.clone();
        go!(move || skynet_node(tx, num + i * step, step));
    }
    let sum: u64 = (0..SKYNET_DIV).map(|_| rx.recv().unwrap()).sum();
    out.send(sum).unwrap();
}

fn skynet(a: &Args) {
    let leaves = a.sizes.skynet_leaves.min(SKYNET_LEAVES_CAPPED);
    let t = Instant::now();
    let (tx, rx) = mpsc::channel();
    go!(move || skynet_node(tx, 0, leaves));
    let sum = rx.recv().unwrap();
    let el = t.elapsed();
    assert_eq!(sum, skynet_expected(leaves));
    a.report("skynet", ms(el), "ms", &a.capped("leaves", leaves, a.sizes.skynet_leaves, CAP_NOTE));
}

fn pingpong(a: &Args) {
    let n = a.sizes.pingpong;
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    let t = Instant::now();
    let echo = go!(move || {
        for _ in 0..n {
            pong_tx.send(ping_rx.recv().unwrap()).unwrap();
        }
    });
    let ping = go!(move || {
        for i in 0..n {
            ping_tx.send(i).unwrap();
            assert_eq!(pong_rx.recv().unwrap(), i);
        }
    });
    ping.join().unwrap();
    echo.join().unwrap();
    a.report("pingpong", ns_per(t.elapsed(), n), "ns/rt", "mpsc_unbounded:no_rendezvous_channel");
}

fn yield_(a: &Args) {
    let n = a.sizes.yields;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            go!(move || {
                for _ in 0..n {
                    coroutine::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    a.report("yield", ns_per(t.elapsed(), 2 * n as u64), "ns/yield", "");
}

/// may has no bounded channel: capacity is emulated with a semaphore of `cap`
/// slots (taken before send, given back after receive).
fn mpmc_bench(a: &Args, cap: usize) {
    if cap == 0 {
        return a.not_available("mpmc0", "ns/msg", "may_has_no_rendezvous_channel");
    }
    let n = a.sizes.mpmc;
    let (tx, rx) = mpmc::channel::<u64>();
    let slots = Arc::new(Semphore::new(cap));
    let t = Instant::now();
    for _ in 0..MPMC_PRODUCERS {
        let (tx, slots) = (tx.clone(), slots.clone());
        go!(move || {
            for i in 0..n / MPMC_PRODUCERS {
                slots.wait();
                tx.send(i).unwrap();
            }
        });
    }
    drop(tx);
    let consumers: Vec<_> = (0..MPMC_CONSUMERS)
        .map(|_| {
            let (rx, slots) = (rx.clone(), slots.clone());
            go!(move || {
                let mut sum = 0u64;
                while let Ok(v) = rx.recv() {
                    slots.post();
                    sum += v;
                }
                sum
            })
        })
        .collect();
    let sum: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t.elapsed();
    assert_eq!(sum, mpmc_expected(n));
    a.report("mpmc", ns_per(el, n), "ns/msg", "mpmc_unbounded+semaphore(1024)");
}

/// `MUTEX_TASKS` coroutines each take a `may::sync::Mutex` `mutex_ops` times around an
/// increment.
fn mutex(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let m = Arc::new(may::sync::Mutex::new(0u64));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (m, g) = (m.clone(), g.clone());
        go!(move || {
            for _ in 0..ops {
                *m.lock().unwrap() += 1;
            }
            g.done();
        });
    }
    g.wait();
    let el = t.elapsed();
    let total = MUTEX_TASKS as u64 * ops;
    assert_eq!(*m.lock().unwrap(), total);
    a.report("mutex", ns_per(el, total), "ns/lock", "");
}

fn timers(a: &Args) {
    let n = a.sizes.timer_tasks.min(LIVE_CAP);
    let late_ns = Arc::new(AtomicI64::new(0));
    let g = Group::new(n);
    let t = Instant::now();
    for _ in 0..n {
        let (late_ns, g) = (late_ns.clone(), g.clone());
        go!(move || {
            for _ in 0..TIMER_ROUNDS {
                let s = Instant::now();
                coroutine::sleep(TIMER_SLEEP);
                late_ns.fetch_add(late(s, TIMER_SLEEP), Relaxed);
            }
            g.done();
        });
    }
    g.wait();
    let wall = t.elapsed();
    let sleeps = (n * TIMER_ROUNDS) as f64;
    let note = a.capped("N", n as u64, a.sizes.timer_tasks as u64, CAP_NOTE);
    a.report("timers-wall", ms(wall), "ms", &note);
    a.report("timers-late", late_ns.load(Relaxed) as f64 / sleeps / 1e3, "us", &note);
}

fn idle(a: &Args, bench: &str, full: usize) {
    let n = full.min(LIVE_CAP);
    let started = Arc::new(AtomicUsize::new(0));
    let g = Group::new(n);
    let before = rss_kib();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<()>();
            let (started, g) = (started.clone(), g.clone());
            go!(move || {
                started.fetch_add(1, Relaxed);
                let _ = rx.recv();
                g.done();
            });
            tx
        })
        .collect();
    while started.load(Relaxed) < n {
        coroutine::sleep(Duration::from_millis(1));
    }
    let all_started = t.elapsed();
    let after = rss_kib();
    drop(senders); // releases every task
    g.wait();
    let per_task = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    let stack = may::config().get_stack_size() * std::mem::size_of::<usize>();
    let cap = a.capped("N", n as u64, full as u64, CAP_NOTE);
    let sep = if cap.is_empty() { "" } else { ";" };
    let note = format!("{cap}{sep}stack={}KiB", stack / 1024);
    report_idle(a, bench, all_started, per_task, &note);
}

fn starve(a: &Args) {
    let stop = stop_after(a.sizes.starve_hog);
    let s = stop.clone();
    let hog_task = go!(move || hog(&s));
    let mut worst = Duration::ZERO;
    for _ in 0..STARVE_SLEEPS {
        let t = Instant::now();
        coroutine::sleep(STARVE_SLEEP);
        worst = worst.max(t.elapsed().saturating_sub(STARVE_SLEEP));
    }
    std::hint::black_box(hog_task.join().unwrap());
    // may resumes a coroutine woken by a timer on its timer thread, not on a
    // worker, so the sleeper escapes the hogged worker.
    a.report("starve", ms(worst), "ms", "sleeper_resumes_on_may_timer_thread");
}

fn serve(a: &Args, conn: impl Fn(may::net::TcpStream) + Clone + Send + 'static) {
    let listener = TcpListener::bind(a.listen_addr()).expect("bind");
    for s in listener.incoming() {
        let s = s.expect("accept");
        s.set_nodelay(true).expect("TCP_NODELAY");
        let conn = conn.clone();
        go!(move || conn(s));
    }
}

/// The RSS baseline is taken before the listener is bound (one socket: nothing per
/// connection).
fn conns(a: &Args) {
    let meter = ConnsMeter::new(a);
    serve(a, move |s| conns_conn(s, &meter));
}
