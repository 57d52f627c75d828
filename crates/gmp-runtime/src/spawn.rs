//! Starting goroutines: [`spawn`], [`Builder`], and the entry wrapper every goroutine
//! runs in (Go: `newproc`, `newproc1`, `goexit`).

use crate::g::{Status, G};
use crate::goroutine::{next_goid, Goroutine, JoinHandle, Packet};
use crate::job::{Entry, PacketRef, Payload};
use crate::m;
use crate::origin::Origin;
use crate::p::enter;
use crate::runtime::default_sched;
use crate::sched::Sched;
use gmp_core::coroutine::{Coroutine, Suspender};
use gmp_core::stack::Stack;
use std::cell::UnsafeCell;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Starts a goroutine running `f` and returns a handle to join it.
///
/// Inside a goroutine the new one goes to the current runtime, into the spawning P's
/// `runnext` (as Go's `newproc` does): it runs next, and the spawner goes on when it
/// next yields or blocks. Outside any runtime it starts, once, the process-wide default
/// runtime (`GMP_MAXPROCS` Ps, default [`std::thread::available_parallelism`]).
///
/// The goroutine's stack is taken when it first runs (so spawning costs no stack
/// while the goroutine waits in a queue); if none can be allocated then, [`join`]
/// returns `Err` with a message naming the error. [`Builder::spawn`] allocates the
/// stack at once and returns the error instead.
///
/// [`join`]: JoinHandle::join
///
/// # Panics
/// If `GMP_MAXPROCS` is set to something that is not a positive integer when the
/// default runtime starts.
///
/// # Safety
///
/// A goroutine may resume on a different OS thread after **any** call that can
/// suspend it: a channel operation, [`sleep`](crate::sleep), [`park`](crate::park),
/// network I/O, [`yield_now`](crate::yield_now), [`join`](JoinHandle::join),
/// [`blocking`](crate::blocking), spawning. The caller guarantees that `f` holds no
/// thread-local state across such a call, because it would then touch another
/// thread's state — undefined behaviour the type system cannot see. For example, do
/// not keep across a suspension point:
/// - a borrow obtained from a `thread_local!` (`LOCAL.with(|x| ... suspend ...)`);
/// - `rand::thread_rng()` or another handle to thread-local state;
/// - a `std::io::StdoutLock` or any re-entrant mutex guard (it records its owner thread);
/// - a `MutexGuard` of a lock whose `unlock` must happen on the locking thread.
///
/// Reading a thread-local afresh after each suspension is fine (it is simply another
/// thread's value). `Send` values and ordinary locks held briefly are fine.
///
/// # Shutdown, and catching panics
///
/// When a [`Runtime`](crate::Runtime) shuts down, each goroutine still parked is
/// unwound from its suspension point (its destructors run) with a private payload that
/// [`is_forced_unwind`](crate::is_forced_unwind) recognises. A goroutine that catches
/// panics around a call that can suspend — a worker loop's `catch_unwind` around a
/// `recv`, say — must rethrow that payload with [`std::panic::resume_unwind`]. If it
/// swallows it instead, the unwind is raised again at its next suspension point, and
/// after the 100th time the process aborts with a message naming the goroutine
/// (rather than leaving the shutdown waiting forever).
///
/// ```
/// use gmp_runtime::spawn;
///
/// // SAFETY: the goroutine holds no thread-local state across a suspension point.
/// let h = unsafe { spawn(|| (1..=10u64).product::<u64>()) };
/// assert_eq!(h.join().unwrap(), 3_628_800);
/// ```
#[track_caller]
pub unsafe fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The M's runtime is borrowed, not cloned: the `Arc<Sched>` count is one cache
    // line that every spawning M would bounce (two locked RMWs a spawn). `spawn_in`
    // never suspends, so the borrow of the M's context ends before the scheduling
    // point below.
    let r = match m::ctx() {
        // SAFETY: `F` and `T` are `'static`; the thread-local contract is our caller's.
        Some(c) => unsafe { spawn_in(&c.sched, None, None, false, f, None) },
        // SAFETY: as above.
        None => unsafe { spawn_in(&default_sched(), None, None, false, f, None) },
    };
    let h = r.unwrap_or_else(|e| panic!("gmp: failed to spawn a goroutine: {e}"));
    crate::proc::resched_if_lost_p();
    h
}

/// Shorthand for [`spawn`]: `go!(move || ...)` or `go!(expr)` starts a goroutine.
///
/// `go!` expands to a call of an `unsafe fn`, so it must be written in an `unsafe`
/// context: the `unsafe` block is where the caller accepts [`spawn`]'s safety contract
/// (no thread-local state held across a suspension point). In a crate with
/// `#![forbid(unsafe_code)]` it does not compile, as a call of [`spawn`] does not. A `go!` written
/// inside a closure that is itself inside an `unsafe` block (the closure given to an
/// `unsafe { rt.block_on(..) }`, say) is already in an `unsafe` context: that block's
/// `SAFETY` comment covers it.
///
/// ```
/// // SAFETY: the goroutine holds no thread-local state across a suspension point.
/// let h = unsafe { gmp_runtime::go!(|| 6 * 7) };
/// assert_eq!(h.join().unwrap(), 42);
/// ```
///
/// Without `unsafe` it is rejected:
///
/// ```compile_fail,E0133
/// let h = gmp_runtime::go!(|| 6 * 7);
/// ```
///
/// (The unsafe call is the one that makes the hidden `__GoPermit`; the spawn itself
/// goes through a helper that takes that permit, so that a closure that only panics —
/// `go!(|| panic!())` — type-checks as it does with `std::thread::spawn`: calling the
/// generic `unsafe fn spawn` directly would make the never-type fallback of its `T`
/// flow into an unsafe call, which rustc rejects.)
#[macro_export]
macro_rules! go {
    ($f:expr) => {
        $crate::__go_unchecked($crate::__GoPermit::accept_spawn_contract(), $f)
    };
}

/// Proof that the caller of [`go!`] accepted [`spawn`]'s contract: it can only be made
/// by an `unsafe` call, so [`__go_unchecked`] is no safe path to [`spawn`].
#[doc(hidden)]
#[derive(Debug)]
#[must_use = "a permit does nothing unless passed to `__go_unchecked`"]
pub struct __GoPermit {
    _private: (),
}

impl __GoPermit {
    /// The permit [`go!`] makes.
    ///
    /// # Safety
    /// As [`spawn`]: the goroutine started with this permit must not hold thread-local
    /// state across a suspension point.
    #[doc(hidden)]
    pub unsafe fn accept_spawn_contract() -> __GoPermit {
        __GoPermit { _private: () }
    }
}

/// The expansion of [`go!`]: [`spawn`], with its contract accepted by whoever made
/// `permit` (an `unsafe` call).
#[doc(hidden)]
#[track_caller]
pub fn __go_unchecked<F, T>(permit: __GoPermit, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let __GoPermit { _private: () } = permit;
    // SAFETY: `permit` exists, so its maker called the `unsafe`
    // `__GoPermit::accept_spawn_contract`, whose contract is `spawn`'s.
    unsafe { spawn(f) }
}

/// Options for a new goroutine, like [`std::thread::Builder`].
#[derive(Debug, Default)]
#[must_use = "a Builder does nothing until `spawn` is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the runtime's stack size.
    ///
    /// ```
    /// let b = gmp_runtime::Builder::new();
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { b.spawn(|| 1) }?;
    /// assert_eq!(h.join().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the goroutine (shown by [`Goroutine::name`], panic messages of the
    /// runtime, stack-overflow reports and deadlock reports).
    ///
    /// ```
    /// use gmp_runtime::{current, Builder};
    ///
    /// let b = Builder::new().name("fetcher".to_string());
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { b.spawn(|| current().name().map(str::to_owned)) }?;
    /// assert_eq!(h.join().unwrap().as_deref(), Some("fetcher"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// The goroutine's stack size in bytes (rounded up to whole pages). The default
    /// is the runtime's (`Runtime::builder().stack_size`), itself
    /// [`gmp_core::stack::DEFAULT_STACK_SIZE`] unless set.
    ///
    /// ```
    /// let b = gmp_runtime::Builder::new().stack_size(4 << 20); // 4 MiB, committed as touched
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { b.spawn(|| std::hint::black_box([7u8; 1 << 20])[0]) }?;
    /// assert_eq!(h.join().unwrap(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Starts a scoped goroutine (see [`scope`](crate::scope())) with these options, as
    /// [`std::thread::Builder::spawn_scoped`].
    ///
    /// # Safety
    /// As [`spawn`]: `f` must not hold thread-local state across a suspension point.
    ///
    /// ```
    /// use gmp_runtime::{scope, Builder};
    ///
    /// let mut total = 0;
    /// scope(|s| {
    ///     let b = Builder::new().name("adder".to_string());
    ///     // SAFETY: the goroutine holds no thread-local state across a suspension point.
    ///     let h = unsafe { b.spawn_scoped(s, || total += 5) }.unwrap();
    ///     h.join().unwrap();
    /// });
    /// assert_eq!(total, 5); // the scoped goroutine borrowed `total`
    /// ```
    #[track_caller]
    pub unsafe fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope crate::Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<crate::ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // SAFETY: passed on from our caller.
        unsafe { scope.spawn_with(self.name, self.stack_size, f) }
    }

    /// Starts the goroutine; a stack that cannot be allocated is an `Err`, not an
    /// abort.
    ///
    /// # Safety
    /// As [`spawn`]: `f` must not hold thread-local state across a suspension point.
    ///
    /// ```
    /// // SAFETY: the goroutine holds no thread-local state across a suspension point.
    /// let h = unsafe { gmp_runtime::Builder::new().spawn(|| "done") }?; // Err if no stack
    /// assert_eq!(h.join().unwrap(), "done");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub unsafe fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let sched = current_sched();
        // SAFETY: `F` and `T` are `'static`, so nothing the goroutine borrows can end
        // before it; the thread-local contract is passed on from our caller.
        let h = unsafe { spawn_in(&sched, self.name, self.stack_size, true, f, None) };
        crate::proc::resched_if_lost_p();
        h
    }
}

/// The runtime a spawn from here goes to: the caller's, else the default one.
pub(crate) fn current_sched() -> Arc<Sched> {
    match m::ctx() {
        Some(c) => c.sched.clone(),
        None => default_sched(),
    }
}

/// Go: `newproc`. Creates the goroutine and makes it runnable.
///
/// With `eager_stack` the stack is allocated now, so that running out of memory is
/// this call's error; otherwise it is taken when the goroutine first runs (from the
/// running P's cache), so a million goroutines spawned before any runs cost no stacks,
/// and the error, if any, comes back from `join` as a panic payload naming it.
///
/// Never suspends the calling goroutine; the caller calls `proc::resched_if_lost_p`
/// after it (spawning is a scheduling point).
///
/// # Safety
/// Everything `f` borrows outlives the goroutine (its run and the drop of its stack),
/// and `f` holds no thread-local state across a suspension point.
#[track_caller]
pub(crate) unsafe fn spawn_in<F, T>(
    sched: &Arc<Sched>,
    name: Option<String>,
    stack_size: Option<usize>,
    eager_stack: bool,
    f: F,
    scope: Option<Arc<crate::scope::ScopeData>>,
) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    if let Some(0) = stack_size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "gmp: a goroutine stack size must be positive",
        ));
    }
    let id = next_goid();
    let created_by = std::panic::Location::caller();
    // SAFETY: our caller guarantees that what `f` borrows outlives the goroutine,
    // including the drop of its stack; the packet's `T` is only reached through the
    // `JoinHandle`, which the caller's scope (a `'static` bound, `scope`, or
    // `block_on`'s wait) keeps within those borrows. `Job` is `Send + Sync` for
    // `F: Send, T: Send` (its `Sync` impl).
    let (entry, job) = unsafe {
        crate::job::new(Job {
            f: UnsafeCell::new(Some(f)),
            packet: Packet::new(scope),
        })
    };
    // SAFETY: the block's second count, taken once, for the handle; the packet lives
    // as long as the job.
    let packet = unsafe { PacketRef::from_payload(job, |j: &Job<F, T>| &j.packet) };
    let (co, entry) = if eager_stack || stack_size.is_some() {
        let stack = get_stack(sched, stack_size)?;
        let co = make_coroutine(stack, entry, id, name.as_deref());
        (Some(co), None)
    } else {
        (None, Some(entry))
    };
    let origin = Origin::new(name, Some(created_by));
    let g = sched.spawn_g(|cached| {
        let g = match cached {
            Some(mut g) => match Arc::get_mut(&mut g) {
                Some(gm) => {
                    gm.reinit(id, origin, co, entry);
                    g
                }
                // Unreachable by `gdestroy`'s check; stay correct anyway.
                None => G::new(id, origin, sched.clone(), co, entry),
            },
            None => G::new(id, origin, sched.clone(), co, entry),
        };
        g.set_status(Status::Runnable);
        g
    });
    // Spawning is a scheduling point (a goroutine whose P sysmon took while it ran goes
    // back through the scheduler), but not here: `sched` may borrow the M's context,
    // which a goroutine must not hold across a switch. Every caller reschedules after
    // this returns (`proc::resched_if_lost_p`).
    Ok(JoinHandle {
        packet,
        goroutine: Goroutine::from_g(g),
    })
}

/// A goroutine's closure and result slot, in one block shared by the goroutine (as its
/// [`Entry`]) and its [`JoinHandle`] (job.rs). Fields drop in order: the closure (which
/// may borrow from a scope) before the packet, whose drop tells the scope.
///
/// Kept small on purpose: it is the one allocation of every spawn. With the block's
/// header it is 16 + 56 (the packet, for a result of up to 16 bytes) + the closure; a
/// closure of up to 56 bytes fits the 128-byte blocks the Ms recycle (job.rs `SMALL`),
/// a larger one is a `malloc` of its own. So the goroutine's id is not stored here
/// (`start`/`cancel` receive it) and the result slot has no `Option` tag (goroutine.rs
/// `Packet`).
pub(crate) struct Job<F, T> {
    f: UnsafeCell<Option<F>>,
    packet: Packet<T>,
}

// SAFETY: `f` is taken exactly once, by the goroutine's unique owner when it starts
// (`Payload::start` consumes the entry); `packet` is internally synchronised. `F` and
// `T` cross threads, hence the `Send` bounds.
unsafe impl<F: Send, T: Send> Sync for Job<F, T> {}

impl<F, T> Payload for Job<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    unsafe fn start(entry: Entry, id: u64, no_stack: Option<io::Error>) {
        // SAFETY: our caller's contract: the block holds a `Job<F, T>`.
        let job = unsafe { entry.payload::<Self>() };
        // SAFETY: see the `Sync` impl: we are the only caller, once.
        let f = unsafe { (*job.f.get()).take() }.expect("gmp: a goroutine was started twice");
        if let Some(e) = no_stack {
            drop(f);
            job.packet.set(Err(Box::new(format!(
                "gmp: cannot allocate a stack for goroutine {id}: {e}"
            ))));
            return;
        }
        // A detached goroutine (its `JoinHandle` already dropped, and no scope counting
        // its packet) has nobody to read its result: free the Job now instead of
        // carrying it through every park of the goroutine's life (128 bytes of every
        // parked server goroutine; idlemem, park1m, conns). `is_unique` succeeds only
        // if this is the last reference, and nothing can make a new one: the handle was
        // the only other owner. Its Acquire orders the handle's last use before the
        // free. The closure has moved out (`f`).
        let detached = job.packet.scope.is_none() && entry.is_unique();
        let entry = if detached {
            drop(entry);
            None
        } else {
            Some(entry)
        };
        let r = catch_unwind(AssertUnwindSafe(f));
        // The goroutine's locals go with its body, however it ended (a destructor
        // that panics is a panic of the goroutine: it aborts, as in std).
        crate::local::drop_goroutine_locals();
        // SAFETY: as above.
        let packet = entry
            .as_ref()
            .map(|e| unsafe { &e.payload::<Self>().packet });
        if let Err(p) = &r {
            if gmp_core::coroutine::is_forced_unwind(&**p) {
                // The runtime is unwinding this goroutine (shutdown): tell the joiner,
                // if any, and keep unwinding.
                if let Some(packet) = packet {
                    packet.set(Err(Box::new(format!(
                        "gmp: the runtime shut down while goroutine {id} was parked"
                    ))));
                }
                match r {
                    Err(p) => resume_unwind(p),
                    Ok(_) => unreachable!(),
                }
            }
        }
        match packet {
            Some(packet) => packet.set(r),
            // Detached: the result (or panic payload; the hook reported the panic) is
            // dropped here, where the packet would have dropped it.
            None => drop(r),
        }
    }

    unsafe fn cancel(entry: Entry, id: u64) {
        // SAFETY: our caller's contract: the block holds a `Job<F, T>`.
        let job = unsafe { entry.payload::<Self>() };
        // SAFETY: see the `Sync` impl: the goroutine never started, so nobody else
        // takes `f`.
        drop(unsafe { (*job.f.get()).take() });
        job.packet.set(Err(Box::new(format!(
            "gmp: the runtime shut down before goroutine {id} ran"
        ))));
    }
}

/// A body that does nothing, for the loom models and unit tests (their goroutines
/// never run).
#[cfg(test)]
pub(crate) fn noop_entry() -> Entry {
    // SAFETY: the closure borrows nothing; `Job` is `Send + Sync` here.
    let (entry, job) = unsafe {
        crate::job::new(Job {
            f: UnsafeCell::new(Some(|| ())),
            packet: Packet::<()>::new(None),
        })
    };
    // SAFETY: the second count, taken once and given up at once: no handle.
    drop(unsafe { PacketRef::from_payload(job, |j: &Job<_, ()>| &j.packet) });
    entry
}

/// A body that is never run whose closure holds `token`: the token's count shows when
/// the body's block is freed (tests of who gives a body back).
#[cfg(all(test, not(loom)))]
pub(crate) fn entry_holding(token: Arc<()>) -> Entry {
    // SAFETY: the closure borrows nothing; `Job` is `Send + Sync` here.
    let (entry, job) = unsafe {
        crate::job::new(Job {
            f: UnsafeCell::new(Some(move || drop(token))),
            packet: Packet::<()>::new(None),
        })
    };
    // SAFETY: the second count, taken once and given up at once: no handle.
    drop(unsafe { PacketRef::from_payload(job, |j: &Job<_, ()>| &j.packet) });
    entry
}

/// The coroutine a goroutine runs in.
pub(crate) fn make_coroutine(
    stack: Stack,
    entry: Entry,
    id: u64,
    name: Option<&str>,
) -> Coroutine<()> {
    let unstarted = Unstarted(Some(entry), id);
    let mut co = Coroutine::new(stack, move |s: &Suspender| {
        let mut unstarted = unstarted;
        let entry = unstarted
            .0
            .take()
            .expect("gmp: a goroutine was started twice");
        // Publish the suspender: code deep inside the goroutine switches out through
        // it (proc::suspend).
        if let Some(g) = crate::proc::current_g() {
            g.set_suspender(s as *const Suspender);
        }
        entry.start(unstarted.1, None);
    });
    if id != 0 || name.is_some() {
        co.set_label(id, name);
    }
    co
}

/// A goroutine body inside a coroutine that has not run yet. If the coroutine is
/// dropped before its first run (a `Builder::spawn` goroutine, whose stack is taken at
/// once, still queued at shutdown), the body is cancelled so that `join` returns `Err`
/// instead of waiting forever.
struct Unstarted(Option<Entry>, u64);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take() {
            entry.cancel(self.1);
        }
    }
}

/// Creates the coroutine of a goroutine at its first run, on its M.
pub(crate) fn start_goroutine(g: &G) -> Result<Coroutine<()>, (Entry, io::Error)> {
    // SAFETY: the caller (execute) is the G's unique owner.
    let entry =
        unsafe { g.take_entry() }.expect("gmp: internal error: a new goroutine has no body");
    match get_stack(&g.sched, None) {
        Ok(stack) => Ok(make_coroutine(stack, entry, g.id, g.name())),
        Err(e) => Err((entry, e)),
    }
}

/// A stack for a new goroutine: the P's cache, the runtime's pool, or a fresh one.
fn get_stack(sched: &Arc<Sched>, size: Option<usize>) -> io::Result<Stack> {
    match size {
        Some(s) if s != sched.stack_pool.stack_size() => return Stack::new(s),
        _ => {}
    }
    let owned = m::ctx()
        .filter(|c| Arc::ptr_eq(&c.sched, sched))
        .and_then(enter);
    if let Some(s) = owned.and_then(|p| p.take_stack()) {
        return Ok(s);
    }
    sched.stack_pool.get()
}
