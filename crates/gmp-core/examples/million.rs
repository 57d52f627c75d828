//! Holds 1,000,000 suspended coroutines on default-size (256 KiB) stacks, then finishes them.
//!
//! On Linux 6.13+ every stack is a slot of a 64 MiB chunk with a guard region below it
//! (`MADV_GUARD_INSTALL`; the kernel merges the chunks' mappings). With
//! `--no-guard-regions` (or on an older kernel) it works on a default kernel
//! (`vm.max_map_count` = 65,530) because only the first 16,382 stacks get their own
//! `PROT_NONE` guard page (two memory maps each); the rest are carved from 64 MiB chunks
//! watched by userfaultfd, one memory map per chunk, with a never-populated guard page
//! below every stack (see `gmp_core::stack`). Prints the memory cost per coroutine.
//!
//! `cargo run --release -p gmp-core --example million [count] [--no-guard-regions]`

use gmp_core::stack::{self, StackProtection};
use gmp_core::{Coroutine, Resume, Stack, DEFAULT_STACK_SIZE};
use std::time::Instant;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

fn main() {
    // `cargo xtask ci` passes `--smoke`: the full million is the point of this
    // example (it must work on a default kernel), so smoke runs it too.
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("usage: million [count]"))
        .unwrap_or(1_000_000);
    if std::env::args().any(|a| a == "--no-guard-regions") {
        stack::set_guard_regions(false);
    }
    let before = rss_bytes();
    let t = Instant::now();
    let mut cos: Vec<Coroutine<u64>> = Vec::with_capacity(n);
    for i in 0..n {
        let stack = Stack::new(DEFAULT_STACK_SIZE)
            .unwrap_or_else(|e| panic!("coroutine {i}: cannot get a stack: {e}"));
        let mut co = Coroutine::new(stack, move |s| {
            s.suspend();
            i as u64
        });
        assert!(matches!(co.resume(), Resume::Suspended));
        cos.push(co);
    }
    let created = t.elapsed();
    let rss = rss_bytes() - before;
    let count = |p| cos.iter().filter(|c| c.stack().protection() == p).count();
    let guarded = count(StackProtection::GuardPage);
    println!(
        "{n} suspended coroutines in {created:.2?}: RSS +{:.0} MiB = {} bytes each; \
         {guarded} guarded + {} userfaultfd + {} canary stacks; {} memory maps (limit {})",
        rss as f64 / (1 << 20) as f64,
        rss / n,
        count(StackProtection::Userfault),
        count(StackProtection::Canary),
        map_count(),
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .unwrap_or_default()
            .trim(),
    );
    // Stacks with mappings of their own stay within the budget (guard-region chunk
    // stacks, also reported as GuardPage, need none).
    assert!(stack::guarded_stacks_alive() <= stack::guarded_stack_limit());
    let t = Instant::now();
    let mut sum = 0u64;
    for co in &mut cos {
        match co.resume() {
            Resume::Returned(v) => sum += v,
            _ => panic!("a coroutine did not finish"),
        }
    }
    assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
    println!("resumed all to completion in {:.2?}", t.elapsed());
    let t = Instant::now();
    drop(cos);
    println!("freed in {:.2?}", t.elapsed());
}
