//! The per-direction wait word: Go's `pollDesc.rg` / `pollDesc.wg` protocol.
//!
//! Every poll descriptor has two of these, one for reading and one for writing. A word
//! holds at most one waiter, and moves between five states:
//!
//! ```text
//!            block: CAS NIL->WAIT          block: CAS WAIT->PARKED (commit)
//!    NIL  ─────────────────────────▶ WAIT ─────────────────────────────────▶ PARKED
//!     ▲ ▲                             │  │                                   │  │
//!     │ └── block: CAS READY->NIL     │  │ unblock: CAS WAIT->READY|NIL      │  │ unblock:
//!     │     (consume, no park)        │  ▼ (the commit CAS then fails)       │  │ CAS PARKED->WAKING,
//!     │                             READY/NIL                              │  ▼ take the waiter,
//!     │                                                                    │ WAKING ─▶ READY|NIL
//!     └──── waiter after wake-up: swap NIL ◀───────────────────────────────┘  (then unpark it)
//! ```
//!
//! Not drawn: a waiter whose deadline passed while `PARKED` takes itself back out with
//! `CAS PARKED->WAIT`, then goes back to `NIL` (see "Deadlines" below).
//!
//! - `NIL`: nothing pending, nobody waiting (Go's `pdNil`).
//! - `READY`: an I/O notification arrived and nobody consumed it yet (`pdReady`).
//! - `WAIT`: a waiter has claimed the word and is storing its [`Unparker`] (`pdWait`).
//! - `PARKED`: the waiter's unparker is in the slot and the waiter sleeps, or is about to
//!   (Go stores the `g` pointer itself in the word; an [`Unparker`] is a fat pointer, so we
//!   keep it in a side slot that the state word guards).
//! - `WAKING`: an unblocker has claimed the parked waiter and is taking its unparker out of
//!   the slot; it then stores the final state (`READY` for I/O, `NIL` for a deadline or a
//!   close) and hands the unparker back to be woken.
//!
//! # Invariants
//!
//! 1. The slot is written only by the waiter, in state `WAIT`, which it entered itself.
//! 2. The slot is read (taken) only by whoever moved the word *out of* `PARKED`: an
//!    unblocker (`PARKED -> WAKING`) or the waiter cancelling its own wait on a deadline
//!    (`PARKED -> WAIT`). Exactly one of them can win that CAS.
//! 3. Therefore an unparker is woken at most once per wait, and is never lost: if the
//!    commit CAS `WAIT -> PARKED` fails, an unblocker got there first and the waiter does
//!    not sleep (Go's `netpollblockcommit` returning false).
//! 4. Only one waiter per word: a second `block` while the word is in `WAIT`, `PARKED` or
//!    `WAKING` is a bug of the caller and panics (Go throws "double wait"). The poll
//!    descriptor serializes its waiters before they reach the word.
//!
//! # Errors are not in the word
//!
//! A deadline or a close does not leave a mark here: as in Go, the caller keeps its error
//! conditions elsewhere (a closing flag, the deadlines), and [`WaitWord::unblock`] with
//! `ioready == false` merely wakes the waiter so that it looks. Between claiming the word
//! (`NIL -> WAIT`) and sleeping, the waiter re-checks those conditions (the `abort`
//! closure of [`WaitWord::block`]). That is a store/load pattern on two locations (the
//! closer stores its flag then looks at the word; the waiter stores `WAIT` then looks at
//! the flag), so each side puts a `fence(SeqCst)` between its store and its load: with
//! acquire/release alone the waiter could miss the flag while the closer misses the
//! waiter, and the waiter would sleep forever. (The accesses themselves are `SeqCst` too;
//! the fences make the argument independent of how the caller orders its flag, and are
//! what loom, which models `SeqCst` accesses as acquire/release, can check.)
//!
//! # Deadlines
//!
//! Go arms a timer that calls `netpollunblock`. Here the waiter parks with
//! [`park_deadline`](gmp_core::park::park_deadline) and, when it wakes with the word still
//! `PARKED`, asks `abort` whether its deadline passed; if so it takes itself back out with
//! `PARKED -> WAIT`, racing any unblocker for the same CAS (invariant 2). A waiter that
//! loses that race and still sees `WAKING` parks once more to absorb the unpark in flight;
//! one that sees the final state already cannot tell whether the permit it consumed was
//! that unpark, and returns: at worst one later park returns early, which the park
//! contract allows (every park loop re-checks its condition).
//!
//! The loom models in `tests/loom_poll_desc.rs` check readiness racing the park, a
//! deadline racing readiness, and a close racing both.

use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{fence, AtomicUsize, Ordering::SeqCst};
use gmp_core::sync::UnsafeCell;
use std::fmt;
use std::time::Instant;

const NIL: usize = 0;
const READY: usize = 1;
const WAIT: usize = 2;
const PARKED: usize = 3;
const WAKING: usize = 4;

fn state_name(s: usize) -> &'static str {
    match s {
        NIL => "nil",
        READY => "ready",
        WAIT => "wait",
        PARKED => "parked",
        WAKING => "waking",
        _ => "corrupt",
    }
}

/// One direction's wait word (Go's `pollDesc.rg` or `.wg`): at most one waiter, a
/// pending-readiness bit, and the CAS protocol described in the module docs.
///
/// Exposed so that the protocol can be model-checked alone and reused by other pollers;
/// [`PollDesc`](crate::PollDesc) is built from two of them.
///
/// ```
/// use gmp_core::sync::atomic::AtomicUsize;
/// use gmp_netpoll::WaitWord;
///
/// let word = WaitWord::new();
/// let waiters = AtomicUsize::new(0);
/// // An I/O event with nobody waiting leaves a notification behind...
/// assert!(word.unblock(true, &waiters).is_none());
/// // ...which the next waiter consumes without sleeping.
/// assert!(word.block(None, || false, &waiters));
/// ```
pub struct WaitWord {
    state: AtomicUsize,
    slot: UnsafeCell<Option<Unparker>>,
}

// SAFETY: the slot is only touched by the party that owns it according to the state word
// (module invariants 1 and 2); every hand-over of that ownership is a SeqCst RMW on
// `state`, which orders the slot accesses. `Unparker` itself is Send + Sync.
unsafe impl Sync for WaitWord {}
// SAFETY: as above; the slot holds a `Send` value.
unsafe impl Send for WaitWord {}

impl Default for WaitWord {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WaitWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitWord")
            .field("state", &state_name(self.state.load(SeqCst)))
            .finish()
    }
}

/// Puts the word back into a consistent state if the waiter unwinds out of its park (a
/// runtime unwinding its parked goroutines at shutdown): the waiter leaves, so nobody is
/// left registered and the waiter count stays right.
struct CancelOnUnwind<'a> {
    word: &'a WaitWord,
    waiters: &'a AtomicUsize,
    armed: bool,
}

impl Drop for CancelOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.word.leave(self.waiters);
        }
    }
}

impl WaitWord {
    /// An idle word: nothing pending, nobody waiting.
    pub fn new() -> Self {
        WaitWord {
            state: AtomicUsize::new(NIL),
            slot: UnsafeCell::new(None),
        }
    }

    /// Blocks the caller (goroutine or thread, through [`gmp_core::park`]) until I/O
    /// readiness is signalled, or the wait is cut short. Go: `runtime.netpollblock`.
    ///
    /// Returns `true` if readiness was consumed (the caller retries its syscall), `false`
    /// if the waiter was woken without readiness (a close, a deadline, or `abort`
    /// returning `true`); the caller then inspects its own error conditions and, if there
    /// are none, calls `block` again.
    ///
    /// `abort` is asked after the word is claimed and before sleeping, and again after
    /// each timed wake-up; it must return `true` when the wait must end (closed, deadline
    /// passed). `deadline` bounds each sleep so that the waiter wakes to ask `abort`.
    /// `waiters` is the poller's count of sleeping waiters (Go's `netpollWaiters`).
    ///
    /// # Panics
    ///
    /// If another waiter is already waiting on this word (one waiter per direction).
    pub fn block(
        &self,
        deadline: Option<Instant>,
        mut abort: impl FnMut() -> bool,
        waiters: &AtomicUsize,
    ) -> bool {
        // Claim the word, or consume a pending notification.
        loop {
            match self.state.compare_exchange(READY, NIL, SeqCst, SeqCst) {
                Ok(_) => return true,
                Err(NIL) => {}
                Err(s) => self.double_wait(s),
            }
            if self
                .state
                .compare_exchange(NIL, WAIT, SeqCst, SeqCst)
                .is_ok()
            {
                break;
            }
            // An unblocker set READY between the two CASes: go round and consume it.
        }

        // Re-check the error conditions now that an unblocker can see us (module docs:
        // "Errors are not in the word"). The fence pairs with the one at the top of
        // `unblock(false)`: either we see the caller's flag, or it sees our WAIT.
        fence(SeqCst);
        if abort() {
            return self.state.swap(NIL, SeqCst) == READY;
        }

        let me = park::current();
        // SAFETY: the word is in WAIT, entered by us: we own the slot (invariant 1), and
        // no one else reads it until our commit CAS below publishes it.
        self.slot.with_mut(|p| unsafe { *p = Some(me) });

        // Go: runtime.netpollblockcommit. An unblocker that ran since our WAIT moved the
        // word to READY or NIL and the commit fails: we must not sleep.
        if let Err(s) = self.state.compare_exchange(WAIT, PARKED, SeqCst, SeqCst) {
            debug_assert!(
                s == READY || s == NIL,
                "netpoll: bad state {}",
                state_name(s)
            );
            // SAFETY: the word never reached PARKED, so no unblocker took the slot; it is
            // still ours (invariant 2).
            drop(self.slot.with_mut(|p| unsafe { (*p).take() }));
            return self.state.swap(NIL, SeqCst) == READY;
        }
        // SeqCst: the runtime reads this count (has_waiters) to decide whether to call the
        // poller at all; it must not be reordered with the park that follows.
        waiters.fetch_add(1, SeqCst);

        let mut guard = CancelOnUnwind {
            word: self,
            waiters,
            armed: true,
        };
        let mut claimed = false;
        loop {
            match (claimed, deadline) {
                (false, Some(d)) => park::park_deadline_for(d, WaitReason::IoWait),
                _ => park::park_for(WaitReason::IoWait),
            }
            match self.state.load(SeqCst) {
                PARKED => {
                    // A timed or spurious wake-up: nobody claimed us.
                    if deadline.is_some() && abort() && self.cancel(waiters) {
                        guard.armed = false;
                        return self.state.swap(NIL, SeqCst) == READY;
                    }
                    // Still waiting, or an unblocker claimed us just now (cancel failed):
                    // loop; the next load sees WAKING or the final state.
                }
                WAKING => {
                    // An unblocker is taking our unparker and will unpark us: wait for
                    // that permit rather than leave it to wake a later, unrelated park.
                    claimed = true;
                }
                READY | NIL => {
                    // Claimed and woken. If we had woken on the deadline just as the
                    // claim completed, its unpark may still be on its way; we cannot tell
                    // that from our own permit, so we leave it: it makes one later park
                    // return early, which the park contract allows (callers loop).
                    guard.armed = false;
                    return self.state.swap(NIL, SeqCst) == READY;
                }
                s => panic!("netpoll: corrupted wait word (state {})", state_name(s)),
            }
        }
    }

    /// The waiter takes itself back out of `PARKED` (a deadline passed). Returns `false`
    /// if an unblocker claimed it first.
    fn cancel(&self, waiters: &AtomicUsize) -> bool {
        if self
            .state
            .compare_exchange(PARKED, WAIT, SeqCst, SeqCst)
            .is_err()
        {
            return false;
        }
        // SAFETY: we moved the word out of PARKED ourselves, so we own the slot again
        // (invariant 2); no unblocker touches it in WAIT.
        drop(self.slot.with_mut(|p| unsafe { (*p).take() }));
        waiters.fetch_sub(1, SeqCst);
        // Back from WAIT to NIL (an unblocker may have turned WAIT into READY/NIL since).
        let _ = self.state.compare_exchange(WAIT, NIL, SeqCst, SeqCst);
        true
    }

    /// Leaves the word from any state the waiter can be in after committing, when the
    /// waiter is unwinding. Waits out an unblocker in the middle of a claim.
    fn leave(&self, waiters: &AtomicUsize) {
        loop {
            match self.state.load(SeqCst) {
                PARKED => {
                    if self.cancel(waiters) {
                        self.state.store(NIL, SeqCst);
                        return;
                    }
                }
                WAKING => gmp_core::sync::spin_loop(),
                _ => {
                    self.state.store(NIL, SeqCst);
                    return;
                }
            }
        }
    }

    /// Signals the word: I/O readiness (`ioready == true`), or a deadline change or close
    /// (`false`), which only wakes a waiter so that it re-checks its error conditions.
    /// Returns the waiter that must now be unparked, if one was sleeping. Go:
    /// `runtime.netpollunblock`.
    pub fn unblock(&self, ioready: bool, waiters: &AtomicUsize) -> Option<Unparker> {
        let new = if ioready { READY } else { NIL };
        if !ioready {
            // Orders the caller's store of its error condition (closing, a deadline)
            // before our look at the word; pairs with the fence in `block`. (I/O
            // readiness needs none: both sides then only RMW the word itself.)
            fence(SeqCst);
        }
        loop {
            match self.state.load(SeqCst) {
                READY => return None,
                NIL if !ioready => return None,
                s @ (NIL | WAIT) => {
                    if self.state.compare_exchange(s, new, SeqCst, SeqCst).is_ok() {
                        return None;
                    }
                }
                PARKED => {
                    if self
                        .state
                        .compare_exchange(PARKED, WAKING, SeqCst, SeqCst)
                        .is_ok()
                    {
                        // SAFETY: we moved the word out of PARKED, so the slot is ours to
                        // take (invariant 2); the waiter wrote it before its commit CAS,
                        // which our CAS follows in the SeqCst order.
                        let u = self.slot.with_mut(|p| unsafe { (*p).take() });
                        waiters.fetch_sub(1, SeqCst);
                        self.state.store(new, SeqCst);
                        debug_assert!(u.is_some(), "netpoll: parked word without a waiter");
                        return u;
                    }
                }
                // Another unblocker is mid-claim: it stores the final state in a few
                // instructions; then we re-evaluate (so READY is not lost behind a NIL).
                WAKING => gmp_core::sync::spin_loop(),
                s => panic!("netpoll: corrupted wait word (state {s})"),
            }
        }
    }

    /// True if a waiter is registered (`WAIT`, `PARKED` or being woken).
    pub fn has_waiter(&self) -> bool {
        matches!(self.state.load(SeqCst), WAIT | PARKED | WAKING)
    }

    /// True if a readiness notification is pending.
    pub fn is_ready(&self) -> bool {
        self.state.load(SeqCst) == READY
    }

    /// Forgets a pending notification, for a descriptor being recycled.
    ///
    /// # Panics
    ///
    /// If a waiter is still registered.
    pub fn reset(&self) {
        match self.state.swap(NIL, SeqCst) {
            NIL | READY => {}
            s => panic!(
                "netpoll: descriptor recycled with a waiter (state {})",
                state_name(s)
            ),
        }
    }

    #[cold]
    fn double_wait(&self, s: usize) -> ! {
        panic!(
            "netpoll: two waiters on one direction of a poll descriptor (state {})",
            state_name(s)
        )
    }
}
