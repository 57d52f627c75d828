//! Run-queue benchmarks: gmp-queue's local ring against crossbeam-deque's FIFO
//! `Worker`/`Stealer` and a `Mutex<VecDeque>`, each behind the same small trait.
//!
//! `cargo bench -p gmp-queue --bench queue`
//!
//! - `push_pop`: the owner pushes one element and pops it (the scheduler's hot path).
//! - `steal_half_of_128`: a thief moves half of a 128-element queue (64) into its own
//!   queue and takes one to run. crossbeam is asked for the same amount
//!   (`steal_batch_with_limit_and_pop` with gmp-queue's per-steal cap; its default is 32).
//! - `contended`: one owner thread pushes (and pops half of what it pushes) while one thief
//!   thread steals continuously; time per element until every element has been consumed.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{contended_run, tok, Crossbeam, Gmp, Locked, RunQueue};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

fn push_pop<Q: RunQueue>(c: &mut Criterion) {
    let (owner, _thief) = Q::new();
    c.bench_function(&format!("push_pop/{}", Q::NAME), |b| {
        b.iter(|| {
            Q::push(&owner, black_box(tok()));
            black_box(Q::pop(&owner))
        })
    });
}

fn steal_half_of_128<Q: RunQueue>(c: &mut Criterion) {
    c.bench_function(&format!("steal_half_of_128/{}", Q::NAME), |b| {
        b.iter_batched_ref(
            || {
                let (victim, thief) = Q::new();
                for _ in 0..128 {
                    Q::push(&victim, tok());
                }
                let (dest, _) = Q::new();
                (victim, thief, dest)
            },
            |(_victim, thief, dest)| {
                let got = Q::steal_half(thief, dest);
                debug_assert!(got.is_some());
                black_box(got)
            },
            BatchSize::SmallInput,
        )
    });
}

fn contended<Q: RunQueue>(c: &mut Criterion) {
    c.bench_function(&format!("contended_1_owner_1_thief/{}", Q::NAME), |b| {
        // One "iteration" is one element through the queue; the thread start-up is
        // amortized over a run of at least 64 Ki elements.
        b.iter_custom(|iters| {
            let n = iters.max(1 << 16);
            let d = contended_run::<Q>(n);
            d.mul_f64(iters as f64 / n.next_multiple_of(8) as f64)
        })
    });
}

fn all<Q: RunQueue>(c: &mut Criterion) {
    push_pop::<Q>(c);
    steal_half_of_128::<Q>(c);
    contended::<Q>(c);
}

fn benches(c: &mut Criterion) {
    all::<Gmp>(c);
    all::<Crossbeam>(c);
    all::<Locked>(c);
}

criterion_group! {
    name = queue;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(queue);
