//! loom models of the local ring (capacity 4 under loom). Each model asserts that every
//! element pushed comes out exactly once, whatever the interleaving.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release \
//!     --target-dir target/loom -p gmp-queue --test loom_queue`
#![cfg(loom)]

use std::ptr::NonNull;

use gmp_core::sync::{thread, Arc};
use gmp_queue::{local, Global, Item, Local, Stealer, LOCAL_CAPACITY};

/// An element that is just a number carried as a (never dereferenced) pointer, so that a
/// duplicated element reaches the exactly-once assertion instead of a double free.
#[derive(Debug)]
struct B(usize);

// SAFETY: `into_raw` encodes the number as `n + 1` (non-null) and `from_raw` decodes it;
// there is no memory behind the pointer, so nothing can be freed twice.
unsafe impl Item for B {
    fn into_raw(self) -> NonNull<()> {
        NonNull::new((self.0 + 1) as *mut ()).expect("n + 1 is not null")
    }
    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        B(ptr.as_ptr() as usize - 1)
    }
}

/// Steals into a fresh ring of its own, once per entry of `passes` (the entry says
/// whether that pass may take `runnext`), then drains its ring, as a thief P would.
fn thief(s: Stealer<B>, passes: &'static [bool]) -> thread::JoinHandle<Vec<usize>> {
    thread::spawn(move || {
        let (mine, _) = local::<B>();
        let mut got = Vec::new();
        for &steal_runnext in passes {
            got.extend(s.steal_into(&mine, steal_runnext).map(|b| b.0));
        }
        got.extend(mine.drain().map(|b| b.0));
        got
    })
}

/// Collects what is left in `q` and `g`, adds what the threads took, and checks that
/// `0..n` came out exactly once.
fn assert_exactly_once(
    n: usize,
    mut got: Vec<usize>,
    q: &Local<B>,
    g: &Global<B>,
    thieves: Vec<thread::JoinHandle<Vec<usize>>>,
) {
    for t in thieves {
        got.extend(t.join().unwrap());
    }
    got.extend(q.drain().map(|b| b.0));
    got.extend(g.drain().into_iter().map(|b| b.0));
    got.sort_unstable();
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "an element was lost or duplicated"
    );
}

#[test]
fn owner_push_pop_vs_one_stealer() {
    loom::model(|| {
        let g = Global::new();
        let (q, s) = local::<B>();
        q.push(B(0), &g);
        let t = thief(s, &[false, true]);
        q.push(B(1), &g);
        q.push_next(B(2), &g);
        let mut got: Vec<usize> = q.pop().map(|(b, _)| b.0).into_iter().collect();
        q.push(B(3), &g);
        got.extend(q.pop().map(|(b, _)| b.0));
        assert_exactly_once(4, got, &q, &g, vec![t]);
    });
}

#[test]
fn two_stealers_vs_owner() {
    loom::model(|| {
        let g = Global::new();
        let (q, s) = local::<B>();
        q.push(B(0), &g);
        q.push(B(1), &g);
        let t1 = thief(s.clone(), &[false]);
        let t2 = thief(s, &[false]);
        let got: Vec<usize> = q.pop().map(|(b, _)| b.0).into_iter().collect();
        assert_exactly_once(2, got, &q, &g, vec![t1, t2]);
    });
}

#[test]
fn steal_of_runnext() {
    loom::model(|| {
        let g = Global::new();
        let (q, s) = local::<B>();
        q.push_next(B(0), &g);
        let t = thief(s, &[true, true]);
        // Kicks 0 to the ring while the thief may be taking it from `runnext`.
        q.push_next(B(1), &g);
        let got: Vec<usize> = q.pop().map(|(b, _)| b.0).into_iter().collect();
        assert_exactly_once(2, got, &q, &g, vec![t]);
    });
}

/// `push_next_unfenced` (a single P's push): the empty `runnext` takes the element with
/// a plain store while a thief (a goroutine dump, for a single P) may be stealing it,
/// then a second push kicks it to the ring with a swap. Each element is taken once.
#[test]
fn steal_of_runnext_unfenced() {
    loom::model(|| {
        let g = Global::new();
        let (q, s) = local::<B>();
        let t = thief(s, &[true, true]);
        q.push_next_unfenced(B(0), &g);
        q.push_next_unfenced(B(1), &g);
        let got: Vec<usize> = q.pop().map(|(b, _)| b.0).into_iter().collect();
        assert_exactly_once(2, got, &q, &g, vec![t]);
    });
}

#[test]
fn overflow_racing_a_steal() {
    loom::model(|| {
        let g = Arc::new(Global::new());
        let (q, s) = local::<B>();
        for i in 0..LOCAL_CAPACITY {
            q.push(B(i), &g);
        }
        let t = thief(s, &[false]);
        // Full ring: overflows half + 1 to the global queue unless the thief made room.
        q.push(B(LOCAL_CAPACITY), &g);
        assert_exactly_once(LOCAL_CAPACITY + 1, Vec::new(), &q, &g, vec![t]);
    });
}

#[test]
fn slot_reuse_racing_a_steal() {
    loom::model(|| {
        let g = Global::new();
        let (q, s) = local::<B>();
        for i in 0..LOCAL_CAPACITY {
            q.push(B(i), &g);
        }
        let t = thief(s, &[false]);
        // The pop frees slot 0; the pushes reuse it (and overflow if the thief took
        // nothing) while the thief may still be reading the oldest slots.
        let got: Vec<usize> = q.pop().map(|(b, _)| b.0).into_iter().collect();
        q.push(B(LOCAL_CAPACITY), &g);
        q.push(B(LOCAL_CAPACITY + 1), &g);
        assert_exactly_once(LOCAL_CAPACITY + 2, got, &q, &g, vec![t]);
    });
}
