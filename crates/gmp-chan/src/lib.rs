//! Channels and `select` for gmp: the API of [crossbeam-channel] 0.5, blocking through
//! gmp-core's park hook so that goroutines and plain threads can share a channel.
//!
//! ```
//! use gmp_chan::{bounded, select, unbounded};
//! use std::thread;
//! use std::time::Duration;
//!
//! // A buffered channel and a worker thread (a goroutine works the same way).
//! let (jobs, inbox) = bounded::<u64>(16);
//! let (results, outbox) = unbounded();
//! let worker = thread::spawn(move || {
//!     for n in inbox {
//!         results.send(n * n).unwrap();
//!     }
//! });
//! for n in 1..=4 {
//!     jobs.send(n).unwrap();
//! }
//! drop(jobs); // closes the channel: the worker's loop ends
//!
//! let mut sum = 0;
//! loop {
//!     select! {
//!         recv(outbox) -> msg => match msg {
//!             Ok(sq) => sum += sq,
//!             Err(_) => break, // worker finished and dropped its sender
//!         },
//!         default(Duration::from_secs(10)) => panic!("worker stuck"),
//!     }
//! }
//! assert_eq!(sum, 1 + 4 + 9 + 16);
//! worker.join().unwrap();
//! ```
//!
//! # What it is
//!
//! - [`bounded`]`(cap)` (with `cap == 0` Go's unbuffered rendezvous channel, handing each
//!   message directly from sender to receiver), [`unbounded`], and the timer channels
//!   [`after`], [`at`], [`tick`], [`never()`](never());
//! - [`Sender`] and [`Receiver`], both `Clone`, `Send` and `Sync`; a channel is
//!   *disconnected* when all its senders or all its receivers are gone, and a message that
//!   could not be delivered comes back inside the error;
//! - [`select!`], [`select_biased!`] and the dynamic [`Select`]: wait on several operations
//!   and complete exactly one; when several are ready each is equally likely (Go's
//!   `pollorder`); waiters on one channel are served first come, first served.
//!
//! Code written for crossbeam-channel compiles against this crate by changing the import.
//!
//! # How it blocks
//!
//! Every wait goes through [`gmp_core::park`]: a waiter registers a record holding
//! `park::current()` in the channel's wait queue and parks; a peer that makes progress
//! wins the record's decision word and unparks it. Inside a gmp goroutine that parks the
//! goroutine (its thread goes on running others); on a plain thread it parks the thread.
//! Timers and timeouts are deadline parks, not timer threads. See the module docs of
//! `context`, `waker`, `select` and each flavour for the algorithms.
//!
//! [crossbeam-channel]: https://docs.rs/crossbeam-channel/0.5

mod channel;
mod context;
mod counter;
mod err;
mod flavors;
mod select;
mod select_macro;
pub mod sync;
mod utils;
mod waker;

#[cfg(feature = "futures")]
pub use crate::channel::async_ops::RecvStream;
pub use crate::channel::async_ops::{RecvFut, SendFut};
pub use crate::channel::{
    after, at, bounded, never, tick, unbounded, IntoIter, Iter, Receiver, Sender, TryIter,
};
pub use crate::err::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
pub use crate::select::{Select, SelectedOperation};

/// Items used by the expansion of [`select!`]; not part of the API.
#[doc(hidden)]
pub mod internal {
    pub use crate::select::{select, select_timeout, try_select, SelectArm};
}
