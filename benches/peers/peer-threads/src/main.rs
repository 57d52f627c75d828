//! Peer "threads": one OS thread per task (`std::thread`) and `crossbeam-channel`.
//! `--procs N` pins the process to N CPUs. Benches that need more threads than a
//! default Linux allows (pid_max, vm.max_map_count), or that would take minutes with
//! kernel handoffs, run a smaller N and say so in their note. The bench body runs on
//! the main thread. Counters are Relaxed: they are read only after a join or a wait.

use common::*;
use crossbeam_channel::{bounded, Sender};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Smaller sizes for this peer. Live threads are capped near 16k: each std
/// thread maps a stack, an alternate signal stack and a guard page for each
/// (4 memory maps; vm.max_map_count = 65530), and kernel.pid_max = 32768.
/// The other reduced sizes only keep a run under ~20 s.
const SPAWN_N_THREADS: usize = 100_000;
const SKYNET_LEAVES_THREADS: u64 = 10_000;
const TIMER_TASKS_THREADS: usize = 10_000;
const IDLE_N_THREADS: usize = 10_000;
const PINGPONG_N_THREADS: u64 = 100_000;
const YIELD_N_THREADS: usize = 1_000_000;
const MPMC0_N_THREADS: u64 = 1_000_000;

fn main() {
    let a = parse_args("threads");
    pin_to_cpus(a.procs);
    match a.bench.as_str() {
        "spawn" => spawn(&a),
        "skynet" => skynet(&a),
        "pingpong" => pingpong(&a),
        "yield" => yield_(&a),
        "mpmc" => mpmc(&a, MPMC_CAP),
        "mpmc0" => mpmc(&a, 0),
        "timers" => timers(&a),
        "mutex" => mutex(&a),
        "semaphore" => a.not_available("semaphore", "ns/acquire", "std_has_no_semaphore"),
        "waitgroup" => a.not_available("waitgroup", "ns/done", "std_has_no_wait_group"),
        "idlemem" => idle(&a, "idlemem", a.sizes.idle),
        "park1m" => idle(&a, "park1m", a.sizes.park1m),
        "starve" => starve(&a),
        "echo" => serve(&a, echo_conn::<TcpStream>),
        "http" => serve(&a, http_conn::<TcpStream>),
        "conns" => conns(&a),
        _ => a.unknown_bench(),
    }
}

/// Wait for `n` threads: each calls `done`, the caller calls `wait` once.
struct Group {
    left: Latch,
    all_done: Mutex<bool>,
    cv: Condvar,
}

impl Group {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Group { left: Latch::new(n), all_done: Mutex::new(false), cv: Condvar::new() })
    }
    fn done(&self) {
        if self.left.done() {
            *self.all_done.lock().unwrap() = true;
            self.cv.notify_one();
        }
    }
    fn wait(&self) {
        let mut d = self.all_done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

fn spawn(a: &Args) {
    let n = a.sizes.spawn.min(SPAWN_N_THREADS);
    // Shared by reference, as Go's closure captures pointers: a reference count
    // per task would be the bench's cost, not the runtime's (leaked once per run).
    let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let g: &'static Group = Box::leak(Box::new(Group::new(n)));
    let t = Instant::now();
    for _ in 0..n {
        thread::spawn(move || {
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
        &a.capped("N", n as u64, a.sizes.spawn as u64, ""),
    );
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
        thread::spawn(move || skynet_node(tx, num + i * step, step));
    }
    let sum: u64 = (0..SKYNET_DIV).map(|_| rx.recv().unwrap()).sum();
    out.send(sum).unwrap();
}

fn skynet(a: &Args) {
    let leaves = a.sizes.skynet_leaves.min(SKYNET_LEAVES_THREADS);
    let t = Instant::now();
    let (tx, rx) = bounded(1);
    thread::spawn(move || skynet_node(tx, 0, leaves));
    let sum = rx.recv().unwrap();
    let el = t.elapsed();
    assert_eq!(sum, skynet_expected(leaves));
    a.report("skynet", ms(el), "ms", &a.capped("leaves", leaves, a.sizes.skynet_leaves, ""));
}

fn pingpong(a: &Args) {
    let (ping_tx, ping_rx) = bounded::<u64>(0);
    let (pong_tx, pong_rx) = bounded::<u64>(0);
    let n = a.sizes.pingpong.min(PINGPONG_N_THREADS);
    let t = Instant::now();
    let echo = thread::spawn(move || {
        for _ in 0..n {
            pong_tx.send(ping_rx.recv().unwrap()).unwrap();
        }
    });
    let ping = thread::spawn(move || {
        for i in 0..n {
            ping_tx.send(i).unwrap();
            assert_eq!(pong_rx.recv().unwrap(), i);
        }
    });
    ping.join().unwrap();
    echo.join().unwrap();
    a.report("pingpong", ns_per(t.elapsed(), n), "ns/rt", &a.capped("N", n, a.sizes.pingpong, ""));
}

fn yield_(a: &Args) {
    let n = a.sizes.yields.min(YIELD_N_THREADS);
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..n {
                    thread::yield_now();
                }
            })
        })
        .collect();
    hs.into_iter().for_each(|h| h.join().unwrap());
    a.report(
        "yield",
        ns_per(t.elapsed(), 2 * n as u64),
        "ns/yield",
        &format!("sched_yield{}", a.capped(";N", n as u64, a.sizes.yields as u64, "")),
    );
}

fn mpmc(a: &Args, cap: usize) {
    let full = a.sizes.mpmc;
    let (name, n) = if cap == 0 { ("mpmc0", full.min(MPMC0_N_THREADS)) } else { ("mpmc", full) };
    let (tx, rx) = bounded::<u64>(cap);
    let t = Instant::now();
    for _ in 0..MPMC_PRODUCERS {
        let tx = tx.clone();
        thread::spawn(move || {
            for i in 0..n / MPMC_PRODUCERS {
                tx.send(i).unwrap();
            }
        });
    }
    drop(tx);
    let consumers: Vec<_> = (0..MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || rx.iter().sum::<u64>())
        })
        .collect();
    let sum: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t.elapsed();
    assert_eq!(sum, mpmc_expected(n));
    a.report(name, ns_per(el, n), "ns/msg", &a.capped("N", n, full, ""));
}

/// `MUTEX_TASKS` threads each take a `std::sync::Mutex` `mutex_ops` times around an
/// increment (1,000 threads: under the live-thread cap, full size).
fn mutex(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let m = Arc::new(Mutex::new(0u64));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (m, g) = (m.clone(), g.clone());
        thread::spawn(move || {
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
    let n = a.sizes.timer_tasks.min(TIMER_TASKS_THREADS);
    let late_ns = Arc::new(AtomicI64::new(0));
    let g = Group::new(n);
    let t = Instant::now();
    for _ in 0..n {
        let (late_ns, g) = (late_ns.clone(), g.clone());
        thread::spawn(move || {
            for _ in 0..TIMER_ROUNDS {
                let s = Instant::now();
                thread::sleep(TIMER_SLEEP);
                late_ns.fetch_add(late(s, TIMER_SLEEP), Relaxed);
            }
            g.done();
        });
    }
    g.wait();
    let wall = t.elapsed();
    let sleeps = (n * TIMER_ROUNDS) as f64;
    let note = a.capped("N", n as u64, a.sizes.timer_tasks as u64, "");
    a.report("timers-wall", ms(wall), "ms", &note);
    a.report("timers-late", late_ns.load(Relaxed) as f64 / sleeps / 1e3, "us", &note);
}

fn idle(a: &Args, bench: &str, full: usize) {
    let n = full.min(IDLE_N_THREADS);
    let started = Arc::new(AtomicUsize::new(0));
    let g = Group::new(n);
    let before = rss_kib();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = bounded::<()>(0);
            let (started, g) = (started.clone(), g.clone());
            thread::spawn(move || {
                started.fetch_add(1, Relaxed);
                let _ = rx.recv();
                g.done();
            });
            tx
        })
        .collect();
    while started.load(Relaxed) < n {
        thread::sleep(Duration::from_millis(1));
    }
    let all_started = t.elapsed();
    let after = rss_kib();
    drop(senders); // releases every thread
    g.wait();
    let per_task = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    let note = a.capped("N", n as u64, full as u64, "");
    report_idle(a, bench, all_started, per_task, &note);
}

fn starve(a: &Args) {
    let stop = stop_after(a.sizes.starve_hog);
    let s = stop.clone();
    let hog_thread = thread::spawn(move || hog(&s));
    let mut worst = Duration::ZERO;
    for _ in 0..STARVE_SLEEPS {
        let t = Instant::now();
        thread::sleep(STARVE_SLEEP);
        worst = worst.max(t.elapsed().saturating_sub(STARVE_SLEEP));
    }
    std::hint::black_box(hog_thread.join().unwrap());
    a.report("starve", ms(worst), "ms", "");
}

fn serve(a: &Args, conn: impl Fn(TcpStream) + Clone + Send + 'static) {
    let listener = TcpListener::bind(a.listen_addr()).expect("bind");
    for s in listener.incoming() {
        let s = s.expect("accept");
        s.set_nodelay(true).expect("TCP_NODELAY");
        let conn = conn.clone();
        thread::spawn(move || conn(s));
    }
}

/// The RSS baseline is taken before the listener is bound (one socket: nothing per
/// connection).
fn conns(a: &Args) {
    let meter = ConnsMeter::new(a);
    serve(a, move |s| conns_conn(s, &meter));
}
