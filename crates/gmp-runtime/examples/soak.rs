//! The soak: a randomized mixed workload, run in rounds until a deadline, each round on a
//! fresh runtime with 1–4 Ps (`cargo xtask soak --minutes N`; CI runs 30 seconds).
//!
//! A round runs a random selection of workloads at once, as goroutines: spawn trees,
//! every channel flavour (rendezvous, bounded, unbounded) with several producers and
//! consumers, `select!` with timeouts, sleeps, TCP echo on loopback, `blocking` calls,
//! `scope`, panics, hogs (a goroutine that runs 12-25 ms without a scheduling point,
//! which sysmon takes the P from, beside a ping-pong pair switching all the while); and, in half of the rounds, a shutdown with goroutines still parked
//! (on a channel, a timer, an accept, a `select!`).
//!
//! Checked, and fatal (exit status 1, with the seed to replay it) when violated:
//! - every message is delivered exactly once (a bitmap per channel run);
//! - every join returns (a watchdog ends the process if a round takes over 120 s, or
//!   `GMP_SOAK_HANG_SECS`; with `GMP_SOAK_HANG_WAIT` set it waits 300 s first, for a
//!   debugger), with
//!   the right value, or with the panic payload for the panicking goroutines, or with
//!   `Err` for goroutines unwound by shutdown;
//! - after each round the process's threads and file descriptors come back to their
//!   baseline (within 5 s), and RSS stops growing: the last round's RSS is within 64 MiB
//!   of the RSS after the first round.
//!
//! Printed at the end: rounds, goroutines spawned, messages delivered, connections
//! served, panics caught, parked goroutines unwound, and baseline / peak / final threads,
//! fds and RSS.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example soak -- --seconds 30 [--seed S]
//! cargo xtask soak --minutes 0.5                     # the same, through xtask
//! ```
//! (`--smoke`: 3 seconds, for the examples step of CI.)

use gmp_runtime::chan::{self, select};
use gmp_runtime::net::{TcpListener, TcpStream};
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Totals over the whole run (Relaxed everywhere: plain counters, read at the end).
struct Totals {
    spawned: AtomicU64,
    messages: AtomicU64,
    connections: AtomicU64,
    echo_bytes: AtomicU64,
    panics: AtomicU64,
    select_timeouts: AtomicU64,
    blocking_calls: AtomicU64,
    unwound_at_shutdown: AtomicU64,
}

static T: Totals = Totals {
    spawned: AtomicU64::new(0),
    messages: AtomicU64::new(0),
    connections: AtomicU64::new(0),
    echo_bytes: AtomicU64::new(0),
    panics: AtomicU64::new(0),
    select_timeouts: AtomicU64::new(0),
    blocking_calls: AtomicU64::new(0),
    unwound_at_shutdown: AtomicU64::new(0),
};

/// xorshift64*: small, fast, deterministic per seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("soak: FAILED: {msg}");
    std::process::exit(1)
}

/// Starts a goroutine and counts it.
macro_rules! spawn {
    ($f:expr) => {{
        // Built outside the `unsafe` block, so the closure's body is not unsafe code.
        let f = $f;
        T.spawned.fetch_add(1, Relaxed);
        // SAFETY: no soak goroutine holds thread-local state across a suspension point
        // (the counters are statics, the rest is moved in).
        unsafe { gmp_runtime::go!(f) }
    }};
}

// ------------------------------------------------------------------------------------
// The workloads. Each runs in its own goroutine and checks its own result.

/// A tree of goroutines `depth` deep with `fanout` children each; the leaves count.
fn spawn_tree(depth: u32, fanout: u64) -> u64 {
    if depth == 0 {
        return 1;
    }
    let hs: Vec<JoinHandle<u64>> = (0..fanout)
        .map(|_| spawn!(move || spawn_tree(depth - 1, fanout)))
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

/// `producers` × `consumers` over one channel of the given capacity (`None`: unbounded);
/// every id delivered exactly once.
fn channel_run(cap: Option<usize>, producers: u64, consumers: u64, per_producer: u64) {
    let (tx, rx) = match cap {
        Some(c) => chan::bounded::<u64>(c),
        None => chan::unbounded::<u64>(),
    };
    let total = producers * per_producer;
    let ps: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            spawn!(move || {
                for i in 0..per_producer {
                    tx.send(p * per_producer + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let cs: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            spawn!(move || rx.iter().collect::<Vec<u64>>())
        })
        .collect();
    for p in ps {
        p.join().unwrap();
    }
    let mut seen = vec![false; total as usize];
    for c in cs {
        for id in c.join().unwrap() {
            if std::mem::replace(&mut seen[id as usize], true) {
                fail(&format!("message {id} delivered twice (cap {cap:?})"));
            }
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        fail(&format!("message {i} never delivered (cap {cap:?})"));
    }
    T.messages.fetch_add(total, Relaxed);
}

/// Two delayed senders and a `select!` receiver with a timeout arm: both streams
/// arrive whole and in order.
fn select_run(rng: &mut Rng, n: u64) {
    let (a_tx, a_rx) = chan::bounded::<u64>(rng.range(0, 2) as usize);
    let (b_tx, b_rx) = chan::unbounded::<u64>();
    let da = Duration::from_micros(rng.range(0, 800));
    let db = Duration::from_micros(rng.range(0, 800));
    let ha = spawn!(move || {
        for i in 0..n {
            if i % 4 == 0 {
                gmp_runtime::sleep(da);
            }
            a_tx.send(i).unwrap();
        }
    });
    let hb = spawn!(move || {
        for i in 0..n {
            if i % 5 == 0 {
                gmp_runtime::sleep(db);
            }
            b_tx.send(i).unwrap();
        }
    });
    let (mut next_a, mut next_b) = (0u64, 0u64);
    let (mut a_open, mut b_open) = (true, true);
    let never = chan::never::<u64>();
    while a_open || b_open {
        let a = if a_open { &a_rx } else { &never };
        let b = if b_open { &b_rx } else { &never };
        select! {
            recv(a) -> m => match m {
                Ok(v) => {
                    if v != next_a { fail(&format!("select: a got {v}, expected {next_a}")); }
                    next_a += 1;
                }
                Err(_) => a_open = false,
            },
            recv(b) -> m => match m {
                Ok(v) => {
                    if v != next_b { fail(&format!("select: b got {v}, expected {next_b}")); }
                    next_b += 1;
                }
                Err(_) => b_open = false,
            },
            default(Duration::from_micros(300)) => {
                T.select_timeouts.fetch_add(1, Relaxed);
            }
        }
    }
    if next_a != n || next_b != n {
        fail(&format!("select: got {next_a} and {next_b} of {n}"));
    }
    ha.join().unwrap();
    hb.join().unwrap();
    T.messages.fetch_add(2 * n, Relaxed);
}

/// Goroutines sleeping random short times: none wakes early.
fn sleep_run(rng: &mut Rng, n: u64) {
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let d = Duration::from_micros(rng.range(0, 3000));
            spawn!(move || {
                let t = Instant::now();
                gmp_runtime::sleep(d);
                t.elapsed() >= d
            })
        })
        .collect();
    for h in hs {
        if !h.join().unwrap() {
            fail("a sleep returned early");
        }
    }
}

/// A TCP echo server and `clients` clients on loopback, each sending `rounds` messages.
fn echo_run(rng: &mut Rng, clients: u64, rounds: u64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&format!("bind: {e}")));
    let addr = listener.local_addr().unwrap();
    let server = spawn!(move || {
        let mut conns = Vec::new();
        for _ in 0..clients {
            let (mut s, _) = listener
                .accept()
                .unwrap_or_else(|e| fail(&format!("accept: {e}")));
            conns.push(spawn!(move || {
                let mut buf = [0u8; 1024];
                let mut n_bytes = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            s.write_all(&buf[..n]).unwrap();
                            n_bytes += n as u64;
                        }
                        Err(e) => fail(&format!("echo read: {e}")),
                    }
                }
                n_bytes
            }));
        }
        conns.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let cs: Vec<_> = (0..clients)
        .map(|c| {
            let mut r = rng.fork();
            spawn!(move || {
                let mut s =
                    TcpStream::connect(addr).unwrap_or_else(|e| fail(&format!("connect: {e}")));
                let mut sent = 0u64;
                for i in 0..rounds {
                    let len = r.range(1, 600) as usize;
                    let msg: Vec<u8> = (0..len).map(|k| (c + i + k as u64) as u8).collect();
                    s.write_all(&msg).unwrap();
                    let mut back = vec![0u8; len];
                    s.read_exact(&mut back).unwrap();
                    if back != msg {
                        fail("echo: the reply differs from the message");
                    }
                    sent += len as u64;
                }
                sent
            })
        })
        .collect();
    let sent: u64 = cs.into_iter().map(|h| h.join().unwrap()).sum();
    let echoed = server.join().unwrap();
    if sent != echoed {
        fail(&format!("echo: sent {sent} bytes, server echoed {echoed}"));
    }
    T.connections.fetch_add(clients, Relaxed);
    T.echo_bytes.fetch_add(sent, Relaxed);
}

/// Goroutines alternating `blocking` calls with channel sends.
fn blocking_run(n: u64, calls: u64) {
    let (tx, rx) = chan::bounded::<u64>(4);
    let hs: Vec<_> = (0..n)
        .map(|g| {
            let tx = tx.clone();
            spawn!(move || {
                for i in 0..calls {
                    let w = gmp_runtime::blocking(|| {
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .open("/dev/null")
                            .unwrap();
                        f.write(&[0u8; 64]).unwrap()
                    });
                    assert_eq!(w, 64);
                    tx.send(g * calls + i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut seen = vec![false; (n * calls) as usize];
    for v in rx.iter() {
        if std::mem::replace(&mut seen[v as usize], true) {
            fail("blocking: a message delivered twice");
        }
    }
    for h in hs {
        h.join().unwrap();
    }
    if seen.iter().any(|s| !s) {
        fail("blocking: a message lost");
    }
    T.blocking_calls.fetch_add(n * calls, Relaxed);
    T.messages.fetch_add(n * calls, Relaxed);
}

/// A hog: a goroutine that spins for `ms` milliseconds without a scheduling point, so
/// that sysmon takes its P (p.rs `take_from_user`), while a ping-pong pair on the other
/// goroutines switches (each switch takes its M's P back: `enter_from_user`, the other
/// half of the same handshake). Every ping must come back once, in order.
fn hog_run(ms: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let echo = spawn!(move || {
        for v in ping_rx.iter() {
            pong_tx.send(v).unwrap();
        }
    });
    let stop2 = stop.clone();
    let pinger = spawn!(move || {
        let mut n = 0u64;
        while !stop2.load(Relaxed) {
            ping_tx.send(n).unwrap();
            if pong_rx.recv() != Ok(n) {
                fail("hog: a ping came back wrong or not at all");
            }
            n += 1;
        }
        n
    });
    let hog = spawn!(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(ms) {
            std::hint::spin_loop();
        }
    });
    hog.join().unwrap();
    stop.store(true, Relaxed);
    let n = pinger.join().unwrap();
    echo.join().unwrap();
    T.messages.fetch_add(2 * n, Relaxed);
}

/// `scope` with goroutines borrowing the caller's counters.
fn scope_run(n: usize) {
    let slots: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    gmp_runtime::scope(|s| {
        for (i, slot) in slots.iter().enumerate() {
            T.spawned.fetch_add(1, Relaxed);
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe {
                s.spawn(move || {
                    for _ in 0..=i {
                        slot.fetch_add(1, Relaxed);
                        gmp_runtime::yield_now();
                    }
                });
            }
        }
    });
    for (i, slot) in slots.iter().enumerate() {
        if slot.load(Relaxed) != i + 1 {
            fail("scope: a borrowed counter is wrong after the scope");
        }
    }
}

/// Goroutines that panic: each join returns the payload.
fn panic_run(n: u64) {
    let hs: Vec<_> = (0..n)
        .map(|i| {
            spawn!(move || {
                if i % 2 == 0 {
                    gmp_runtime::yield_now();
                }
                std::panic::panic_any(i)
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        match h.join() {
            Err(p) if p.downcast_ref::<u64>() == Some(&(i as u64)) => {}
            _ => fail("panic: join did not return the goroutine's payload"),
        }
    }
    T.panics.fetch_add(n, Relaxed);
}

// ------------------------------------------------------------------------------------
// Rounds

/// Goroutines left parked when the round's runtime shuts down, with what keeps them so.
struct Parked {
    handles: Vec<JoinHandle<()>>,
    _keep: Vec<Box<dyn Send>>,
}

fn round(rng: &mut Rng, procs: usize, park_at_shutdown: bool) -> Parked {
    let rt = Runtime::builder()
        .procs(procs)
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let r = rng.fork();
    // SAFETY: no soak goroutine holds thread-local state across a suspension point.
    let parked = unsafe { rt.block_on(move || round_main(r, park_at_shutdown)) };
    rt.shutdown_timeout(Duration::from_secs(10));
    parked
}

/// The main goroutine of a round.
fn round_main(mut r: Rng, park_at_shutdown: bool) -> Parked {
    {
        {
            let mut hs: Vec<JoinHandle<()>> = Vec::new();
            let picks = r.range(3, 8);
            for _ in 0..picks {
                let mut w = r.fork();
                hs.push(match w.range(0, 9) {
                    0 => spawn!(move || {
                        let (d, f) = (w.range(1, 4) as u32, w.range(2, 5));
                        if spawn_tree(d, f) != f.pow(d) {
                            fail("spawn tree: wrong leaf count");
                        }
                    }),
                    1 => spawn!(move || {
                        let cap = match w.range(0, 2) {
                            0 => Some(0),
                            1 => Some(w.range(1, 16) as usize),
                            _ => None,
                        };
                        channel_run(cap, w.range(1, 4), w.range(1, 4), w.range(10, 2000));
                    }),
                    2 => spawn!(move || select_run(&mut w, 200)),
                    3 => spawn!(move || sleep_run(&mut w, 50)),
                    4 => spawn!(move || {
                        let (c, n) = (w.range(1, 6), w.range(1, 30));
                        echo_run(&mut w, c, n)
                    }),
                    5 => spawn!(move || blocking_run(w.range(1, 4), w.range(1, 20))),
                    6 => spawn!(move || scope_run(w.range(1, 32) as usize)),
                    7 => spawn!(move || hog_run(w.range(12, 26))),
                    _ => spawn!(move || panic_run(w.range(1, 10))),
                });
            }
            for h in hs {
                if h.join().is_err() {
                    fail("a workload goroutine panicked");
                }
            }
            let mut parked = Parked {
                handles: Vec::new(),
                _keep: Vec::new(),
            };
            if park_at_shutdown {
                // Goroutines that will still be parked at shutdown, one per kind of wait.
                let (tx, rx) = chan::bounded::<u8>(0);
                parked._keep.push(Box::new(tx));
                parked.handles.push(spawn!(move || {
                    let _ = rx.recv();
                }));
                parked
                    .handles
                    .push(spawn!(|| gmp_runtime::sleep(Duration::from_secs(3600))));
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                parked.handles.push(spawn!(move || {
                    let _ = l.accept();
                }));
                let (tx2, rx2) = chan::unbounded::<u8>();
                parked._keep.push(Box::new(tx2));
                parked.handles.push(spawn!(move || {
                    select! {
                        recv(rx2) -> _ => {},
                        recv(chan::after(Duration::from_secs(3600))) -> _ => {},
                    }
                }));
                // Let them all reach their wait.
                gmp_runtime::sleep(Duration::from_millis(5));
            }
            parked
        }
    }
}

// ------------------------------------------------------------------------------------
// Process figures

fn status_field(name: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn threads() -> u64 {
    status_field("Threads:")
}

fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Waits up to 5 s for `now()` to come back to `base`.
fn settles(base: u64, now: impl Fn() -> u64) -> Result<(), u64> {
    let t = Instant::now();
    loop {
        let v = now();
        if v <= base {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(5) {
            return Err(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 60.0f64;
    let mut seed: Option<u64> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => seconds = 3.0,
            "--seconds" | "--minutes" => {
                let n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .unwrap_or_else(|| fail(&format!("{a} needs a positive number")));
                seconds = if a == "--minutes" { n * 60.0 } else { n };
            }
            "--seed" => {
                seed = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| fail("--seed needs an integer")),
                )
            }
            other => fail(&format!(
                "unknown argument `{other}` (usage: soak [--seconds N | --minutes N] [--seed S] [--smoke])"
            )),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("soak: seed {seed}, {seconds} s");
    let mut rng = Rng(seed | 1);

    // The panicking goroutines are expected: keep their messages out of the output.
    std::panic::set_hook(Box::new(|_| {}));

    // Warm-up: the network poller is process-wide, created on first use and kept (its
    // epoll and wake-up descriptors), so the baseline is taken after one echo has run.
    {
        let rt = Runtime::builder().procs(1).build().unwrap();
        // SAFETY: the echo goroutines hold no thread-local state across a suspension point.
        unsafe { rt.block_on(|| echo_run(&mut Rng(7), 1, 1)) };
    }
    let (base_threads, base_fds, base_rss) = (threads(), fds(), rss_kib());
    println!(
        "soak: baseline after warm-up: {base_threads} threads, {base_fds} fds, {base_rss} KiB RSS"
    );
    // Peaks, sampled every 20 ms by a thread of our own (counted in the baseline).
    let peak_threads = Arc::new(AtomicU64::new(base_threads));
    let peak_fds = Arc::new(AtomicU64::new(base_fds));
    let peak_rss = Arc::new(AtomicU64::new(base_rss));
    let stop = Arc::new(AtomicBool::new(false));
    let round_start = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    // How long a round may run before the soak calls it a hang (GMP_SOAK_HANG_SECS).
    let hang_ms: u64 = std::env::var("GMP_SOAK_HANG_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(120)
        * 1000;
    let sampler = {
        let (pt, pf, pr, stop, rs) = (
            peak_threads.clone(),
            peak_fds.clone(),
            peak_rss.clone(),
            stop.clone(),
            round_start.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                pt.fetch_max(threads(), Relaxed);
                pf.fetch_max(fds(), Relaxed);
                pr.fetch_max(rss_kib(), Relaxed);
                let started = rs.load(Relaxed);
                let now = epoch.elapsed().as_millis() as u64;
                if started > 0 && now.saturating_sub(started) > hang_ms {
                    eprintln!(
                        "soak: a round has run for {} s: hung (seed {seed}, pid {})",
                        hang_ms / 1000,
                        std::process::id()
                    );
                    if std::env::var_os("GMP_SOAK_HANG_WAIT").is_some() {
                        // Time to attach a debugger before the process exits.
                        std::thread::sleep(Duration::from_secs(300));
                    }
                    fail("hang");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Baselines with the sampler running.
    let base_threads = base_threads + 1;

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut rounds = 0u64;
    let mut rss_after_first = 0u64;
    while Instant::now() < deadline {
        let procs = rng.range(1, 4) as usize;
        let park = rng.range(0, 1) == 1;
        round_start.store(epoch.elapsed().as_millis().max(1) as u64, Relaxed);
        let parked = round(&mut rng, procs, park);
        // Shutdown unwound the parked goroutines: every join returns, with Err.
        for h in parked.handles {
            match h.join() {
                Err(_) => {
                    T.unwound_at_shutdown.fetch_add(1, Relaxed);
                }
                Ok(()) => fail("a goroutine parked at shutdown returned Ok"),
            }
        }
        round_start.store(0, Relaxed);
        if let Err(n) = settles(base_threads, threads) {
            fail(&format!(
                "round {rounds} ({procs} Ps): {n} threads 5 s after shutdown, baseline {base_threads} (seed {seed})"
            ));
        }
        if let Err(n) = settles(base_fds, fds) {
            fail(&format!(
                "round {rounds} ({procs} Ps): {n} fds 5 s after shutdown, baseline {base_fds} (seed {seed})"
            ));
        }
        rounds += 1;
        if rounds == 1 {
            rss_after_first = rss_kib();
        }
    }
    stop.store(true, Relaxed);
    sampler.join().unwrap();
    let final_rss = rss_kib();
    println!(
        "soak: {rounds} rounds in {:.1} s (seed {seed})\n  \
         goroutines spawned {}\n  messages delivered {}\n  connections served {} ({} bytes echoed)\n  \
         panics caught {}\n  select timeouts {}\n  blocking calls {}\n  parked goroutines unwound at shutdown {}\n  \
         threads: baseline {base_threads}, peak {}, final {}\n  \
         fds: baseline {base_fds}, peak {}, final {}\n  \
         RSS: baseline {} KiB, after round 1 {rss_after_first} KiB, peak {} KiB, final {final_rss} KiB",
        epoch.elapsed().as_secs_f64(),
        T.spawned.load(Relaxed),
        T.messages.load(Relaxed),
        T.connections.load(Relaxed),
        T.echo_bytes.load(Relaxed),
        T.panics.load(Relaxed),
        T.select_timeouts.load(Relaxed),
        T.blocking_calls.load(Relaxed),
        T.unwound_at_shutdown.load(Relaxed),
        peak_threads.load(Relaxed),
        threads(),
        peak_fds.load(Relaxed),
        fds(),
        base_rss,
        peak_rss.load(Relaxed),
    );
    if final_rss > rss_after_first + 64 * 1024 {
        fail(&format!(
            "RSS grew from {rss_after_first} KiB after round 1 to {final_rss} KiB: a leak (seed {seed})"
        ));
    }
    println!("soak: OK");
}
