//! 100,000 suspended coroutines on default-size stacks: they must all be creatable on a
//! default kernel (vm.max_map_count = 65,530) and cost about one page each.

use gmp_core::stack::{self, StackProtection};
use gmp_core::{Coroutine, Resume, Stack, DEFAULT_STACK_SIZE};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn hundred_thousand_suspended_coroutines() {
    const N: usize = 100_000;
    let mut cos: Vec<Coroutine<u64>> = Vec::with_capacity(N);
    let before = rss_bytes();
    for i in 0..N {
        let stack =
            Stack::new(DEFAULT_STACK_SIZE).unwrap_or_else(|e| panic!("stack {i} of {N}: {e}"));
        let mut co = Coroutine::new(stack, move |s| {
            let mut acc = i as u64;
            s.suspend();
            acc += 1;
            acc
        });
        assert!(matches!(co.resume(), Resume::Suspended));
        cos.push(co);
    }
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / N as f64;
    let guarded = cos
        .iter()
        .filter(|c| c.stack().protection() == StackProtection::GuardPage)
        .count();
    println!(
        "{N} suspended coroutines: RSS +{:.1} MiB, {per:.0} bytes per coroutine \
         ({guarded} guard-page or guard-region, {} other; {} with own mappings, limit {})",
        (after - before) as f64 / (1 << 20) as f64,
        N - guarded,
        stack::guarded_stacks_alive(),
        stack::guarded_stack_limit()
    );
    // Stacks with mappings of their own stay within the budget; guard-region chunk
    // stacks (Linux 6.13+), also `GuardPage`, need none.
    assert!(stack::guarded_stacks_alive() <= stack::guarded_stack_limit());
    assert!(per < 16.0 * 1024.0, "{per} bytes per suspended coroutine");
    for (i, co) in cos.iter_mut().enumerate() {
        match co.resume() {
            Resume::Returned(v) => assert_eq!(v, i as u64 + 1),
            _ => panic!("coroutine {i} did not finish"),
        }
    }
}
