//! Property tests: random single-threaded operation sequences against a `VecDeque` model,
//! and a multi-threaded stress property (owner plus stealers) checking that nothing is
//! lost or duplicated.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use gmp_queue::{local_starting_at, Global, Item, Local, Stealer, LOCAL_CAPACITY};
use proptest::prelude::*;

const CAP: usize = LOCAL_CAPACITY;
const HALF: usize = CAP / 2;

/// A number carried as a never-dereferenced pointer: a duplicated element shows up in the
/// assertions instead of as a double free.
#[derive(Debug, PartialEq, Eq)]
struct Id(usize);

// SAFETY: encodes `n` as the non-null address `n + 1` and decodes it; nothing is owned
// behind the pointer.
unsafe impl Item for Id {
    fn into_raw(self) -> NonNull<()> {
        NonNull::new((self.0 + 1) as *mut ()).expect("n + 1 is not null")
    }
    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        Id(ptr.as_ptr() as usize - 1)
    }
}

// ---------------------------------------------------------------------------------------
// Sequential model

#[derive(Default, Debug)]
struct ModelQ {
    ring: VecDeque<usize>,
    next: Option<usize>,
}

#[derive(Default, Debug)]
struct Model {
    q: [ModelQ; 2],
    global: VecDeque<usize>,
}

impl Model {
    // Go: runqput + runqputslow
    fn push(&mut self, i: usize, v: usize) {
        if self.q[i].ring.len() == CAP {
            let batch: Vec<usize> = self.q[i].ring.drain(..HALF).collect();
            self.global.extend(batch);
            self.global.push_back(v);
        } else {
            self.q[i].ring.push_back(v);
        }
    }

    fn push_next(&mut self, i: usize, v: usize) {
        if let Some(old) = self.q[i].next.replace(v) {
            self.push(i, old);
        }
    }

    fn pop(&mut self, i: usize) -> Option<(usize, bool)> {
        if let Some(v) = self.q[i].next.take() {
            return Some((v, true));
        }
        self.q[i].ring.pop_front().map(|v| (v, false))
    }

    fn room(&self, i: usize) -> usize {
        CAP - self.q[i].ring.len() + 1
    }

    fn steal(&mut self, from: usize, into: usize, runnext: bool) -> Option<usize> {
        let avail = self.q[from].ring.len();
        let n = avail.div_ceil(2).min(self.room(into));
        if n == 0 {
            return if runnext {
                self.q[from].next.take()
            } else {
                None
            };
        }
        let mut taken: Vec<usize> = self.q[from].ring.drain(..n).collect();
        let last = taken.pop();
        self.q[into].ring.extend(taken);
        last
    }

    fn global_batch(&mut self, into: usize, nprocs: usize) -> Option<usize> {
        let len = self.global.len();
        let n = len.min(len / nprocs + 1).min(HALF).min(self.room(into));
        if n == 0 {
            return None;
        }
        let first = self.global.pop_front();
        let rest: Vec<usize> = self.global.drain(..n - 1).collect();
        self.q[into].ring.extend(rest);
        first
    }
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize, usize),
    PushNext(usize),
    /// `push_next_unfenced`: the same sequential behaviour as `PushNext`.
    PushNextUnfenced(usize),
    PushBatch(usize, usize),
    Pop(usize),
    Steal {
        from: usize,
        runnext: bool,
    },
    GlobalPush(usize),
    GlobalPushFront,
    GlobalPop,
    GlobalBatch(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let q = 0..2usize;
    prop_oneof![
        6 => (q.clone(), prop_oneof![3 => 1..8usize, 1 => 100..300usize])
            .prop_map(|(i, k)| Op::Push(i, k)),
        3 => q.clone().prop_map(Op::PushNext),
        2 => q.clone().prop_map(Op::PushNextUnfenced),
        1 => (q.clone(), 1..300usize).prop_map(|(i, k)| Op::PushBatch(i, k)),
        5 => q.clone().prop_map(Op::Pop),
        3 => (q.clone(), any::<bool>()).prop_map(|(from, runnext)| Op::Steal { from, runnext }),
        1 => (1..40usize).prop_map(Op::GlobalPush),
        1 => Just(Op::GlobalPushFront),
        1 => Just(Op::GlobalPop),
        2 => (q, 1..9usize).prop_map(|(i, n)| Op::GlobalBatch(i, n)),
    ]
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        (0..600u32).prop_map(|d| u32::MAX - d),
        any::<u32>()
    ]
}

struct Real {
    q: [Local<Id>; 2],
    s: [Stealer<Id>; 2],
    global: Global<Id>,
}

fn check_lengths(real: &Real, model: &Model) -> Result<(), TestCaseError> {
    for i in 0..2 {
        let m = &model.q[i];
        let want = m.ring.len() + usize::from(m.next.is_some());
        prop_assert_eq!(real.q[i].len(), want);
        prop_assert_eq!(real.s[i].len(), want);
        prop_assert_eq!(real.q[i].is_empty(), want == 0);
        prop_assert_eq!(real.q[i].has_runnext(), m.next.is_some());
    }
    prop_assert_eq!(real.global.len(), model.global.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ops_match_the_model(
        starts in (start_index(), start_index()),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let (q0, s0) = local_starting_at::<Id>(starts.0);
        let (q1, s1) = local_starting_at::<Id>(starts.1);
        let real = Real { q: [q0, q1], s: [s0, s1], global: Global::new() };
        let mut model = Model::default();
        let mut fresh = 0usize;
        let mut next_id = || { fresh += 1; fresh - 1 };
        for op in ops {
            match op {
                Op::Push(i, k) => {
                    for _ in 0..k {
                        let v = next_id();
                        real.q[i].push(Id(v), &real.global);
                        model.push(i, v);
                    }
                }
                Op::PushNext(i) => {
                    let v = next_id();
                    real.q[i].push_next(Id(v), &real.global);
                    model.push_next(i, v);
                }
                Op::PushNextUnfenced(i) => {
                    let v = next_id();
                    real.q[i].push_next_unfenced(Id(v), &real.global);
                    model.push_next(i, v);
                }
                Op::PushBatch(i, k) => {
                    let vs: Vec<usize> = (0..k).map(|_| next_id()).collect();
                    real.q[i].push_batch(vs.iter().map(|&v| Id(v)), &real.global);
                    for v in vs {
                        model.push(i, v);
                    }
                }
                Op::Pop(i) => {
                    let got = real.q[i].pop().map(|(v, n)| (v.0, n));
                    prop_assert_eq!(got, model.pop(i));
                }
                Op::Steal { from, runnext } => {
                    let into = 1 - from;
                    let got = real.s[from].steal_into(&real.q[into], runnext).map(|v| v.0);
                    prop_assert_eq!(got, model.steal(from, into, runnext));
                }
                Op::GlobalPush(k) => {
                    let vs: Vec<usize> = (0..k).map(|_| next_id()).collect();
                    real.global.push_batch(vs.iter().map(|&v| Id(v)));
                    model.global.extend(vs);
                }
                Op::GlobalPushFront => {
                    let v = next_id();
                    real.global.push_front(Id(v));
                    model.global.push_front(v);
                }
                Op::GlobalPop => {
                    prop_assert_eq!(real.global.pop().map(|v| v.0), model.global.pop_front());
                }
                Op::GlobalBatch(i, nprocs) => {
                    let got = real.global.pop_batch_into(&real.q[i], nprocs).map(|v| v.0);
                    prop_assert_eq!(got, model.global_batch(i, nprocs));
                }
            }
            check_lengths(&real, &model)?;
        }
        for i in 0..2 {
            let got: Vec<usize> = real.q[i].drain().map(|v| v.0).collect();
            let m = &mut model.q[i];
            let want: Vec<usize> = m.next.take().into_iter().chain(m.ring.drain(..)).collect();
            prop_assert_eq!(got, want);
        }
        let got: Vec<usize> = real.global.drain().into_iter().map(|v| v.0).collect();
        prop_assert_eq!(got, Vec::from(std::mem::take(&mut model.global)));
    }
}

// ---------------------------------------------------------------------------------------
// Concurrent stress

/// One owner pushes `n` elements in bursts of `burst` (every `next_every`-th to
/// `runnext`), popping half a burst after each burst; `thieves` threads steal into their own rings
/// and pull batches from the global queue. Returns every element that came out, from
/// everywhere.
fn stress(
    n: usize,
    burst: usize,
    thieves: usize,
    next_every: usize,
    steal_runnext: bool,
    start: u32,
) -> Vec<usize> {
    let global = Arc::new(Global::<Id>::new());
    let (q, s) = local_starting_at::<Id>(start);
    let done = Arc::new(AtomicBool::new(false));
    // Everyone starts together, so the owner does not finish before the thieves run.
    let go = Arc::new(Barrier::new(thieves + 1));
    let handles: Vec<_> = (0..thieves)
        .map(|t| {
            let (s, global, done, go) = (s.clone(), global.clone(), done.clone(), go.clone());
            std::thread::spawn(move || {
                let (mine, _) = local_starting_at::<Id>(start.wrapping_add(t as u32 * 97));
                let mut got = Vec::new();
                go.wait();
                for round in 0u64.. {
                    // Read `done` before looking: once set, the owner pushes no more, so
                    // an empty victim then stays empty.
                    let finished = done.load(Ordering::Acquire);
                    got.extend(s.steal_into(&mine, steal_runnext).map(|v| v.0));
                    if round % 8 == 0 {
                        got.extend(global.pop_batch_into(&mine, thieves + 1).map(|v| v.0));
                    }
                    // Keep some of the loot a while, so our own ring is non-trivial.
                    if round % 4 == 0 {
                        got.extend(mine.drain().map(|v| v.0));
                    }
                    if finished && s.is_empty() {
                        got.extend(mine.drain().map(|v| v.0));
                        return got;
                    }
                    if round % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                unreachable!()
            })
        })
        .collect();
    let mut got = Vec::new();
    go.wait();
    for i in 0..n {
        if next_every > 0 && i % next_every == 0 {
            q.push_next(Id(i), &global);
        } else {
            q.push(Id(i), &global);
        }
        if i % burst == 0 {
            for _ in 0..burst.div_ceil(2) {
                got.extend(q.pop().map(|(v, _)| v.0));
            }
        }
    }
    got.extend(q.drain().map(|v| v.0));
    done.store(true, Ordering::Release);
    for h in handles {
        got.extend(h.join().expect("thief panicked"));
    }
    got.extend(q.drain().map(|v| v.0));
    got.extend(global.drain().into_iter().map(|v| v.0));
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn concurrent_steals_lose_and_duplicate_nothing(
        n in 1..30_000usize,
        burst in 1..64usize,
        thieves in 1..4usize,
        next_every in 0..8usize,
        steal_runnext in any::<bool>(),
        start in start_index(),
    ) {
        let mut got = stress(n, burst, thieves, next_every, steal_runnext, start);
        got.sort_unstable();
        let before = got.len();
        got.dedup();
        prop_assert_eq!(before, got.len(), "duplicated elements");
        prop_assert_eq!(got, (0..n).collect::<Vec<_>>(), "lost elements");
    }
}
