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
    // A scheduler's resume: the resumer's FP control state is the initial one.
    gmp_core::coroutine::set_initial_fp_control();
    let initial = best_ns(300, 20_000, || {
        black_box(co.resume_with_initial_fp());
    });
    println!("round trip, resume_with_initial_fp:          {initial:6.2} ns");

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

    // First touches of stack pages: a guarded stack's are the kernel's zero-fill faults;
    // a chunk stack's (beyond the guarded budget) go through the userfaultfd handler.
    const PAGES: usize = 200;
    let touch = |s: Stack| {
        let mut co = Coroutine::new(s, |_| {
            let local = 0u64;
            let here = black_box(&local) as *const u64 as usize;
            let start = (here & !4095) - 2 * 4096;
            for i in 0..PAGES {
                // SAFETY: 200 pages below this frame lie within the 1 MiB stack, below
                // every live frame.
                unsafe { ((start - i * 4096) as *mut u8).write_volatile(1) };
            }
        });
        black_box(matches!(co.resume(), Resume::Returned(())));
    };
    let region_touch = best_ns(20, 5, || touch(Stack::new(1 << 20).unwrap())) / PAGES as f64;
    let region_fresh = best_ns(20, 200, || {
        let mut co = Coroutine::new(Stack::new(gmp_core::DEFAULT_STACK_SIZE).unwrap(), |_| {
            black_box(1u64)
        });
        black_box(matches!(co.resume(), Resume::Returned(1)));
    });
    // The older kernels' paths: stacks with mappings of their own, then userfaultfd chunks.
    gmp_core::stack::set_guard_regions(false);
    let guarded_touch = best_ns(20, 5, || touch(Stack::new(1 << 20).unwrap())) / PAGES as f64;
    let limit = gmp_core::stack::guarded_stack_limit();
    gmp_core::stack::set_guarded_stack_limit(0);
    let chunk = Stack::new(1 << 20).unwrap();
    println!(
        "beyond the guarded budget, stacks are:        {:?}",
        chunk.protection()
    );
    drop(chunk);
    let chunk_touch = best_ns(20, 5, || touch(Stack::new(1 << 20).unwrap())) / PAGES as f64;
    println!("first touch of a stack page, guard region:   {region_touch:6.0} ns");
    println!("create + run + finish, fresh guard-region:   {region_fresh:6.0} ns");
    println!("first touch of a stack page, guarded stack:  {guarded_touch:6.0} ns");
    println!("first touch of a stack page, chunk stack:    {chunk_touch:6.0} ns");
    let fresh_chunk = best_ns(20, 200, || {
        let mut co = Coroutine::new(Stack::new(gmp_core::DEFAULT_STACK_SIZE).unwrap(), |_| {
            black_box(1u64)
        });
        black_box(matches!(co.resume(), Resume::Returned(1)));
    });
    println!("create + run + finish, fresh chunk stack:    {fresh_chunk:6.0} ns");
    // A pool with no hot set: every stack put back gives its pages back.
    let cold_pool = StackPool::with_limits(gmp_core::DEFAULT_STACK_SIZE, 16, 0);
    cold_pool.put(cold_pool.get().unwrap());
    let cold = best_ns(20, 1_000, || {
        let mut co = Coroutine::new(cold_pool.get().unwrap(), |_| black_box(1u64));
        black_box(matches!(co.resume(), Resume::Returned(1)));
        cold_pool.put(co.into_stack().unwrap());
    });
    println!("create + run + finish, pooled cold stack:    {cold:6.0} ns");
    gmp_core::stack::set_guarded_stack_limit(limit);
    gmp_core::stack::set_guard_regions(true);

    let thread = best_ns(10, 50, || {
        black_box(std::thread::spawn(|| black_box(1u64)).join().unwrap());
    });
    println!("std::thread spawn + join:                    {thread:6.0} ns");
}
