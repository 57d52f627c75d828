//! Stalled Ps: a P whose M has not switched goroutines for [`STALL_NS`] while
//! goroutines wait in its queue. An M that runs out of work takes them
//! (`schedule::steal_from_stalled`) before it looks at the global queue or the network.
//!
//! Go has no such step: its `findRunnable` polls the network before it steals, and a
//! goroutine queued on a P whose goroutine does not yield waits for sysmon's preemption
//! (10 ms). gmp's sysmon retakes such a P after 10 ms as well (`sysmon.rs`). Under load
//! on a machine shared with other processes there is a shorter and more common stall:
//! the kernel preempts an M in the middle of a run (for a slice of another thread,
//! milliseconds), and the goroutines readied into its P's queue wait for it. The other
//! P, running dry, polled the network first and served the requests that had arrived
//! since — later requests overtook the stranded ones (`bench-results/profiles/
//! network-cpu-budget.txt` sections 7 and 8: 129-245 goroutines ran ahead of a waiting
//! one, p99 of the ready-to-run wait 1.1-1.6 ms).
//!
//! The signal is the P's `switchtick`, which its owner bumps at every goroutine switch
//! (sysmon's hog check reads the same counter). Each M keeps, per P, the tick it last
//! saw and since when, read without a lock: a P that switches is never stalled, and a
//! clock is read only for a P seen twice at the same tick with work queued, so a busy
//! runtime pays a few Relaxed loads per dry moment.

use std::cell::RefCell;

/// How long a P with queued goroutines may go without a switch before a dry P takes
/// them. A goroutine's run between switches is microseconds in a server (an HTTP
/// request: p50 3.2 us); the kernel's time slices are milliseconds. 100 us is long
/// enough that a P running its own queue is never robbed of it, and short against the
/// tail it cuts (HTTP `wrk -t2 -c100`, p99 1.5-2.5 ms).
pub(crate) const STALL_NS: u64 = 100_000;

/// What one M has seen of the other Ps' progress (per P: the `switchtick` it read, and
/// the time it first read it with goroutines queued, or 0 before that is known).
#[derive(Default)]
pub(crate) struct StallWatch {
    seen: RefCell<Vec<Seen>>,
}

#[derive(Clone, Copy, Default)]
struct Seen {
    /// `None` before the first look.
    tick: Option<u32>,
    since: u64,
}

/// What [`StallWatch::look`] concludes about one P.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It switched since the last look, or has nothing queued, or the stall is not
    /// yet long enough.
    Moving,
    /// It has not switched for [`STALL_NS`] or more: take its goroutines.
    Stalled,
}

impl StallWatch {
    /// Records a look at P `p` of `nprocs`: its `switchtick` now is `tick`, and `queued`
    /// says whether goroutines wait in its queue. `now` gives the time in nanoseconds;
    /// it is called at most once per look, and only for a P already seen at this tick.
    pub(crate) fn look(
        &self,
        nprocs: usize,
        p: usize,
        tick: u32,
        queued: bool,
        now: &mut impl FnMut() -> u64,
    ) -> Verdict {
        let mut seen = self.seen.borrow_mut();
        if seen.len() != nprocs {
            seen.clear();
            seen.resize(nprocs, Seen::default());
        }
        let s = &mut seen[p];
        if !queued || s.tick != Some(tick) {
            // Moving (or idle): forget any earlier stall. `since == 0` until the same
            // tick is seen again, so a P that switches costs no clock read.
            *s = Seen {
                tick: Some(tick),
                since: 0,
            };
            return Verdict::Moving;
        }
        let t = now();
        if s.since == 0 {
            s.since = t;
            return Verdict::Moving;
        }
        if t.saturating_sub(s.since) >= STALL_NS {
            // Kept as is: while the P stays stalled, each later look takes more.
            Verdict::Stalled
        } else {
            Verdict::Moving
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(w: &StallWatch, tick: u32, queued: bool, t: u64) -> Verdict {
        w.look(2, 1, tick, queued, &mut || t)
    }

    #[test]
    fn a_p_is_stalled_only_after_the_same_tick_for_the_whole_interval() {
        let w = StallWatch::default();
        assert_eq!(look(&w, 7, true, 1_000), Verdict::Moving); // first sight
        assert_eq!(look(&w, 7, true, 2_000), Verdict::Moving); // since = 2,000
        assert_eq!(look(&w, 7, true, 2_000 + STALL_NS - 1), Verdict::Moving);
        assert_eq!(look(&w, 7, true, 2_000 + STALL_NS), Verdict::Stalled);
        // Still stalled at the next look: it keeps its start.
        assert_eq!(look(&w, 7, true, 3_000 + STALL_NS), Verdict::Stalled);
    }

    #[test]
    fn a_switch_or_an_empty_queue_starts_over() {
        let w = StallWatch::default();
        look(&w, 7, true, 1_000);
        look(&w, 7, true, 2_000);
        assert_eq!(look(&w, 8, true, 2_000 + STALL_NS), Verdict::Moving); // it switched
        assert_eq!(look(&w, 8, true, 3_000 + STALL_NS), Verdict::Moving); // since set
        assert_eq!(look(&w, 8, false, 4_000 + 2 * STALL_NS), Verdict::Moving); // empty
        assert_eq!(look(&w, 8, true, 5_000 + 2 * STALL_NS), Verdict::Moving);
        assert_eq!(look(&w, 8, true, 6_000 + 2 * STALL_NS), Verdict::Moving);
        assert_eq!(look(&w, 8, true, 6_000 + 3 * STALL_NS), Verdict::Stalled);
    }

    #[test]
    fn the_clock_is_read_only_for_a_p_seen_again_at_the_same_tick() {
        let w = StallWatch::default();
        let reads = std::cell::Cell::new(0);
        let mut now = || {
            reads.set(reads.get() + 1);
            1_000
        };
        for tick in 0..100 {
            w.look(2, 1, tick, true, &mut now);
        }
        w.look(2, 1, 99, false, &mut now);
        assert_eq!(reads.get(), 0);
        w.look(2, 1, 5, true, &mut now);
        w.look(2, 1, 5, true, &mut now);
        assert_eq!(reads.get(), 1);
    }
}
