#![doc = include_str!("../README.md")]

mod channel;
mod context;
mod counter;
mod err;
mod flavors;
#[cfg(all(test, loom))]
mod loom_tests;
mod select;
mod select_macro;
mod spinlock;
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

/// Hooks for the runtime that runs goroutines (gmp-runtime); not part of the API.
#[doc(hidden)]
pub use crate::context::runtime_support;

/// Items used by the expansion of [`select!`]; not part of the API.
#[doc(hidden)]
pub mod internal {
    pub use crate::select::{select, select_timeout, try_select, SelectArm};
}
