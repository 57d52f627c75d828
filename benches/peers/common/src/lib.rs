//! What every Rust peer of the comparison suite shares, so that the peers differ only in
//! the runtime they measure: the command line, the `RESULT` line, the workload sizes,
//! and the helpers whose behaviour must be identical everywhere (RSS, CPU pinning, the
//! starve hog, echo and HTTP connection handling).
//!
//! ```text
//! peer-<name> <bench> [--procs N] [--port P] [--small]
//! RESULT bench=<b> peer=<p> procs=<n> value=<number|NA> unit=<unit> [note=<text>]
//! ```
//!
//! The sizes mirror `go/peer-go/main.go`; `README.md` defines each workload. `--small`
//! divides every size by 100 (and shortens the starve hog) for a smoke test: its
//! RESULT lines say `size=small` in their note and are not comparable with full runs.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Skynet's fan-out: every inner node has this many children.
pub const SKYNET_DIV: u64 = 10;
/// mpmc: the number of producers (each sends `mpmc / MPMC_PRODUCERS` integers).
pub const MPMC_PRODUCERS: u64 = 4;
/// mpmc: the number of consumers.
pub const MPMC_CONSUMERS: usize = 4;
/// mpmc: the channel capacity of bench `mpmc` (`mpmc0` uses 0).
pub const MPMC_CAP: usize = 1024;
/// timers: how many times each task sleeps.
pub const TIMER_ROUNDS: usize = 10;
/// timers: the length of one sleep.
pub const TIMER_SLEEP: Duration = Duration::from_millis(1);
/// mutex: the tasks contending for the one mutex.
pub const MUTEX_TASKS: usize = 1000;
/// semaphore: the permits the [`MUTEX_TASKS`] tasks share.
pub const SEM_PERMITS: usize = 4;
/// waitgroup: the tasks started (each calls `done` once) per round.
pub const WG_TASKS: usize = 100;
/// starve: how many times the bench task sleeps while the hog spins.
pub const STARVE_SLEEPS: usize = 20;
/// starve: the length of one of those sleeps.
pub const STARVE_SLEEP: Duration = Duration::from_millis(10);

/// The workload sizes: [`Sizes::FULL`] for measurements, [`Sizes::SMALL`] for smoke tests.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// spawn: tasks started.
    pub spawn: usize,
    /// skynet: leaves (a power of [`SKYNET_DIV`]).
    pub skynet_leaves: u64,
    /// pingpong: round trips.
    pub pingpong: u64,
    /// yield: yields per task (two tasks).
    pub yields: usize,
    /// mpmc and mpmc0: messages in total (a multiple of [`MPMC_PRODUCERS`]).
    pub mpmc: u64,
    /// timers: tasks.
    pub timer_tasks: usize,
    /// idlemem: blocked tasks.
    pub idle: usize,
    /// park1m: blocked tasks (idlemem at a million, timed).
    pub park1m: usize,
    /// starve: how long the hog spins.
    pub starve_hog: Duration,
    /// mutex and semaphore: lock + unlock (acquire + release) round trips per task
    /// ([`MUTEX_TASKS`] tasks).
    pub mutex_ops: u64,
    /// waitgroup: rounds of [`WG_TASKS`] tasks.
    pub wg_rounds: usize,
    /// conns: idle keep-alive connections, each served by its own task.
    pub conns: usize,
}

impl Sizes {
    /// The sizes of the measured runs (equal to the Go peer's constants).
    pub const FULL: Sizes = Sizes {
        spawn: 1_000_000,
        skynet_leaves: 1_000_000,
        pingpong: 1_000_000,
        yields: 5_000_000,
        mpmc: 10_000_000,
        timer_tasks: 100_000,
        idle: 100_000,
        park1m: 1_000_000,
        starve_hog: Duration::from_secs(2),
        mutex_ops: 1000,
        wg_rounds: 10_000,
        conns: 10_000,
    };
    /// One hundredth, for `--small` smoke runs.
    pub const SMALL: Sizes = Sizes {
        spawn: 10_000,
        skynet_leaves: 10_000,
        pingpong: 10_000,
        yields: 50_000,
        mpmc: 100_000,
        timer_tasks: 1_000,
        idle: 1_000,
        park1m: 10_000,
        starve_hog: Duration::from_millis(500),
        mutex_ops: 10,
        wg_rounds: 100,
        conns: 100,
    };
}

/// Sum of `0..leaves`: the expected skynet result.
pub fn skynet_expected(leaves: u64) -> u64 {
    leaves * (leaves - 1) / 2
}

/// The sum of every value in mpmc with `n` messages: each producer sends `0..n/MPMC_PRODUCERS`.
pub fn mpmc_expected(n: u64) -> u64 {
    let per = n / MPMC_PRODUCERS;
    MPMC_PRODUCERS * per * (per - 1) / 2
}

/// The parsed command line of a peer.
#[derive(Clone, Debug)]
pub struct Args {
    /// The peer's name, as in `RESULT ... peer=<name>`.
    pub peer: &'static str,
    /// The workload to run.
    pub bench: String,
    /// The parallelism (GOMAXPROCS, workers, Ps, pinned CPUs).
    pub procs: usize,
    /// The port of the echo and HTTP servers.
    pub port: u16,
    /// The sizes to run at.
    pub sizes: Sizes,
    small: bool,
}

/// Parses `<bench> [--procs N] [--port P] [--small]`; exits with status 2 and a usage
/// line on anything else.
pub fn parse_args(peer: &'static str) -> Args {
    let usage = |why: &str| -> ! {
        eprintln!(
            "peer-{peer}: {why}\nusage: peer-{peer} <bench> [--procs N] [--port P] [--small]"
        );
        std::process::exit(2)
    };
    let mut it = std::env::args().skip(1);
    let bench = it.next().unwrap_or_else(|| usage("no bench named"));
    let mut a = Args { peer, bench, procs: 2, port: 7000, sizes: Sizes::FULL, small: false };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--small" => {
                a.small = true;
                a.sizes = Sizes::SMALL;
            }
            "--procs" | "--port" => {
                let v = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
                let bad = || -> ! { usage(&format!("{flag} {v:?} is not a positive number")) };
                if flag == "--procs" {
                    a.procs = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| bad());
                } else {
                    a.port = v.parse().unwrap_or_else(|_| bad());
                }
            }
            _ => usage(&format!("unknown argument {flag:?}")),
        }
    }
    a
}

impl Args {
    /// Prints a measured value.
    pub fn report(&self, bench: &str, value: f64, unit: &str, note: &str) {
        self.line(bench, &format!("{value:.2}"), unit, note);
    }

    /// Prints `value=NA`: the peer cannot express this bench; `why` says why.
    pub fn not_available(&self, bench: &str, unit: &str, why: &str) {
        self.line(bench, "NA", unit, why);
    }

    fn line(&self, bench: &str, value: &str, unit: &str, note: &str) {
        let mut note = note.replace(' ', "_");
        if self.small {
            note = if note.is_empty() { "size=small".into() } else { format!("{note};size=small") };
        }
        let note = if note.is_empty() { String::new() } else { format!(" note={note}") };
        println!(
            "RESULT bench={bench} peer={} procs={} value={value} unit={unit}{note}",
            self.peer, self.procs
        );
    }

    /// Exits with status 2: the bench name is not one of the workloads.
    pub fn unknown_bench(&self) -> ! {
        eprintln!(
            "peer-{}: unknown bench {:?} (spawn skynet pingpong yield mpmc mpmc0 timers \
             idlemem park1m starve mutex semaphore waitgroup echo http conns)",
            self.peer, self.bench
        );
        std::process::exit(2)
    }

    /// `127.0.0.1:<port>`, where the echo and HTTP servers listen.
    pub fn listen_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The note for a run at `n` instead of `full` (the peer's cap): `N=<n>` plus `why`,
    /// or empty when the cap did not bite.
    pub fn capped(&self, what: &str, n: u64, full: u64, why: &str) -> String {
        if n < full {
            format!("{what}={n}{why}")
        } else {
            String::new()
        }
    }
}

/// The RESULT lines of idlemem and park1m: idlemem reports the RSS growth per task;
/// park1m reports the time until all `n` tasks had started (`park1m-time`, ms) and the RSS
/// growth per task (`park1m-mem`).
pub fn report_idle(a: &Args, bench: &str, all_started: Duration, per_task: f64, note: &str) {
    if bench == "park1m" {
        a.report("park1m-time", ms(all_started), "ms", note);
        a.report("park1m-mem", per_task, "B/task", note);
    } else {
        a.report(bench, per_task, "B/task", note);
    }
}

/// Nanoseconds per item.
pub fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// How much later than `since + slept` it is now, in ns (negative if early).
pub fn late(since: Instant, slept: Duration) -> i64 {
    since.elapsed().as_nanos() as i64 - slept.as_nanos() as i64
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resident set size of this process in KiB (VmRSS of /proc/self/status).
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).expect("no VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS is not a number")
}

/// Restricts this thread, and the threads it starts afterwards, to the first `n` CPUs
/// it may run on: the threads peer's equivalent of GOMAXPROCS.
pub fn pin_to_cpus(n: usize) {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; the libc
    // calls get its true size and a pointer to a live value.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set), 0);
        let mut keep: libc::cpu_set_t = std::mem::zeroed();
        let mut kept = 0;
        for cpu in 0..libc::CPU_SETSIZE as usize {
            if kept < n && libc::CPU_ISSET(cpu, &set) {
                libc::CPU_SET(cpu, &mut keep);
                kept += 1;
            }
        }
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&keep), &keep), 0);
    }
}

/// Counts down from `n`; [`Latch::done`] is true for exactly the last of `n` calls.
#[derive(Debug)]
pub struct Latch(AtomicUsize);

impl Latch {
    /// A latch that `n` calls of `done` open.
    pub fn new(n: usize) -> Self {
        Latch(AtomicUsize::new(n))
    }

    /// Counts one down; true for the call that reaches zero.
    pub fn done(&self) -> bool {
        // AcqRel: the last caller must see every earlier task's writes before it wakes
        // the waiter, and each caller publishes its own.
        self.0.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// A flag that a plain OS thread (outside any runtime) sets after `d`, so the starve hog
/// ends even where nothing in the runtime can preempt it.
pub fn stop_after(d: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        // Relaxed: the flag carries no data, only "stop now".
        s.store(true, Ordering::Relaxed);
    });
    stop
}

/// The starve hog: a tight arithmetic loop, no calls and no yields, until `stop`.
#[inline(never)]
pub fn hog(stop: &AtomicBool) -> u64 {
    let mut x: u64 = 1;
    // Relaxed: see `stop_after`.
    while !stop.load(Ordering::Relaxed) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    x
}

/// Echoes every byte back until EOF (blocking-style I/O: threads, or a stackful runtime).
pub fn echo_conn<S: Read + Write>(mut s: S) {
    let mut buf = [0u8; 4096];
    while echo_once(&mut s, &mut buf) {}
}

/// Reads once into `buf` and writes back what came; false at EOF or on an error.
pub fn echo_once<S: Read + Write>(s: &mut S, buf: &mut [u8]) -> bool {
    match s.read(buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => s.write_all(&buf[..n]).is_ok(),
    }
}

/// conns: the read buffer of one connection's task (a keep-alive server's, kept small so
/// that the figure is the runtime's cost per connection, not the buffer's).
pub const CONNS_BUF: usize = 512;

/// The server side of `conns`: counts the connections whose task has echoed the
/// client's first byte, and when all [`Sizes::conns`] have, prints `conns-mem` (the RSS
/// growth per connection since the meter was made; the sockets' kernel buffers are
/// not in RSS, so the figure is the runtime's and the task's) and exits the process,
/// which closes every connection. The client (`peer-loadgen --mode conns`) reports
/// `conns-time`.
pub struct ConnsMeter {
    args: Args,
    before_kib: u64,
    served: AtomicUsize,
}

impl ConnsMeter {
    /// Call before the first accept: takes the RSS baseline.
    pub fn new(a: &Args) -> Arc<ConnsMeter> {
        Arc::new(ConnsMeter { args: a.clone(), before_kib: rss_kib(), served: AtomicUsize::new(0) })
    }

    /// Call when a connection's task has echoed its first byte. The last one reports
    /// and exits.
    pub fn served_first(&self) {
        // Relaxed: a counter; only the increment that reaches the total acts on it.
        if self.served.fetch_add(1, Ordering::Relaxed) + 1 == self.args.sizes.conns {
            let after = rss_kib();
            let per_conn = (after.saturating_sub(self.before_kib) * 1024) as f64
                / self.args.sizes.conns as f64;
            self.args.report("conns-mem", per_conn, "B/conn", "");
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
    }
}

/// One `conns` connection (blocking-style I/O): echoes until EOF, telling `meter` after
/// the first echo.
pub fn conns_conn<S: Read + Write>(mut s: S, meter: &ConnsMeter) {
    let mut buf = [0u8; CONNS_BUF];
    if echo_once(&mut s, &mut buf) {
        meter.served_first();
        while echo_once(&mut s, &mut buf) {}
    }
}

/// The one response of the HTTP bench.
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";

/// Removes the complete requests (each a header block ended by a blank line) from the
/// front of `buf` and returns how many there were.
pub fn take_requests(buf: &mut Vec<u8>) -> usize {
    let (mut start, mut n) = (0, 0);
    while let Some(i) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
        start += i + 4;
        n += 1;
    }
    buf.drain(..start);
    n
}

/// Fills `out` with one fixed 200 response per request.
pub fn responses(n: usize, out: &mut Vec<u8>) {
    out.clear();
    for _ in 0..n {
        out.extend_from_slice(HTTP_RESPONSE);
    }
}

/// A minimal HTTP/1.1 keep-alive responder (blocking-style I/O).
pub fn http_conn<S: Read + Write>(mut s: S) {
    let (mut buf, mut out, mut chunk) = (Vec::with_capacity(4096), Vec::new(), [0u8; 4096]);
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let k = take_requests(&mut buf);
        if k > 0 {
            responses(k, &mut out);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_split_at_blank_lines_and_partial_ones_kept() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /x".to_vec();
        assert_eq!(take_requests(&mut buf), 2);
        assert_eq!(buf, b"GET /x");
        buf.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(take_requests(&mut buf), 1);
        assert!(buf.is_empty());
    }

    #[test]
    fn expected_sums() {
        assert_eq!(skynet_expected(1_000_000), 499_999_500_000);
        let brute: u64 = (0..MPMC_PRODUCERS).map(|_| (0..1000 / MPMC_PRODUCERS).sum::<u64>()).sum();
        assert_eq!(mpmc_expected(1000), brute);
        for s in [Sizes::FULL, Sizes::SMALL] {
            assert_eq!(s.mpmc % MPMC_PRODUCERS, 0);
            let mut l = s.skynet_leaves;
            while l % SKYNET_DIV == 0 {
                l /= SKYNET_DIV;
            }
            assert_eq!(l, 1, "skynet leaves must be a power of {SKYNET_DIV}");
        }
    }

    #[test]
    fn latch_opens_on_the_last_call_only() {
        let l = Latch::new(3);
        assert!(!l.done());
        assert!(!l.done());
        assert!(l.done());
    }
}
