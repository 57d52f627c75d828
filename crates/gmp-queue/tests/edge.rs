//! Edge cases of the local ring and the global queue: empty and full boundaries, index
//! wrap-around at `u32::MAX`, steals of one element, `runnext`, and drops.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gmp_queue::{local, local_starting_at, Global, Local, Stealer, LOCAL_CAPACITY};

const CAP: usize = LOCAL_CAPACITY;
const HALF: usize = CAP / 2;

type B = Box<usize>;

fn pop_all(q: &Local<B>) -> Vec<usize> {
    q.drain().map(|b| *b).collect()
}

fn global_all(g: &Global<B>) -> Vec<usize> {
    g.drain().into_iter().map(|b| *b).collect()
}

#[test]
fn empty_queue_pops_and_steals_nothing() {
    let g = Global::<B>::new();
    let (q, s) = local::<B>();
    let (thief, _) = local::<B>();
    assert!(q.is_empty() && s.is_empty());
    assert_eq!((q.len(), s.len()), (0, 0));
    assert!(q.pop().is_none());
    assert!(s.steal_into(&thief, true).is_none());
    assert!(g.pop().is_none() && g.is_empty());
    assert!(g.pop_batch_into(&q, 1).is_none());
    assert!(q.is_empty() && thief.is_empty());
}

#[test]
fn ring_is_fifo() {
    let g = Global::new();
    let (q, _) = local::<B>();
    for i in 0..10 {
        q.push(Box::new(i), &g);
    }
    assert_eq!(q.len(), 10);
    assert_eq!(pop_all(&q), (0..10).collect::<Vec<_>>());
}

#[test]
fn runnext_runs_first_and_kicks_old_to_tail() {
    let g = Global::new();
    let (q, s) = local::<B>();
    q.push(Box::new(0), &g);
    q.push_next(Box::new(1), &g);
    assert!(q.has_runnext());
    assert_eq!(q.len(), 2);
    q.push_next(Box::new(2), &g); // 1 moves to the tail, behind 0
    assert_eq!(s.len(), 3);
    let (v, next) = q.pop().unwrap();
    assert_eq!((*v, next), (2, true));
    assert!(!q.has_runnext());
    let rest: Vec<_> = std::iter::from_fn(|| q.pop())
        .map(|(v, n)| (*v, n))
        .collect();
    assert_eq!(rest, vec![(0, false), (1, false)]);
}

#[test]
fn full_ring_then_overflow_moves_half_plus_one() {
    let g = Global::new();
    let (q, _) = local::<B>();
    for i in 0..CAP {
        q.push(Box::new(i), &g);
    }
    assert_eq!(q.len(), CAP);
    assert_eq!(q.capacity(), CAP);
    assert!(
        g.is_empty(),
        "a ring of exactly capacity elements must not overflow"
    );
    q.push(Box::new(CAP), &g);
    assert_eq!(g.len(), HALF + 1);
    assert_eq!(q.len(), CAP - HALF);
    let mut want_global: Vec<usize> = (0..HALF).collect();
    want_global.push(CAP);
    assert_eq!(global_all(&g), want_global);
    assert_eq!(pop_all(&q), (HALF..CAP).collect::<Vec<_>>());
}

#[test]
fn push_next_on_full_ring_overflows_the_kicked_element() {
    let g = Global::new();
    let (q, _) = local::<B>();
    q.push_next(Box::new(1000), &g);
    for i in 0..CAP {
        q.push(Box::new(i), &g);
    }
    assert!(g.is_empty());
    q.push_next(Box::new(1001), &g); // 1000 goes to the full ring's tail: overflow
    let mut want_global: Vec<usize> = (0..HALF).collect();
    want_global.push(1000);
    assert_eq!(global_all(&g), want_global);
    let mut want_local = vec![1001];
    want_local.extend(HALF..CAP);
    assert_eq!(pop_all(&q), want_local);
}

#[test]
fn indices_wrap_around_u32_max() {
    let g = Global::new();
    // Plain push and pop across the wrap.
    let (q, _) = local_starting_at::<B>(u32::MAX - 3);
    for round in 0..3 {
        for i in 0..10 {
            q.push(Box::new(round * 10 + i), &g);
        }
        assert_eq!(q.len(), 10);
        assert_eq!(
            pop_all(&q),
            (round * 10..round * 10 + 10).collect::<Vec<_>>()
        );
    }
    // A full ring that straddles the wrap, then overflow across it.
    let (q, s) = local_starting_at::<B>(u32::MAX - (HALF as u32) + 1);
    for i in 0..=CAP {
        q.push(Box::new(i), &g);
    }
    assert_eq!(g.len(), HALF + 1);
    assert_eq!(q.len(), CAP - HALF);
    // A steal across the wrap into another wrapped ring.
    let (thief, _) = local_starting_at::<B>(u32::MAX);
    let got = s.steal_into(&thief, false).map(|b| *b);
    let n = (CAP - HALF).div_ceil(2);
    assert_eq!(got, Some(HALF + n - 1));
    assert_eq!(pop_all(&thief), (HALF..HALF + n - 1).collect::<Vec<_>>());
    assert_eq!(pop_all(&q), (HALF + n..CAP).collect::<Vec<_>>());
    drop(global_all(&g));
}

#[test]
fn steal_from_a_queue_of_one() {
    let g = Global::new();
    let (q, s) = local::<B>();
    let (thief, _) = local::<B>();
    q.push(Box::new(7), &g);
    assert_eq!(s.steal_into(&thief, false).map(|b| *b), Some(7));
    assert!(q.is_empty() && thief.is_empty());
    assert!(s.steal_into(&thief, true).is_none());
}

#[test]
fn steal_takes_the_oldest_half_and_returns_the_newest_of_them() {
    let g = Global::new();
    let (q, s) = local::<B>();
    let (thief, _) = local::<B>();
    for i in 0..11 {
        q.push(Box::new(i), &g);
    }
    q.push_next(Box::new(99), &g); // untouched: the ring is not empty
    assert_eq!(s.steal_into(&thief, true).map(|b| *b), Some(5));
    assert_eq!(thief.len(), 5);
    assert_eq!(pop_all(&thief), vec![0, 1, 2, 3, 4]);
    let mut rest = vec![99];
    rest.extend(6..11);
    assert_eq!(pop_all(&q), rest);
}

#[test]
fn runnext_is_stolen_only_when_asked_and_the_ring_is_empty() {
    let g = Global::new();
    let (q, s) = local::<B>();
    let (thief, _) = local::<B>();
    q.push_next(Box::new(1), &g);
    assert!(!s.is_empty());
    assert!(s.steal_into(&thief, false).is_none());
    assert!(q.has_runnext());
    assert_eq!(s.steal_into(&thief, true).map(|b| *b), Some(1));
    assert!(!q.has_runnext() && q.pop().is_none());
    assert!(thief.is_empty());
}

#[test]
fn steal_never_overflows_the_thief() {
    let g = Global::new();
    let (q, s) = local::<B>();
    let (thief, _) = local::<B>();
    for i in 0..CAP {
        q.push(Box::new(i), &g);
        thief.push(Box::new(1000 + i), &g);
    }
    // Full thief: exactly one element comes back, nothing is stored.
    assert_eq!(s.steal_into(&thief, false).map(|b| *b), Some(0));
    assert_eq!(thief.len(), CAP);
    // Thief with 3 free slots: 4 taken, 3 stored.
    for _ in 0..3 {
        thief.pop().unwrap();
    }
    assert_eq!(s.steal_into(&thief, false).map(|b| *b), Some(4));
    assert_eq!(thief.len(), CAP);
    assert_eq!(q.len(), CAP - 5);
    assert!(g.is_empty());
    let tail: Vec<usize> = pop_all(&thief).into_iter().skip(CAP - 3).collect();
    assert_eq!(tail, vec![1, 2, 3]);
}

#[test]
fn stealing_from_oneself_rotates_the_ring() {
    let g = Global::new();
    let (q, s) = local::<B>();
    for i in 0..6 {
        q.push(Box::new(i), &g);
    }
    assert_eq!(s.steal_into(&q, false).map(|b| *b), Some(2));
    assert_eq!(pop_all(&q), vec![3, 4, 5, 0, 1]);
}

#[test]
fn push_batch_equals_pushing_one_by_one() {
    let g1 = Global::new();
    let g2 = Global::new();
    let (a, _) = local::<B>();
    let (b, _) = local::<B>();
    for i in 0..100 {
        a.push(Box::new(i), &g1);
        b.push(Box::new(i), &g2);
    }
    a.pop();
    b.pop();
    let n = CAP + 40;
    for i in 0..n {
        a.push(Box::new(1000 + i), &g1);
    }
    b.push_batch((0..n).map(|i| Box::new(1000 + i)), &g2);
    assert_eq!(global_all(&g1), global_all(&g2));
    assert_eq!(pop_all(&a), pop_all(&b));
}

#[test]
fn global_is_fifo_with_push_front() {
    let g = Global::new();
    g.push(Box::new(1));
    g.push_batch([2, 3].map(Box::new));
    g.push_front(Box::new(0));
    assert_eq!(g.len(), 4);
    assert_eq!(g.pop().map(|b| *b), Some(0));
    assert_eq!(global_all(&g), vec![1, 2, 3]);
    assert!(g.is_empty());
}

#[test]
fn global_batch_follows_go_fairness_rule() {
    let g = Global::new();
    let (q, _) = local::<B>();
    // len 1000, 2 procs: min(1000, 501, CAP/2).
    g.push_batch((0..1000).map(Box::new));
    assert_eq!(g.pop_batch_into(&q, 2).map(|b| *b), Some(0));
    assert_eq!(q.len(), HALF - 1);
    assert_eq!(g.len(), 1000 - HALF);
    assert_eq!(pop_all(&q), (1..HALF).collect::<Vec<_>>());
    // len 10, 8 procs: min(10, 2, ..) = 2.
    drop(g.drain());
    g.push_batch((0..10).map(Box::new));
    assert_eq!(g.pop_batch_into(&q, 8).map(|b| *b), Some(0));
    assert_eq!(pop_all(&q), vec![1]);
    // len 3, 1 proc: all of them.
    drop(g.drain());
    g.push_batch((0..3).map(Box::new));
    assert_eq!(g.pop_batch_into(&q, 1).map(|b| *b), Some(0));
    assert_eq!(pop_all(&q), vec![1, 2]);
    assert!(g.is_empty());
}

#[test]
fn global_batch_never_overflows_the_ring() {
    let g = Global::new();
    let (q, _) = local::<B>();
    for i in 0..CAP - 2 {
        q.push(Box::new(i), &g);
    }
    g.push_batch((1000..1100).map(Box::new));
    assert_eq!(g.pop_batch_into(&q, 1).map(|b| *b), Some(1000));
    assert_eq!(q.len(), CAP);
    assert_eq!(g.len(), 97);
}

#[test]
#[should_panic(expected = "nprocs must be at least 1")]
fn global_batch_rejects_zero_procs() {
    let g = Global::new();
    let (q, _) = local::<B>();
    g.push(Box::new(1));
    g.pop_batch_into(&q, 0);
}

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn dropping_queues_drops_their_elements() {
    let drops = Arc::new(AtomicUsize::new(0));
    let t = || Box::new(Tracked(drops.clone()));
    let g = Global::new();
    let (q, s): (Local<Box<Tracked>>, Stealer<Box<Tracked>>) = local();
    for _ in 0..CAP + 10 {
        q.push(t(), &g); // overflows once: HALF + 1 go to the global queue
    }
    q.push_next(t(), &g);
    let in_local = q.len();
    assert_eq!(in_local, CAP + 11 - (HALF + 1));
    drop(q); // the stealer keeps the ring alive, but the owner's drop drains it
    assert_eq!(drops.load(Ordering::Relaxed), in_local);
    assert!(s.is_empty());
    drop(s);
    drop(g);
    assert_eq!(drops.load(Ordering::Relaxed), CAP + 11);
}

#[test]
fn arc_elements_keep_their_counts() {
    let g = Global::new();
    let (q, s) = local::<Arc<String>>();
    let (thief, _) = local::<Arc<String>>();
    let a = Arc::new("a".to_string());
    q.push(a.clone(), &g);
    q.push(a.clone(), &g);
    g.push(a.clone());
    assert_eq!(Arc::strong_count(&a), 4);
    let stolen = s.steal_into(&thief, false).unwrap();
    assert_eq!(*stolen, "a");
    drop((stolen, q, g));
    assert_eq!(Arc::strong_count(&a), 1);
}

#[test]
fn handles_are_send_and_sync_as_documented() {
    fn send<X: Send>() {}
    fn send_sync<X: Send + Sync>() {}
    // Elements need only be `Send`: `Cell` is not `Sync`.
    send::<Local<Box<std::cell::Cell<u8>>>>();
    send_sync::<Stealer<Box<std::cell::Cell<u8>>>>();
    send_sync::<Global<Box<std::cell::Cell<u8>>>>();
}

#[test]
fn debug_shows_lengths() {
    let g = Global::new();
    let (q, s) = local::<B>();
    q.push(Box::new(1), &g);
    g.push(Box::new(2));
    assert_eq!(
        format!("{q:?}"),
        format!("Local {{ len: 1, has_runnext: false, capacity: {CAP} }}")
    );
    assert_eq!(format!("{s:?}"), "Stealer { len: 1 }");
    assert_eq!(format!("{g:?}"), "Global { len: 1 }");
}
