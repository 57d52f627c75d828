#![doc = include_str!("../README.md")]

mod channel;
mod context;
mod counter;
mod err;
mod flavors;
mod select;
mod select_macro;
mod utils;
mod waker;

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
