//! The channel that never delivers (`never()`): receiving blocks forever (or until a
//! deadline), `select` never chooses it. It holds nothing, so `never()` is a `const fn`.

use crate::err::RecvTimeoutError;
use crate::utils;
use std::marker::PhantomData;
use std::time::Instant;

/// A channel that never delivers a `T`.
pub(crate) struct Channel<T> {
    _marker: PhantomData<T>,
}

impl<T> Channel<T> {
    pub(crate) const fn new() -> Self {
        Channel {
            _marker: PhantomData,
        }
    }

    /// Sleeps until `deadline` (forever if `None`), then times out.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        utils::sleep_until(deadline);
        Err(RecvTimeoutError::Timeout)
    }
}
