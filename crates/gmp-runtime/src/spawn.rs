//! Starting goroutines: [`spawn`], [`Builder`], and the entry wrapper every goroutine
//! runs in (Go: `newproc`, `newproc1`, `goexit`).

use crate::g::{Status, G};
use crate::goroutine::{next_goid, Goroutine, JoinHandle, Packet};
use crate::m;
use crate::runtime::default_sched;
use crate::sched::{enter, leave, Sched};
use gmp_core::coroutine::{Coroutine, Suspender};
use gmp_core::stack::Stack;
use gmp_core::sync::atomic::Ordering;
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
/// # Panics
/// If a stack cannot be allocated (use [`Builder::spawn`] to get the error instead),
/// or if `GMP_MAXPROCS` is set to something that is not a positive integer when the
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
pub unsafe fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: the caller upholds `spawn`'s contract, which is `Builder::spawn`'s.
    unsafe { Builder::new().spawn(f) }.unwrap_or_else(|e| panic!("gmp: failed to spawn a goroutine: {e}"))
}

/// Shorthand for [`spawn`]: `go!(move || ...)` or `go!(expr)` starts a goroutine.
///
/// It expands to a call of the unsafe [`spawn`], inside an `unsafe` block: by writing
/// `go!` the caller accepts `spawn`'s safety contract (no thread-local state held
/// across a suspension point).
///
/// ```
/// let h = gmp_runtime::go!(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[macro_export]
macro_rules! go {
    ($f:expr) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the `go!` caller accepts `spawn`'s contract (see its docs).
        let h = unsafe { $crate::spawn($f) };
        h
    }};
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
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the goroutine (shown by [`Goroutine::name`], panic messages of the
    /// runtime, stack-overflow reports and deadlock reports).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// The goroutine's stack size in bytes (rounded up to whole pages). The default
    /// is the runtime's (`Runtime::builder().stack_size`), itself
    /// [`gmp_core::stack::DEFAULT_STACK_SIZE`] unless set.
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Starts the goroutine; a stack that cannot be allocated is an `Err`, not an
    /// abort.
    ///
    /// # Safety
    /// As [`spawn`]: `f` must not hold thread-local state across a suspension point.
    pub unsafe fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let sched = current_sched();
        // SAFETY: `F` and `T` are `'static`, so nothing the goroutine borrows can end
        // before it; the thread-local contract is passed on from our caller.
        unsafe { spawn_in(&sched, self.name, self.stack_size, f, None) }
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
/// # Safety
/// Everything `f` borrows outlives the goroutine (its run and the drop of its stack),
/// and `f` holds no thread-local state across a suspension point.
pub(crate) unsafe fn spawn_in<F, T>(
    sched: &Arc<Sched>,
    name: Option<String>,
    stack_size: Option<usize>,
    f: F,
    scope: Option<Arc<crate::scope::ScopeData>>,
) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    if let Some(0) = stack_size {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "gmp: a goroutine stack size must be positive"));
    }
    let stack = get_stack(sched, stack_size)?;
    let packet: Arc<Packet<T>> = Arc::new(Packet::new(scope));
    let their_packet = packet.clone();
    let id = next_goid();
    let body = move |s: &Suspender| {
        // Publish the suspender: code deep inside the goroutine switches out
        // through it (proc::suspend).
        if let Some(g) = crate::proc::current_g() {
            g.suspender.set(s as *const Suspender);
        }
        let r = catch_unwind(AssertUnwindSafe(f));
        if let Err(p) = &r {
            if gmp_core::coroutine::is_forced_unwind(&**p) {
                // The runtime is unwinding this goroutine (shutdown): keep going.
                drop(their_packet);
                match r {
                    Err(p) => resume_unwind(p),
                    Ok(_) => unreachable!(),
                }
            }
        }
        their_packet.set(r);
        drop(their_packet);
    };
    // SAFETY: our caller guarantees that what `f` (and so `body`) borrows outlives the
    // coroutine, including its drop.
    let mut co = unsafe { Coroutine::new_unchecked(stack, body) };
    co.set_label(id, name.as_deref());
    let g = G::new(id, name, sched.clone(), co);
    let shard = m::ctx().and_then(|c| c.p.get()).unwrap_or(id as usize);
    g.registry_slot.set(sched.registry.insert(shard, &g));
    sched.ngoroutine.fetch_add(1, Ordering::Relaxed);
    sched.progress.fetch_add(1, Ordering::Relaxed);
    g.set_status(Status::Runnable);
    let handle = JoinHandle { packet, goroutine: Goroutine::from_g(g.clone()) };
    sched.put_runnable(g, true);
    Ok(handle)
}

/// A stack for a new goroutine: the P's cache, the runtime's pool, or a fresh one.
fn get_stack(sched: &Arc<Sched>, size: Option<usize>) -> io::Result<Stack> {
    match size {
        Some(s) if s != sched.stack_pool.stack_size() => return Stack::new(s),
        _ => {}
    }
    if let Some(c) = m::ctx() {
        if Arc::ptr_eq(&c.sched, sched) {
            if let Some(p) = enter(c) {
                // SAFETY: `enter` made us the P's owner in state RUNTIME.
                let s = unsafe { sched.allp[p].stacks() }.pop();
                leave(c, p);
                if let Some(s) = s {
                    return Ok(s);
                }
            }
        }
    }
    sched.stack_pool.get()
}
