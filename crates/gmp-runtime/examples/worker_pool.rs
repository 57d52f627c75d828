//! A worker pool, the Go way: a fixed number of worker goroutines take jobs from one
//! channel and send their results to another (Go by Example's "worker pools").
//!
//! The jobs here compute the length of the Collatz sequence of each number in `1..=N`;
//! `main` checks every result against a sequential computation and prints how many jobs
//! each worker did.
//!
//! ```text
//! cargo run --release --example worker_pool              # 1,000,000 jobs, 8 workers
//! cargo run --release --example worker_pool -- --smoke   # 10,000 jobs, for CI
//! ```
//!
//! The shape to copy:
//! - the producer owns the only `Sender` of `jobs` and drops it when done, which ends
//!   every worker's `for job in jobs` loop;
//! - each worker owns a clone of the `results` sender; when the last worker ends the
//!   results channel closes and `main`'s loop over it ends;
//! - both channels are bounded, so a fast producer cannot run ahead of the workers by
//!   more than the buffer (back-pressure, as with Go's buffered channels).

use gmp_runtime::chan::bounded;
use gmp_runtime::{go, Runtime};
use std::process::exit;
use std::time::Instant;

const WORKERS: usize = 8;

/// The job: the number of steps of the Collatz sequence from `n` down to 1.
fn collatz_len(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn main() {
    let smoke = std::env::args().skip(1).any(|a| a == "--smoke");
    if let Some(bad) = std::env::args().skip(1).find(|a| a != "--smoke") {
        eprintln!("worker_pool: unknown argument {bad:?} (only `--smoke` is accepted)");
        exit(2);
    }
    let n: u64 = if smoke { 10_000 } else { 1_000_000 };

    let rt = Runtime::new().expect("start the runtime");
    let start = Instant::now();
    // SAFETY: the pool's goroutines keep no thread-local state across a suspension point.
    let (lens, per_worker) = unsafe {
        rt.block_on(|| {
            let (jobs_tx, jobs) = bounded::<u64>(256);
            let (results_tx, results) = bounded::<(u64, u32, usize)>(256);

            for id in 0..WORKERS {
                let jobs = jobs.clone();
                let results_tx = results_tx.clone();
                go!(move || {
                    for job in jobs {
                        let len = collatz_len(job);
                        results_tx
                            .send((job, len, id))
                            .expect("main reads every result");
                    }
                });
            }
            // Only the workers hold these now: the channels close when they are done.
            drop((jobs, results_tx));

            go!(move || {
                for job in 1..=n {
                    jobs_tx.send(job).expect("the workers take every job");
                }
            });

            let mut lens = vec![0u32; n as usize + 1];
            let mut per_worker = [0usize; WORKERS];
            for (job, len, id) in results {
                lens[job as usize] = len;
                per_worker[id] += 1;
            }
            (lens, per_worker)
        })
    };
    let took = start.elapsed();
    println!(
        "worker_pool: {n} jobs on {WORKERS} workers (procs={}) in {:.0} ms; \
         jobs per worker: {per_worker:?}",
        rt.procs(),
        took.as_secs_f64() * 1e3
    );
    let wrong = (1..=n).find(|&i| lens[i as usize] != collatz_len(i));
    if let Some(i) = wrong {
        eprintln!(
            "worker_pool: WRONG result for job {i}: {} (expected {})",
            lens[i as usize],
            collatz_len(i)
        );
        exit(1);
    }
    if per_worker.iter().sum::<usize>() != n as usize {
        eprintln!("worker_pool: WRONG number of results: {per_worker:?}");
        exit(1);
    }
}
