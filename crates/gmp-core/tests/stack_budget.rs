//! The guarded-stack budget: beyond it, stacks come from chunks and carry a canary.
//! (Its own test binary: the limit is process-wide.)

use gmp_core::stack::{self, StackProtection};
use gmp_core::{Coroutine, Resume, Stack};

#[test]
fn budget_then_canary_stacks() {
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
            .filter(|k| **k == StackProtection::Canary)
            .count(),
        7
    );
    assert_eq!(stack::guarded_stacks_alive(), base + 3);

    // Canary stacks of one size are adjacent slots of one chunk, each with its own
    // never-touched red-zone page below.
    let canaries: Vec<&Stack> = stacks
        .iter()
        .filter(|s| s.protection() == StackProtection::Canary)
        .collect();
    for w in canaries.windows(2) {
        assert_eq!(w[0].bottom() as usize - w[1].top() as usize, 4096);
    }
    // Coroutines run on them, and the red zone stays clean.
    for s in stacks {
        let mut co = Coroutine::new(s, |s| {
            s.suspend();
            5
        });
        assert!(matches!(co.resume(), Resume::Suspended));
        assert!(matches!(co.resume(), Resume::Returned(5)));
        let s = co.into_stack().unwrap();
        // SAFETY: the red zone is mapped, readable memory of the slot.
        let red = unsafe { std::slice::from_raw_parts(s.bottom().sub(4096), 4096) };
        if s.protection() == StackProtection::Canary {
            assert!(red.iter().all(|b| *b == 0));
        }
    }
    // Freed guarded stacks give their budget back; freed slots are reused.
    assert_eq!(stack::guarded_stacks_alive(), base);
    let again = Stack::new(64 * 1024).unwrap();
    assert_eq!(again.protection(), StackProtection::GuardPage);
    stack::set_guarded_stack_limit(0);
    let c1 = Stack::new(64 * 1024).unwrap();
    assert_eq!(c1.protection(), StackProtection::Canary);
}
