//! Small helpers shared by the flavours: bounded spinning, sleeping through the park hook,
//! and the random number generator behind `select`'s fair choice.
//!
//! Nothing here caches a thread-local across a park: the RNG is read through an
//! `#[inline(never)]` accessor, because a goroutine may resume on another OS thread after
//! any blocking call (see `gmp_core::park`).

use gmp_core::park;
use std::cell::Cell;
use std::time::Instant;

/// Bounded exponential spinning before a thread registers itself as a waiter.
///
/// Registering and parking costs a lock, an allocation and (for a thread) a futex round
/// trip; a peer on another core usually makes the channel ready within a few hundred
/// cycles, so a short spin first pays for itself. The spin is bounded: past
/// [`Backoff::is_completed`] the caller must block instead. Under loom there is no spinning
/// at all (every iteration would multiply the explored interleavings).
///
/// A goroutine does not spin at all before blocking (as Go's `chanrecv`/`chansend`
/// park at once): parking a goroutine is a user-space switch that lets its M run the
/// peer, while spinning or `sched_yield`ing would burn the M's time slice — or, with one
/// P, wait for a peer that cannot run until we stop.
pub(crate) struct Backoff {
    #[cfg_attr(loom, allow(dead_code))]
    step: Cell<u32>,
    /// Whether the caller is a goroutine: 0 not asked yet, 1 no, 2 yes (asked lazily,
    /// only by a caller about to block, so the fast paths pay nothing).
    #[cfg_attr(loom, allow(dead_code))]
    goroutine: Cell<u8>,
}

#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 6;
#[cfg(not(loom))]
const YIELD_LIMIT: u32 = 10;

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Backoff {
            step: Cell::new(0),
            goroutine: Cell::new(0),
        }
    }

    /// A short busy-wait, for contention on an atomic that another thread is about to
    /// release (a lost CAS, a slot being written).
    #[inline]
    pub(crate) fn spin(&self) {
        #[cfg(not(loom))]
        {
            let step = self.step.get().min(SPIN_LIMIT);
            for _ in 0..(1u32 << step) {
                gmp_core::sync::spin_loop();
            }
            if self.step.get() <= SPIN_LIMIT {
                self.step.set(self.step.get() + 1);
            }
        }
        #[cfg(loom)]
        gmp_core::sync::spin_loop();
    }

    /// Waiting for a peer to make progress: spin, then offer the CPU to other threads.
    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        {
            if self.step.get() <= SPIN_LIMIT {
                for _ in 0..(1u32 << self.step.get()) {
                    gmp_core::sync::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
            if self.step.get() <= YIELD_LIMIT {
                self.step.set(self.step.get() + 1);
            }
        }
        #[cfg(loom)]
        gmp_core::sync::spin_loop();
    }

    /// True once spinning is no longer worth it: the caller should block.
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        #[cfg(not(loom))]
        {
            if self.goroutine.get() == 0 {
                self.goroutine.set(if park::in_goroutine() { 2 } else { 1 });
            }
            self.goroutine.get() == 2 || self.step.get() > YIELD_LIMIT
        }
        #[cfg(loom)]
        {
            true
        }
    }
}

/// Sleeps until `deadline` (forever if `None`) through the park hook: a goroutine sleeps
/// on the scheduler, a thread as a thread. Early or spurious wake-ups are absorbed here.
pub(crate) fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        None => loop {
            park::park();
        },
        Some(d) => {
            #[cfg(loom)]
            {
                // Time does not pass under loom: a timed park returns at once, "timed out".
                let _ = d;
                park::park_deadline(d);
            }
            #[cfg(not(loom))]
            while Instant::now() < d {
                park::park_deadline(d);
            }
        }
    }
}

/// True if `deadline` has passed. Under loom, where time does not pass, a deadline counts
/// as passed once the caller has waited for it (see `Context::wait_until`).
#[inline]
pub(crate) fn passed(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// True if an operation with `deadline` should give up now: the deadline passed, or,
/// under loom, the operation already waited once (a timed park there models "the
/// deadline passed while parked").
#[inline]
pub(crate) fn timed_out(deadline: Instant, waited: bool) -> bool {
    (cfg!(loom) && waited) || passed(deadline)
}

std::thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

// Never inlined: the caller may be a goroutine that moves between threads (rust#33368).
#[inline(never)]
fn next_random() -> u64 {
    RNG.try_with(|rng| {
        let mut x = rng.get();
        if x == 0 {
            x = seed();
        }
        // xorshift64 (Marsaglia 2003): a full-period generator over non-zero states.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x
    })
    // In a thread-local destructor the RNG may be gone: fall back to a fresh seed.
    .unwrap_or_else(|_| seed())
}

/// A non-zero seed that differs between threads and calls: a global counter mixed with
/// splitmix64 (the counter's only job is to make seeds distinct, hence `Relaxed`).
fn seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    // Relaxed: only distinctness matters, nothing is published.
    let mut z = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z | 1
}

/// A uniformly random number in `0..n` (`n > 0`), by Lemire's multiply-shift reduction.
#[inline]
pub(crate) fn random_below(n: usize) -> usize {
    ((next_random() >> 32).wrapping_mul(n as u64) >> 32) as usize
}

/// Shuffles `v` uniformly (Fisher–Yates). // Go: runtime.selectgo's pollorder
pub(crate) fn shuffle<T>(v: &mut [T]) {
    let len = v.len();
    // Under loom every execution must replay identically: no randomness (the models then
    // check the registration order as given, one of the orders a shuffle can produce).
    if len <= 1 || cfg!(loom) {
        return;
    }
    for i in (1..len).rev() {
        let j = random_below(i + 1);
        v.swap(i, j);
    }
}
