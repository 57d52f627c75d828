//! Command-line parsing: the usage texts, `--help` for every command, and a clear error
//! (with the usage) for anything unknown. Plain `std`, like the rest of xtask.

use std::process::exit;

/// The top-level usage.
pub const USAGE: &str = "\
cargo xtask: the gmp project's automation (plain std)

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    ci                  the whole of CI: fmt, clippy, tests, docs, loom, benches built,
                        examples, the peer workloads at small size, a 30-second soak, and
                        the sanitizers when a nightly toolchain is installed
    loom [CRATE]        the loom models (every crate, or one)
    bench [OPTIONS] [PEER...]
                        the criterion benches, then the peer comparison suite
    soak [OPTIONS]      a randomized mixed workload, checked for loss, hangs and leaks
    sanitize [OPTIONS]  tests under AddressSanitizer and ThreadSanitizer (nightly), or Valgrind
    package             `cargo package --workspace` on a scratch copy, each crate verified alone
    profile BENCH [OPTIONS]
                        perf-record one peer on one workload: a flame graph and a flat
                        profile in bench-results/profiles/
    help [COMMAND]      this text, or a command's

`cargo xtask <COMMAND> --help` prints a command's options. Every cargo invocation honours
CARGO_TARGET_DIR (or build.target-dir); the loom and sanitizer builds use their own
directories under it.
";

/// Usage of `ci`.
pub const CI_USAGE: &str = "\
cargo xtask ci: the whole of CI (.ci/run calls exactly this)

USAGE:
    cargo xtask ci

Steps, in order, each timed; the first failing step names itself and ends the run
with exit status 1: fmt --check, clippy -D warnings, cargo test --workspace --release,
cargo doc -D warnings, the loom models, cargo bench --no-run, every example with
--smoke, the gmp peer workloads at 1/100 size (benches/peers/run.sh gmp, CHECK=1),
a 30-second soak (soak --seconds 30), and `sanitize --ci` when `cargo +nightly` works
(otherwise it says it skipped them). No options.
";

/// Usage of `loom`.
pub const LOOM_USAGE: &str = "\
cargo xtask loom: the loom models (release, --cfg loom, own target dir <target>/loom)

USAGE:
    cargo xtask loom [CRATE]

ARGS:
    CRATE    one of gmp-core, gmp-queue, gmp-chan, gmp-netpoll, gmp-runtime (default: all)

ENVIRONMENT:
    LOOM_MAX_PREEMPTIONS    preemption bound (default 2)
";

/// Usage of `bench`.
pub const BENCH_USAGE: &str = "\
cargo xtask bench: the criterion benches, then the peer comparison suite
(benches/peers/run.sh; it needs a quiet machine: run nothing else meanwhile)

USAGE:
    cargo xtask bench [OPTIONS] [PEER...]

OPTIONS:
    --quick           short criterion runs; one small run of each peer workload, written to
                      bench-results/tmp/ (the committed table is left alone)
    --no-criterion    skip the criterion benches
    -h, --help        this text

ARGS:
    PEER...    peers to run: gmp, go, tokio, may, threads (default: every peer whose
               tools are installed)
";

/// Usage of `soak`.
pub const SOAK_USAGE: &str = "\
cargo xtask soak: a randomized mixed workload on 1-4 Ps (crates/gmp-runtime/examples/soak.rs)

Rounds of spawn trees, every channel flavour, select with timeouts, sleeps, TCP echo on
loopback, blocking calls, scopes, panics and shutdowns with parked goroutines, each
round on a fresh runtime with a random number of Ps. Checked: every message delivered
exactly once, every join returns, and threads, file descriptors and RSS come back to
their baseline. Prints the figures at the end; exits 1 on the first violation.

USAGE:
    cargo xtask soak [--minutes N | --seconds N] [--seed S]

OPTIONS:
    --minutes N    how long (fractions allowed: 0.5 is 30 seconds)
    --seconds N    how long, in seconds (default 60)
    --seed S       the random seed (default: from the clock; printed either way)
    -h, --help     this text
";

/// Usage of `sanitize`.
pub const SANITIZE_USAGE: &str = "\
cargo xtask sanitize: tests under the sanitizers, with fiber annotations at every stack
switch (RUSTFLAGS --cfg gmp_asan / --cfg gmp_tsan, see gmp-core's sanitizer module)

USAGE:
    cargo xtask sanitize [OPTIONS] [KIND...]

ARGS:
    KIND...    address, thread, valgrind (default: address thread)

OPTIONS:
    --ci          the small subset CI runs (ASan on gmp-core and gmp-chan tests)
    -h, --help    this text

address and thread need a nightly toolchain (cargo +nightly, -Zsanitizer=...) and build
into <target>/sanitize-<kind>; valgrind runs release test binaries built with the
`valgrind` feature of gmp-core (stack registration) under valgrind.
";

/// Usage of `profile`.
pub const PROFILE_USAGE: &str = "\
cargo xtask profile: records one peer on one comparison workload with perf and writes
bench-results/profiles/<bench>-<peer>.svg (a flame graph, rendered by inferno) and
<bench>-<peer>.txt (the frames with the most self and total samples).
Runs benches/peers/profile.sh; it needs perf and, like the suite, a quiet machine.

USAGE:
    cargo xtask profile <BENCH> [--peer P] [--procs N] [--seconds S] [--syscalls]

ARGS:
    BENCH    spawn, skynet, pingpong, yield, mpmc, mpmc0, timers, idlemem, starve, mutex,
             park1m, conns, echo, http

OPTIONS:
    --peer P       gmp (default), go, tokio, may, threads
    --procs N      the parallelism (default: the suite's for that bench)
    --seconds S    how long wrk drives the http server (default 5)
    --syscalls     also count system calls (strace -c -f, a second run); for echo, the
                   calls per round trip
    -h, --help     this text
";

/// The workloads `benches/peers/profile.sh` knows.
const BENCHES: &[&str] = &[
    "spawn", "skynet", "pingpong", "yield", "mpmc", "mpmc0", "timers", "idlemem", "starve",
    "mutex", "park1m", "conns", "echo", "http",
];

/// `profile BENCH [OPTIONS]`: checked here so that a mistake gets the usage; passed on
/// to the script as given.
pub fn parse_profile(args: &[String]) -> Vec<String> {
    if wants_help(args) {
        help(PROFILE_USAGE);
    }
    let Some(bench) = args.first() else {
        bad(PROFILE_USAGE, "`profile` needs a BENCH")
    };
    if !BENCHES.contains(&bench.as_str()) {
        bad(PROFILE_USAGE, &format!("unknown bench `{bench}`"));
    }
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--syscalls" => {}
            "--peer" => match it.next() {
                Some(p) if PEERS.contains(&p.as_str()) => {}
                Some(p) => bad(PROFILE_USAGE, &format!("unknown peer `{p}`")),
                None => bad(PROFILE_USAGE, "`--peer` needs a value"),
            },
            "--procs" | "--seconds" => match it.next() {
                Some(n) if n.parse::<u32>().is_ok_and(|n| n > 0) => {}
                _ => bad(PROFILE_USAGE, &format!("`{a}` needs a positive integer")),
            },
            x => bad(PROFILE_USAGE, &format!("unexpected argument `{x}`")),
        }
    }
    args.to_vec()
}

/// Prints `usage` and exits 0 (asked for help).
pub fn help(usage: &str) -> ! {
    print!("{usage}");
    exit(0)
}

/// Prints the mistake and `usage` and exits 2.
pub fn bad(usage: &str, msg: &str) -> ! {
    eprintln!("xtask: {msg}\n");
    eprint!("{usage}");
    exit(2)
}

/// True if `args` asks for help (`-h`, `--help`, `help`).
pub fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "-h" || a == "--help")
}

/// `ci` takes no arguments.
/// `package` (no options).
pub const PACKAGE_USAGE: &str = "\
cargo xtask package: packages every library crate (on a scratch copy with publish = true;
the checkout keeps publish = false) and builds each package on its own

USAGE:
    cargo xtask package
";

/// `package`: no arguments.
pub fn parse_package(args: &[String]) {
    if wants_help(args) {
        help(PACKAGE_USAGE);
    }
    if let Some(a) = args.first() {
        bad(
            PACKAGE_USAGE,
            &format!("`package` takes no arguments, got `{a}`"),
        );
    }
}

pub fn parse_ci(args: &[String]) {
    if wants_help(args) {
        help(CI_USAGE);
    }
    if let Some(a) = args.first() {
        bad(CI_USAGE, &format!("`ci` takes no arguments, got `{a}`"));
    }
}

/// `loom [CRATE]`.
pub fn parse_loom<'a>(args: &'a [String], crates: &[&str]) -> Option<&'a str> {
    if wants_help(args) {
        help(LOOM_USAGE);
    }
    match args {
        [] => None,
        [c] if crates.contains(&c.as_str()) => Some(c),
        [c] if c.starts_with('-') => bad(LOOM_USAGE, &format!("unknown option `{c}`")),
        [c] => bad(LOOM_USAGE, &format!("unknown crate `{c}`")),
        [_, extra, ..] => bad(LOOM_USAGE, &format!("unexpected argument `{extra}`")),
    }
}

/// Options of `bench`.
#[derive(Debug, Default)]
pub struct BenchOpts {
    pub quick: bool,
    pub no_criterion: bool,
    pub peers: Vec<String>,
}

/// The peers `benches/peers/run.sh` knows.
const PEERS: &[&str] = &["gmp", "go", "tokio", "may", "threads"];

/// `bench [--quick] [--no-criterion] [PEER...]`.
pub fn parse_bench(args: &[String]) -> BenchOpts {
    if wants_help(args) {
        help(BENCH_USAGE);
    }
    let mut o = BenchOpts::default();
    for a in args {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--no-criterion" => o.no_criterion = true,
            f if f.starts_with('-') => bad(BENCH_USAGE, &format!("unknown option `{f}`")),
            p if PEERS.contains(&p) => o.peers.push(p.to_string()),
            p => bad(
                BENCH_USAGE,
                &format!("unknown peer `{p}` (known: {})", PEERS.join(", ")),
            ),
        }
    }
    o
}

/// Options of `soak`.
#[derive(Debug)]
pub struct SoakOpts {
    pub seconds: f64,
    pub seed: Option<u64>,
}

/// `soak [--minutes N | --seconds N] [--seed S]`.
pub fn parse_soak(args: &[String]) -> SoakOpts {
    if wants_help(args) {
        help(SOAK_USAGE);
    }
    let mut o = SoakOpts {
        seconds: 60.0,
        seed: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = |what: &str| -> String {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .unwrap_or_else(|| bad(SOAK_USAGE, &format!("`{flag}` needs {what}")))
        };
        match flag {
            "--minutes" | "--seconds" => {
                let v = value("a number");
                let n: f64 = v
                    .parse()
                    .unwrap_or_else(|_| bad(SOAK_USAGE, &format!("`{flag} {v}`: not a number")));
                if !(n.is_finite() && n > 0.0) {
                    bad(SOAK_USAGE, &format!("`{flag} {v}`: must be positive"));
                }
                o.seconds = if flag == "--minutes" { n * 60.0 } else { n };
            }
            "--seed" => {
                let v = value("an integer");
                o.seed =
                    Some(v.parse().unwrap_or_else(|_| {
                        bad(SOAK_USAGE, &format!("`--seed {v}`: not an integer"))
                    }));
            }
            f if f.starts_with('-') => bad(SOAK_USAGE, &format!("unknown option `{f}`")),
            x => bad(SOAK_USAGE, &format!("unexpected argument `{x}`")),
        }
    }
    o
}

/// Options of `sanitize`.
#[derive(Debug)]
pub struct SanitizeOpts {
    pub ci: bool,
    pub kinds: Vec<String>,
}

/// `sanitize [--ci] [KIND...]`.
pub fn parse_sanitize(args: &[String]) -> SanitizeOpts {
    if wants_help(args) {
        help(SANITIZE_USAGE);
    }
    let mut o = SanitizeOpts {
        ci: false,
        kinds: Vec::new(),
    };
    for a in args {
        match a.as_str() {
            "--ci" => o.ci = true,
            k @ ("address" | "thread" | "valgrind") => o.kinds.push(k.to_string()),
            f if f.starts_with('-') => bad(SANITIZE_USAGE, &format!("unknown option `{f}`")),
            k => bad(
                SANITIZE_USAGE,
                &format!("unknown kind `{k}` (known: address, thread, valgrind)"),
            ),
        }
    }
    if o.kinds.is_empty() {
        o.kinds = if o.ci {
            vec!["address".into()]
        } else {
            vec!["address".into(), "thread".into()]
        };
    }
    o
}

/// `help [COMMAND]`.
pub fn help_for(args: &[String]) -> ! {
    match args.first().map(String::as_str) {
        None => help(USAGE),
        Some("ci") => help(CI_USAGE),
        Some("loom") => help(LOOM_USAGE),
        Some("bench") => help(BENCH_USAGE),
        Some("soak") => help(SOAK_USAGE),
        Some("sanitize") => help(SANITIZE_USAGE),
        Some("package") => help(PACKAGE_USAGE),
        Some("profile") => help(PROFILE_USAGE),
        Some(c) => bad(USAGE, &format!("no command `{c}`")),
    }
}
