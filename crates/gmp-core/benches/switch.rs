//! Context-switch and coroutine-lifecycle benchmarks.
//!
//! - `switch/round_trip`: one `resume` + one `suspend` of a suspended coroutine.
//! - `switch/round_trip_initial_fp`: the same with `resume_with_initial_fp` (a
//!   scheduler's resume: the resumer's FP control state is not saved).
//! - `create_run_finish/pooled`: `StackPool::get`, `Coroutine::new`, run to completion,
//!   `into_stack`, `StackPool::put`.
//! - `create_run_finish/fresh_stack`: the same with `Stack::new` (mmap + mprotect) and the
//!   stack dropped (munmap) each time.
//! - `switch/round_trip_generator_rs`: the same with generator-rs, for comparison.
//! - `thread/spawn_join`: `std::thread::spawn` + `join`, for contrast.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gmp_core::{Coroutine, Resume, Stack, StackPool};

fn switch(c: &mut Criterion) {
    let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |s| loop {
        s.suspend();
    });
    c.bench_function("switch/round_trip", |b| {
        b.iter(|| {
            let r = co.resume();
            debug_assert!(matches!(r, Resume::Suspended));
            black_box(r);
        })
    });
    gmp_core::coroutine::set_initial_fp_control();
    c.bench_function("switch/round_trip_initial_fp", |b| {
        b.iter(|| {
            let r = co.resume_with_initial_fp();
            debug_assert!(matches!(r, Resume::Suspended));
            black_box(r);
        })
    });
}

/// The same round trip with generator-rs (`generator` 0.8, a dev-dependency for this
/// comparison only): resume + yield of a suspended generator.
fn switch_generator(c: &mut Criterion) {
    let mut g = generator::Gn::<()>::new_scoped_opt(64 * 1024, |mut s| loop {
        s.yield_(0u64);
    });
    c.bench_function("switch/round_trip_generator_rs", |b| {
        b.iter(|| black_box(g.resume()))
    });
}

fn create(c: &mut Criterion) {
    let mut g = c.benchmark_group("create_run_finish");
    let pool = StackPool::new(gmp_core::DEFAULT_STACK_SIZE);
    pool.put(pool.get().unwrap());
    g.bench_function("pooled", |b| {
        b.iter(|| {
            let mut co = Coroutine::new(pool.get().unwrap(), |_| black_box(1u64));
            let r = co.resume();
            black_box(matches!(r, Resume::Returned(1)));
            pool.put(co.into_stack().unwrap());
        })
    });
    g.bench_function("fresh_stack", |b| {
        b.iter(|| {
            let mut co = Coroutine::new(Stack::new(gmp_core::DEFAULT_STACK_SIZE).unwrap(), |_| {
                black_box(1u64)
            });
            let r = co.resume();
            black_box(matches!(r, Resume::Returned(1)));
        })
    });
    g.finish();
}

fn thread(c: &mut Criterion) {
    c.bench_function("thread/spawn_join", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1u64)).join().unwrap())
    });
}

#[allow(missing_docs)] // criterion_group! generates an undocumented pub fn
mod group {
    use super::*;
    criterion_group!(benches, switch, switch_generator, create, thread);
}
use group::benches;
criterion_main!(benches);
