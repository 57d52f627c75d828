//! Go's concurrent prime sieve: a pipeline of goroutines filtering through unbuffered
//! channels (the program from the Go tour and Go's `doc/play/sieve.go`).
//!
//! A generator goroutine sends 2, 3, 4, ... down an unbuffered channel. Each number that
//! reaches the end of the pipeline is prime: `main` prints it and appends a new filter
//! goroutine that drops the multiples of that prime. Every number is handed from goroutine
//! to goroutine, one rendezvous at a time.
//!
//! ```text
//! cargo run --release --example sieve              # the first 1,000 primes
//! cargo run --release --example sieve -- 5000      # the first 5,000
//! cargo run --release --example sieve -- --smoke   # the first 100, for CI
//! ```
//!
//! When `main` has its primes it drops the end of the pipeline: the last filter's `send`
//! then fails, it returns and drops its input, and so on back to the generator, so every
//! goroutine ends (in Go they would simply be abandoned). The primes are checked against
//! a plain sieve of Eratosthenes; the program exits non-zero if they differ.

use gmp_runtime::chan::{bounded, Receiver, Sender};
use gmp_runtime::{go, Runtime};
use std::process::exit;
use std::time::Instant;

/// Sends 2, 3, 4, ... until nobody listens.
fn generate(out: Sender<u64>) {
    for i in 2.. {
        if out.send(i).is_err() {
            return;
        }
    }
}

/// Copies the numbers that `prime` does not divide from `input` to `out`.
fn filter(input: Receiver<u64>, out: Sender<u64>, prime: u64) {
    for i in input {
        if i % prime != 0 && out.send(i).is_err() {
            return;
        }
    }
}

/// The first `n` primes, through the pipeline.
fn concurrent_sieve(n: usize) -> Vec<u64> {
    // Unbuffered, like Go's `make(chan int)`.
    let (tx, mut ch) = bounded(0);
    // SAFETY: the goroutine holds no thread-local state across a suspension point.
    unsafe { go!(move || generate(tx)) };
    let mut primes = Vec::with_capacity(n);
    for _ in 0..n {
        let prime = ch.recv().expect("the pipeline never ends first");
        primes.push(prime);
        let (tx, next) = bounded(0);
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe { go!(move || filter(ch, tx, prime)) };
        ch = next;
    }
    primes
}

/// The first `n` primes, the sequential way, to check the pipeline against.
fn eratosthenes(n: usize) -> Vec<u64> {
    let mut limit = 16usize;
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

fn main() {
    let mut n = 1000;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => n = 100,
            s => match s.parse::<usize>() {
                Ok(k) if k > 0 => n = k,
                _ => {
                    eprintln!(
                        "sieve: expected `--smoke` or a positive number of primes, got {s:?}"
                    );
                    exit(2);
                }
            },
        }
    }
    let rt = Runtime::new().expect("start the runtime");
    let start = Instant::now();
    // SAFETY: the pipeline's goroutines keep no thread-local state across a suspension
    // point.
    let primes = unsafe { rt.block_on(|| concurrent_sieve(n)) };
    let took = start.elapsed();
    let tail = primes.len().saturating_sub(10);
    println!(
        "sieve: the first {n} primes ({} goroutines) in {:.0} ms; the last ones: {:?}",
        n + 1,
        took.as_secs_f64() * 1e3,
        &primes[tail..]
    );
    if primes != eratosthenes(n) {
        eprintln!("sieve: WRONG primes from the pipeline");
        exit(1);
    }
}
