//! The scheduler at work, recorded and drawn: a work-stealing load (the tour's step 6)
//! runs under an execution trace; the trace is written as Chrome trace-event JSON
//! (open it in <https://ui.perfetto.dev>) and drawn as an SVG timeline by our own
//! renderer (`trace::render_svg`).
//!
//! ```text
//! cargo run --release --example trace                  # 400 goroutines, into $TMPDIR/gmp-trace/
//! cargo run --release --example trace -- --smoke       # 40 goroutines, in a second (CI)
//! cargo run --release --example trace -- out/dir       # write trace.json and trace.svg there
//! cargo run --release --example trace -- --overhead    # per-event cost: spawn and yield, off vs on
//! ```
//!
//! All goroutines are started by the main goroutine, so they land on its P; watch the
//! other Ps steal them (the `steal` marks, and the arrows from each `spawn` on P0 to the
//! goroutine's first run elsewhere). The example checks its own result: the sums, that
//! the trace holds a run of every goroutine, and that the SVG was drawn.

use gmp_runtime::{go, trace, yield_now, Runtime};
use std::path::PathBuf;
use std::process::exit;
use std::time::{Duration, Instant};

fn collatz_len(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn main() {
    let mut smoke = false;
    let mut overhead = false;
    let mut dir: Option<PathBuf> = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "--overhead" => overhead = true,
            s if !s.starts_with("--") && dir.is_none() => dir = Some(PathBuf::from(s)),
            s => {
                eprintln!(
                    "trace: unknown argument {s:?}; usage: trace [--smoke] [--overhead] [OUT_DIR]"
                );
                exit(2);
            }
        }
    }
    if overhead {
        measure_overhead(smoke);
        return;
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("gmp-trace"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("trace: cannot create {}: {e}", dir.display());
        exit(1);
    }
    let (json, svg) = (dir.join("trace.json"), dir.join("trace.svg"));
    // The tour's step-6 sizes.
    let (count, numbers) = if smoke {
        (40u64, 5_000u64)
    } else {
        (400, 20_000)
    };
    let procs = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(2, 4);

    if let Err(e) = trace::start(&json) {
        eprintln!("trace: {e}");
        exit(1);
    }
    let start = Instant::now();
    let rt = Runtime::builder()
        .procs(procs)
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start a runtime: {e}")));
    // SAFETY: the goroutines keep nothing thread-local across a suspension point.
    let total: u64 = unsafe {
        rt.block_on(|| {
            let hs: Vec<_> = (0..count)
                .map(|g| {
                    go!(move || {
                        let base = 1 + g * numbers;
                        let mut sum = 0;
                        for n in base..base + numbers {
                            sum += collatz_len(n);
                            if n % 1000 == 0 {
                                yield_now(); // a scheduling point: a new run slice
                            }
                        }
                        sum
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        })
    };
    let took = start.elapsed();
    drop(rt);
    if let Err(e) = trace::stop() {
        fail(&e.to_string());
    }
    let want: u64 = (1..=count * numbers).map(collatz_len).sum();
    if total != want {
        fail(&format!("the goroutines summed {total}, expected {want}"));
    }
    if let Err(e) = trace::render_svg(&json, &svg) {
        fail(&e.to_string());
    }

    // Read the trace back (one event per line) and check it.
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| fail(&e.to_string()));
    let mut runs_per_p: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut goroutines = std::collections::BTreeSet::new();
    let mut steals = 0;
    for line in text.lines() {
        if line.contains("\"cat\":\"run\"") {
            // P i is track (tid) i + 1.
            *runs_per_p.entry(field(line, "\"tid\":") - 1).or_default() += 1;
            goroutines.insert(field(line, "\"g\":"));
        } else if line.contains("\"cat\":\"steal\"") {
            steals += 1;
        }
    }
    // The workers plus the main goroutine.
    if goroutines.len() as u64 != count + 1 {
        fail(&format!(
            "the trace shows runs of {} goroutines, expected {}",
            goroutines.len(),
            count + 1
        ));
    }
    let svg_len = std::fs::metadata(&svg).map_or(0, |m| m.len());
    if svg_len == 0 {
        fail("the SVG is empty");
    }
    println!(
        "{count} goroutines on {procs} Ps, {} Collatz lengths in {:.0} ms; runs per P {:?}, {steals} steals",
        count * numbers,
        took.as_secs_f64() * 1e3,
        runs_per_p.iter().map(|(p, n)| format!("P{p}: {n}")).collect::<Vec<_>>()
    );
    println!(
        "trace:    {} ({:.1} KB) — open it in https://ui.perfetto.dev or chrome://tracing",
        json.display(),
        text.len() as f64 / 1024.0
    );
    println!(
        "timeline: {} ({:.1} KB)",
        svg.display(),
        svg_len as f64 / 1024.0
    );
}

/// The number after `key` in `line` (0 if none).
fn field(line: &str, key: &str) -> u64 {
    line.find(key)
        .map(|i| &line[i + key.len()..])
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn fail(msg: &str) -> ! {
    eprintln!("trace: FAILED: {msg}");
    exit(1)
}

/// What the event sites cost: spawn+join and yield on one P, with tracing off and on.
fn measure_overhead(smoke: bool) {
    let n: u64 = if smoke { 20_000 } else { 200_000 };
    let rounds = if smoke { 1 } else { 5 };
    let rt = Runtime::builder().procs(1).build().unwrap();
    let run = |what: &str| -> (Duration, Duration) {
        let mut best = (Duration::MAX, Duration::MAX);
        for _ in 0..rounds {
            // SAFETY: nothing thread-local is held across a suspension point.
            let (s, y) = unsafe {
                rt.block_on(|| {
                    let t = Instant::now();
                    for _ in 0..n / 10 {
                        go!(|| ()).join().unwrap();
                    }
                    let spawn = t.elapsed() / (n / 10) as u32;
                    let t = Instant::now();
                    for _ in 0..n {
                        yield_now();
                    }
                    (spawn, t.elapsed() / n as u32)
                })
            };
            best = (best.0.min(s), best.1.min(y));
        }
        println!(
            "tracing {what:>3}: spawn+join {:>5} ns, yield {:>4} ns",
            best.0.as_nanos(),
            best.1.as_nanos()
        );
        best
    };
    run("off");
    let path = std::env::temp_dir().join(format!("gmp-trace-overhead-{}.json", std::process::id()));
    trace::start(&path).unwrap_or_else(|e| fail(&e.to_string()));
    run("on");
    trace::stop().unwrap_or_else(|e| fail(&e.to_string()));
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!("(trace of the 'on' rounds: {:.1} MB)", len as f64 / 1e6);
    let _ = std::fs::remove_file(&path);
}
