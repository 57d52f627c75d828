//! Per-P timer heaps: how `sleep`, `park_timeout` and every channel deadline wake up.
//!
//! Go: runtime/time.go. Each P has a 4-ary min-heap of `(when, seq, G)` entries.
//! A goroutine that parks with a deadline gets an entry on the heap of the P it parked
//! on (after it has switched out: Go's `resetForSleep`); whichever M next looks at
//! that heap (its owner at each `findRunnable`, a thief on its last steal pass, the M
//! that sleeps until the earliest timer) runs the due entries.
//!
//! Running an entry readies the goroutine only if it is still parked *in the same
//! park* (`G::park_seq == seq`) and nobody unparked it first (`ParkState::cancel_park`
//! wins the race against `unpark`: exactly one of them readies it).
//!
//! Deletion is lazy, as in Go: a goroutine woken early leaves its entry behind (a
//! "zombie"). When the heap has grown to twice its size after the last clean-up,
//! zombies are swept in one O(n) pass, so they never outnumber live entries for long.
//!
//! The earliest deadline is mirrored in an atomic (`next`, nanoseconds since the
//! process epoch, `u64::MAX` when empty) so idle Ms and thieves can read it without
//! the lock (Go: `timers.wakeTime`).

use crate::g::GRef;
use crate::sched::Sched;
use gmp_core::sync::atomic::{AtomicU64, Ordering};
use gmp_core::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds since the process's timer epoch.
pub(crate) fn nanos(t: Instant) -> u64 {
    let e = epoch();
    t.checked_duration_since(e)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128 - 1) as u64)
}

pub(crate) fn instant(n: u64) -> Instant {
    epoch() + Duration::from_nanos(n)
}

/// The monotonic clock at the kernel tick's resolution (1-4 ms), in nanoseconds since
/// boot: `CLOCK_MONOTONIC_COARSE` is read from the vDSO page without `rdtsc`, several
/// times cheaper than `Instant::now`. For figures shown in minutes (a goroutine's wait
/// time in dumps), never for deadlines. Comparable only with itself.
pub(crate) fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel
    // has supported since 2.6.32. On failure `ts` stays zero (the dump then shows no
    // wait time), which is harmless.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// When a goroutine parks, for the wait time in dumps (`G::parked_at`): sysmon's last
/// read of the coarse clock, or a read of our own while sysmon does not keep that fresh.
///
/// A park is the hottest path that wants the time, and even the vDSO read of the coarse
/// clock was 1.6% of a channel ping-pong. sysmon reads it anyway at each round, at most
/// 10 ms apart while anything runs, and clears it before it sleeps for longer (all Ps
/// idle) or exits; the dump shows whole minutes. Go sets `waitsince` lazily for the same
/// reason (at the next GC's stack scan).
pub(crate) fn park_stamp(sched: &Sched) -> u64 {
    // Relaxed: a hint shown in minutes, not a guard; a value a round old is fine.
    match sched.park_clock.load(Ordering::Relaxed) {
        0 => coarse_nanos(),
        t => t,
    }
}

/// sysmon's side of [`park_stamp`]: `fresh` is true at each round, false before a sleep
/// that may be long. The store is skipped while the value is unchanged (the coarse clock
/// ticks every 1-4 ms, sysmon may run every 20 µs), so the parks' cache line stays shared.
pub(crate) fn set_park_clock(sched: &Sched, fresh: bool) {
    let t = if fresh { coarse_nanos() } else { 0 };
    // Relaxed: see `park_stamp`.
    if sched.park_clock.load(Ordering::Relaxed) != t {
        sched.park_clock.store(t, Ordering::Relaxed);
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

struct Entry {
    when: u64,
    seq: u64,
    g: GRef,
}

struct Heap {
    entries: Vec<Entry>,
    /// Length right after the last sweep of zombies.
    swept_len: usize,
}

/// One P's timers.
pub(crate) struct Timers {
    heap: Mutex<Heap>,
    next: AtomicU64,
}

const ARITY: usize = 4;

/// How many due entries [`Timers::run`] takes off the heap under one hold of its lock.
const FIRE_BATCH: usize = 32;

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(Heap {
                entries: Vec::new(),
                swept_len: 0,
            }),
            next: AtomicU64::new(u64::MAX),
        }
    }

    /// The earliest deadline, lock-free (`u64::MAX` if none). Acquire: pairs with the
    /// Release in `publish` so a reader that sees a deadline also sees its entry.
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Go: `timers.addHeap`. Returns true if this is now the earliest timer.
    #[cfg_attr(not(test), allow(dead_code))] // used by tests and loom models
    pub(crate) fn add(&self, when: Instant, seq: u64, g: GRef) -> bool {
        self.add_nanos(nanos(when), seq, g)
    }

    /// [`add`](Self::add) with the deadline in nanoseconds since the timer epoch.
    pub(crate) fn add_nanos(&self, when: u64, seq: u64, g: GRef) -> bool {
        let mut h = self.heap.lock();
        if h.entries.len() >= 64 && h.entries.len() >= 2 * h.swept_len {
            sweep(&mut h);
        }
        h.entries.push(Entry { when, seq, g });
        let i = h.entries.len() - 1;
        sift_up(&mut h.entries, i);
        let earliest = h.entries[0].when == when;
        self.publish(&h);
        earliest
    }

    fn publish(&self, h: &Heap) {
        let n = h.entries.first().map_or(u64::MAX, |e| e.when);
        self.next.store(n, Ordering::Release);
    }

    /// Go: `timers.check` + `run`. Readies (through `ready`) the goroutines whose
    /// deadline is `<= now`, earliest first, at most `limit` of them; the other due
    /// entries stay in the heap for the next run. Returns how many it readied.
    ///
    /// Due entries are taken off the heap [`FIRE_BATCH`] at a time into an array on
    /// this stack and readied outside the lock: readying can take other locks (Go drops
    /// the timer lock around `f` for the same reason), and a `Vec` here was a `malloc`
    /// plus a regrowth per doubling on every run that found something due (~4% of the
    /// timers workload's CPU, under `RawVec::grow_one`).
    pub(crate) fn run(&self, now: u64, limit: usize, mut ready: impl FnMut(GRef)) -> usize {
        let mut n = 0;
        while n < limit && self.next() <= now {
            let mut due: [Option<Entry>; FIRE_BATCH] = [const { None }; FIRE_BATCH];
            let mut taken = 0;
            let want = FIRE_BATCH.min(limit - n);
            {
                let mut h = self.heap.lock();
                while taken < want {
                    match h.entries.first() {
                        Some(top) if top.when <= now => {}
                        _ => break,
                    }
                    due[taken] = Some(pop(&mut h.entries));
                    taken += 1;
                }
                if h.entries.len() < h.swept_len {
                    h.swept_len = h.entries.len();
                }
                self.publish(&h);
            }
            for e in due.into_iter().flatten() {
                if fire(&e) {
                    // The timer's reference readies the G (a timed park holds none of
                    // its own: g.rs `commit_park`).
                    ready(e.g);
                    n += 1;
                }
            }
            if taken < want {
                // The heap's earliest entry is after `now` (or it is empty).
                break;
            }
        }
        n
    }

    /// Removes every entry (runtime shutdown).
    pub(crate) fn drain(&self) -> Vec<GRef> {
        let mut h = self.heap.lock();
        let v = std::mem::take(&mut h.entries);
        self.publish(&h);
        v.into_iter().map(|e| e.g).collect()
    }
}

/// A due entry readies its G only if the G is still in the park the entry was armed
/// for and no unparker won the race.
fn fire(e: &Entry) -> bool {
    // Acquire: pairs with the Release increment in the parking path, so that a
    // matching seq means the park that armed us is the current one.
    let fired = e.g.park_seq.load(Ordering::Acquire) == e.seq && e.g.park.cancel_park();
    if fired {
        // Relaxed: the G cannot run until we ready it; the run queue publishes this.
        e.g.timer_fired.store(true, Ordering::Relaxed);
    }
    fired
}

fn sweep(h: &mut Heap) {
    h.entries
        .retain(|e| e.g.park_seq.load(Ordering::Relaxed) == e.seq && e.g.park.is_parked());
    for i in (0..h.entries.len()).rev() {
        sift_down(&mut h.entries, i);
    }
    h.swept_len = h.entries.len().max(32);
}

fn pop(v: &mut Vec<Entry>) -> Entry {
    let last = v.len() - 1;
    v.swap(0, last);
    let e = v.pop().expect("non-empty heap");
    if !v.is_empty() {
        sift_down(v, 0);
    }
    e
}

// Go: siftupTimer / siftdownTimer (4-ary: shallower than binary, fewer cache misses).
fn sift_up(v: &mut [Entry], mut i: usize) {
    while i > 0 {
        let parent = (i - 1) / ARITY;
        if v[i].when >= v[parent].when {
            break;
        }
        v.swap(i, parent);
        i = parent;
    }
}

fn sift_down(v: &mut [Entry], mut i: usize) {
    let n = v.len();
    loop {
        let first = i * ARITY + 1;
        if first >= n {
            break;
        }
        let mut min = first;
        for c in first + 1..(first + ARITY).min(n) {
            if v[c].when < v[min].when {
                min = c;
            }
        }
        if v[min].when >= v[i].when {
            break;
        }
        v.swap(i, min);
        i = min;
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests {
    use super::*;
    use crate::g::{Status, G};
    use crate::sched::{Config, Sched};
    use std::sync::Arc;

    /// A runtime that never starts an M: the tests drive its heap (and, in sysmon's
    /// tests, its Ps' states) directly.
    pub(crate) fn sched(procs: usize) -> Arc<Sched> {
        Arc::new(Sched::new(Config {
            procs,
            stack_size: gmp_core::stack::DEFAULT_STACK_SIZE,
            schedtrace_ms: None,
            scheddetail: false,
            name: "timers-test".into(),
        }))
    }

    /// A goroutine parked for a timer, and the park's sequence number.
    pub(crate) fn parked_g(sched: &Arc<Sched>, id: u64) -> (Arc<G>, u64) {
        let g = G::new(
            id,
            crate::origin::Origin::new(None, None),
            sched.clone(),
            None,
            Some(crate::spawn::noop_entry()),
        );
        g.set_status(Status::Runnable);
        g.set_status(Status::Running);
        g.set_status(Status::Waiting);
        let seq = g.park_seq.load(Ordering::Relaxed) + 1;
        g.park_seq.store(seq, Ordering::Release);
        // A timed park: the reference comes back, for the timer.
        let g = G::commit_park(g, true)
            .expect("nothing else touches it yet")
            .expect("a timed park gives its reference back");
        (g, seq)
    }

    /// A park's timestamp is sysmon's clock while sysmon keeps it fresh, and a clock
    /// read of its own when sysmon has cleared it (before a deep sleep, at exit): never
    /// a value from before sysmon stopped, never zero.
    #[test]
    fn park_stamp_follows_sysmon_or_reads_the_clock() {
        let sched = sched(1);
        let before = coarse_nanos();
        let t = park_stamp(&sched);
        assert!(t >= before, "no sysmon clock yet: the park reads its own");
        set_park_clock(&sched, true);
        let fresh = sched.park_clock.load(Ordering::Relaxed);
        assert!(fresh >= t);
        assert_eq!(park_stamp(&sched), fresh, "sysmon's value, no clock read");
        // A stale value is cleared before sysmon stops keeping it fresh.
        sched.park_clock.store(1, Ordering::Relaxed);
        set_park_clock(&sched, false);
        assert_eq!(sched.park_clock.load(Ordering::Relaxed), 0);
        assert!(park_stamp(&sched) >= fresh);
    }

    /// More due entries than one batch, in several batches, each fired once, in
    /// deadline order; the entries not yet due stay, and `next` names the earliest.
    #[test]
    fn run_fires_every_due_entry_across_batches_in_order() {
        let sched = sched(1);
        let t = Timers::new();
        let base = epoch() + Duration::from_secs(1);
        let total = 3 * FIRE_BATCH as u64 + 5;
        // Deadlines base+0 .. base+total-1 µs, added in a scrambled order.
        let mut ids: Vec<u64> = (0..total).collect();
        ids.sort_by_key(|i| (i * 37) % total);
        for &i in &ids {
            let (g, seq) = parked_g(&sched, i);
            t.add(base + Duration::from_micros(i), seq, g);
        }
        let due = total - 7; // the last 7 are later than `now`
        let now = nanos(base + Duration::from_micros(due - 1));
        let mut order = Vec::new();
        let fired = t.run(now, usize::MAX, |g| order.push(g.id));
        assert_eq!(fired as u64, due);
        assert_eq!(order, (0..due).collect::<Vec<_>>());
        assert_eq!(t.next(), nanos(base + Duration::from_micros(due)));
        // A second run at the same instant finds nothing; a later one the rest.
        assert_eq!(t.run(now, usize::MAX, |_| panic!("fired twice")), 0);
        assert_eq!(t.run(u64::MAX - 1, usize::MAX, |_| {}), 7);
        assert_eq!(t.next(), u64::MAX);
        drop(sched.global.drain());
    }

    /// A run fires at most `limit` entries, earliest first; the other due entries stay
    /// in the heap (still due: `next` is the earliest of them) for the next run.
    #[test]
    fn run_stops_at_its_limit_and_keeps_the_rest_due() {
        let sched = sched(1);
        let t = Timers::new();
        let base = epoch() + Duration::from_secs(1);
        let total = FIRE_BATCH as u64 + 10;
        for i in (0..total).rev() {
            let (g, seq) = parked_g(&sched, i);
            t.add(base + Duration::from_micros(i), seq, g);
        }
        let now = nanos(base + Duration::from_micros(total));
        let mut order = Vec::new();
        assert_eq!(t.run(now, 5, |g| order.push(g.id)), 5);
        assert_eq!(order, (0..5).collect::<Vec<_>>());
        assert_eq!(t.next(), nanos(base + Duration::from_micros(5)));
        // More than one batch's worth, still in deadline order.
        assert_eq!(
            t.run(now, FIRE_BATCH + 1, |g| order.push(g.id)),
            FIRE_BATCH + 1
        );
        assert_eq!(
            t.run(now, usize::MAX, |g| order.push(g.id)),
            total as usize - 6 - FIRE_BATCH
        );
        assert_eq!(order, (0..total).collect::<Vec<_>>());
        assert_eq!(t.next(), u64::MAX);
        drop(sched.global.drain());
    }

    /// An entry whose goroutine has left the park it was armed for is dropped, not
    /// fired, and does not count.
    #[test]
    fn run_skips_entries_of_a_finished_park() {
        let sched = sched(1);
        let t = Timers::new();
        let (g, seq) = parked_g(&sched, 1);
        t.add(epoch(), seq, g.clone());
        let (g2, seq2) = parked_g(&sched, 2);
        t.add(epoch(), seq2 + 1, g2); // armed for a later park than the current one
        let mut fired = Vec::new();
        assert_eq!(t.run(u64::MAX - 1, usize::MAX, |g| fired.push(g.id)), 1);
        assert_eq!(fired, vec![1]);
        assert!(g.timer_fired.load(Ordering::Relaxed));
        drop(sched.global.drain());
    }
}
