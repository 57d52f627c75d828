//! `sched`: the state shared by every M and P of one runtime, and the protocols that
//! move Ps between Ms — Go's `wakep`, `startm`, `stopm`, `handoffp`, `ready`.
//!
//! # Waking Ms without losing work (go-runtime.md §5)
//!
//! New work wakes a thread only if a P is idle and no M is spinning; a spinning M that
//! finds work wakes a successor. Two StoreLoad points make this safe, and both are
//! `SeqCst` here (Go's atomics are all sequentially consistent; Acquire/Release would
//! admit the lost wake-up):
//!
//! - a submitter publishes work, then (`SeqCst` fence) reads `nmspinning`/`npidle`
//!   (`wakep`); where the publication is itself a `SeqCst` read-modify-write (the
//!   `runnext` swap of `push_next`), that RMW is the StoreLoad point and the fence is
//!   left out (`wakep_after_push_next`; Go's `runqput` CAS plays the same part);
//! - a spinner that gives up decrements `nmspinning` (`SeqCst` RMW), then re-scans every
//!   run queue before sleeping.
//!
//! Either the submitter sees the spinner, or the spinner's re-scan sees the work.
//!
//! # Locks
//!
//! `idle` (Go: `sched.lock`) guards the idle P and idle M lists. It is never held while
//! running goroutine code or while taking a timer lock.

use crate::g::{GRef, Status};
use crate::m::{self, Wake, M};
use crate::p::{enter, OWN_IDLE, P};
use crate::registry::Registry;
use gmp_core::stack::StackPool;
use gmp_core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use gmp_core::sync::{Condvar, Mutex};
use gmp_queue::Global;
use std::fmt;
use std::io;
use std::sync::atomic::Ordering as StdOrdering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Ms of every runtime in the process, and how many of them sleep in `stopm`: the
/// deadlock detector stays quiet while any M anywhere runs (a goroutine of another
/// runtime may be about to send on our channel). Plain std: process-wide statistics.
pub(crate) static ALL_M: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// See [`ALL_M`].
pub(crate) static ALL_IDLE_M: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Fault injection for tests: the next `n` scheduler-thread creations fail.
pub(crate) static THREAD_SPAWN_FAILURES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Stacks the runtime's pool keeps (see `Sched::new`).
const STACK_POOL_MAX: usize = 1 << 20;
/// Cached stacks that keep their committed pages.
const STACK_POOL_HOT: usize = 8192;

/// Go: `sched.maxmcount`.
pub(crate) const MAX_M: usize = 10_000;

/// What a runtime was built with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) procs: usize,
    pub(crate) stack_size: usize,
    pub(crate) schedtrace_ms: Option<u64>,
    /// `GMP_SCHEDTRACE=ms,detail`: Go's `scheddetail` lines too.
    pub(crate) scheddetail: bool,
    pub(crate) name: String,
}

pub(crate) struct Idle {
    pub(crate) pidle: Vec<usize>,
    pub(crate) midle: Vec<Arc<M>>,
}

pub(crate) struct Sched {
    pub(crate) id: u64,
    pub(crate) config: Config,
    pub(crate) allp: Box<[P]>,
    pub(crate) global: Global<GRef>,
    pub(crate) idle: Mutex<Idle>,
    /// Go: `sched.npidle`, mirrored outside the lock for `wakep`.
    pub(crate) npidle: AtomicUsize,
    /// Go: `sched.nmspinning`.
    pub(crate) nmspinning: AtomicUsize,
    /// Go: `sched.needspinning` (golang/go#43997).
    pub(crate) needspinning: AtomicBool,
    /// Ms created and not yet exited (sysmon excluded).
    pub(crate) mcount: AtomicUsize,
    /// Ms sleeping in `stopm`.
    pub(crate) nmidle: AtomicUsize,
    /// Goroutines in `blocking` calls.
    pub(crate) nsyscall: AtomicUsize,
    next_m_id: AtomicU64,
    /// Goroutines started minus goroutines exited (`num_goroutine`): one shard per P,
    /// written only by the P's owner, and a last one shared by threads without a P.
    /// Signed: a goroutine may exit on a different shard than it started on.
    ngoroutine: Box<[crossbeam_utils::CachePadded<gmp_core::sync::atomic::AtomicI64>]>,
    pub(crate) stack_pool: StackPool,
    /// Dead Gs beyond the Ps' own caches (Go: `sched.gFree`): a P whose cache is full
    /// moves half of it here, a P whose cache is empty takes a batch, so that Gs freed
    /// on the M that runs goroutines are reused by the M that spawns them instead of
    /// going back to the allocator (a cross-thread free: glibc's arena lock showed in
    /// the spawn profile at 19% of samples, `futex_wait` under `free` in `gdestroy`).
    pub(crate) gfree: Mutex<Vec<GRef>>,
    /// Free spawn blocks the Ms trade in halves of their caches (job.rs).
    pub(crate) job_pool: crate::job::Pool,
    pub(crate) shutdown: AtomicBool,
    /// Earliest deadline an M sleeping with a timeout will wake at (nanos; MAX: none).
    pub(crate) sleep_until: AtomicU64,
    /// Every goroutine alive, for shutdown and deadlock reports (Go: `allgs`).
    pub(crate) registry: Registry,
    /// sysmon's sleep (Go: `sched.sysmonwait`, `sysmonnote`).
    pub(crate) sysmon_lock: Mutex<bool>,
    pub(crate) sysmon_cvar: Condvar,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    /// Incremented whenever a goroutine is readied or created: the deadlock detector's
    /// evidence of progress.
    pub(crate) progress: AtomicU64,
    /// True while sysmon sleeps deeply (checked before taking `sysmon_lock`).
    pub(crate) sysmon_sleeping: AtomicBool,
    /// The coarse clock as sysmon last read it, for the park's timestamp; 0 while sysmon
    /// is not keeping it fresh. See `timers::park_stamp`.
    pub(crate) park_clock: AtomicU64,
    /// When an M last polled the network (nanos).
    pub(crate) last_poll: AtomicU64,
    /// True while an M of this runtime is blocked in the poller.
    pub(crate) last_poll_blocked: AtomicBool,
    /// Set by sysmon when it finds the runtime deadlocked (see `sysmon::check_dead`).
    pub(crate) deadlocked: AtomicBool,
    /// The callers blocked in `block_on`, to wake on deadlock.
    pub(crate) main_waiters: Mutex<Vec<gmp_core::park::Unparker>>,
    /// After a deadlock the main goroutine may borrow from a `block_on` frame that is
    /// gone: its stack must never be unwound, so shutdown leaks instead.
    pub(crate) leak_on_drop: AtomicBool,
    /// Every M ever started (Go: `allm`), for dumps and `scheddetail`; pruned of the
    /// exited ones as it is read.
    pub(crate) allm: Mutex<Vec<std::sync::Weak<M>>>,
    /// Counters only sysmon or rare paths write (metrics.rs).
    pub(crate) stats: crate::metrics::SchedStats,
}

impl fmt::Debug for Sched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sched")
            .field("id", &self.id)
            .field("procs", &self.allp.len())
            .finish()
    }
}

impl Sched {
    /// Go: `schedinit` + `procresize`: `allp` of `procs` Ps, all idle (the first M to
    /// start takes one).
    pub(crate) fn new(config: Config) -> Sched {
        // Plain std: a process-wide id counter (see goroutine.rs `next_goid`).
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let procs = config.procs;
        let allp: Box<[P]> = (0..procs).map(P::new).collect();
        crate::trace::start_from_env();
        crate::barrier::init();
        Sched {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            // Go keeps freed stacks for reuse rather than returning them to the OS at
            // once; so do we: up to a million cached (address space only), 8,192 with
            // their pages. The memory of the others goes back in the background
            // (sysmon's `scavenge_stacks`), never on the M that ended the goroutine:
            // each `madvise` flushes every CPU's TLB, and done inline they were 17% of
            // the timers workload's samples (`smp_call_function_many_cond`,
            // `native_write_msr` under `StackPool::put` in `gdestroy`).
            stack_pool: StackPool::deferred(config.stack_size, STACK_POOL_MAX, STACK_POOL_HOT),
            gfree: Mutex::new(Vec::new()),
            job_pool: crate::job::Pool::default(),
            config,
            allp,
            global: Global::new(),
            // Popped from the end: P 0 goes first, as Go binds m0 to allp[0].
            idle: Mutex::new(Idle {
                pidle: (0..procs).rev().collect(),
                midle: Vec::new(),
            }),
            npidle: AtomicUsize::new(procs),
            nmspinning: AtomicUsize::new(0),
            needspinning: AtomicBool::new(false),
            mcount: AtomicUsize::new(0),
            nmidle: AtomicUsize::new(0),
            nsyscall: AtomicUsize::new(0),
            next_m_id: AtomicU64::new(1),
            ngoroutine: (0..procs + 1)
                .map(|_| {
                    crossbeam_utils::CachePadded::new(gmp_core::sync::atomic::AtomicI64::new(0))
                })
                .collect(),
            shutdown: AtomicBool::new(false),
            sleep_until: AtomicU64::new(u64::MAX),
            registry: Registry::new(procs),
            sysmon_lock: Mutex::new(false),
            sysmon_cvar: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            progress: AtomicU64::new(0),
            sysmon_sleeping: AtomicBool::new(false),
            park_clock: AtomicU64::new(0),
            last_poll: AtomicU64::new(0),
            last_poll_blocked: AtomicBool::new(false),
            deadlocked: AtomicBool::new(false),
            main_waiters: Mutex::new(Vec::new()),
            leak_on_drop: AtomicBool::new(false),
            allm: Mutex::new(Vec::new()),
            stats: crate::metrics::SchedStats::default(),
        }
    }

    pub(crate) fn nprocs(&self) -> usize {
        self.allp.len()
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Go: `ready` / `goready`. `g` becomes runnable: into the current P's `runnext`
    /// when the caller is an M of this runtime holding a P, else onto the global
    /// queue; then `wakep`.
    pub(crate) fn ready(self: &Arc<Self>, g: GRef) {
        crate::trace::go_unpark(self, &g);
        g.set_status(Status::Runnable);
        if self.is_shutdown() {
            // Nobody will run it; shutdown unwinds it through the registry.
            return;
        }
        self.put_runnable(g, true);
    }

    /// Puts a runnable G on this runtime's queues (runnext if `next`), then wakes
    /// an M if one may be needed.
    pub(crate) fn put_runnable(self: &Arc<Self>, g: GRef, next: bool) {
        let ctx = m::ctx().filter(|c| Arc::ptr_eq(&c.sched, self));
        let batch = ctx.is_some_and(|c| c.batch_ready.get());
        let owned = ctx.and_then(enter);
        let alone = self.holds_the_only_p(owned.is_some());
        // (The P is given back at the end of each arm, before any M is woken.)
        let into_runnext = match owned {
            // Alone, nobody is woken after the push: no StoreLoad point needed.
            Some(p) if next && alone => {
                p.local().push_next_unfenced(g, &self.global);
                true
            }
            Some(p) if next => {
                p.local().push_next(g, &self.global);
                true
            }
            Some(p) => {
                p.local().push(g, &self.global);
                false
            }
            None => {
                self.global.push(g);
                false
            }
        };
        match (alone, into_runnext) {
            (true, _) => {}
            // A poll's batch, into our own P: the batch decides whom to wake.
            (false, true) if batch => {}
            (false, true) => self.wakep_after_push_next(),
            (false, false) => self.wakep(),
        }
    }

    /// True when the caller holds this runtime's only P (`owns_p`, from its `enter`):
    /// then no P is idle and no other M may run goroutines, so `wakep` has nobody to
    /// wake, and its SeqCst fence (a full barrier, 3% of channel ping-pong on one P)
    /// can be skipped; the queued goroutine runs when the caller's M next schedules.
    /// (Go's `ready` calls `wakep` even with GOMAXPROCS=1.)
    fn holds_the_only_p(&self, owns_p: bool) -> bool {
        owns_p && self.allp.len() == 1
    }

    /// Go: `newproc`'s tail: makes a new G — reusing a dead one from the current P's
    /// cache when there is one (Go: `gfget`) — and puts it in the P's `runnext`, under
    /// one `enter`; from a plain thread or another runtime, onto the global queue.
    /// Counts the goroutine as live.
    pub(crate) fn spawn_g(self: &Arc<Self>, make: impl FnOnce(Option<GRef>) -> GRef) -> GRef {
        let owned = m::ctx()
            .filter(|c| Arc::ptr_eq(&c.sched, self))
            .and_then(enter);
        let alone = self.holds_the_only_p(owned.is_some());
        let (g, into_runnext) = match owned {
            Some(p) => {
                // The live-goroutine count, on our P's shard.
                self.count_goroutine_owned(p.id(), 1);
                crate::metrics::PStats::bump(&p.p().stats.spawned);
                let g = make(p.take_g());
                crate::trace::go_create(self, Some(p.id()), &g);
                p.local().push_next(g.clone(), &self.global);
                (g, true)
            }
            None => {
                self.goroutine_started();
                self.stats.spawned_outside.fetch_add(1, Ordering::Relaxed);
                let g = make(None);
                crate::trace::go_create(self, None, &g);
                self.global.push(g.clone());
                (g, false)
            }
        };
        match (alone, into_runnext) {
            (true, _) => {}
            (false, true) => self.wakep_after_push_next(),
            (false, false) => self.wakep(),
        }
        g
    }

    /// Go: `wakep`. Starts a spinning M if a P is idle and nobody spins.
    pub(crate) fn wakep(self: &Arc<Self>) {
        // SeqCst fence: the StoreLoad between publishing work and reading the
        // spinning count (module docs).
        fence(Ordering::SeqCst);
        self.wakep_after_push_next();
    }

    /// [`wakep`](Self::wakep) for a caller whose work was published by `push_next`,
    /// whose swap of `runnext` is `SeqCst`: that swap, sequenced before the `SeqCst`
    /// loads below, orders them as the fence would, so a spinner that gives up
    /// (`release_p`: `SeqCst` decrement, fence, re-scan) either is seen here or sees
    /// the G in `runnext` (or a later value: the owner already took it). Why, in C++20's
    /// single total order S of SeqCst operations and fences: were the spinner to miss
    /// the G and this call to see it spinning, S would hold the swap < our load of
    /// `nmspinning` (sequenced after it) < the spinner's decrement (our load read the
    /// value before it) < its fence (sequenced after it) < the swap (its re-scan, after
    /// the fence, read the `runnext` before it): a cycle. The fence was a locked
    /// instruction that drained the store
    /// buffer at every ready on 2 Ps (17 ns a round trip of channel ping-pong, perf
    /// annotate of `wakep`). A G that `push_next` moved on — to the ring, or from a full
    /// ring to the global queue — is published by a Release store or the global lock
    /// only, and that spinner may miss it; it is not lost: the caller's P runs its ring
    /// and looks at the global queue at least every 61st schedule (Go's `runqput` has
    /// the same shape). Loom model: `runnext_publish_vs_spinner_giving_up`, which fails
    /// with a Release swap.
    pub(crate) fn wakep_after_push_next(self: &Arc<Self>) {
        if self.nmspinning.load(Ordering::SeqCst) != 0 || self.npidle.load(Ordering::SeqCst) == 0 {
            return;
        }
        if !self.claim_first_spinner() {
            return;
        }
        match self.pidleget() {
            Some(p) => self.startm(p, true),
            None => {
                self.spinning_sub();
            }
        }
    }

    /// Go: `pidleget`.
    pub(crate) fn pidleget(&self) -> Option<usize> {
        let mut idle = self.idle.lock();
        let p = idle.pidle.pop()?;
        self.npidle.fetch_sub(1, Ordering::SeqCst);
        Some(p)
    }

    /// True if M `id` is taking its P back from goroutine code right now (p.rs
    /// `take_from_user`). An M that has exited is not.
    pub(crate) fn m_entering(&self, id: u64) -> bool {
        self.allm
            .lock()
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .find(|m| m.id == id)
            // Acquire: pairs with the M's Release store of `false` (p.rs
            // `enter_from_user`): seeing it, we also see the RUNTIME it stored before.
            .is_some_and(|m| m.entering.load(Ordering::Acquire))
    }

    /// Go: `pidleput`. The P must have been released by its M (`own` = IDLE).
    pub(crate) fn pidleput(&self, p: usize) {
        let mut idle = self.idle.lock();
        self.pidleput_locked(&mut idle, p);
    }

    pub(crate) fn pidleput_locked(&self, idle: &mut Idle, p: usize) {
        debug_assert_eq!(self.allp[p].own.load(Ordering::Relaxed) & 0xff, OWN_IDLE);
        idle.pidle.push(p);
        self.npidle.fetch_add(1, Ordering::SeqCst);
    }

    /// Go: `startm`. Runs P `p` on an idle M, or on a new one.
    pub(crate) fn startm(self: &Arc<Self>, p: usize, spinning: bool) {
        let m = self.idle.lock().midle.pop();
        match m {
            Some(m) => {
                self.count_m_busy();
                m.hand_p(p, spinning);
            }
            None => {
                if let Err(e) = self.newm(Some(p), spinning) {
                    // No thread: give the P back; the work stays queued for the Ms we
                    // have. Go dies here ("thread exhaustion"); we degrade instead.
                    eprintln!("gmp: cannot start a scheduler thread: {e}");
                    if spinning {
                        self.spinning_sub();
                    }
                    self.pidleput(p);
                }
            }
        }
        self.wake_sysmon();
    }

    /// Go: `newm`. A new OS thread that will run the scheduler, with P `p`.
    pub(crate) fn newm(self: &Arc<Self>, p: Option<usize>, spinning: bool) -> io::Result<()> {
        let n = self.count_m_started();
        if n >= MAX_M {
            self.count_m_exited();
            return Err(io::Error::other(format!(
                "program exceeds {MAX_M}-thread limit (too many goroutines in blocking calls?)"
            )));
        }
        let id = self.next_m_id.fetch_add(1, Ordering::Relaxed);
        let m = M::new(id);
        let sched = self.clone();
        let injected = THREAD_SPAWN_FAILURES
            .fetch_update(StdOrdering::SeqCst, StdOrdering::SeqCst, |n| {
                n.checked_sub(1)
            })
            .is_ok();
        let spawned = if injected {
            Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "injected failure (__inject_thread_spawn_failures)",
            ))
        } else {
            std::thread::Builder::new()
                .name(format!("{}-m{id}", self.config.name))
                .stack_size(256 * 1024)
                .spawn(move || crate::schedule::mstart(sched, m, p, spinning))
        };
        match spawned {
            Ok(h) => {
                let mut t = self.threads.lock();
                t.retain(|h| !h.is_finished());
                t.push(h);
                Ok(())
            }
            Err(e) => {
                self.count_m_exited();
                Err(e)
            }
        }
    }

    /// Go: `stopm`. Parks the M until it is handed a P; `deadline` bounds the sleep
    /// (the earliest timer) and `None` is returned when it passes or on a nudge.
    pub(crate) fn stopm(&self, m: &Arc<M>, deadline: Option<Instant>) -> Option<(usize, bool)> {
        {
            let mut idle = self.idle.lock();
            idle.midle.push(m.clone());
            self.count_m_idle();
        }
        let w = m.sleep(deadline);
        match w {
            Wake::P(p, spinning) => Some((p, spinning)),
            Wake::Nudge => {
                // Take ourselves off the idle list, unless a waker already did (then a P
                // is on its way: wait for it, it cannot be lost).
                let mut idle = self.idle.lock();
                if let Some(i) = idle.midle.iter().position(|x| Arc::ptr_eq(x, m)) {
                    idle.midle.swap_remove(i);
                    self.count_m_busy();
                    None
                } else {
                    drop(idle);
                    match m.sleep(None) {
                        Wake::P(p, s) => Some((p, s)),
                        Wake::Nudge => m_wait_handoff(m),
                    }
                }
            }
        }
    }

    /// Go: `handoffp`. Called with a P nobody runs (retaken from a blocking or hogging
    /// M): start an M on it if there is work, else make it idle.
    pub(crate) fn handoffp(self: &Arc<Self>, p: usize) {
        let pp = &self.allp[p];
        if !pp.stealer.is_empty() || !self.global.is_empty() || pp.timers.next() != u64::MAX {
            self.startm(p, false);
            return;
        }
        if self.nmspinning.load(Ordering::SeqCst) == 0
            && self.npidle.load(Ordering::SeqCst) == 0
            && self.claim_first_spinner()
        {
            self.startm(p, true);
            return;
        }
        let mut idle = self.idle.lock();
        if !self.global.is_empty() {
            drop(idle);
            self.startm(p, false);
            return;
        }
        self.pidleput_locked(&mut idle, p);
    }

    /// Wakes every sleeping M (shutdown).
    pub(crate) fn wake_all(&self) {
        let idle = self.idle.lock();
        for m in &idle.midle {
            m.nudge();
        }
    }

    /// Go: `wakeNetPoller`. A timer at `when` was added; make sure an M will look at
    /// it in time.
    pub(crate) fn wake_for_timer(self: &Arc<Self>, when: u64) {
        if when < self.sleep_until.load(Ordering::SeqCst) {
            if let Some(poller) = crate::netpoll_poller_if_started() {
                if poller.is_polling() {
                    let _ = poller.wake();
                }
            }
            // A sleeping M (in `stopm` with a timeout) is woken by nudging one.
            let m = self.idle.lock().midle.last().cloned();
            match m {
                Some(m) => m.nudge(),
                None => self.wakep(),
            }
        }
    }

    /// Go: `sysmon` is woken when a P starts running after all were idle.
    pub(crate) fn wake_sysmon(&self) {
        if !self.sysmon_sleeping.load(Ordering::SeqCst) {
            return;
        }
        self.progress.fetch_add(1, Ordering::Relaxed);
        let mut sleeping = self.sysmon_lock.lock();
        if *sleeping {
            *sleeping = false;
            self.sysmon_cvar.notify_one();
        }
    }
}

/// M accounting, in one place: this runtime's `mcount`/`nmidle` and the process-wide
/// [`ALL_M`]/[`ALL_IDLE_M`] the deadlock detector compares, always moved together.
impl Sched {
    /// A new M is counted before its thread exists (so a concurrent check never sees
    /// fewer Ms than run). Returns how many there were before.
    fn count_m_started(&self) -> usize {
        ALL_M.fetch_add(1, StdOrdering::SeqCst);
        self.mcount.fetch_add(1, Ordering::Relaxed)
    }

    /// An M left its loop, or its thread could not be made.
    pub(crate) fn count_m_exited(&self) {
        self.mcount.fetch_sub(1, Ordering::Relaxed);
        ALL_M.fetch_sub(1, StdOrdering::SeqCst);
    }

    /// An M went onto the idle list (under `idle`).
    fn count_m_idle(&self) {
        self.nmidle.fetch_add(1, Ordering::Relaxed);
        ALL_IDLE_M.fetch_add(1, StdOrdering::SeqCst);
    }

    /// An M came off the idle list (under `idle`).
    fn count_m_busy(&self) {
        self.nmidle.fetch_sub(1, Ordering::Relaxed);
        ALL_IDLE_M.fetch_sub(1, StdOrdering::SeqCst);
    }
}

/// The spinning count (Go: `sched.nmspinning`). Every change goes through these; the
/// two transitions of an M are [`Sched::transition_to_spinning`] and
/// [`Sched::transition_from_spinning`] (tokio's `Idle::transition_worker_{to,from}_searching`).
impl Sched {
    /// Go: findRunnable's "if mp.spinning || 2*nmspinning < gomaxprocs-npidle". The M
    /// starts spinning unless enough Ms already do; true if it spins (now or already).
    pub(crate) fn transition_to_spinning(&self, c: &m::MCtx) -> bool {
        if c.spinning.get() {
            return true;
        }
        let busy = self.nprocs() - self.npidle.load(Ordering::SeqCst);
        if 2 * self.nmspinning.load(Ordering::SeqCst) >= busy {
            return false;
        }
        c.spinning.set(true);
        self.nmspinning.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// The M stops spinning. True if it was the last spinner (Go: `resetspinning`
    /// then wakes another M, so that new work is still looked for).
    pub(crate) fn transition_from_spinning(&self, c: &m::MCtx) -> bool {
        if !c.spinning.replace(false) {
            return false;
        }
        self.spinning_sub() == 1
    }

    /// One more spinner that was handed its role (by `wakep`'s claim, `needspinning`,
    /// or a spinner's re-acquired P). SeqCst: a StoreLoad point (module docs).
    fn spinning_add(&self) {
        self.nmspinning.fetch_add(1, Ordering::SeqCst);
    }

    /// One spinner fewer; returns the count before. SeqCst: see `spinning_add`.
    pub(crate) fn spinning_sub(&self) -> usize {
        let prev = self.nmspinning.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(prev > 0, "gmp: nmspinning underflow");
        prev
    }

    /// Claims the first spinner's role if nobody spins (Go: `wakep`'s CAS 0 → 1).
    fn claim_first_spinner(&self) -> bool {
        self.nmspinning
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl Sched {
    /// The counter shard of the caller: its P's, else the shared last one.
    /// Adds `delta` to the live count of P `p`'s shard. The caller owns P `p` (an
    /// `OwnedP`): a P's shard is written only by its owner, so a load and a store do
    /// (an RMW here was a quarter of `spawn_g`'s samples). Relaxed: a count, published
    /// to the P's next owner by the ownership hand-off.
    pub(crate) fn count_goroutine_owned(&self, p: usize, delta: i64) {
        let c = &self.ngoroutine[p];
        c.store(c.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }

    /// A goroutine started by a thread that owns no P of this runtime: counted on the
    /// shared shard (an RMW: any thread may write it).
    pub(crate) fn goroutine_started(&self) {
        self.ngoroutine[self.nprocs()].fetch_add(1, Ordering::Relaxed);
    }

    /// A goroutine ended on an M that owns no P (its P was retaken meanwhile).
    pub(crate) fn goroutine_exited_unowned(&self) {
        self.ngoroutine[self.nprocs()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Live goroutines (Go: `runtime.NumGoroutine`).
    pub(crate) fn num_goroutine(&self) -> usize {
        self.ngoroutine
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<i64>()
            .max(0) as usize
    }

    /// True while some thread waits in `block_on`.
    pub(crate) fn main_waiting(&self) -> bool {
        !self.main_waiters.lock().is_empty()
    }

    /// Wakes the `block_on` callers (deadlock).
    pub(crate) fn wake_main(&self) {
        for u in self.main_waiters.lock().iter() {
            u.unpark();
        }
    }
}

impl Sched {
    /// Shutdown, after every M has exited: drops the queued goroutines and unwinds
    /// every goroutine still alive, on the calling thread, so their destructors run.
    pub(crate) fn unwind_all(&self) {
        let mut gs = self.registry.take_all();
        let mut queued: Vec<GRef> = self.global.drain();
        for pp in self.allp.iter() {
            // SAFETY: every M has exited (the caller checked `mcount == 0`) and none
            // will start (shutdown is set), so nobody owns the Ps any more.
            queued.extend(unsafe { pp.drain_for_shutdown() });
            drop(pp.timers.drain());
        }
        // The cached Gs hold `Arc<Sched>`: a cycle otherwise.
        drop(std::mem::take(&mut *self.gfree.lock()));
        for g in queued {
            // SAFETY: no M runs any more: we are the unique owner of a queued G.
            match unsafe { g.take_entry() } {
                // Never ran: its joiner learns why.
                Some(entry) => entry.cancel(g.id),
                None => gs.push(g),
            }
        }
        // Children before parents: a scoped goroutine borrows from its parent's
        // frame, and a parent waiting in `scope` must find its children gone.
        gs.sort_by_key(|g| std::cmp::Reverse(g.id));
        gs.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for g in &gs {
            // A parked G's park may hold a reference (g.rs `commit_park`) that no waker
            // will take now: take it back (unless a thread outside the runtime just
            // won the wake-up, which then holds it).
            if g.park.cancel_park() {
                // SAFETY: `cancel_park` made us the one that takes the G out of its park.
                drop(unsafe { g.take_park_ref() });
            }
        }
        for g in gs {
            // SAFETY: no M runs any more, and a goroutine that is not running is owned
            // by nobody else: we are its unique owner now.
            let co = unsafe { g.co() }.take();
            // Dropping a suspended coroutine unwinds its stack (gmp-core), as a forced
            // unwind that its suspension points re-raise if it is swallowed.
            crate::proc::unwind_goroutine(&g, || drop(co));
        }
    }
}

/// What [`Sched::release_p`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// Global work appeared: the caller keeps its P and takes it.
    Keep,
    /// The P was released, then the spinner's re-check found work and took P `.0`
    /// (spinning again: `nmspinning` counts it).
    Reacquired(usize),
    /// The P is idle; the caller goes to sleep.
    Released,
    /// A spinner found work it had no P for (`needspinning`): the caller keeps its P
    /// and spins instead of idling (Go 1.21, golang/go#43997). `nmspinning` counts it.
    Spin,
}

/// True if any queue of the runtime holds a goroutine.
pub(crate) fn work_anywhere(sched: &Sched) -> bool {
    !sched.global.is_empty() || sched.allp.iter().any(|pp| !pp.stealer.is_empty())
}

impl Sched {
    /// Go: the end of `findRunnable`. The caller owns P `p`, found no work in it, and
    /// stops spinning if `was_spinning`. Under the lock, re-check the global queue,
    /// else put the P on the idle list. A spinner then drops `nmspinning` (a `SeqCst`
    /// RMW: the StoreLoad of the module docs) and re-checks every queue, taking an
    /// idle P back if it finds work — so work published while it gave up is never
    /// stranded: either the publisher's `wakep` saw it spinning, or it sees the work.
    pub(crate) fn release_p(&self, p: usize, was_spinning: bool) -> Release {
        {
            let mut idle = self.idle.lock();
            if !self.global.is_empty() {
                return Release::Keep;
            }
            if !was_spinning && self.needspinning.swap(false, Ordering::SeqCst) {
                self.spinning_add();
                return Release::Spin;
            }
            // Release: the next owner acquires our writes to the P.
            self.allp[p].own.store(OWN_IDLE, Ordering::Release);
            self.pidleput_locked(&mut idle, p);
        }
        if was_spinning {
            self.spinning_sub();
            // The queues' emptiness checks are not SeqCst loads; this fence makes the
            // re-check below see any work published before a `wakep` that read our
            // old spinning count (the loom model `wakep_vs_spinner_giving_up` finds
            // the lost wake-up without it).
            fence(Ordering::SeqCst);
            if work_anywhere(self) {
                if let Some(p) = self.pidleget() {
                    // Go: pidlegetSpinning — we spin again.
                    self.spinning_add();
                    return Release::Reacquired(p);
                }
                // Work, but every P is busy: ask the next M that would idle its P to
                // spin instead (Go: needspinning).
                self.needspinning.store(true, Ordering::SeqCst);
            }
        }
        Release::Released
    }
}

/// A nudge raced with a hand-off: the hand-off wins, wait for its P.
fn m_wait_handoff(m: &Arc<M>) -> Option<(usize, bool)> {
    loop {
        if let Wake::P(p, s) = m.sleep(None) {
            return Some((p, s));
        }
    }
}
