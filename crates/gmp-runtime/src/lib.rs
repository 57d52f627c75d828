#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod barrier;
pub mod context;
pub mod debug;
pub mod fs;
pub mod future;
mod g;
mod goroutine;
pub mod guide;
pub mod io;
mod job;
mod local;
#[cfg(all(test, loom))]
mod loom_tests;
mod m;
mod metrics;
pub mod net;
mod origin;
mod p;
mod prefetch;
mod proc;
pub mod process;
mod registry;
mod runtime;
mod sched;
mod schedule;
mod scope;
pub mod signal;
mod slab;
mod spawn;
mod stall;
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

/// Spawn blocks (a goroutine's closure and result slot) handed out by gmp's slab
/// allocator and not given back, process-wide: for gmp's own memory tests, which
/// count heap with a global allocator that does not see them. Not part of the API.
#[doc(hidden)]
pub fn __spawn_blocks_in_use() -> usize {
    slab::blocks_in_use()
}

/// True if a panic payload is the forced unwind with which the runtime unwinds a
/// parked goroutine at shutdown. Code that catches panics around a call that can
/// suspend (a channel operation, `sleep`, I/O) must rethrow such a payload with
/// [`std::panic::resume_unwind`]; see [`spawn`](spawn())'s docs.
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
