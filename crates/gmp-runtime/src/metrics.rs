//! [`Runtime::metrics`](crate::Runtime::metrics): a snapshot of what the scheduler is
//! doing, from counters that cost the hot paths no shared atomic.
//!
//! Counters bumped on a hot path (spawns, steals, timers) live in the P
//! ([`PStats`]) and are written only by the P's owner, with a load and a store (no
//! locked RMW, no line shared with another P); the snapshot adds them up. Counters
//! bumped only by sysmon or on slow paths live in the runtime ([`SchedStats`]).

use crate::g::Status;
use crate::sched::Sched;
use gmp_core::sync::atomic::{AtomicU64, Ordering};
use std::collections::BTreeMap;

/// A P's counters, written by its owner only (load + store, Relaxed: statistics).
#[derive(Debug, Default)]
pub(crate) struct PStats {
    pub(crate) spawned: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) timers_armed: AtomicU64,
    pub(crate) timers_fired: AtomicU64,
}

impl PStats {
    /// Adds one to an owner-only counter.
    #[inline]
    pub(crate) fn bump(c: &AtomicU64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

/// Counters of slow paths and sysmon (RMWs are fine there).
#[derive(Debug, Default)]
pub(crate) struct SchedStats {
    /// Goroutines started from outside any P of the runtime (plain threads).
    pub(crate) spawned_outside: AtomicU64,
    pub(crate) retakes_blocking: AtomicU64,
    pub(crate) retakes_hog: AtomicU64,
    pub(crate) blocking_calls_outside: AtomicU64,
    /// Timers armed by an M without a P (rare).
    pub(crate) timers_armed: AtomicU64,
}

/// A snapshot of a runtime's scheduler (see [`Runtime::metrics`](crate::Runtime::metrics)).
///
/// Counts are read without stopping the runtime: each is exact, but they were not all
/// taken at the same instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Live goroutines (as [`num_goroutine`](crate::num_goroutine)).
    pub goroutines: usize,
    /// Goroutines running on an M right now.
    pub running: usize,
    /// Goroutines in a [`blocking`](crate::blocking) call right now.
    pub in_blocking: usize,
    /// Parked goroutines by wait reason (Go's names: `chan receive`, `sleep`, …).
    pub waiting: BTreeMap<&'static str, usize>,
    /// Goroutines spawned since the runtime started.
    pub spawned: u64,
    /// Length of each P's local run queue (including `runnext`).
    pub local_queues: Vec<usize>,
    /// Length of the global run queue.
    pub global_queue: usize,
    /// Successful steals (each moved one or more goroutines to the thief).
    pub steals: u64,
    /// Ms spinning (looking for work) right now.
    pub spinning_ms: usize,
    /// Ms asleep on the idle list right now.
    pub idle_ms: usize,
    /// Ms (scheduler threads) alive.
    pub ms: usize,
    /// `blocking` calls made since the runtime started.
    pub blocking_calls: u64,
    /// Ps sysmon took from an M stuck in a blocking call.
    pub retakes_blocking: u64,
    /// Ps sysmon took from a goroutine that ran 10 ms without a scheduling point.
    pub retakes_hog: u64,
    /// Timers armed (sleeps and timed parks) since the runtime started.
    pub timers_armed: u64,
    /// Timers that fired (woke their goroutine).
    pub timers_fired: u64,
    /// True if some goroutine of the process waits on the network poller.
    pub netpoll_waiters: bool,
    /// Address space of this runtime's cached free stacks, in bytes (only touched
    /// pages cost memory).
    pub stack_cache_bytes: usize,
}

/// Takes the snapshot.
pub(crate) fn snapshot(sched: &Sched) -> Metrics {
    let mut m = Metrics {
        goroutines: sched.num_goroutine(),
        global_queue: sched.global.len(),
        spinning_ms: sched.nmspinning.load(Ordering::Relaxed),
        idle_ms: sched.nmidle.load(Ordering::Relaxed),
        ms: sched.mcount.load(Ordering::Relaxed),
        in_blocking: sched.nsyscall.load(Ordering::Relaxed),
        retakes_blocking: sched.stats.retakes_blocking.load(Ordering::Relaxed),
        retakes_hog: sched.stats.retakes_hog.load(Ordering::Relaxed),
        spawned: sched.stats.spawned_outside.load(Ordering::Relaxed),
        blocking_calls: sched.stats.blocking_calls_outside.load(Ordering::Relaxed),
        timers_armed: sched.stats.timers_armed.load(Ordering::Relaxed),
        netpoll_waiters: crate::netpoll_poller_if_started().is_some_and(|p| p.has_waiters()),
        stack_cache_bytes: sched.stack_pool.cached() * sched.stack_pool.stack_size(),
        ..Metrics::default()
    };
    for pp in sched.allp.iter() {
        m.local_queues.push(pp.stealer.len());
        m.spawned += pp.stats.spawned.load(Ordering::Relaxed);
        m.steals += pp.stats.steals.load(Ordering::Relaxed);
        m.timers_armed += pp.stats.timers_armed.load(Ordering::Relaxed);
        m.timers_fired += pp.stats.timers_fired.load(Ordering::Relaxed);
        m.blocking_calls += u64::from(pp.syscalltick.load(Ordering::Relaxed));
    }
    m.running = sched
        .allm
        .lock()
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|mm| mm.curg_id.load(Ordering::Relaxed) != 0)
        .count()
        .saturating_sub(m.in_blocking);
    for g in sched.registry.all() {
        if g.status() == Status::Waiting {
            let r = g.wait_reason().map_or("waiting", |r| r.as_str());
            *m.waiting.entry(r).or_default() += 1;
        }
    }
    m
}
