//! Switch and create costs measured robustly on a busy machine: the *best* of many short
//! timing windows (a window that the OS did not interrupt), rather than criterion's mean.
//! Use it next to `cargo bench -p gmp-core --bench switch` when the machine is shared.
//!
//! `cargo run --release -p gmp-core --example switch_cost`

use gmp_core::{Coroutine, Resume, Stack, StackPool};
use std::hint::black_box;
use std::time::Instant;

/// Best ns per iteration of `f` over `windows` windows of `per_window` iterations.
fn best_ns(windows: u32, per_window: u32, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..windows {
        let t = Instant::now();
        for _ in 0..per_window {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / per_window as f64);
    }
    best
}

fn main() {
    let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |s| loop {
        s.suspend();
    });
    let ours = best_ns(300, 20_000, || {
        black_box(co.resume());
    });
    println!("round trip (resume + suspend), gmp-core:     {ours:6.2} ns");

    let mut g = generator::Gn::<()>::new_scoped_opt(64 * 1024, |mut s| loop {
        s.yield_(0u64);
    });
    let theirs = best_ns(300, 20_000, || {
        black_box(g.resume());
    });
    println!("round trip (resume + yield), generator-rs:   {theirs:6.2} ns");

    let pool = StackPool::new(gmp_core::DEFAULT_STACK_SIZE);
    pool.put(pool.get().unwrap());
    let pooled = best_ns(300, 5_000, || {
        let mut co = Coroutine::new(pool.get().unwrap(), |_| black_box(1u64));
        black_box(matches!(co.resume(), Resume::Returned(1)));
        pool.put(co.into_stack().unwrap());
    });
    println!("create + run + finish, pooled stack:         {pooled:6.2} ns");

    let fresh = best_ns(20, 200, || {
        let mut co = Coroutine::new(Stack::new(gmp_core::DEFAULT_STACK_SIZE).unwrap(), |_| {
            black_box(1u64)
        });
        black_box(matches!(co.resume(), Resume::Returned(1)));
    });
    println!("create + run + finish, fresh stack:          {fresh:6.0} ns");

    let thread = best_ns(10, 50, || {
        black_box(std::thread::spawn(|| black_box(1u64)).join().unwrap());
    });
    println!("std::thread spawn + join:                    {thread:6.0} ns");
}
