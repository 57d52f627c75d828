//! Peer "tokio": the multi-threaded tokio runtime with `procs` worker threads. The bench
//! body runs as a spawned task (on a worker), as Go runs `main` as a goroutine.
//! Deviations, each named in its RESULT note: tokio has no rendezvous channel
//! (pingpong uses `mpsc::channel(1)`) and no MPMC channel (mpmc uses `async-channel`,
//! which has no capacity 0: mpmc0 is NA); idlemem tasks wait on a `oneshot`.
//! Counters are Relaxed: they are read only after a join or a `Group` wait.

use common::*;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::yield_now;
use tokio::time::sleep;

fn main() {
    let a = parse_args("tokio");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.procs)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move { tokio::spawn(run(a)).await.unwrap() });
}

async fn run(a: Args) {
    match a.bench.as_str() {
        "spawn" => spawn(&a).await,
        "skynet" => skynet(&a).await,
        "pingpong" => pingpong(&a).await,
        "yield" => yield_(&a).await,
        "mpmc" => mpmc(&a, MPMC_CAP).await,
        "mpmc0" => mpmc(&a, 0).await,
        "timers" => timers(&a).await,
        "mutex" => mutex(&a).await,
        "semaphore" => semaphore(&a).await,
        "waitgroup" => a.not_available("waitgroup", "ns/done", "tokio_has_no_wait_group"),
        "idlemem" => idle(&a, "idlemem", a.sizes.idle).await,
        "park1m" => idle(&a, "park1m", a.sizes.park1m).await,
        "starve" => starve(&a).await,
        "echo" => serve(&a, |s| tokio::spawn(echo_conn(s))).await,
        "http" => serve(&a, |s| tokio::spawn(http_conn(s))).await,
        "conns" => conns(&a).await,
        _ => a.unknown_bench(),
    }
}

/// Wait for `n` tasks: each calls `done`, the caller awaits `wait` once.
struct Group {
    left: Latch,
    all_done: Notify,
}

impl Group {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Group { left: Latch::new(n), all_done: Notify::new() })
    }
    fn done(&self) {
        if self.left.done() {
            self.all_done.notify_one();
        }
    }
    async fn wait(&self) {
        self.all_done.notified().await
    }
}

async fn spawn(a: &Args) {
    let n = a.sizes.spawn;
    // Shared by reference, as Go's closure captures pointers: a reference count
    // per task would be the bench's cost, not the runtime's (leaked once per run).
    let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let g: &'static Group = Box::leak(Box::new(Group::new(n)));
    let t = Instant::now();
    for _ in 0..n {
        tokio::spawn(async move {
            count.fetch_add(1, Relaxed);
            g.done();
        });
    }
    g.wait().await;
    let el = t.elapsed();
    assert_eq!(count.load(Relaxed), n);
    a.report("spawn", ns_per(el, n as u64), "ns/task", "");
}

fn skynet_node(out: mpsc::Sender<u64>, num: u64, size: u64) {
    tokio::spawn(async move {
        if size == 1 {
            out.send(num).await.unwrap();
            return;
        }
        let (tx, mut rx) = mpsc::channel(SKYNET_DIV as usize);
        let step = size / SKYNET_DIV;
        for i in 0..SKYNET_DIV {
            skynet_node(tx.clone(), num + i * step, step);
        }
        let mut sum = 0;
        for _ in 0..SKYNET_DIV {
            sum += rx.recv().await.unwrap();
        }
        out.send(sum).await.unwrap();
    });
}

async fn skynet(a: &Args) {
    let leaves = a.sizes.skynet_leaves;
    let t = Instant::now();
    let (tx, mut rx) = mpsc::channel(1);
    skynet_node(tx, 0, leaves);
    let sum = rx.recv().await.unwrap();
    let el = t.elapsed();
    assert_eq!(sum, skynet_expected(leaves));
    a.report("skynet", ms(el), "ms", "");
}

async fn pingpong(a: &Args) {
    let n = a.sizes.pingpong;
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let t = Instant::now();
    let echo = tokio::spawn(async move {
        for _ in 0..n {
            pong_tx.send(ping_rx.recv().await.unwrap()).await.unwrap();
        }
    });
    let ping = tokio::spawn(async move {
        for i in 0..n {
            ping_tx.send(i).await.unwrap();
            assert_eq!(pong_rx.recv().await.unwrap(), i);
        }
    });
    ping.await.unwrap();
    echo.await.unwrap();
    a.report("pingpong", ns_per(t.elapsed(), n), "ns/rt", "mpsc(1):no_rendezvous_channel");
}

async fn yield_(a: &Args) {
    let n = a.sizes.yields;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..n {
                    yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    a.report("yield", ns_per(t.elapsed(), 2 * n as u64), "ns/yield", "");
}

/// tokio has no MPMC channel: this uses `async-channel`, which has no capacity 0.
async fn mpmc(a: &Args, cap: usize) {
    if cap == 0 {
        return a.not_available("mpmc0", "ns/msg", "no_rendezvous_channel_(tokio,async-channel)");
    }
    let n = a.sizes.mpmc;
    let (tx, rx) = async_channel::bounded::<u64>(cap);
    let t = Instant::now();
    for _ in 0..MPMC_PRODUCERS {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0..n / MPMC_PRODUCERS {
                tx.send(i).await.unwrap();
            }
        });
    }
    drop(tx);
    let consumers: Vec<_> = (0..MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut sum = 0u64;
                while let Ok(v) = rx.recv().await {
                    sum += v;
                }
                sum
            })
        })
        .collect();
    let mut sum = 0;
    for h in consumers {
        sum += h.await.unwrap();
    }
    let el = t.elapsed();
    assert_eq!(sum, mpmc_expected(n));
    a.report("mpmc", ns_per(el, n), "ns/msg", "async-channel");
}

/// `MUTEX_TASKS` tasks each take a `tokio::sync::Mutex` `mutex_ops` times around an
/// increment.
async fn mutex(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let m = Arc::new(tokio::sync::Mutex::new(0u64));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (m, g) = (m.clone(), g.clone());
        tokio::spawn(async move {
            for _ in 0..ops {
                *m.lock().await += 1;
            }
            g.done();
        });
    }
    g.wait().await;
    let el = t.elapsed();
    let total = MUTEX_TASKS as u64 * ops;
    assert_eq!(*m.lock().await, total);
    a.report("mutex", ns_per(el, total), "ns/lock", "");
}

/// `MUTEX_TASKS` tasks share `SEM_PERMITS` permits of `tokio::sync::Semaphore`.
async fn semaphore(a: &Args) {
    let ops = a.sizes.mutex_ops;
    let sem = Arc::new(tokio::sync::Semaphore::new(SEM_PERMITS));
    let count = Arc::new(AtomicUsize::new(0));
    let g = Group::new(MUTEX_TASKS);
    let t = Instant::now();
    for _ in 0..MUTEX_TASKS {
        let (sem, count, g) = (sem.clone(), count.clone(), g.clone());
        tokio::spawn(async move {
            for _ in 0..ops {
                let _permit = sem.acquire().await.expect("semaphore closed");
                count.fetch_add(1, Relaxed);
            }
            g.done();
        });
    }
    g.wait().await;
    let el = t.elapsed();
    let total = MUTEX_TASKS as u64 * ops;
    assert_eq!(count.load(Relaxed) as u64, total);
    a.report("semaphore", ns_per(el, total), "ns/acquire", "");
}

async fn timers(a: &Args) {
    let n = a.sizes.timer_tasks;
    let late_ns = Arc::new(AtomicI64::new(0));
    let g = Group::new(n);
    let t = Instant::now();
    for _ in 0..n {
        let (late_ns, g) = (late_ns.clone(), g.clone());
        tokio::spawn(async move {
            for _ in 0..TIMER_ROUNDS {
                let s = Instant::now();
                sleep(TIMER_SLEEP).await;
                late_ns.fetch_add(late(s, TIMER_SLEEP), Relaxed);
            }
            g.done();
        });
    }
    g.wait().await;
    let wall = t.elapsed();
    let sleeps = (n * TIMER_ROUNDS) as f64;
    a.report("timers-wall", ms(wall), "ms", "");
    a.report("timers-late", late_ns.load(Relaxed) as f64 / sleeps / 1e3, "us", "");
}

async fn idle(a: &Args, bench: &str, n: usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let g = Group::new(n);
    let before = rss_kib();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = oneshot::channel::<()>();
            let (started, g) = (started.clone(), g.clone());
            tokio::spawn(async move {
                started.fetch_add(1, Relaxed);
                let _ = rx.await;
                g.done();
            });
            tx
        })
        .collect();
    while started.load(Relaxed) < n {
        sleep(Duration::from_millis(1)).await;
    }
    let all_started = t.elapsed();
    let after = rss_kib();
    drop(senders); // releases every task
    g.wait().await;
    let per_task = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    report_idle(a, bench, all_started, per_task, "oneshot");
}

async fn starve(a: &Args) {
    let stop = stop_after(a.sizes.starve_hog);
    let s = stop.clone();
    let hog_task = tokio::spawn(async move { hog(&s) });
    let mut worst = Duration::ZERO;
    for _ in 0..STARVE_SLEEPS {
        let t = Instant::now();
        sleep(STARVE_SLEEP).await;
        worst = worst.max(t.elapsed().saturating_sub(STARVE_SLEEP));
    }
    std::hint::black_box(hog_task.await.unwrap());
    a.report("starve", ms(worst), "ms", "");
}

async fn serve<F, R>(a: &Args, conn: F)
where
    F: Fn(TcpStream) -> R,
{
    let listener = TcpListener::bind(a.listen_addr()).await.expect("bind");
    loop {
        let (s, _) = listener.accept().await.expect("accept");
        s.set_nodelay(true).expect("TCP_NODELAY");
        conn(s);
    }
}

async fn echo_conn(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while echo_once(&mut s, &mut buf).await {}
}

/// `common::echo_once` for tokio: reads once and writes back; false at EOF or an error.
async fn echo_once(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    match s.read(buf).await {
        Ok(0) | Err(_) => false,
        Ok(n) => s.write_all(&buf[..n]).await.is_ok(),
    }
}

async fn http_conn(mut s: TcpStream) {
    let (mut buf, mut out, mut chunk) = (Vec::with_capacity(4096), Vec::new(), [0u8; 4096]);
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let k = take_requests(&mut buf);
        if k > 0 {
            responses(k, &mut out);
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

/// The RSS baseline is taken before the listener is bound (one socket: nothing per
/// connection).
async fn conns(a: &Args) {
    let meter = ConnsMeter::new(a);
    serve(a, move |s| tokio::spawn(conns_conn(s, meter.clone()))).await
}

/// `common::conns_conn` for tokio: echoes until EOF, telling `meter` after the first echo.
async fn conns_conn(mut s: TcpStream, meter: Arc<ConnsMeter>) {
    let mut buf = [0u8; CONNS_BUF];
    if echo_once(&mut s, &mut buf).await {
        meter.served_first();
        while echo_once(&mut s, &mut buf).await {}
    }
}
