//! Skynet: a million goroutines in a tree, summing their numbers through channels.
//!
//! The classic goroutine stress test (<https://github.com/atemerev/skynet>): the root
//! covers the numbers `0..leaves`; each node splits its range into 10 children, starts
//! them as goroutines and sums the 10 numbers they send back on a channel of capacity 10;
//! a leaf sends its own number. With 1,000,000 leaves that is 1,111,111 goroutines, and the
//! root's sum must be `leaves * (leaves - 1) / 2` = 499,999,500,000.
//!
//! ```text
//! cargo run --release --example skynet             # 1,000,000 leaves
//! cargo run --release --example skynet -- 100000   # another size (a power of 10)
//! cargo run --release --example skynet -- --smoke  # 10,000 leaves, for CI
//! ```
//!
//! The program checks its own result and exits non-zero if it is wrong.

use gmp_runtime::chan::{bounded, Sender};
use gmp_runtime::{go, Runtime};
use std::process::exit;
use std::time::Instant;

/// Each node has this many children.
const DIV: u64 = 10;

/// A node of the tree: covers `num .. num + size` and sends the sum of that range to `out`.
fn skynet(out: Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        out.send(num).expect("the parent waits for every child");
        return;
    }
    let (tx, rx) = bounded(DIV as usize);
    let child = size / DIV;
    for i in 0..DIV {
        let tx = tx.clone();
        // SAFETY: `go!` is `spawn`, whose contract this accepts: a node keeps no
        // thread-local state across its channel operations.
        unsafe { go!(move || skynet(tx, num + i * child, child)) };
    }
    drop(tx);
    let sum: u64 = rx.iter().take(DIV as usize).sum();
    out.send(sum).expect("the parent waits for every child");
}

fn main() {
    let mut leaves: u64 = 1_000_000;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => leaves = 10_000,
            n => match n.parse::<u64>() {
                Ok(n) if is_power_of_div(n) => leaves = n,
                _ => {
                    eprintln!(
                        "skynet: expected `--smoke` or a number of leaves that is a power of \
                         10, got {n:?}"
                    );
                    exit(2);
                }
            },
        }
    }
    let rt = Runtime::new().expect("start the runtime");
    let start = Instant::now();
    // SAFETY: the tree's goroutines hold no thread-local state across a suspension point.
    let sum = unsafe {
        rt.block_on(|| {
            let (tx, rx) = bounded(1);
            go!(move || skynet(tx, 0, leaves));
            rx.recv().expect("the root sends its sum")
        })
    };
    let took = start.elapsed();
    let want = leaves * (leaves - 1) / 2;
    let goroutines: u64 = (0..).map(|d| DIV.pow(d)).take_while(|&n| n <= leaves).sum();
    println!(
        "skynet: {leaves} leaves, {goroutines} goroutines (procs={}): sum {sum} in {:.0} ms",
        rt.procs(),
        took.as_secs_f64() * 1e3
    );
    if sum != want {
        eprintln!("skynet: WRONG sum {sum}, expected {want}");
        exit(1);
    }
}

/// `n` is 10^k for some k ≥ 0, so every level of the tree splits evenly.
fn is_power_of_div(mut n: u64) -> bool {
    if n == 0 {
        return false;
    }
    while n % DIV == 0 {
        n /= DIV;
    }
    n == 1
}
