//! The guarded-stack budget: beyond it, stacks come from userfaultfd-watched chunks.
//! (Its own test binary: the limit is process-wide.)

use gmp_core::stack::{self, StackProtection};
use gmp_core::{Coroutine, Resume, Stack};

#[test]
fn budget_then_canary_stacks() {
    // The budget rations stacks with mappings of their own: not the guard-region chunks.
    stack::set_guard_regions(false);
    let base = stack::guarded_stacks_alive();
    stack::set_guarded_stack_limit(base + 3);
    let stacks: Vec<Stack> = (0..10).map(|_| Stack::new(64 * 1024).unwrap()).collect();
    let kinds: Vec<_> = stacks.iter().map(Stack::protection).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == StackProtection::GuardPage)
            .count(),
        3
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == StackProtection::Userfault)
            .count(),
        7
    );
    assert_eq!(stack::guarded_stacks_alive(), base + 3);

    // Chunk stacks of one size are adjacent slots of one chunk, each with its own
    // never-populated guard page below.
    let canaries: Vec<&Stack> = stacks
        .iter()
        .filter(|s| s.protection() == StackProtection::Userfault)
        .collect();
    for w in canaries.windows(2) {
        assert_eq!(w[0].bottom() as usize - w[1].top() as usize, 4096);
    }
    // Coroutines run on them, and legitimate deep first touches (resolved by the
    // userfaultfd handler) work, down to the last page.
    for s in stacks {
        let size = s.size();
        let mut co = Coroutine::new(s, move |s| {
            s.suspend();
            deep(size / 1024 - 8)
        });
        assert!(matches!(co.resume(), Resume::Suspended));
        assert!(matches!(co.resume(), Resume::Returned(v) if v == 5 * (size as u64 / 1024 - 7)));
        let _ = co.into_stack().unwrap();
    }
    // Freed guarded stacks give their budget back; freed slots are reused.
    assert_eq!(stack::guarded_stacks_alive(), base);
    let again = Stack::new(64 * 1024).unwrap();
    assert_eq!(again.protection(), StackProtection::GuardPage);
    stack::set_guarded_stack_limit(0);
    let c1 = Stack::new(64 * 1024).unwrap();
    assert_eq!(c1.protection(), StackProtection::Userfault);
}

/// Recursion in 1 KiB frames, `n` deep.
#[inline(never)]
fn deep(n: usize) -> u64 {
    let mut buf = [5u8; 1000];
    std::hint::black_box(&mut buf);
    if n == 0 {
        return buf[1] as u64;
    }
    deep(n - 1) + buf[2] as u64
}
