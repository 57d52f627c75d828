//! M: an OS thread that runs goroutines while it holds a P.
//!
//! Each M thread keeps its scheduler state in an [`MCtx`] on its own stack, reachable
//! through a thread-local pointer. Goroutine code can move to another M at any
//! suspension, and LLVM may cache a thread-local's address for the whole of a function
//! (rust-lang/rust#33368), so the pointer is read only through [`ctx`], which is never
//! inlined, and runtime code never holds an `&MCtx` across a switch.
//!
//! An M with nothing to do sleeps on its own note (Go: `m.park`), a mutex-guarded
//! slot through which a waker hands it a P (`nextp`) and tells it whether to spin.

use crate::g::G;
use crate::sched::Sched;
use gmp_core::sync::{Condvar, Mutex};
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Asks the kernel to wake this thread from its timed waits on time.
///
/// Linux lets a timed wait (a futex or condvar wait with a deadline, `epoll_pwait2`,
/// `nanosleep`) end up to the thread's *timer slack* late, 50 µs by default, so that it
/// can batch wake-ups. The runtime's own threads wait with a deadline only for a timer
/// that is due (an idle M for the next goroutine timer, sysmon for a P that falls
/// due), so the slack is pure lateness: measured here, a 10 ms sleep of a goroutine
/// ended 100 µs late with the default and 50 µs late with a slack of 1 ns. Called by
/// every M thread and by sysmon, never on a caller's thread. Elsewhere (not Linux) a
/// no-op.
pub(crate) fn precise_timer_wakeups() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `PR_SET_TIMERSLACK` takes an integer and changes only the calling
        // thread's slack; it reads and writes no memory of ours. It cannot fail for a
        // positive value, and a failure would leave the default (late, not wrong).
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
    }
}

/// The part of an M other threads may touch.
pub(crate) struct M {
    pub(crate) id: u64,
    /// The id of the goroutine this M runs (0: none), for dumps and `scheddetail`.
    /// Relaxed stores by the M at each switch: informational only.
    pub(crate) curg_id: gmp_core::sync::atomic::AtomicU64,
    /// The P this M holds (`usize::MAX`: none), for `scheddetail`; informational.
    pub(crate) p_id: gmp_core::sync::atomic::AtomicUsize,
    /// Set by the M while it takes its P back from goroutine code (p.rs `enter_from_user`),
    /// read by sysmon before it takes the P: the M's half of the handshake that
    /// replaces a compare-and-swap per switch. Written only by this M.
    pub(crate) entering: gmp_core::sync::atomic::AtomicBool,
    note: Mutex<Note>,
    cvar: Condvar,
}

#[derive(Default)]
struct Note {
    /// A P handed to this M by `startm` (Go: `m.nextp`).
    nextp: Option<usize>,
    spinning: bool,
    woken: bool,
}

/// Why [`M::sleep`] returned.
pub(crate) enum Wake {
    /// Handed a P (and whether to spin).
    P(usize, bool),
    /// Woken without a P: timer deadline, shutdown, or a nudge.
    Nudge,
}

impl M {
    pub(crate) fn new(id: u64) -> Arc<M> {
        Arc::new(M {
            id,
            curg_id: gmp_core::sync::atomic::AtomicU64::new(0),
            p_id: gmp_core::sync::atomic::AtomicUsize::new(usize::MAX),
            entering: gmp_core::sync::atomic::AtomicBool::new(false),
            note: Mutex::new(Note::default()),
            cvar: Condvar::new(),
        })
    }

    /// Go: `notesleep(&m.park)`. Sleeps until handed a P, nudged, or `deadline`.
    pub(crate) fn sleep(&self, deadline: Option<Instant>) -> Wake {
        let mut n = self.note.lock();
        loop {
            if let Some(p) = n.nextp.take() {
                n.woken = false;
                return Wake::P(p, std::mem::take(&mut n.spinning));
            }
            if std::mem::take(&mut n.woken) {
                return Wake::Nudge;
            }
            match deadline {
                None => self.cvar.wait(&mut n),
                Some(d) => {
                    if self.cvar.wait_until(&mut n, d) || Instant::now() >= d {
                        if let Some(p) = n.nextp.take() {
                            return Wake::P(p, std::mem::take(&mut n.spinning));
                        }
                        return Wake::Nudge;
                    }
                }
            }
        }
    }

    /// Go: `notewakeup(&m.park)` with `m.nextp` set.
    pub(crate) fn hand_p(&self, p: usize, spinning: bool) {
        let mut n = self.note.lock();
        debug_assert!(n.nextp.is_none(), "gmp: M {} handed two Ps", self.id);
        n.nextp = Some(p);
        n.spinning = spinning;
        drop(n);
        self.cvar.notify_one();
    }

    /// True if the M has a nudge or a P pending (loom models).
    #[cfg(all(test, loom))]
    pub(crate) fn has_pending_wake(&self) -> bool {
        let n = self.note.lock();
        n.woken || n.nextp.is_some()
    }

    /// Wakes the M without a P (shutdown, timers).
    pub(crate) fn nudge(&self) {
        self.note.lock().woken = true;
        self.cvar.notify_one();
    }
}

impl fmt::Debug for M {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M").field("id", &self.id).finish()
    }
}

/// The M thread's own scheduler state.
pub(crate) struct MCtx {
    pub(crate) m: Arc<M>,
    pub(crate) sched: Arc<Sched>,
    /// The P this M holds (index into `allp`).
    pub(crate) p: Cell<Option<usize>>,
    /// The goroutine running on this M right now (null in scheduler code).
    pub(crate) curg: Cell<*const G>,
    pub(crate) spinning: Cell<bool>,
    /// Set while the M readies the goroutines a network poll returned into its own P
    /// (`schedule::ready_polled`): their `ready`s wake no M, the batch wakes at most one.
    pub(crate) batch_ready: Cell<bool>,
    rng: Cell<u64>,
    /// Free spawn blocks (job.rs), recycled without `malloc`.
    pub(crate) jobs: crate::job::MCache,
    /// What this M has seen of the other Ps' progress (`stall.rs`).
    pub(crate) stalls: crate::stall::StallWatch,
}

impl MCtx {
    pub(crate) fn new(m: Arc<M>, sched: Arc<Sched>) -> MCtx {
        let seed = m.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        MCtx {
            m,
            sched,
            p: Cell::new(None),
            curg: Cell::new(std::ptr::null()),
            spinning: Cell::new(false),
            batch_ready: Cell::new(false),
            rng: Cell::new(seed),
            jobs: crate::job::MCache::default(),
            stalls: crate::stall::StallWatch::default(),
        }
    }

    /// Go: `cheaprand` (xorshift64*).
    pub(crate) fn rand(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The running goroutine, if any.
    pub(crate) fn curg(&self) -> Option<&G> {
        let g = self.curg.get();
        // SAFETY: `curg` is set by the scheduler to a G it holds an `Arc` to for the
        // whole time the G runs on this M, and cleared before that `Arc` is released.
        (!g.is_null()).then(|| unsafe { &*g })
    }
}

std::thread_local! {
    static CTX: Cell<*const MCtx> = const { Cell::new(std::ptr::null()) };
}

/// The current M's context, if this thread is an M.
///
/// Never inlined (module docs). The reference must not be held across anything that
/// can suspend the calling goroutine.
#[inline(never)]
pub(crate) fn ctx() -> Option<&'static MCtx> {
    let p = CTX.with(|c| c.get());
    // SAFETY: `CTX` points at the `MCtx` on the M thread's stack frame of `mstart`,
    // which outlives every goroutine it runs and is cleared before that frame ends.
    // The `'static` is a lie callers must honour by not keeping the reference past a
    // suspension (documented above).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Sets this thread's M context and returns the previous one (never inlined, as
/// [`ctx`]).
#[inline(never)]
pub(crate) fn set_ctx(c: *const MCtx) -> *const MCtx {
    CTX.with(|x| x.replace(c))
}
