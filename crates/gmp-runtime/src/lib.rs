#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(missing_docs))]

mod g;
mod goroutine;
pub mod guide;
#[cfg(all(test, loom))]
mod loom_tests;
mod m;
pub mod net;
mod p;
mod proc;
mod registry;
mod runtime;
mod sched;
mod scope;
mod spawn;
mod sysmon;
mod timers;

pub use goroutine::{
    blocking, current, park, park_timeout, sleep, sleep_until, yield_now, Goroutine, GoroutineId,
    JoinHandle,
};
pub use runtime::{gomaxprocs, num_goroutine, run, Runtime, RuntimeBuilder};
pub use scope::{scope, Scope, ScopedJoinHandle};
#[doc(hidden)]
pub use spawn::__go_unchecked;
pub use spawn::{spawn, Builder};

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
