//! P: a processor token. An M must hold a P to run goroutines.
//!
//! A P owns a local run queue (with `runnext`), a timer heap, a cache of free stacks
//! and a scheduling tick. Its owner is recorded in one atomic word, `own`:
//!
//! ```text
//!   own = (M id << 8) | state        state: IDLE | RUNTIME | USER | SYSCALL
//! ```
//!
//! - `IDLE` (M id 0): on the idle list, or being handed from one M to another.
//! - `RUNTIME`: its M is running scheduler code and may touch the P's internals.
//! - `USER`: its M is running goroutine code. sysmon may *retake* the P (CAS to
//!   `IDLE`) if the same goroutine has run for more than 10 ms: our answer to the lack
//!   of preemption points in Rust (ARCHITECTURE.md, hard part 4).
//! - `SYSCALL`: its M is inside `blocking(f)`; sysmon retakes it after 20 µs.
//!
//! An M that wants to touch its P again (to ready a goroutine, to spawn, after a
//! switch) CASes `(me, USER)` → `(me, RUNTIME)`; if that fails the P was taken and the
//! M carries on without one (Go: `exitsyscall`'s slow path). Putting the M id in the
//! word makes the CAS immune to ABA: a P retaken and handed to another M never matches
//! the old owner's expected value.
//!
//! Every legal change of state is a row of [`TRANSITIONS`]; debug builds check each
//! write of `own` against it ([`Own`]), and the guide's P state diagram
//! (`src/guide/p-status.svg`) is generated from it.
//!
//! The local queue is `Local<GRef>`, which is `!Sync`: only the owner touches it. The
//! ownership transfer (idle list under the sched lock, or the `own` CAS) is a
//! release/acquire edge, so each owner sees the previous one's writes.

use crate::g::GRef;
use crate::timers::Timers;
use gmp_core::stack::Stack;
use gmp_core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use gmp_queue::{Local, Stealer};
use std::cell::UnsafeCell;
use std::fmt;

pub(crate) const OWN_IDLE: u64 = 0;
pub(crate) const OWN_RUNTIME: u64 = 1;
pub(crate) const OWN_USER: u64 = 2;
pub(crate) const OWN_SYSCALL: u64 = 3;

pub(crate) fn own_word(m: u64, state: u64) -> u64 {
    (m << 8) | state
}

/// The legal changes of a P's state, each with the function that makes it (Go's name
/// where Go has one). Debug builds check every write of `own` against this table
/// ([`Own`]); the guide's P state diagram is generated from it (`guide::render` tests).
#[cfg_attr(not(any(debug_assertions, test)), allow(dead_code))]
pub(crate) const TRANSITIONS: &[(u64, u64, &str)] = &[
    (OWN_IDLE, OWN_RUNTIME, "acquirep"),
    (OWN_RUNTIME, OWN_IDLE, "releasep"),
    (OWN_RUNTIME, OWN_USER, "execute / leave"),
    (OWN_USER, OWN_RUNTIME, "enter"),
    (OWN_RUNTIME, OWN_SYSCALL, "entersyscall"),
    (OWN_SYSCALL, OWN_RUNTIME, "enter"),
    (OWN_SYSCALL, OWN_USER, "exitsyscall"),
    (OWN_USER, OWN_IDLE, "retake: ran 10 ms"),
    (OWN_SYSCALL, OWN_IDLE, "retake: blocked 20 µs"),
];

/// A P's `own` word: an `AtomicU64` whose writes debug builds check against
/// [`TRANSITIONS`] — the state must change along a row of the table, and a P that
/// stays owned keeps its M. Release builds compile to the plain atomic operations.
pub(crate) struct Own(AtomicU64);

impl Own {
    fn new(word: u64) -> Own {
        Own(AtomicU64::new(word))
    }

    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }

    /// A store; in debug builds a swap, so that the check sees the exact previous word.
    #[inline]
    pub(crate) fn store(&self, word: u64, order: Ordering) {
        #[cfg(debug_assertions)]
        check_transition(self.0.swap(word, order), word);
        #[cfg(not(debug_assertions))]
        self.0.store(word, order);
    }

    #[inline]
    pub(crate) fn swap(&self, word: u64, order: Ordering) -> u64 {
        let prev = self.0.swap(word, order);
        #[cfg(debug_assertions)]
        check_transition(prev, word);
        prev
    }

    #[inline]
    pub(crate) fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        let r = self.0.compare_exchange(current, new, success, failure);
        #[cfg(debug_assertions)]
        if r.is_ok() {
            check_transition(current, new);
        }
        r
    }
}

/// Panics unless `from` → `to` is a row of [`TRANSITIONS`] and, when the P stays owned,
/// by the same M.
#[cfg(debug_assertions)]
fn check_transition(from: u64, to: u64) {
    let (fs, ts) = (from & 0xff, to & 0xff);
    let legal = TRANSITIONS.iter().any(|&(f, t, _)| (f, t) == (fs, ts));
    let same_m = fs == OWN_IDLE || ts == OWN_IDLE || from >> 8 == to >> 8;
    assert!(
        legal && same_m,
        "gmp: illegal P state transition {from:#x} -> {to:#x} (M id << 8 | state; states: \
         0 IDLE, 1 RUNTIME, 2 USER, 3 SYSCALL)"
    );
}

/// Stacks a P keeps for its next spawns before spilling to the shared pool
/// (Go keeps 64 free Gs with stacks per P, spilling half to the global list).
pub(crate) const STACK_CACHE: usize = 64;

/// Dead Gs a P keeps for reuse (Go: 64 per P).
pub(crate) const G_CACHE: usize = 64;

pub(crate) struct P {
    pub(crate) id: usize,
    /// Owner-only (module docs).
    local: UnsafeCell<Local<GRef>>,
    pub(crate) stealer: Stealer<GRef>,
    pub(crate) own: Own,
    /// Go: `schedtick`, incremented when a G starts a fresh time slice. Written by
    /// the owner, read by sysmon: Relaxed, it is a progress counter, not a guard.
    pub(crate) schedtick: AtomicU32,
    /// Go: `syscalltick`, incremented at every `blocking` entry.
    pub(crate) syscalltick: AtomicU32,
    pub(crate) timers: Timers,
    /// Owner-only cache of free stacks.
    stacks: UnsafeCell<Vec<Stack>>,
    /// Owner-only cache of dead Gs to reuse (Go: `p.gFree`), saving an allocation per
    /// spawn.
    gfree: UnsafeCell<Vec<GRef>>,
}

// SAFETY: the `UnsafeCell` fields (`local`, `stacks`) are only touched by the M that
// owns the P per the `own` protocol in the module docs; everything else is atomic or
// internally synchronised.
unsafe impl Sync for P {}
// SAFETY: `Local` and `Stack` are `Send`; see above for the cells.
unsafe impl Send for P {}

impl P {
    pub(crate) fn new(id: usize) -> P {
        let (local, stealer) = gmp_queue::local();
        P {
            id,
            local: UnsafeCell::new(local),
            stealer,
            own: Own::new(OWN_IDLE),
            schedtick: AtomicU32::new(0),
            syscalltick: AtomicU32::new(0),
            timers: Timers::new(),
            stacks: UnsafeCell::new(Vec::new()),
            gfree: UnsafeCell::new(Vec::new()),
        }
    }

    /// The local run queue.
    ///
    /// # Safety
    /// The caller owns this P (`own` names its M, in state `RUNTIME`), or holds the only
    /// reference to the runtime (shutdown, after every M has exited).
    pub(crate) unsafe fn local(&self) -> &Local<GRef> {
        // SAFETY: ownership is the caller's contract; `Local` is only used through `&`.
        unsafe { &*self.local.get() }
    }

    /// The stack cache.
    ///
    /// # Safety
    /// As for [`P::local`].
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn stacks(&self) -> &mut Vec<Stack> {
        // SAFETY: ownership is the caller's contract; no reference escapes a call.
        unsafe { &mut *self.stacks.get() }
    }

    /// The cache of dead Gs.
    ///
    /// # Safety
    /// As for [`P::local`].
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn gfree(&self) -> &mut Vec<GRef> {
        // SAFETY: ownership is the caller's contract; no reference escapes a call.
        unsafe { &mut *self.gfree.get() }
    }

    pub(crate) fn state(&self) -> u64 {
        self.own.load(Ordering::Acquire) & 0xff
    }

    pub(crate) fn tick(&self) {
        // Relaxed: see the field's docs.
        self.schedtick.store(
            self.schedtick.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

impl fmt::Debug for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P")
            .field("id", &self.id)
            .field("state", &self.state())
            .field("runq", &self.stealer.len())
            .finish()
    }
}

#[cfg(all(test, debug_assertions, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_row_of_the_table_is_accepted() {
        for &(from, to, _) in TRANSITIONS {
            let own = Own::new(own_word(if from == OWN_IDLE { 0 } else { 7 }, from));
            own.store(
                own_word(if to == OWN_IDLE { 0 } else { 7 }, to),
                Ordering::Release,
            );
        }
    }

    #[test]
    #[should_panic(expected = "illegal P state transition")]
    fn a_transition_missing_from_the_table_panics() {
        let own = Own::new(OWN_IDLE);
        own.store(own_word(1, OWN_USER), Ordering::Release); // skips acquirep
    }

    #[test]
    #[should_panic(expected = "illegal P state transition")]
    fn an_owned_p_cannot_change_its_m() {
        let own = Own::new(own_word(1, OWN_RUNTIME));
        let _ = own.compare_exchange(
            own_word(1, OWN_RUNTIME),
            own_word(2, OWN_USER),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}
