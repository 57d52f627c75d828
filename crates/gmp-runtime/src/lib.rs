//! gmp-runtime: Go's G-M-P scheduler for Rust — goroutines that mirror `std::thread`.
//!
//! ```
//! use gmp_runtime::chan;
//!
//! let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
//! // SAFETY: no goroutine holds thread-local state across a suspension point.
//! let total = unsafe {
//!     rt.block_on(|| {
//!         let (tx, rx) = chan::bounded::<u64>(0); // Go's unbuffered channel
//!         for i in 1..=100 {
//!             let tx = tx.clone();
//!             gmp_runtime::go!(move || tx.send(i).unwrap());
//!         }
//!         drop(tx);
//!         rx.iter().sum::<u64>()
//!     })
//! };
//! assert_eq!(total, 5050);
//! ```
//!
//! # The model (go-runtime.md; the study note in `shared/seed/`)
//!
//! - **G** (`g.rs`): a goroutine — a stackful coroutine from gmp-core, its status, its
//!   park permit.
//! - **M** (`m.rs`): an OS thread that runs goroutines while it holds a P.
//! - **P** (`p.rs`): one of `procs` processor tokens, with a local run queue and
//!   `runnext` (gmp-queue), a timer heap and a stack cache.
//! - **sched** (`sched.rs`): the global queue, the idle P and M lists, and the wake-up
//!   protocol (`wakep`/`startm`/`stopm`/`handoffp`) with Go's spinning Ms.
//! - `proc.rs`: the scheduling loop, `findRunnable` in Go's order, work stealing,
//!   the park/commit protocol; `timers.rs`; `sysmon.rs` (retake from blocking calls
//!   and from goroutines that run 10 ms without a scheduling point; deadlock check;
//!   `GMP_SCHEDTRACE`).
//!
//! # Blocking
//!
//! Every blocking operation parks whatever runs it: in a goroutine, the goroutine is
//! switched out and its M runs others; on a plain thread, the thread blocks. Channels
//! ([`chan`], a re-export of gmp-chan) and the network types ([`net`]) block through
//! gmp-core's park hook, so goroutines and plain threads can share them.
//!
//! # Preemption
//!
//! Rust has no preemption points. Goroutines switch at runtime calls (channels, sleep,
//! I/O, spawn, [`yield_now`], [`park`], [`blocking`]); a goroutine that runs for 10 ms
//! without one has its P taken away by sysmon and given to another M, so the other
//! goroutines and timers keep running (it gets a P back at its next scheduling point).
//!
//! # Deadlock detection
//!
//! When every goroutine of a runtime is parked and nothing can wake one — no runnable
//! goroutine, no timer, no network waiter, no blocking call, no plain thread parked on
//! a gmp primitive — for 250 ms, [`Runtime::block_on`] panics with Go's
//! `all goroutines are asleep - deadlock!` and the list of parked goroutines. A plain
//! thread that holds a channel and will use it later, without being parked on a gmp
//! primitive meanwhile, cannot be seen: a program that relies on one for more than
//! 250 ms can be misreported.
//!
//! # Why spawning is `unsafe`
//!
//! A goroutine may resume on a different OS thread after any suspension point; see
//! [`spawn`]'s `# Safety`.

#![cfg_attr(not(test), warn(missing_docs))]

pub mod context;
pub mod debug;
pub mod fs;
pub mod future;
mod g;
mod goroutine;
pub mod io;
mod local;
#[cfg(all(test, loom))]
mod loom_tests;
mod m;
mod metrics;
pub mod net;
mod p;
mod proc;
pub mod process;
mod registry;
mod runtime;
mod sched;
mod schedule;
mod scope;
pub mod signal;
mod spawn;
mod sysmon;
pub mod time;
mod timers;
pub mod trace;

pub use goroutine::{
    blocking, current, park, park_timeout, sleep, sleep_until, yield_now, Aborted, Goroutine,
    GoroutineId, JoinHandle,
};
pub use local::LocalKey;
pub use metrics::Metrics;
pub use runtime::{gomaxprocs, num_goroutine, run, Runtime, RuntimeBuilder};
pub use scope::{scope, Scope, ScopedJoinHandle};
#[doc(hidden)]
pub use spawn::{__GoPermit, __go_unchecked};
pub use spawn::{spawn, Builder};

/// True if a panic payload is the forced unwind with which the runtime unwinds a
/// parked goroutine at shutdown. Code that catches panics around a call that can
/// suspend (a channel operation, `sleep`, I/O) must rethrow such a payload with
/// [`std::panic::resume_unwind`]; see [`spawn`]'s docs.
///
/// ```
/// let r = std::panic::catch_unwind(|| panic!("an ordinary panic"));
/// assert!(!gmp_runtime::is_forced_unwind(&*r.unwrap_err()));
/// ```
pub use gmp_core::is_forced_unwind;

/// Fault injection for tests: the next `n` creations of a scheduler thread (an M) fail
/// as if the OS had refused them. Not part of the API; for the runtime's own tests.
#[doc(hidden)]
pub fn __inject_thread_spawn_failures(n: usize) {
    sched::THREAD_SPAWN_FAILURES.store(n, std::sync::atomic::Ordering::SeqCst);
}

pub use gmp_chan::sync;

/// Channels and `select`, with the API of crossbeam-channel (a re-export of gmp-chan).
pub mod chan {
    pub use gmp_chan::*;
}

/// The process-wide network poller, created on first use.
pub(crate) fn netpoll_poller() -> &'static gmp_netpoll::Poller {
    POLLER.get_or_init(|| {
        gmp_netpoll::Poller::new().expect("gmp: cannot create the network poller (epoll)")
    })
}

/// The poller, if anything has used it yet (the scheduler never creates it).
pub(crate) fn netpoll_poller_if_started() -> Option<&'static gmp_netpoll::Poller> {
    POLLER.get()
}

static POLLER: std::sync::OnceLock<gmp_netpoll::Poller> = std::sync::OnceLock::new();

/// True when the caller runs as a goroutine (its blocking parks the goroutine).
pub(crate) fn in_goroutine() -> bool {
    proc::current_g().is_some()
}
