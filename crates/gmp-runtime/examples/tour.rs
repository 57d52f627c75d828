//! The gmp tour: six short demonstrations of Go's G-M-P runtime in Rust, each measured
//! and checked.
//!
//! ```text
//! cargo run --release --example tour             # full size, well under a minute
//! cargo run --release --example tour -- --smoke  # every step small, in seconds (CI)
//! cargo run --release --example tour -- 1 4      # only steps 1 and 4
//! ```
//!
//! 1. A million goroutines: the skynet tree (1,000,000 leaves) — time and peak RSS.
//! 2. Go's concurrent prime sieve: a pipeline of goroutines and unbuffered channels.
//! 3. `select!` with a deadline (`after`), a ticker (`tick`), cancellation and
//!    `default(timeout)`.
//! 4. A TCP echo server on 127.0.0.1 and 1,000 client goroutines: round trips per second.
//! 5. A goroutine in a tight loop on a single P, and a sleeper that still wakes on time
//!    (sysmon takes the P from a goroutine that runs 10 ms without a scheduling point).
//! 6. The scheduler at work: Go's `SCHED` trace lines while a work-stealing load runs.
//!
//! Every step checks its result; the tour exits 0 only if all of them were correct, and
//! otherwise names what went wrong. A step that hangs is reported as such and ends the
//! tour with a non-zero exit instead of hanging it.

use gmp_runtime::chan::{after, bounded, tick};
use gmp_runtime::net::{TcpListener, TcpStream};
use gmp_runtime::{go, sleep, yield_now, JoinHandle, Runtime};
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The problem sizes of one run: full, or `--smoke`.
struct Sizes {
    skynet_leaves: u64,
    sieve_primes: usize,
    /// The select step's unit of time (the worker's pace, the ticker's period, ...).
    select_unit: Duration,
    echo_clients: usize,
    echo_round_trips: usize,
    starve_sleeps: usize,
    sched_goroutines: u64,
    sched_numbers: u64,
    sched_trace_ms: u64,
    /// A step that takes longer than this is declared hung.
    step_limit: Duration,
}

const FULL: Sizes = Sizes {
    skynet_leaves: 1_000_000,
    sieve_primes: 1_000,
    select_unit: Duration::from_millis(20),
    echo_clients: 1_000,
    echo_round_trips: 100,
    starve_sleeps: 20,
    sched_goroutines: 400,
    sched_numbers: 20_000,
    sched_trace_ms: 200,
    step_limit: Duration::from_secs(120),
};

const SMOKE: Sizes = Sizes {
    skynet_leaves: 10_000,
    sieve_primes: 100,
    select_unit: Duration::from_millis(5),
    echo_clients: 50,
    echo_round_trips: 10,
    starve_sleeps: 5,
    sched_goroutines: 40,
    sched_numbers: 5_000,
    sched_trace_ms: 20,
    step_limit: Duration::from_secs(60),
};

/// What a step reports: its figures on success, what was wrong on failure.
type Outcome = Result<String, String>;

struct Step {
    title: &'static str,
    what: &'static str,
    run: fn(&Sizes) -> Outcome,
}

const STEPS: [Step; 6] = [
    Step {
        title: "a million goroutines",
        what: "skynet: each node starts 10 goroutines and sums what they send on a channel \
               of capacity 10",
        run: step_skynet,
    },
    Step {
        title: "Go's concurrent prime sieve",
        what: "a pipeline of goroutines, one filter per prime, handing numbers through \
               unbuffered channels",
        run: step_sieve,
    },
    Step {
        title: "select with timeouts and tickers",
        what: "`select!` over results, a `tick` ticker and an `after` deadline; cancellation; \
               `default(timeout)`",
        run: step_select,
    },
    Step {
        title: "a TCP echo server",
        what: "one goroutine per connection, blocking-style I/O parked on the network poller",
        run: step_echo,
    },
    Step {
        title: "a tight loop cannot starve a sleeper",
        what: "procs=1: a goroutine spins with no scheduling point; sysmon takes its P after \
               10 ms so the sleeper wakes",
        run: step_starve,
    },
    Step {
        title: "the scheduler at work",
        what: "Go's SCHED trace lines (stderr) while idle Ps steal goroutines from a busy one",
        run: step_sched,
    },
];

fn main() {
    let mut smoke = false;
    let mut only: Vec<usize> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => smoke = true,
            s => match s.parse::<usize>() {
                Ok(n) if (1..=STEPS.len()).contains(&n) => only.push(n),
                _ => {
                    eprintln!(
                        "tour: unknown argument {s:?}; usage: tour [--smoke] [step numbers 1-{}]",
                        STEPS.len()
                    );
                    exit(2);
                }
            },
        }
    }
    let sizes = if smoke { &SMOKE } else { &FULL };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "gmp tour: Go's G-M-P goroutine runtime in Rust, on {cpus} CPU{}{}{}",
        if cpus == 1 { "" } else { "s" },
        if smoke { " (--smoke: small sizes)" } else { "" },
        if cfg!(debug_assertions) {
            "\n  note: a debug build; run with --release for representative numbers"
        } else {
            ""
        }
    );
    let tour_start = Instant::now();
    let mut failures = Vec::new();
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        if !only.is_empty() && !only.contains(&n) {
            continue;
        }
        println!(
            "\n[{n}/{}] {}\n      {}",
            STEPS.len(),
            step.title,
            step.what
        );
        match run_step(n, step, sizes) {
            Ok(figures) => println!("  ok  {figures}"),
            Err(why) => {
                println!("  FAILED  {why}");
                failures.push(format!("step {n} ({}): {why}", step.title));
            }
        }
    }
    println!("\ntour: {:.1} s in all", tour_start.elapsed().as_secs_f64());
    if !failures.is_empty() {
        eprintln!("tour: {} step(s) FAILED:", failures.len());
        for f in &failures {
            eprintln!("  - {f}");
        }
        exit(1);
    }
    println!("tour: every result checked correct");
}

/// Runs one step with a panic guard and a watchdog: a step that hangs ends the process
/// with a message instead of hanging the tour.
fn run_step(n: usize, step: &Step, sizes: &Sizes) -> Outcome {
    let (done, watch) = mpsc::channel::<()>();
    let limit = sizes.step_limit;
    let title = step.title;
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(limit) {
            eprintln!(
                "\ntour: step {n} ({title}) did not finish within {} s: it hangs. FAILED",
                limit.as_secs()
            );
            exit(1);
        }
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| (step.run)(sizes)))
        .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(&*payload))));
    drop(done);
    watchdog.join().expect("the watchdog thread does not panic");
    outcome
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".into()
    }
}

fn runtime(procs: Option<usize>) -> Result<Runtime, String> {
    let b = Runtime::builder();
    let b = match procs {
        Some(p) => b.procs(p),
        None => b,
    };
    b.build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

// ---------------------------------------------------------------------------------------
// Step 1: skynet.

/// A skynet node: covers `num .. num + size`, sends the sum of that range to `out`.
fn skynet(out: gmp_runtime::chan::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        out.send(num).expect("the parent waits for every child");
        return;
    }
    let (tx, rx) = bounded(10);
    let child = size / 10;
    for i in 0..10 {
        let tx = tx.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe { go!(move || skynet(tx, num + i * child, child)) };
    }
    drop(tx);
    let sum: u64 = rx.iter().take(10).sum();
    out.send(sum).expect("the parent waits for every child");
}

fn step_skynet(s: &Sizes) -> Outcome {
    let leaves = s.skynet_leaves;
    let rt = Arc::new(runtime(None)?);
    let rss_before = proc_status_kib("VmRSS");
    let progress = {
        let rt = rt.clone();
        Progress::start(move || format!("live goroutines: {:>9}", sep(rt.num_goroutine() as u64)))
    };
    // How many goroutines are alive at once depends on the scheduling order: sample it.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (rt, sampling) = (rt.clone(), sampling.clone());
        std::thread::spawn(move || {
            let mut most = 0;
            while sampling.load(Ordering::Relaxed) {
                most = most.max(rt.num_goroutine());
                std::thread::sleep(Duration::from_millis(1));
            }
            most
        })
    };
    let start = Instant::now();
    // SAFETY: the tree's goroutines keep no thread-local state across a suspension point.
    let sum = unsafe {
        rt.block_on(|| {
            let (tx, rx) = bounded(1);
            go!(move || skynet(tx, 0, leaves));
            rx.recv().expect("the root sends its sum")
        })
    };
    let took = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let most_alive = sampler.join().expect("the sampler thread does not panic");
    drop(progress);
    let peak = proc_status_kib("VmHWM");
    let want = leaves * (leaves - 1) / 2;
    if sum != want {
        return Err(format!("skynet sum {sum}, expected {want}"));
    }
    let goroutines: u64 = (0..)
        .map(|d| 10u64.pow(d))
        .take_while(|&n| n <= leaves)
        .sum();
    let rss = match (peak, rss_before) {
        (Some(peak), Some(before)) => format!(
            "; peak RSS {} MiB (VmHWM; {} MiB before)",
            peak / 1024,
            before / 1024
        ),
        _ => String::new(),
    };
    Ok(format!(
        "{} goroutines (procs={}), root sum {} checked, in {:.0} ms ({:.0} ns a goroutine); \
         up to {} alive at once (sampled every ms){rss}",
        sep(goroutines),
        rt.procs(),
        sep(sum),
        ms(took),
        took.as_nanos() as f64 / goroutines as f64,
        sep(most_alive as u64)
    ))
}

/// A field of `/proc/self/status`, in KiB (Linux only; `None` elsewhere).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Step 2: the prime sieve.

fn step_sieve(s: &Sizes) -> Outcome {
    let n = s.sieve_primes;
    let rt = runtime(None)?;
    let found = Arc::new(AtomicUsize::new(0));
    let progress = {
        let found = found.clone();
        Progress::start(move || format!("primes: {}", found.load(Ordering::Relaxed)))
    };
    let start = Instant::now();
    // SAFETY: the pipeline's goroutines keep no thread-local state across a suspension.
    let primes = unsafe {
        rt.block_on(|| {
            let (tx, mut ch) = bounded::<u64>(0);
            go!(move || {
                for i in 2.. {
                    if tx.send(i).is_err() {
                        return; // the pipeline was dropped: done
                    }
                }
            });
            let mut primes = Vec::with_capacity(n);
            for _ in 0..n {
                let prime = ch.recv().expect("the pipeline never ends first");
                primes.push(prime);
                found.store(primes.len(), Ordering::Relaxed);
                let (tx, next) = bounded(0);
                go!(move || {
                    for i in ch {
                        if i % prime != 0 && tx.send(i).is_err() {
                            return;
                        }
                    }
                });
                ch = next;
            }
            primes
        })
    };
    let took = start.elapsed();
    drop(progress);
    let want = first_primes(n);
    if let Some(i) = (0..n).find(|&i| primes.get(i) != want.get(i)) {
        return Err(format!(
            "prime #{} from the pipeline is {:?}, expected {}",
            i + 1,
            primes.get(i),
            want[i]
        ));
    }
    // Each number m reaching filter k was handed over once per filter before it.
    let handoffs: u64 = (2..=want[n - 1])
        .map(|m| want.iter().take_while(|&&p| p < m && m % p != 0).count() as u64 + 1)
        .sum();
    Ok(format!(
        "the first {} primes (up to {}) checked, {} goroutines, {} channel handoffs in {:.0} ms \
         ({:.0} ns a handoff)",
        sep(n as u64),
        sep(want[n - 1]),
        sep(n as u64 + 1),
        sep(handoffs),
        ms(took),
        took.as_nanos() as f64 / handoffs as f64
    ))
}

/// The first `n` primes by the sieve of Eratosthenes, to check the pipeline against.
fn first_primes(n: usize) -> Vec<u64> {
    let mut limit = 64usize;
    loop {
        let mut composite = vec![false; limit];
        let mut primes = Vec::new();
        for i in 2..limit {
            if !composite[i] {
                primes.push(i as u64);
                for j in (i * i..limit).step_by(i) {
                    composite[j] = true;
                }
            }
        }
        if primes.len() >= n {
            primes.truncate(n);
            return primes;
        }
        limit *= 2;
    }
}

// ---------------------------------------------------------------------------------------
// Step 3: select.

fn step_select(s: &Sizes) -> Outcome {
    let unit = s.select_unit;
    let rt = runtime(None)?;
    // SAFETY: these goroutines keep no thread-local state across a suspension point.
    unsafe { rt.block_on(|| select_demo(unit)) }
}

fn select_demo(unit: Duration) -> Outcome {
    use gmp_runtime::chan::select;
    const RESULTS: u64 = 5;

    // (a) A worker sends a result every `unit`; a ticker fires every `unit`; an overall
    // deadline of 50 units guards the loop. The results channel closing ends it.
    let (results_tx, results) = bounded::<u64>(0);
    // SAFETY: the goroutine holds no thread-local state across a suspension point.
    unsafe {
        go!(move || {
            for i in 0..RESULTS {
                sleep(unit);
                results_tx
                    .send(i * i)
                    .expect("the selecting goroutine reads all results");
            }
        })
    };
    let ticker = tick(unit);
    let deadline = after(unit * 50);
    let start = Instant::now();
    let (mut got, mut ticks) = (Vec::new(), 0u64);
    loop {
        select! {
            recv(results) -> r => match r {
                Ok(v) => got.push(v),
                Err(_) => break, // closed: the worker is done
            },
            recv(ticker) -> _ => ticks += 1,
            recv(deadline) -> _ => return Err(format!(
                "the deadline ({:.0} ms) fired before the {RESULTS} results came in (got {got:?})",
                ms(unit * 50)
            )),
        }
    }
    let loop_time = start.elapsed();
    let want: Vec<u64> = (0..RESULTS).map(|i| i * i).collect();
    if got != want {
        return Err(format!("select received {got:?}, expected {want:?}"));
    }
    // A ticker never fires more often than its period (it keeps at most one tick).
    let max_ticks = (loop_time.as_nanos() / unit.as_nanos()) as u64 + 1;
    if ticks == 0 || ticks > max_ticks {
        return Err(format!(
            "{ticks} ticks of a {:.0} ms ticker in {:.0} ms: expected 1 to {max_ticks}",
            ms(unit),
            ms(loop_time)
        ));
    }

    // (b) A slow request (it would answer after 100 units) raced against a 3-unit
    // timeout; on timeout we cancel it by dropping the cancel channel, Go-context style.
    let (cancel_tx, cancel) = bounded::<()>(0);
    let (answer_tx, answer) = bounded::<&str>(1);
    // SAFETY: the goroutine holds no thread-local state across a suspension point.
    let slow: JoinHandle<&str> = unsafe {
        go!(move || {
            select! {
                recv(cancel) -> _ => "cancelled",
                recv(after(unit * 100)) -> _ => {
                    let _ = answer_tx.send("answer");
                    "answered"
                }
            }
        })
    };
    let start = Instant::now();
    let timed_out = select! {
        recv(answer) -> a => {
            return Err(format!("the slow request answered {a:?} before its timeout"));
        }
        recv(after(unit * 3)) -> _ => start.elapsed(),
    };
    drop(cancel_tx);
    let slow_end = slow
        .join()
        .map_err(|_| "the slow request panicked".to_string())?;
    if timed_out < unit * 3 {
        return Err(format!(
            "`after({:?})` fired after only {timed_out:?}",
            unit * 3
        ));
    }
    if slow_end != "cancelled" {
        return Err(format!(
            "the slow request ended {slow_end:?}, expected \"cancelled\""
        ));
    }

    // (c) `default(timeout)`: wait at most 2 units for a channel nobody sends on.
    let (_silent_tx, silent) = bounded::<u64>(0);
    let start = Instant::now();
    let waited = select! {
        recv(silent) -> m => return Err(format!("a silent channel delivered {m:?}")),
        default(unit * 2) => start.elapsed(),
    };
    if waited < unit * 2 {
        return Err(format!(
            "`default({:?})` gave up after only {waited:?}",
            unit * 2
        ));
    }
    Ok(format!(
        "{RESULTS} results and {ticks} ticks ({:.0} ms ticker) in {:.0} ms; a {:.0} ms timeout \
         fired after {:.1} ms and cancelled the slow request; default({:.0} ms) gave up after \
         {:.1} ms",
        ms(unit),
        ms(loop_time),
        ms(unit * 3),
        ms(timed_out),
        ms(unit * 2),
        ms(waited)
    ))
}

// ---------------------------------------------------------------------------------------
// Step 4: TCP echo.

const MSG: usize = 64;

fn step_echo(s: &Sizes) -> Outcome {
    let clients = s.echo_clients;
    let rounds = s.echo_round_trips;
    // Each client costs two descriptors (its socket and the server's).
    ensure_fd_limit(2 * clients as u64 + 64)?;
    let rt = runtime(None)?;
    let done = Arc::new(AtomicU64::new(0));
    let progress = {
        let done = done.clone();
        let total = (clients * rounds) as u64;
        Progress::start(move || {
            format!(
                "round trips: {} / {}",
                sep(done.load(Ordering::Relaxed)),
                sep(total)
            )
        })
    };
    let start = Instant::now();
    // SAFETY: the server and client goroutines keep no thread-local state across I/O.
    let r = unsafe { rt.block_on(|| echo_demo(clients, rounds, &done)) };
    let took = start.elapsed();
    drop(progress);
    let served = r?;
    let trips = (clients * rounds) as u64;
    Ok(format!(
        "{} clients x {} round trips of {MSG} bytes, every echo checked, {} connections \
         served: {} round trips/s ({:.0} ms)",
        sep(clients as u64),
        rounds,
        sep(served as u64),
        sep((trips as f64 / took.as_secs_f64()) as u64),
        ms(took)
    ))
}

/// Runs the server and the clients; returns how many connections the server handled.
fn echo_demo(clients: usize, rounds: usize, done: &Arc<AtomicU64>) -> Result<usize, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));

    // The server: accept, and one goroutine per connection that echoes until EOF.
    let server = {
        let stop = stop.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe {
            go!(move || -> Result<usize, String> {
                let mut conns = Vec::new();
                loop {
                    let (conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
                    if stop.load(Ordering::SeqCst) {
                        break; // the wake-up connection: every client is done
                    }
                    conns.push(go!(move || echo(conn)));
                }
                let n = conns.len();
                for c in conns {
                    c.join()
                        .map_err(|_| "a server connection panicked".to_string())??;
                }
                Ok(n)
            })
        }
    };

    // The clients: each connects and checks `rounds` echoes of its own messages.
    let handles: Vec<JoinHandle<Result<(), String>>> = (0..clients)
        .map(|id| {
            let done = done.clone();
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe { go!(move || client(addr, id, rounds, &done)) }
        })
        .collect();
    let mut first_err = None;
    for h in handles {
        let r = h.join().unwrap_or_else(|_| Err("a client panicked".into()));
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    // Wake the accept loop so the server can finish.
    stop.store(true, Ordering::SeqCst);
    let waker = TcpStream::connect(addr).map_err(|e| format!("connect to stop the server: {e}"));
    let served = server
        .join()
        .unwrap_or_else(|_| Err("the server panicked".into()));
    drop(waker);
    if let Some(e) = first_err {
        return Err(e);
    }
    let served = served?;
    if served != clients {
        return Err(format!(
            "the server handled {served} connections, expected {clients}"
        ));
    }
    Ok(served)
}

fn echo(mut conn: TcpStream) -> Result<(), String> {
    conn.set_nodelay(true)
        .map_err(|e| format!("set_nodelay: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => conn
                .write_all(&buf[..n])
                .map_err(|e| format!("server write: {e}"))?,
            Err(e) => return Err(format!("server read: {e}")),
        }
    }
}

fn client(
    addr: std::net::SocketAddr,
    id: usize,
    rounds: usize,
    done: &AtomicU64,
) -> Result<(), String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("client {id}: connect: {e}"))?;
    conn.set_nodelay(true)
        .map_err(|e| format!("set_nodelay: {e}"))?;
    let mut msg = [0u8; MSG];
    let mut back = [0u8; MSG];
    for round in 0..rounds {
        // A message no other client or round sends, so a mixed-up echo is caught.
        let tag = format!("client {id:>6} round {round:>6} ");
        for (i, b) in msg.iter_mut().enumerate() {
            *b = tag.as_bytes().get(i).copied().unwrap_or(b'.');
        }
        conn.write_all(&msg)
            .map_err(|e| format!("client {id}: write: {e}"))?;
        conn.read_exact(&mut back)
            .map_err(|e| format!("client {id}: read: {e}"))?;
        if back != msg {
            return Err(format!(
                "client {id} round {round}: echo {:?} differs from what was sent",
                String::from_utf8_lossy(&back)
            ));
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Raises the soft limit on open files to at least `need` (up to the hard limit).
fn ensure_fd_limit(need: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max < need {
        return Err(format!(
            "the echo step needs {need} open files; the hard limit (`ulimit -Hn`) is {}",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = need;
    // SAFETY: `lim` is a valid rlimit, with the soft limit within the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "the echo step needs {need} open files and cannot raise `ulimit -n`: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Step 5: starvation.

/// A tight loop: no calls, no yields, no scheduling point until `stop` is set.
#[inline(never)]
fn hog(stop: &AtomicBool) -> u64 {
    let mut x: u64 = 1;
    let mut spins = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        spins += 1;
    }
    std::hint::black_box(x);
    spins
}

fn step_starve(s: &Sizes) -> Outcome {
    const SLEEP: Duration = Duration::from_millis(10);
    /// Without preemption the sleeper would wait for this (then a plain thread stops the
    /// hog so the tour can go on and report the failure).
    const HOG_MAX: Duration = Duration::from_secs(4);
    let sleeps = s.starve_sleeps;
    let rt = runtime(Some(1))?;
    let stop = Arc::new(AtomicBool::new(false));
    // The safety net, a plain OS thread; it ends as soon as `release` is dropped.
    let (release, released) = mpsc::channel::<()>();
    let net = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let starved = matches!(
                released.recv_timeout(HOG_MAX),
                Err(mpsc::RecvTimeoutError::Timeout)
            );
            stop.store(true, Ordering::Relaxed);
            starved
        })
    };
    // SAFETY: neither goroutine keeps thread-local state across a suspension point.
    let (worst, spins) = unsafe {
        rt.block_on(|| {
            let hog_stop = stop.clone();
            let hog = go!(move || hog(&hog_stop));
            let mut worst = Duration::ZERO;
            for _ in 0..sleeps {
                let t = Instant::now();
                sleep(SLEEP);
                worst = worst.max(t.elapsed().saturating_sub(SLEEP));
            }
            stop.store(true, Ordering::Relaxed);
            (worst, hog.join().expect("the hog does not panic"))
        })
    };
    drop(release);
    let starved = net.join().expect("the safety-net thread does not panic");
    if starved || worst >= HOG_MAX / 2 {
        return Err(format!(
            "the sleeper was starved: a 10 ms sleep came back {:.0} ms late",
            ms(worst)
        ));
    }
    Ok(format!(
        "{sleeps} sleeps of 10 ms on 1 P beside a goroutine that spun {} M times without a \
         scheduling point: worst lateness {:.1} ms (without preemption: the whole spin, up to \
         {} s)",
        sep(spins / 1_000_000),
        ms(worst),
        HOG_MAX.as_secs()
    ))
}

// ---------------------------------------------------------------------------------------
// Step 6: the scheduler at work.

fn collatz_len(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn step_sched(s: &Sizes) -> Outcome {
    let (count, numbers) = (s.sched_goroutines, s.sched_numbers);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let procs = cpus.clamp(2, 4);
    let rt = Runtime::builder()
        .procs(procs)
        .schedtrace(s.sched_trace_ms)
        .thread_name("gmp-tour")
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    println!(
        "      {count} goroutines are started on one P; watch the other Ps steal them \
         (runqueue = global queue, [..] = each P's local queue):"
    );
    let start = Instant::now();
    // SAFETY: the goroutines read the thread's id afresh and keep nothing thread-local
    // across a suspension point.
    let results = unsafe {
        rt.block_on(|| {
            let hs: Vec<_> = (0..count)
                .map(|g| {
                    go!(move || {
                        let first_thread = std::thread::current().id();
                        let mut sum = 0;
                        let base = 1 + g * numbers;
                        for n in base..base + numbers {
                            sum += collatz_len(n);
                            if n % 1000 == 0 {
                                yield_now(); // cooperative: a scheduling point
                            }
                        }
                        (sum, first_thread)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        })
    };
    let took = start.elapsed();
    drop(rt);
    let mut total = 0;
    let mut per_thread: HashMap<std::thread::ThreadId, usize> = HashMap::new();
    for r in results {
        let (sum, thread) = r.map_err(|_| "a goroutine panicked".to_string())?;
        total += sum;
        *per_thread.entry(thread).or_default() += 1;
    }
    let want: u64 = (1..=count * numbers).map(collatz_len).sum();
    if total != want {
        return Err(format!("the goroutines summed {total}, expected {want}"));
    }
    let mut spread: Vec<usize> = per_thread.into_values().collect();
    spread.sort_unstable_by(|a, b| b.cmp(a));
    Ok(format!(
        "{count} goroutines, {} Collatz lengths summed and checked, in {:.0} ms (procs={procs}); \
         goroutines started per thread: {spread:?}",
        sep(count * numbers),
        ms(took)
    ))
}

// ---------------------------------------------------------------------------------------
// Output helpers.

/// A progress line while a step runs: on a terminal, rewritten in place every 100 ms;
/// otherwise a line every 2 s (so logs stay readable).
struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(status: impl Fn() -> String + Send + 'static) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let tty = std::io::stdout().is_terminal();
            let period = Duration::from_millis(if tty { 100 } else { 2000 });
            let start = Instant::now();
            let mut drawn = false;
            loop {
                std::thread::park_timeout(period);
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let line = format!(
                    "      {:>5.1} s  {}",
                    start.elapsed().as_secs_f64(),
                    status()
                );
                let mut out = std::io::stdout().lock();
                // Progress is best-effort: a closed stdout is not an error of the step.
                let _ = if tty {
                    write!(out, "\r\x1b[K{line}")
                } else {
                    writeln!(out, "{line}")
                };
                let _ = out.flush();
                drawn = true;
            }
            if tty && drawn {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r\x1b[K");
                let _ = out.flush();
            }
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `1234567` → `1,234,567`.
fn sep(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
