//! The run-queue benchmarks of `queue.rs`, measured for noisy shared machines: the
//! contenders run interleaved, round after round, and each reports its fastest and median
//! round. Preemption by other processes only ever adds time, so the minimum is the
//! steadiest figure to compare, and interleaving exposes all contenders to the same load.
//!
//! `cargo bench -p gmp-queue --bench queue_min` (about ten seconds)

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{contended_run, tok, Crossbeam, Gmp, Locked, RunQueue};

const ROUNDS: usize = 100;

/// ns per push+pop pair.
fn push_pop<Q: RunQueue>() -> f64 {
    const N: u32 = 200_000;
    let (owner, _thief) = Q::new();
    let start = Instant::now();
    for _ in 0..N {
        Q::push(&owner, black_box(tok()));
        black_box(Q::pop(&owner));
    }
    start.elapsed().as_nanos() as f64 / f64::from(N)
}

/// ns per steal of half of a 128-element queue (set-up not timed).
fn steal_half_of_128<Q: RunQueue>() -> f64 {
    const N: usize = 200;
    let sets: Vec<_> = (0..N)
        .map(|_| {
            let (victim, thief) = Q::new();
            for _ in 0..128 {
                Q::push(&victim, tok());
            }
            let (dest, _) = Q::new();
            (victim, thief, dest)
        })
        .collect();
    let start = Instant::now();
    for (_, thief, dest) in &sets {
        black_box(Q::steal_half(thief, dest));
    }
    let ns = start.elapsed().as_nanos() as f64 / N as f64;
    drop(sets);
    ns
}

/// ns per element with one owner and one thief thread.
fn contended<Q: RunQueue>() -> f64 {
    const N: u64 = 1 << 17;
    contended_run::<Q>(N).as_nanos() as f64 / N as f64
}

type Runs = [[Vec<f64>; 3]; 3];

fn round<Q: RunQueue>(runs: &mut Runs, q: usize) {
    runs[0][q].push(push_pop::<Q>());
    runs[1][q].push(steal_half_of_128::<Q>());
    runs[2][q].push(contended::<Q>());
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let mut runs: Runs = Default::default();
    for _ in 0..ROUNDS {
        round::<Gmp>(&mut runs, 0);
        round::<Crossbeam>(&mut runs, 1);
        round::<Locked>(&mut runs, 2);
    }
    let names = [Gmp::NAME, Crossbeam::NAME, Locked::NAME];
    let benches = [
        "push_pop (ns/op)",
        "steal_half_of_128 (ns/steal)",
        "contended 1+1 (ns/elem)",
    ];
    println!("{ROUNDS} interleaved rounds; min / median");
    println!(
        "{:<30} {:>18} {:>18} {:>18}",
        "", names[0], names[1], names[2]
    );
    for (b, per_queue) in runs.iter_mut().enumerate() {
        let cells: Vec<String> = per_queue
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                format!("{:.2} / {:.2}", v[0], v[v.len() / 2])
            })
            .collect();
        println!(
            "{:<30} {:>18} {:>18} {:>18}",
            benches[b], cells[0], cells[1], cells[2]
        );
    }
}
