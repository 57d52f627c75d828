//! [`Runtime`]: an explicit scheduler instance, and the process-wide default one.

use crate::goroutine::Packet;
use crate::m;
use crate::sched::{Config, Sched};
use crate::spawn::spawn_in;
use crate::JoinHandle;
use gmp_core::sync::atomic::Ordering;
use std::fmt;
use std::io;
use std::panic::resume_unwind;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A G-M-P scheduler: `procs` Ps, the Ms (threads) that run them, and sysmon.
///
/// ```
/// let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
/// // SAFETY: the closure and the goroutines it starts with `go!` (inside this `unsafe`
/// // block) hold no thread-local state across a suspension point.
/// let sum = unsafe {
///     rt.block_on(|| {
///         let hs: Vec<_> = (0..10u64).map(|i| gmp_runtime::go!(move || i * i)).collect();
///         hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
///     })
/// };
/// assert_eq!(sum, 285);
/// ```
///
/// Dropping a `Runtime` stops it: see [`Runtime::shutdown_timeout`].
pub struct Runtime {
    sched: Arc<Sched>,
    sysmon: Option<std::thread::JoinHandle<()>>,
}

/// Options for a [`Runtime`].
#[derive(Debug, Clone, Default)]
#[must_use = "a RuntimeBuilder does nothing until `build` is called"]
pub struct RuntimeBuilder {
    procs: Option<usize>,
    stack_size: Option<usize>,
    name: Option<String>,
    schedtrace_ms: Option<u64>,
}

impl RuntimeBuilder {
    /// The number of Ps (Go's `GOMAXPROCS`): how many goroutines run in parallel.
    /// Default: `GMP_MAXPROCS` if set, else [`std::thread::available_parallelism`].
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(3).build()?;
    /// assert_eq!(rt.procs(), 3);
    /// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
    /// assert_eq!(unsafe { rt.block_on(gmp_runtime::gomaxprocs) }, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn procs(mut self, n: usize) -> Self {
        self.procs = Some(n);
        self
    }

    /// The stack size of each goroutine, in bytes (default
    /// [`gmp_core::stack::DEFAULT_STACK_SIZE`]); only touched pages cost memory.
    ///
    /// ```
    /// // 2 MiB stacks: room for a 512 KiB local array (the default 256 KiB is not).
    /// let rt = gmp_runtime::Runtime::builder().stack_size(2 << 20).build()?;
    /// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
    /// let first = unsafe { rt.block_on(|| std::hint::black_box([9u8; 512 << 10])[0]) };
    /// assert_eq!(first, 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// A name for the runtime's threads (default `gmp`).
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().thread_name("worker").build()?;
    /// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
    /// let thread = unsafe { rt.block_on(|| std::thread::current().name().map(String::from)) };
    /// assert!(thread.unwrap().starts_with("worker-m")); // the M that ran it
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Prints Go's `schedtrace` line to stderr every `ms` milliseconds (also
    /// enabled by the environment variable `GMP_SCHEDTRACE=<ms>`).
    ///
    /// ```
    /// // Prints `SCHED <t>ms: gomaxprocs=2 idleprocs=... threads=...` every 10 ms.
    /// let rt = gmp_runtime::Runtime::builder().procs(2).schedtrace(10).build()?;
    /// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
    /// unsafe { rt.block_on(|| gmp_runtime::sleep(std::time::Duration::from_millis(25))) };
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn schedtrace(mut self, ms: u64) -> Self {
        self.schedtrace_ms = Some(ms);
        self
    }

    /// Builds the runtime. Errors: `procs(0)`, a zero stack size, a bad
    /// `GMP_MAXPROCS`/`GMP_SCHEDTRACE`, or no thread for sysmon.
    ///
    /// ```
    /// use gmp_runtime::Runtime;
    ///
    /// let rt = Runtime::builder().procs(2).build()?;
    /// assert_eq!(rt.procs(), 2);
    /// // A mistake is an error naming it, not a panic.
    /// let err = Runtime::builder().procs(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<Runtime> {
        let procs = match self.procs {
            Some(0) => {
                return Err(invalid(
                    "gmp: Runtime::builder().procs(0): a runtime needs at least one P",
                ))
            }
            Some(n) => n,
            None => default_procs()?,
        };
        let stack_size = self
            .stack_size
            .unwrap_or(gmp_core::stack::DEFAULT_STACK_SIZE);
        let (min, max) = (
            gmp_core::stack::MIN_STACK_SIZE,
            gmp_core::stack::MAX_STACK_SIZE,
        );
        if !(min..=max).contains(&stack_size) {
            return Err(invalid(&format!(
                "gmp: Runtime::builder().stack_size({stack_size}): must be between {min} and {max} bytes"
            )));
        }
        let (env_ms, scheddetail) = env_schedtrace()?;
        let schedtrace_ms = match self.schedtrace_ms {
            Some(ms) => Some(ms.max(1)),
            None => env_ms,
        };
        let config = Config {
            procs,
            stack_size,
            schedtrace_ms,
            scheddetail,
            name: self.name.unwrap_or_else(|| "gmp".into()),
        };
        let sched = Arc::new(Sched::new(config));
        let sysmon = crate::sysmon::start(&sched)?;
        crate::debug::register_runtime(&sched);
        crate::debug::install_sigquit_dump_if_asked();
        Ok(Runtime {
            sched,
            sysmon: Some(sysmon),
        })
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `GMP_MAXPROCS`, else the machine's parallelism.
pub(crate) fn default_procs() -> io::Result<usize> {
    match std::env::var("GMP_MAXPROCS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(&format!(
                "gmp: GMP_MAXPROCS={v:?}: expected a positive integer"
            ))),
        },
        Err(std::env::VarError::NotPresent) => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
        Err(e) => Err(invalid(&format!("gmp: GMP_MAXPROCS: {e}"))),
    }
}

/// `GMP_SCHEDTRACE=ms[,detail]`: the period, and whether to add Go's `scheddetail`.
fn env_schedtrace() -> io::Result<(Option<u64>, bool)> {
    match std::env::var("GMP_SCHEDTRACE") {
        Ok(v) => {
            let (ms, detail) = match v.trim().split_once(',') {
                Some((ms, "detail")) => (ms, true),
                Some(_) => {
                    return Err(invalid(&format!(
                        "gmp: GMP_SCHEDTRACE={v:?}: expected milliseconds, optionally followed by \",detail\""
                    )))
                }
                None => (v.trim(), false),
            };
            match ms.trim().parse::<u64>() {
                Ok(0) => Ok((None, false)),
                Ok(n) => Ok((Some(n), detail)),
                Err(_) => Err(invalid(&format!(
                    "gmp: GMP_SCHEDTRACE={v:?}: expected milliseconds, optionally followed by \",detail\""
                ))),
            }
        }
        Err(_) => Ok((None, false)),
    }
}

impl Runtime {
    /// A builder for a runtime.
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(1).thread_name("one").build()?;
    /// assert_eq!(rt.procs(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A runtime with the default options.
    ///
    /// ```
    /// // `GMP_MAXPROCS` Ps if set, else one per CPU.
    /// let rt = gmp_runtime::Runtime::new()?;
    /// assert!(rt.procs() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// Runs `f` as this runtime's main goroutine and returns its value, blocking the
    /// caller until it finishes. A panic in `f` is resumed in the caller. May be
    /// called again (and from several threads) after it returns.
    ///
    /// # Panics
    /// - With Go's `all goroutines are asleep - deadlock!` and the list of parked
    ///   goroutines when every goroutine of the runtime is parked and nothing in the
    ///   process can wake one: no timer, no poller waiter, no blocking call, and no
    ///   thread besides the runtimes' own and the `block_on` callers. The goroutines of
    ///   the runtime are then abandoned for good (never run, never unwound), so nothing
    ///   can touch the caller's frame after the panic. When another thread exists (it
    ///   might still send on a channel), the stall is reported on stderr as a warning
    ///   and `block_on` goes on waiting: a report is fatal only when it is certain.
    ///   `GMP_DEADLOCK=off` disables the detector.
    /// - If called from a goroutine of another runtime (that runtime could free the
    ///   caller's stack while this one's main goroutine borrows from it).
    ///
    /// # Safety
    /// As [`spawn`](crate::spawn()): `f` must not hold thread-local state across a
    /// suspension point.
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(2).build()?;
    /// let data = vec![1u64, 2, 3];
    /// // SAFETY: the goroutines hold no thread-local state across a suspension point.
    /// let sum = unsafe {
    ///     // The main goroutine may borrow from the caller: `block_on` waits for it.
    ///     rt.block_on(|| {
    ///         let (tx, rx) = gmp_runtime::chan::unbounded();
    ///         for &x in &data {
    ///             let tx = tx.clone();
    ///             gmp_runtime::go!(move || tx.send(x * 10).unwrap());
    ///         }
    ///         drop(tx);
    ///         rx.iter().sum::<u64>()
    ///     })
    /// };
    /// assert_eq!(sum, 60);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub unsafe fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if let Some(c) = m::ctx() {
            // The caller's own stack belongs to a goroutine of another runtime, which
            // that runtime may unwind and free at its shutdown while our main goroutine
            // still borrows from it: refuse rather than risk a use-after-free.
            assert!(
                Arc::ptr_eq(&c.sched, &self.sched),
                "gmp: Runtime::block_on called from a goroutine of another runtime; \
                 spawn on this runtime with Runtime::spawn and join the handle instead"
            );
        }
        // A deadlock reported to an earlier call is that call's.
        if !self.sched.main_waiting() {
            self.sched.deadlocked.store(false, Ordering::SeqCst);
        }
        // SAFETY: we wait below for the goroutine to finish before returning, so what
        // `f` borrows outlives it — except after a deadlock report, where the goroutine
        // is marked abandoned (it can never be readied again) and the runtime leaks it
        // at shutdown (`Sched::leak_on_drop`) instead of unwinding it.
        let h: JoinHandle<T> =
            unsafe { spawn_in(&self.sched, Some("main".into()), None, false, f, None) }
                .unwrap_or_else(|e| panic!("gmp: block_on: cannot start the main goroutine: {e}"));
        crate::proc::resched_if_lost_p();
        match wait_main(&self.sched, h.packet.get()) {
            Some(Ok(v)) => v,
            Some(Err(p)) => resume_unwind(p),
            None => {
                // sysmon has abandoned every goroutine of the runtime (sysmon.rs
                // `check_dead`): none can run again, so unwinding our frame below is
                // sound even for goroutines that borrow from it.
                self.sched.leak_on_drop.store(true, Ordering::SeqCst);
                let report = crate::sysmon::deadlock_report(&self.sched);
                // The handle's packet may hold borrowed data the goroutine will never
                // release: leak it with the goroutine.
                std::mem::forget(h);
                panic!("{report}")
            }
        }
    }

    /// Starts a goroutine on this runtime (from any thread).
    ///
    /// # Safety
    /// As [`spawn`](crate::spawn()).
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(2).build()?;
    /// // From a plain thread, onto this runtime (not the default one).
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { rt.spawn(|| gmp_runtime::gomaxprocs()) };
    /// assert_eq!(h.join().unwrap(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub unsafe fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `'static` closure; thread-local contract from our caller.
        let h = unsafe { spawn_in(&self.sched, None, None, false, f, None) }
            .unwrap_or_else(|e| panic!("gmp: failed to spawn a goroutine: {e}"));
        crate::proc::resched_if_lost_p();
        h
    }

    /// The number of Ps.
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(4).build()?;
    /// assert_eq!(rt.procs(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn procs(&self) -> usize {
        self.sched.nprocs()
    }

    /// Live goroutines of this runtime.
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(1).build()?;
    /// assert_eq!(rt.num_goroutine(), 0);
    /// let (tx, rx) = gmp_runtime::chan::bounded::<()>(0);
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { rt.spawn(move || rx.recv().unwrap()) };
    /// assert_eq!(rt.num_goroutine(), 1); // counted from spawn until it ends
    /// tx.send(()).unwrap();
    /// h.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn num_goroutine(&self) -> usize {
        self.sched.num_goroutine()
    }

    /// A snapshot of the scheduler: goroutines by state and wait reason, spawns,
    /// run-queue lengths, steals, spinning and idle Ms, blocking calls, sysmon
    /// retakes, timers, netpoll waiters, cached stack memory (see [`Metrics`]).
    ///
    /// ```
    /// let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
    /// // SAFETY: nothing thread-local is held across a suspension point.
    /// unsafe { rt.block_on(|| gmp_runtime::go!(|| ()).join().unwrap()) };
    /// let m = rt.metrics();
    /// assert!(m.spawned >= 2); // the main goroutine and its child
    /// assert_eq!(m.local_queues.len(), 2);
    /// ```
    ///
    /// [`Metrics`]: crate::Metrics
    pub fn metrics(&self) -> crate::Metrics {
        crate::metrics::snapshot(&self.sched)
    }

    /// Stops the runtime: no goroutine is started or resumed after this; Ms finish the
    /// goroutine they are running (waiting up to `timeout` for them), and every
    /// goroutine still parked or queued is unwound on the calling thread so that its
    /// destructors run. An M still busy after `timeout` (a goroutine that never
    /// reaches a scheduling point) is left to finish on its own and its goroutine is
    /// leaked, not unwound.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// struct SetOnDrop(Arc<AtomicBool>);
    /// impl Drop for SetOnDrop {
    ///     fn drop(&mut self) {
    ///         self.0.store(true, SeqCst);
    ///     }
    /// }
    /// let rt = gmp_runtime::Runtime::builder().procs(1).build()?;
    /// let dropped = Arc::new(AtomicBool::new(false));
    /// let guard = SetOnDrop(dropped.clone());
    /// let (_tx, rx) = gmp_runtime::chan::bounded::<()>(0); // nobody will send
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let _h = unsafe {
    ///     rt.spawn(move || {
    ///         let _guard = guard;
    ///         let _ = rx.recv();
    ///     })
    /// };
    /// rt.shutdown_timeout(Duration::from_secs(1)); // unwinds the waiting goroutine
    /// assert!(dropped.load(SeqCst)); // its destructors ran
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(timeout);
    }

    fn shutdown(&mut self, timeout: Duration) {
        let sched = &self.sched;
        if sched.shutdown.swap(true, Ordering::SeqCst) {
            return;
        }
        sched.wake_all();
        sched.wake_sysmon();
        if let Some(poller) = crate::netpoll_poller_if_started() {
            let _ = poller.wake();
        }
        let deadline = Instant::now() + timeout;
        // Wait for the Ms to leave their schedule loops. The poller is woken again each
        // time: an M may block in it after the first wake-up was consumed (by another M,
        // or by itself just before it checked `shutdown`), and would then sleep forever,
        // leaving the parked goroutines never unwound and their joins hanging (seen in
        // the soak, `examples/soak.rs`).
        while sched.mcount.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            sched.wake_all();
            if let Some(poller) = crate::netpoll_poller_if_started() {
                let _ = poller.wake();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let all_stopped = sched.mcount.load(Ordering::SeqCst) == 0;
        if all_stopped {
            for h in std::mem::take(&mut *sched.threads.lock()) {
                let _ = h.join();
            }
        }
        if let Some(h) = self.sysmon.take() {
            let _ = h.join();
        }
        if all_stopped && !sched.leak_on_drop.load(Ordering::SeqCst) {
            sched.unwind_all();
        }
    }
}

/// Waits for the main goroutine; `None` on deadlock.
fn wait_main<T>(sched: &Arc<Sched>, packet: &Packet<T>) -> Option<std::thread::Result<T>> {
    if m::ctx().is_some() {
        // block_on from inside a goroutine: just join (parks the goroutine). The main
        // goroutine borrows from our frame: an abort of ours waits for it.
        return Some(crate::proc::without_abort(|| packet.join()));
    }
    let me = gmp_core::park::current();
    sched.main_waiters.lock().push(me.clone());
    // This thread is one the deadlock detector knows: it can wake nothing while here.
    crate::sysmon::ALL_MAIN_WAITERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    struct Uncount;
    impl Drop for Uncount {
        fn drop(&mut self) {
            crate::sysmon::ALL_MAIN_WAITERS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let uncount = Uncount;
    let r = loop {
        if packet.is_done() {
            break Some(packet.join());
        }
        if sched.deadlocked.load(Ordering::SeqCst) {
            break None;
        }
        packet.set_waiter(me.clone());
        if packet.is_done() || sched.deadlocked.load(Ordering::SeqCst) {
            continue;
        }
        gmp_core::park::park();
    };
    drop(uncount);
    let mut w = sched.main_waiters.lock();
    if let Some(i) = w.iter().position(|u| u.will_wake(&me)) {
        w.swap_remove(i);
    }
    r
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("procs", &self.sched.nprocs())
            .field("goroutines", &self.num_goroutine())
            .finish_non_exhaustive()
    }
}

static DEFAULT: OnceLock<Runtime> = OnceLock::new();

/// The default runtime, started on first use.
pub(crate) fn default_sched() -> Arc<Sched> {
    DEFAULT
        .get_or_init(|| {
            Runtime::new().unwrap_or_else(|e| panic!("gmp: cannot start the default runtime: {e}"))
        })
        .sched
        .clone()
}

/// Runs `f` as the main goroutine of the default runtime (the equivalent of Go's
/// `main`), starting that runtime if needed.
///
/// # Safety
/// As [`spawn`](crate::spawn()).
///
/// ```
/// // Go's `main`: the default runtime, started on first use.
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// let squares = unsafe {
///     gmp_runtime::run(|| {
///         let hs: Vec<_> = (1..=4u64).map(|i| gmp_runtime::go!(move || i * i)).collect();
///         hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
///     })
/// };
/// assert_eq!(squares, [1, 4, 9, 16]);
/// ```
#[track_caller]
pub unsafe fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let _ = default_sched();
    let rt = DEFAULT.get().expect("default runtime just started");
    // SAFETY: passed on from our caller.
    unsafe { rt.block_on(f) }
}

/// The number of live goroutines of the caller's runtime (the default runtime's from
/// a plain thread; 0 if it has not started). Go: `runtime.NumGoroutine`.
///
/// ```
/// use gmp_runtime::num_goroutine;
///
/// // SAFETY: the goroutines hold no thread-local state across a suspension point.
/// let n = unsafe {
///     gmp_runtime::run(|| {
///         let (tx, rx) = gmp_runtime::chan::bounded::<()>(0);
///         let hs: Vec<_> = (0..3)
///             .map(|_| {
///                 let rx = rx.clone();
///                 gmp_runtime::go!(move || assert!(rx.recv().is_err())) // until closed
///             })
///             .collect();
///         let n = num_goroutine(); // main + the three waiters
///         drop(tx);
///         hs.into_iter().for_each(|h| h.join().unwrap());
///         n
///     })
/// };
/// assert_eq!(n, 4);
/// ```
pub fn num_goroutine() -> usize {
    match m::ctx() {
        Some(c) => c.sched.num_goroutine(),
        None => DEFAULT.get().map_or(0, |r| r.num_goroutine()),
    }
}

/// The number of Ps of the caller's runtime (from a plain thread: the default
/// runtime's, as configured even if it has not started). Go: `runtime.GOMAXPROCS(0)`.
///
/// ```
/// let rt = gmp_runtime::Runtime::builder().procs(2).build()?;
/// // SAFETY: the main goroutine holds no thread-local state across a suspension point.
/// assert_eq!(unsafe { rt.block_on(gmp_runtime::gomaxprocs) }, 2);
/// assert!(gmp_runtime::gomaxprocs() >= 1); // from a plain thread: the default runtime's
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn gomaxprocs() -> usize {
    match m::ctx() {
        Some(c) => c.sched.nprocs(),
        None => match DEFAULT.get() {
            Some(r) => r.procs(),
            None => default_procs().unwrap_or(1),
        },
    }
}
