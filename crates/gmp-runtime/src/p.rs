//! P: a processor token. An M must hold a P to run goroutines.
//!
//! A P owns a local run queue (with `runnext`), a timer heap, a cache of free stacks
//! and a scheduling tick. Its owner is recorded in one atomic word, `own`:
//!
//! ```text
//!   own = (M id << 8) | state        state: IDLE | RUNTIME | USER | SYSCALL | RETAKE
//! ```
//!
//! - `IDLE` (M id 0): on the idle list, or being handed from one M to another.
//! - `RUNTIME`: its M is running scheduler code and may touch the P's internals.
//! - `USER`: its M is running goroutine code. sysmon may *retake* the P (to `IDLE`,
//!   through `RETAKE`) if the same goroutine has run for more than 10 ms: our answer to
//!   the lack of preemption points in Rust (ARCHITECTURE.md, hard part 4).
//! - `SYSCALL`: its M is inside `blocking(f)`; sysmon retakes it after 20 µs.
//! - `RETAKE`: sysmon is deciding whether to take a `USER` P (below).
//!
//! An M that wants to touch its P again (to ready a goroutine, to spawn, after a
//! switch) moves it `(me, USER)` → `(me, RUNTIME)`; if the P was taken meanwhile the M
//! carries on without one (Go: `exitsyscall`'s slow path). Putting the M id in the
//! word makes every check immune to ABA: a P retaken and handed to another M never
//! matches the old owner's expected value.
//!
//! # Taking a P from goroutine code, without a CAS per switch
//!
//! The M and sysmon race for a `USER` P. A compare-and-swap by the M on every switch
//! would settle it, at ~5 ns (a fifth of a `yield_now`) for a race that sysmon starts
//! at most once per 10 ms. Instead the two run a handshake whose expensive half is
//! sysmon's ([`enter_from_user`], [`take_from_user`]; barrier.rs):
//!
//! ```text
//!   M (enter_from_user)                     sysmon (take_from_user)
//!   m.entering = true                       CAS own (m, USER) -> (m, RETAKE)
//!   light barrier (compiler fence)          heavy barrier (membarrier)
//!   own == (me, USER)?                      m.entering?
//!     yes: own = (me, RUNTIME)                yes: CAS (m, RETAKE) -> (m, USER), give up
//!     (me, RETAKE): wait for sysmon           no:  CAS (m, RETAKE) -> IDLE, hand it on
//!     else: the P is gone
//!   m.entering = false
//! ```
//!
//! The barriers make it Dekker's: either the M's load sees `RETAKE` (it then waits for
//! sysmon's verdict) or sysmon sees `entering` (it then gives the P back). So sysmon
//! never hands on a P whose M has gone on into the runtime, and the M's plain store of
//! `RUNTIME` never overwrites a decision: it only ever replaces `USER` or a `RETAKE`
//! that sysmon is bound to revert. The flag is the M's, not the P's, so an M that has
//! lost its P and looks again cannot disturb the P's next owner. Only goroutine
//! code's side is cheap; a P in `SYSCALL` is still taken and left by CAS (a blocking
//! call costs more than the CAS), and `RUNTIME` is never taken.
//!
//! Every legal change of state is a row of [`TRANSITIONS`]; debug builds check each
//! write of `own` against it ([`Own`]), and the guide's P state diagram
//! (`src/guide/p-status.svg`) is generated from it.
//!
//! The local queue is `Local<GRef>`, which is `!Sync`: only the owner touches it. The
//! ownership transfer (idle list under the sched lock, or the `own` CAS) is a
//! release/acquire edge, so each owner sees the previous one's writes.

use crate::g::{GRef, Status};
use crate::m::MCtx;
use crate::timers::Timers;
use gmp_core::stack::Stack;
use gmp_core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use gmp_queue::{Local, Stealer};
use std::cell::UnsafeCell;
use std::fmt;

pub(crate) const OWN_IDLE: u64 = 0;
pub(crate) const OWN_RUNTIME: u64 = 1;
pub(crate) const OWN_USER: u64 = 2;
pub(crate) const OWN_SYSCALL: u64 = 3;
pub(crate) const OWN_RETAKE: u64 = 4;

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
    (OWN_RUNTIME, OWN_USER, "execute / back to user"),
    (OWN_USER, OWN_RUNTIME, "enter"),
    (OWN_RUNTIME, OWN_SYSCALL, "entersyscall"),
    (OWN_SYSCALL, OWN_RUNTIME, "enter"),
    (OWN_SYSCALL, OWN_USER, "exitsyscall"),
    (OWN_USER, OWN_RETAKE, "retake: ran 10 ms?"),
    (OWN_RETAKE, OWN_RUNTIME, "enter (sysmon gives up)"),
    (OWN_RETAKE, OWN_USER, "retake: M entering"),
    (OWN_RETAKE, OWN_IDLE, "retake: ran 10 ms"),
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
         0 IDLE, 1 RUNTIME, 2 USER, 3 SYSCALL, 4 RETAKE)"
    );
}

/// Stacks a P keeps for its next spawns before spilling to the shared pool
/// (Go keeps 64 free Gs with stacks per P, spilling half to the global list).
pub(crate) const STACK_CACHE: usize = 64;

/// Dead Gs a P keeps for reuse (Go: 64 per P).
pub(crate) const G_CACHE: usize = 64;

/// Dead Gs the runtime keeps beyond the Ps' caches. Go never frees a G; we keep
/// enough for the spawn/exit churn of a busy runtime and free the rest, so a burst of
/// a million goroutines does not pin a million Gs' memory afterwards.
pub(crate) const G_GLOBAL_MAX: usize = 8192;

/// Not padded or aligned on purpose, though neighbours in `allp` share a cache line:
/// measured (interleaved direct runs, 2026-12-04), aligning `P` to 64 or 128 bytes made
/// mpmc 75% slower (20 -> 35 ns a message) and moving the switch counter out to padded
/// lines of its own did the same, while the 8 bytes `switchtick` and `preempt` added
/// here cost skynet 0-5% in interleaved runs (0.80x Go's time in the suite run after).
/// The layout of these hot structures matters
/// more than it should: profile before changing it.
pub(crate) struct P {
    pub(crate) id: usize,
    /// Owner-only (module docs).
    local: UnsafeCell<Local<GRef>>,
    pub(crate) stealer: Stealer<GRef>,
    pub(crate) own: Own,
    /// Go: `schedtick`, incremented when a G starts a fresh time slice. Written by
    /// the owner, read by sysmon: Relaxed, it is a progress counter, not a guard.
    pub(crate) schedtick: AtomicU32,
    /// Incremented at every goroutine switch, a fresh time slice or not (`runnext`
    /// inherits the slice: Go's `inheritTime`). Written by the owner, read by sysmon:
    /// a P whose `switchtick` moves reaches scheduling points, so it is no hog even
    /// while one time slice lasts (a pair handing `runnext` back and forth). Relaxed,
    /// as `schedtick`.
    pub(crate) switchtick: AtomicU32,
    /// Set by sysmon when one time slice has lasted 10 ms through scheduling points
    /// (Go: `preemptone` of the running goroutine): the owner's next `runnext` pick goes
    /// to the back of the local queue instead, and the slice ends. Relaxed: a hint,
    /// read at the owner's next switch.
    pub(crate) preempt: AtomicBool,
    /// Go: `syscalltick`, incremented at every `blocking` entry.
    pub(crate) syscalltick: AtomicU32,
    pub(crate) timers: Timers,
    /// Counters for `Runtime::metrics`, written by the owner only.
    pub(crate) stats: crate::metrics::PStats,
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
            switchtick: AtomicU32::new(0),
            preempt: AtomicBool::new(false),
            syscalltick: AtomicU32::new(0),
            timers: Timers::new(),
            stats: crate::metrics::PStats::default(),
            stacks: UnsafeCell::new(Vec::new()),
            gfree: UnsafeCell::new(Vec::new()),
        }
    }

    /// Shutdown, after every M has exited: empties the P's local queue (returned) and
    /// its caches (the cached Gs hold `Arc<Sched>`: a cycle otherwise).
    ///
    /// # Safety
    /// No M runs any more and none will (the caller holds the runtime's last user
    /// reference and checked `mcount == 0`): nobody else can own this P.
    pub(crate) unsafe fn drain_for_shutdown(&self) -> Vec<GRef> {
        // SAFETY: the caller's contract makes us the P's only user.
        unsafe {
            (*self.gfree.get()).clear();
            (*self.stacks.get()).clear();
            (*self.local.get()).drain().collect()
        }
    }

    pub(crate) fn state(&self) -> u64 {
        self.own.load(Ordering::Acquire) & 0xff
    }

    /// The local run queue, for a loom model whose thread stands in for the P's owner.
    ///
    /// # Safety
    ///
    /// The caller must act as the P's only owner while it uses the queue: no other
    /// thread may use it but through `stealer`.
    #[cfg(all(loom, test))]
    pub(crate) unsafe fn local_as_owner(&self) -> &Local<GRef> {
        // SAFETY: the caller is the P's only owner (# Safety), as `OwnedP::local`.
        unsafe { &*self.local.get() }
    }

    /// Starts a fresh time slice (`schedtick`).
    pub(crate) fn tick(&self) {
        owner_increment(&self.schedtick);
    }

    /// Counts a goroutine switch (`switchtick`).
    pub(crate) fn count_switch(&self) {
        owner_increment(&self.switchtick);
    }
}

/// Adds one to a counter only the P's owner writes: a load and a store, no locked RMW
/// on the switch path. Relaxed: the counters are progress hints for sysmon, not guards.
fn owner_increment(c: &AtomicU32) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
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

/// An M's ownership of its P for runtime work (Go: `m.p` while in the runtime; tokio's
/// `Box<Core>`): the only way to reach the P's owner-only parts — the local run queue,
/// the stack cache, the G cache. Made by [`enter`]; dropping it hands the P back to the
/// running goroutine (`RUNTIME` → `USER`/`SYSCALL`), a no-op in scheduler code.
///
/// It borrows the M context: it cannot be held across a goroutine switch.
pub(crate) struct OwnedP<'a> {
    c: &'a MCtx,
    id: usize,
    p: &'a P,
}

impl<'a> OwnedP<'a> {
    /// The P's index in `allp`.
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// The P itself (its shared, atomic parts).
    pub(crate) fn p(&self) -> &'a P {
        self.p
    }

    /// The local run queue.
    pub(crate) fn local(&self) -> &Local<GRef> {
        // SAFETY: we own the P in state RUNTIME (`enter`), so no other M touches its
        // owner-only cells; `Local` is only used through `&`.
        unsafe { &*self.p.local.get() }
    }

    /// A stack from the P's cache. (The caches are reached only through such short
    /// calls, which run no other code while they touch the cell: so a nested `enter`
    /// of the same P — a goroutine readied while the scheduler polls — never aliases.)
    pub(crate) fn take_stack(&self) -> Option<Stack> {
        // SAFETY: we own the P (`enter`); the borrow ends within this call.
        unsafe { (*self.p.stacks.get()).pop() }
    }

    /// Keeps a free stack for the next spawn; gives it back if the cache is full.
    pub(crate) fn cache_stack(&self, stack: Stack) -> Result<(), Stack> {
        // SAFETY: as in `take_stack`.
        let cache = unsafe { &mut *self.p.stacks.get() };
        if cache.len() < STACK_CACHE {
            cache.push(stack);
            Ok(())
        } else {
            Err(stack)
        }
    }

    /// A dead G to reuse (Go: `gfget`): from the P's cache, refilled with up to half
    /// a cache from the runtime's list when empty.
    pub(crate) fn take_g(&self) -> Option<GRef> {
        {
            // SAFETY: as in `take_stack`.
            let cache = unsafe { &mut *self.p.gfree.get() };
            if let Some(g) = cache.pop() {
                // The next spawn's G was most likely freed by the other P's M (a stolen
                // goroutine ends there), and its lines sit in that core's cache: ask for
                // them now, a spawn ahead, so that `Arc::get_mut` and `reinit` don't
                // stall on the transfer (spawn profile: 68% of `Sched::spawn_g` before, 24% after).
                if let Some(next) = cache.last() {
                    crate::prefetch::arc(next);
                }
                return Some(g);
            }
        }
        let mut global = self.c.sched.gfree.lock();
        if global.is_empty() {
            return None;
        }
        let keep = global.len().saturating_sub(G_CACHE / 2);
        // SAFETY: as in `take_stack` (no other code runs while the cell is borrowed:
        // moving `GRef`s runs none, and the lock runs none of ours).
        let cache = unsafe { &mut *self.p.gfree.get() };
        // Moved straight from list to list: `split_off` would allocate a Vec per batch
        // (a 256-byte malloc every 16 spawns in the spawn bench's profile).
        cache.extend(global.drain(keep..));
        drop(global);
        cache.pop()
    }

    /// Keeps a dead G for reuse (Go: `gfput`): in the P's cache, and when that is full,
    /// half of it moves to the runtime's list (where a spawning P finds it).
    pub(crate) fn cache_g(&self, g: GRef) {
        // SAFETY: as in `take_stack`.
        let cache = unsafe { &mut *self.p.gfree.get() };
        cache.push(g);
        if cache.len() >= G_CACHE {
            // Locks the runtime's list with the cell borrowed: the lock runs no code
            // of ours, so nothing can reach the cell meanwhile.
            let mut global = self.c.sched.gfree.lock();
            if global.len() < G_GLOBAL_MAX {
                // Moved without an intermediate Vec (see `take_g`).
                global.extend(cache.drain(G_CACHE / 2..));
            } else {
                // Rare (the runtime already keeps `G_GLOBAL_MAX`): the excess is freed
                // outside the lock and outside this borrow of the cell (a dead G's
                // fields are empty, so no user code runs, but nothing need rely on it).
                let excess = cache.split_off(G_CACHE / 2);
                drop(global);
                drop(excess);
            }
        }
    }
}

impl Drop for OwnedP<'_> {
    /// Go: the return to user code. Release: publishes our queue writes to sysmon's
    /// retake CAS and to the P's next owner.
    fn drop(&mut self) {
        if let Some(g) = self.c.curg() {
            let st = if g.status() == Status::Syscall {
                OWN_SYSCALL
            } else {
                OWN_USER
            };
            self.p
                .own
                .store(own_word(self.c.m.id, st), Ordering::Release);
        }
    }
}

impl fmt::Debug for OwnedP<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedP").field("p", &self.id).finish()
    }
}

/// Takes this M's P for runtime work: from goroutine code, `(me, USER)` →
/// `(me, RUNTIME)` by [`enter_from_user`]'s handshake, or by CAS from `(me, SYSCALL)`;
/// in scheduler code the P is already ours. `None` (and the M forgets its P) if sysmon
/// took it.
#[inline]
pub(crate) fn enter(c: &MCtx) -> Option<OwnedP<'_>> {
    let id = c.p.get()?;
    let p = &c.sched.allp[id];
    let me = c.m.id;
    let cur = p.own.load(Ordering::Relaxed);
    let owned = if cur == own_word(me, OWN_RUNTIME) {
        true
    } else if cur == own_word(me, OWN_SYSCALL) {
        // Acquire on success: we own the P again and must see what its previous
        // owner wrote; on failure the P was handed on and we must not touch it.
        p.own
            .compare_exchange(
                cur,
                own_word(me, OWN_RUNTIME),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    } else if cur == own_word(me, OWN_USER) || cur == own_word(me, OWN_RETAKE) {
        enter_from_user(p, &c.m)
    } else {
        false
    };
    if !owned {
        c.p.set(None);
        return None;
    }
    Some(OwnedP { c, id, p })
}

/// The M's half of the handshake that takes its `USER` P back without a locked
/// instruction (module docs, "Taking a P from goroutine code"). True if `m` now holds
/// `p` in state `RUNTIME`; false if sysmon took it.
#[inline]
pub(crate) fn enter_from_user(p: &P, m: &crate::m::M) -> bool {
    // Relaxed: ordered before the load below by the barrier, which is what sysmon's
    // heavy barrier pairs with.
    m.entering.store(true, Ordering::Relaxed);
    crate::barrier::light();
    // Acquire: a P that sysmon gave back (RETAKE -> USER) is ours with our own writes;
    // nothing else reaches us through this load, but it costs nothing on x86.
    let cur = p.own.load(Ordering::Acquire);
    if cur == own_word(m.id, OWN_USER) {
        entered(p, m);
        true
    } else {
        enter_contended(p, m, cur)
    }
}

/// `enter_from_user` saw `(me, USER)`: the P is ours again.
#[inline]
fn entered(p: &P, m: &crate::m::M) {
    // A plain store: sysmon may have moved USER to RETAKE since our load, but then it
    // sees `entering` and gives up (its CAS back to USER fails on our RUNTIME, or lands
    // first and we overwrite it): never a P it handed on.
    #[cfg(not(loom))]
    p.own.store(own_word(m.id, OWN_RUNTIME), Ordering::Relaxed);
    // loom keeps modification order as a partial order, which leaves this store
    // unordered against a RETAKE that our thread never saw. C++ orders them (the RMW
    // read the USER our load read, so it comes right after it; our store, after our
    // load, comes after both), and so does the hardware; loom would let sysmon's CAS
    // read RETAKE after our store and report two owners. A swap gives loom the edge:
    // it reads the newest value.
    #[cfg(loom)]
    p.own.swap(own_word(m.id, OWN_RUNTIME), Ordering::Relaxed);
    // Release: a sysmon that sees `false` here must also see RUNTIME above, so that
    // its CAS from RETAKE fails.
    m.entering.store(false, Ordering::Release);
}

/// `enter_from_user` did not find `(me, USER)`: sysmon is deciding (`RETAKE`), or has
/// taken the P.
#[cold]
#[inline(never)]
fn enter_contended(p: &P, m: &crate::m::M, mut cur: u64) -> bool {
    let mut spins = 0u32;
    while cur == own_word(m.id, OWN_RETAKE) {
        // sysmon gives the P back if it saw `entering`, else takes it, within a system
        // call; wait, yielding the CPU to it (on a VM that packs threads onto one vCPU,
        // sysmon may be queued behind us).
        spins += 1;
        if spins < 64 {
            gmp_core::sync::spin_loop();
        } else {
            gmp_core::sync::thread::yield_now();
        }
        // Acquire: as in `enter_from_user`.
        cur = p.own.load(Ordering::Acquire);
    }
    if cur == own_word(m.id, OWN_USER) {
        entered(p, m);
        return true;
    }
    // Taken (IDLE, or already another M's): we never touched it.
    m.entering.store(false, Ordering::Relaxed);
    false
}

/// What [`take_from_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// The P is `IDLE`: the caller must hand it on.
    Taken,
    /// Its M was taking it back (it is at a scheduling point, no hog): the M keeps it.
    Kept,
    /// It was no longer in the state the caller saw.
    Changed,
}

/// sysmon's half of the handshake: takes P `i`, seen in state `own` = `(m, USER)`, from
/// its M unless that M is taking it back right now (module docs).
pub(crate) fn take_from_user(sched: &crate::sched::Sched, i: usize, own: u64) -> Take {
    debug_assert_eq!(own & 0xff, OWN_USER);
    let pp = &sched.allp[i];
    let deciding = (own & !0xff) | OWN_RETAKE;
    // AcqRel: acquire the M's writes to the P (its Release store of USER); release is
    // for the M's Acquire load that may see RETAKE.
    if pp
        .own
        .compare_exchange(own, deciding, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return Take::Changed;
    }
    // A failed membarrier guarantees nothing about the M's side: act as if it were
    // entering (the P stays its M's; sysmon looks again at its next round).
    let entering = !crate::barrier::heavy() || sched.m_entering(own >> 8);
    let verdict = if entering { own } else { OWN_IDLE };
    // AcqRel: on IDLE, the P's next owner acquires through the hand-off; on USER, the
    // waiting M's Acquire load sees the P as it left it. Fails only if the M, which
    // was entering, already stored RUNTIME over our RETAKE: then it is the M's.
    let decided = pp
        .own
        .compare_exchange(deciding, verdict, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    if decided && !entering {
        Take::Taken
    } else {
        Take::Kept
    }
}

/// Go: `acquirep`. This M becomes the owner of P `id` (which must be idle).
pub(crate) fn acquirep(c: &MCtx, id: usize) {
    let p = &c.sched.allp[id];
    // AcqRel: acquire the previous owner's writes to the P; the release is for
    // sysmon, which reads `own` to decide whether to retake.
    let prev = p.own.swap(own_word(c.m.id, OWN_RUNTIME), Ordering::AcqRel);
    debug_assert_eq!(
        prev & 0xff,
        OWN_IDLE,
        "gmp: acquirep of a P that is not idle (P {id})"
    );
    c.p.set(Some(id));
    c.m.p_id.store(id, Ordering::Relaxed);
    // A P starts running: sysmon must watch it (it may sleep while all Ps are idle).
    c.sched.wake_sysmon();
}

/// Go: `releasep`. The M gives up its P; the caller puts it on the idle list.
pub(crate) fn releasep(c: &MCtx) -> usize {
    let id = c.p.take().expect("gmp: releasep without a P");
    c.m.p_id.store(usize::MAX, Ordering::Relaxed);
    // Release: the next owner acquires our writes to the P.
    c.sched.allp[id].own.store(OWN_IDLE, Ordering::Release);
    id
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

    /// A P in goroutine code (`(1, USER)`) of M 1, which the runtime knows (`allm`).
    fn user_p() -> (
        std::sync::Arc<crate::sched::Sched>,
        std::sync::Arc<crate::m::M>,
    ) {
        let s = crate::timers::tests::sched(1);
        let m = crate::m::M::new(1);
        s.allm.lock().push(std::sync::Arc::downgrade(&m));
        s.allp[0]
            .own
            .swap(own_word(1, OWN_RUNTIME), Ordering::AcqRel);
        s.allp[0]
            .own
            .store(own_word(1, OWN_USER), Ordering::Release);
        (s, m)
    }

    #[test]
    fn sysmon_takes_a_p_whose_m_is_not_entering() {
        let (s, m) = user_p();
        assert_eq!(take_from_user(&s, 0, own_word(1, OWN_USER)), Take::Taken);
        assert_eq!(s.allp[0].own.load(Ordering::Acquire), OWN_IDLE);
        // The M finds it gone, and leaves its flag clear.
        assert!(!enter_from_user(&s.allp[0], &m));
        assert!(!m.entering.load(Ordering::Relaxed));
    }

    #[test]
    fn sysmon_leaves_a_p_whose_m_is_entering() {
        let (s, m) = user_p();
        m.entering.store(true, Ordering::Relaxed);
        assert_eq!(take_from_user(&s, 0, own_word(1, OWN_USER)), Take::Kept);
        assert_eq!(s.allp[0].own.load(Ordering::Acquire), own_word(1, OWN_USER));
    }

    #[test]
    fn sysmon_leaves_a_p_that_changed_state() {
        let (s, m) = user_p();
        assert!(enter_from_user(&s.allp[0], &m));
        assert_eq!(
            s.allp[0].own.load(Ordering::Acquire),
            own_word(1, OWN_RUNTIME)
        );
        assert_eq!(take_from_user(&s, 0, own_word(1, OWN_USER)), Take::Changed);
        assert_eq!(
            s.allp[0].own.load(Ordering::Acquire),
            own_word(1, OWN_RUNTIME)
        );
    }

    /// An M that finds sysmon deciding (`RETAKE`) waits for the verdict: the P back
    /// (it goes on to RUNTIME) or taken (it goes on without one).
    #[test]
    fn an_entering_m_waits_for_sysmons_verdict() {
        for give_back in [true, false] {
            let (s, m) = user_p();
            s.allp[0]
                .own
                .swap(own_word(1, OWN_RETAKE), Ordering::AcqRel);
            let s2 = s.clone();
            let sysmon = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let verdict = if give_back {
                    own_word(1, OWN_USER)
                } else {
                    OWN_IDLE
                };
                s2.allp[0].own.swap(verdict, Ordering::AcqRel);
            });
            let entered = enter_from_user(&s.allp[0], &m);
            sysmon.join().unwrap();
            assert_eq!(entered, give_back);
            let own = s.allp[0].own.load(Ordering::Acquire);
            assert_eq!(
                own,
                if give_back {
                    own_word(1, OWN_RUNTIME)
                } else {
                    OWN_IDLE
                }
            );
            assert!(
                !m.entering.load(Ordering::Relaxed),
                "the M's flag was left set"
            );
        }
    }
}
