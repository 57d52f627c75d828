//! Multi-threaded stress: every value sent is received exactly once, for every flavour,
//! with plain operations, with `select!` on both sides, and with timeouts racing the
//! handoffs. Plus `select` fairness over 10,000 rounds.
//!
//! Sizes are modest (the test machines have two cores); the assertions are about
//! behaviour (no loss, no duplication, fair choice), never about time.

use gmp_chan::{bounded, select, unbounded, Receiver, Select, Sender};
use std::thread;
use std::time::Duration;

const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: usize = 5_000;

fn channel(cap: Option<usize>) -> (Sender<usize>, Receiver<usize>) {
    match cap {
        Some(c) => bounded(c),
        None => unbounded(),
    }
}

/// Checks that `got` holds each of `0..n` exactly once.
fn assert_exactly_once(mut got: Vec<usize>, n: usize) {
    got.sort_unstable();
    assert_eq!(got.len(), n, "lost or duplicated messages");
    for (i, v) in got.into_iter().enumerate() {
        assert_eq!(i, v, "message {i} lost or duplicated");
    }
}

fn mpmc_plain(cap: Option<usize>) {
    let (s, r) = channel(cap);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    s.send(p * PER_PRODUCER + i).unwrap();
                }
            })
        })
        .collect();
    drop(s);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let r = r.clone();
            thread::spawn(move || r.iter().collect::<Vec<_>>())
        })
        .collect();
    drop(r);
    for p in producers {
        p.join().unwrap();
    }
    let got = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_exactly_once(got, PRODUCERS * PER_PRODUCER);
}

#[test]
fn mpmc_zero() {
    mpmc_plain(Some(0));
}

#[test]
fn mpmc_array_1() {
    mpmc_plain(Some(1));
}

#[test]
fn mpmc_array_16() {
    mpmc_plain(Some(16));
}

#[test]
fn mpmc_list() {
    mpmc_plain(None);
}

/// Producers `select!` a send over two channels, consumers `select!` a receive over both.
fn mpmc_select(cap: Option<usize>) {
    let (s1, r1) = channel(cap);
    let (s2, r2) = channel(cap);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (s1, s2) = (s1.clone(), s2.clone());
            thread::spawn(move || {
                for i in 0..PER_PRODUCER / 4 {
                    let v = p * PER_PRODUCER + i;
                    select! {
                        send(s1, v) -> res => res.unwrap(),
                        send(s2, v) -> res => res.unwrap(),
                    }
                }
            })
        })
        .collect();
    drop((s1, s2));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (r1, r2) = (r1.clone(), r2.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut open = [true, true];
                while open[0] || open[1] {
                    let mut sel = Select::new();
                    let i1 = if open[0] { Some(sel.recv(&r1)) } else { None };
                    let i2 = if open[1] { Some(sel.recv(&r2)) } else { None };
                    let oper = sel.select();
                    let (idx, res) = if Some(oper.index()) == i1 {
                        (0, oper.recv(&r1))
                    } else {
                        assert_eq!(Some(oper.index()), i2);
                        (1, oper.recv(&r2))
                    };
                    match res {
                        Ok(v) => got.push(v),
                        Err(_) => open[idx] = false,
                    }
                }
                got
            })
        })
        .collect();
    drop((r1, r2));
    for p in producers {
        p.join().unwrap();
    }
    let mut got: Vec<usize> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let mut expected: Vec<usize> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER / 4).map(move |i| p * PER_PRODUCER + i))
        .collect();
    got.sort_unstable();
    expected.sort_unstable();
    assert_eq!(got, expected, "lost or duplicated messages");
}

#[test]
fn mpmc_select_zero() {
    mpmc_select(Some(0));
}

#[test]
fn mpmc_select_array() {
    mpmc_select(Some(2));
}

#[test]
fn mpmc_select_list() {
    mpmc_select(None);
}

/// Very short timeouts on both sides race every handoff: a message is either delivered
/// exactly once or returned to its sender, never both, never lost.
fn timeouts_race_handoffs(cap: Option<usize>) {
    let (s, r) = channel(cap);
    let n = 2_000;
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let s = s.clone();
            thread::spawn(move || {
                for i in 0..n {
                    let mut v = p * n + i;
                    loop {
                        match s.send_timeout(v, Duration::from_micros(50)) {
                            Ok(()) => break,
                            Err(e) => v = e.into_inner(), // timed out: try again
                        }
                    }
                }
            })
        })
        .collect();
    drop(s);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let r = r.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match r.recv_timeout(Duration::from_micros(50)) {
                        Ok(v) => got.push(v),
                        Err(e) if e.is_disconnected() => return got,
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    drop(r);
    for p in producers {
        p.join().unwrap();
    }
    let got = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_exactly_once(got, 2 * n);
}

#[test]
fn timeouts_race_handoffs_zero() {
    timeouts_race_handoffs(Some(0));
}

#[test]
fn timeouts_race_handoffs_array() {
    timeouts_race_handoffs(Some(1));
}

#[test]
fn timeouts_race_handoffs_list() {
    timeouts_race_handoffs(None);
}

/// A select blocked on two channels while both get a message at once: exactly one arm
/// fires, and the other message stays in its channel (buffered) or goes back to its
/// sender when the channel closes (rendezvous).
#[test]
fn blocked_select_takes_exactly_one_of_two_racing_sends() {
    for cap in [Some(0), Some(1), None] {
        for _ in 0..200 {
            let (s1, r1) = channel(cap);
            let (s2, r2) = channel(cap);
            let t1 = thread::spawn(move || s1.send(1));
            let t2 = thread::spawn(move || s2.send(2));
            let got = select! {
                recv(r1) -> v => v.unwrap(),
                recv(r2) -> v => v.unwrap(),
            };
            if cap == Some(0) {
                // Rendezvous: close both; the sender that was not chosen gets its value
                // back.
                drop((r1, r2));
                let (res1, res2) = (t1.join().unwrap(), t2.join().unwrap());
                let expected = if got == 1 {
                    (Ok(()), Err(gmp_chan::SendError(2)))
                } else {
                    (Err(gmp_chan::SendError(1)), Ok(()))
                };
                assert_eq!((res1, res2), expected, "exactly one handoff");
            } else {
                // Buffered: the other value is still in its channel.
                assert!(t1.join().unwrap().is_ok() && t2.join().unwrap().is_ok());
                let left = r1.try_recv().ok().or(r2.try_recv().ok());
                assert_eq!(left, Some(3 - got), "the other message must stay");
            }
        }
    }
}

fn fairness_counts(n: usize, biased: bool) -> [usize; 2] {
    let (s1, r1) = unbounded();
    let (s2, r2) = unbounded();
    s1.send(()).unwrap();
    s2.send(()).unwrap();
    let mut hits = [0usize; 2];
    for _ in 0..n {
        // Both arms always ready: each chosen message is put back.
        if biased {
            select_biased_once(&r1, &r2, &mut hits);
        } else {
            select! {
                recv(r1) -> v => { v.unwrap(); hits[0] += 1; }
                recv(r2) -> v => { v.unwrap(); hits[1] += 1; }
            }
        }
        if r1.is_empty() {
            s1.send(()).unwrap();
        }
        if r2.is_empty() {
            s2.send(()).unwrap();
        }
    }
    hits
}

fn select_biased_once(r1: &Receiver<()>, r2: &Receiver<()>, hits: &mut [usize; 2]) {
    gmp_chan::select_biased! {
        recv(r1) -> v => { v.unwrap(); hits[0] += 1; }
        recv(r2) -> v => { v.unwrap(); hits[1] += 1; }
    }
}

#[test]
fn select_macro_is_fair_over_10000_rounds() {
    let hits = fairness_counts(10_000, false);
    for h in hits {
        assert!((4_000..=6_000).contains(&h), "unfair choice: {hits:?}");
    }
    assert_eq!(
        fairness_counts(1_000, true),
        [1_000, 0],
        "biased always takes the first"
    );
}

#[test]
fn select_builder_is_fair_over_10000_rounds() {
    let (s1, r1) = bounded(1);
    let (s2, r2) = bounded(1);
    s1.send(()).unwrap();
    let mut hits = [0usize; 2];
    let mut sel = Select::new();
    let a = sel.recv(&r1);
    let b = sel.send(&s2); // s2 has room: always ready
    for _ in 0..10_000 {
        let oper = sel.select();
        match oper.index() {
            i if i == a => {
                oper.recv(&r1).unwrap();
                s1.send(()).unwrap();
                hits[0] += 1;
            }
            i if i == b => {
                oper.send(&s2, ()).unwrap();
                r2.recv().unwrap();
                hits[1] += 1;
            }
            _ => unreachable!(),
        }
    }
    for h in hits {
        assert!((4_000..=6_000).contains(&h), "unfair choice: {hits:?}");
    }
}

#[test]
fn ready_is_fair_over_10000_rounds() {
    let (s1, r1) = unbounded();
    let (s2, r2) = unbounded();
    s1.send(()).unwrap();
    s2.send(()).unwrap();
    let mut sel = Select::new();
    let a = sel.recv(&r1);
    sel.recv(&r2);
    let mut first = 0;
    for _ in 0..10_000 {
        if sel.ready() == a {
            first += 1;
        }
    }
    assert!(
        (4_000..=6_000).contains(&first),
        "unfair readiness: {first}"
    );
}
