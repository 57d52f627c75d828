//! Reference counting of a channel's two sides.
//!
//! A channel is shared by all its `Sender`s and `Receiver`s through one `Arc`; separately
//! it counts senders and receivers, because a channel *disconnects* when either count
//! reaches zero (crossbeam-channel's semantics), long before its memory is freed. The
//! handle whose drop takes a count to zero runs the flavour's disconnect routine; the
//! memory goes when the last handle of either kind is dropped.

use gmp_core::sync::atomic::{AtomicUsize, Ordering};
use gmp_core::sync::Arc;
use std::ops::Deref;

/// The shared part: both counts and the flavour.
struct Counter<C> {
    senders: AtomicUsize,
    receivers: AtomicUsize,
    chan: C,
}

/// Beyond this many handles a count could overflow; crossbeam aborts there too.
const MAX_HANDLES: usize = isize::MAX as usize;

/// Creates both sides of a channel around `chan`.
pub(crate) fn new<C>(chan: C) -> (Side<C>, Side<C>) {
    let counter = Arc::new(Counter {
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
        chan,
    });
    (
        Side {
            counter: counter.clone(),
            sender: true,
        },
        Side {
            counter,
            sender: false,
        },
    )
}

/// One sender or receiver's share of a channel.
pub(crate) struct Side<C> {
    counter: Arc<Counter<C>>,
    sender: bool,
}

impl<C> Side<C> {
    fn count(&self) -> &AtomicUsize {
        if self.sender {
            &self.counter.senders
        } else {
            &self.counter.receivers
        }
    }

    /// Another handle of the same side.
    pub(crate) fn acquire(&self) -> Side<C> {
        // Relaxed: creating a handle from an existing one needs no ordering (as for Arc).
        let n = self.count().fetch_add(1, Ordering::Relaxed);
        if n > MAX_HANDLES {
            std::process::abort();
        }
        Side {
            counter: self.counter.clone(),
            sender: self.sender,
        }
    }

    /// Drops this handle; if it was the last of its side, runs `disconnect`.
    pub(crate) fn release(&self, disconnect: impl FnOnce(&C)) {
        // AcqRel: the last handle's disconnect must see every other handle's operations
        // (they happened before their own decrement).
        if self.count().fetch_sub(1, Ordering::AcqRel) == 1 {
            disconnect(&self.counter.chan);
        }
    }

    /// True if both handles belong to the same channel.
    pub(crate) fn same(&self, other: &Side<C>) -> bool {
        Arc::ptr_eq(&self.counter, &other.counter)
    }
}

impl<C> Deref for Side<C> {
    type Target = C;
    #[inline]
    fn deref(&self) -> &C {
        &self.counter.chan
    }
}
