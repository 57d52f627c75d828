//! Measures, briefly: Unix-socket echo round trips per second against TCP loopback on the
//! same runtime, and child spawn + wait per second with `gmp_runtime::process` in
//! goroutines against `std::process` on a plain thread.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example os_io_rates [SECONDS]   # default 2 per row
//! cargo run --release -p gmp-runtime --example os_io_rates -- --smoke  # a few ms per row
//! ```
//!
//! Each echo row is `CLIENTS` client goroutines, each doing 64-byte ping-pongs with its
//! own server goroutine, on `procs(2)`. The spawn rows run `true`: one at a time, and
//! with 8 goroutines (gmp) or 8 threads (std) at once. The numbers depend heavily on the
//! machine and its load; the tool prints what it measured and checks nothing else.

use gmp_runtime::go;
use gmp_runtime::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;

fn ping_pong<S: Read + Write>(mut s: S, stop: &AtomicBool, count: &AtomicU64) {
    let mut buf = [7u8; 64];
    let mut n = 0;
    while !stop.load(Relaxed) {
        s.write_all(&buf).unwrap();
        s.read_exact(&mut buf).unwrap();
        n += 1;
    }
    count.fetch_add(n, Relaxed);
}

fn echo<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; 64];
    while s.read_exact(&mut buf).is_ok() {
        if s.write_all(&buf).is_err() {
            return;
        }
    }
}

/// Round trips per second over `CLIENTS` connections made by `connect`.
fn echo_rate<S>(dur: Duration, connect: impl Fn() -> (S, S)) -> f64
where
    S: Read + Write + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (c, s) = connect();
        let (stop, count) = (stop.clone(), count.clone());
        // SAFETY: the goroutines hold no thread-local state across a suspension point.
        unsafe {
            go!(move || echo(s));
            clients.push(go!(move || ping_pong(c, &stop, &count)));
        }
    }
    let t = Instant::now();
    gmp_runtime::sleep(dur);
    stop.store(true, Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    count.load(Relaxed) as f64 / t.elapsed().as_secs_f64()
}

/// Spawn + wait of `true` per second, with `par` workers made by `spawn_worker`.
fn spawn_rate(dur: Duration, par: usize, gmp: bool) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let work = {
        let (stop, count) = (stop.clone(), count.clone());
        move || {
            let mut n = 0;
            while !stop.load(Relaxed) {
                let ok = if gmp {
                    gmp_runtime::process::Command::new("true").status()
                } else {
                    std::process::Command::new("true").status()
                };
                assert!(ok.unwrap().success());
                n += 1;
            }
            count.fetch_add(n, Relaxed);
        }
    };
    let t = Instant::now();
    if gmp {
        // SAFETY: the goroutines hold no thread-local state across a suspension point.
        let hs: Vec<_> = (0..par).map(|_| unsafe { go!(work.clone()) }).collect();
        gmp_runtime::sleep(dur);
        stop.store(true, Relaxed);
        hs.into_iter().for_each(|h| h.join().unwrap());
    } else {
        let hs: Vec<_> = (0..par).map(|_| std::thread::spawn(work.clone())).collect();
        std::thread::sleep(dur);
        stop.store(true, Relaxed);
        hs.into_iter().for_each(|h| h.join().unwrap());
    }
    count.load(Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke") || std::env::var_os("GMP_SMOKE").is_some();
    let secs: f64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if smoke { 0.05 } else { 2.0 });
    let dur = Duration::from_secs_f64(secs);
    let dir = std::env::temp_dir().join(format!("gmp-rates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
    // SAFETY: the goroutines hold no thread-local state across I/O.
    let rows = unsafe {
        rt.block_on(|| {
            let path = dir.join("echo.sock");
            let ul = UnixListener::bind(&path).unwrap();
            let unix = echo_rate(dur, || {
                let c = UnixStream::connect(&path).unwrap();
                (c, ul.accept().unwrap().0)
            });
            let tl = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = tl.local_addr().unwrap();
            let tcp = echo_rate(dur, || {
                let c = TcpStream::connect(addr).unwrap();
                c.set_nodelay(true).unwrap();
                let s = tl.accept().unwrap().0;
                s.set_nodelay(true).unwrap();
                (c, s)
            });
            let gmp1 = spawn_rate(dur, 1, true);
            let gmp8 = spawn_rate(dur, 8, true);
            [unix, tcp, gmp1, gmp8]
        })
    };
    let std1 = spawn_rate(dur, 1, false);
    let std8 = spawn_rate(dur, 8, false);
    let _ = std::fs::remove_dir_all(&dir);
    println!("os_io_rates: {secs} s per row, procs(2), {CLIENTS} echo connections");
    println!("  unix echo round trips/s      {:>10.0}", rows[0]);
    println!("  tcp echo round trips/s       {:>10.0}", rows[1]);
    println!("  gmp spawn+wait/s (1 goroutine)  {:>7.0}", rows[2]);
    println!("  gmp spawn+wait/s (8 goroutines) {:>7.0}", rows[3]);
    println!("  std spawn+wait/s (1 thread)     {:>7.0}", std1);
    println!("  std spawn+wait/s (8 threads)    {:>7.0}", std8);
    assert!(rows.iter().chain([&std1, &std8]).all(|&r| r > 0.0));
}
