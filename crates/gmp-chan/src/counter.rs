//! Reference counting of a channel's two sides.
//!
//! A channel is shared by all its `Sender`s and `Receiver`s through one `Arc`; separately
//! it counts senders and receivers, because a channel *disconnects* when either count
//! reaches zero (crossbeam-channel's semantics), long before its memory is freed. The
//! handle whose drop takes a count to zero runs the flavour's disconnect routine; the
//! memory goes when the last handle of either kind is dropped.

use gmp_core::sync::atomic::{AtomicU32, Ordering};
use gmp_core::sync::Arc;
use std::ops::Deref;

/// The shared part: both counts and the flavour.
///
/// The counts are 32 bits: together they take the 8 bytes one `usize` would, and a
/// zero-capacity channel (with the `Arc`'s own counts, 120 bytes) then comes from glibc's
/// 128-byte chunks instead of 144 — a channel per parked goroutine is common (idlemem,
/// park1m). The cost is the limit below.
struct Counter<C> {
    senders: AtomicU32,
    receivers: AtomicU32,
    chan: C,
}

/// Beyond this many handles of one side the process aborts (as `Arc` does beyond
/// `isize::MAX`, and crossbeam-channel there too): 2^31 live handles, or clones leaked
/// with `mem::forget`. The check follows every increment, so a count cannot wrap: that
/// would take 2^31 threads cloning at once.
const MAX_HANDLES: u32 = i32::MAX as u32;

/// Creates both sides of a channel around `chan`.
pub(crate) fn new<C>(chan: C) -> (Side<C, SENDER>, Side<C, RECEIVER>) {
    let counter = Arc::new(Counter {
        senders: AtomicU32::new(1),
        receivers: AtomicU32::new(1),
        chan,
    });
    (
        Side {
            counter: counter.clone(),
        },
        Side { counter },
    )
}

/// [`Side`]'s parameter for a sender's share.
pub(crate) const SENDER: bool = true;
/// [`Side`]'s parameter for a receiver's share.
pub(crate) const RECEIVER: bool = false;

/// One sender's (`S` = [`SENDER`]) or receiver's share of a channel. Which side is in
/// the type, not in a field: a handle is one pointer, and a `Sender` or `Receiver` (an
/// enum of the flavours) two words instead of three.
pub(crate) struct Side<C, const S: bool> {
    counter: Arc<Counter<C>>,
}

impl<C, const S: bool> Side<C, S> {
    fn count(&self) -> &AtomicU32 {
        if S {
            &self.counter.senders
        } else {
            &self.counter.receivers
        }
    }

    /// Another handle of the same side.
    pub(crate) fn acquire(&self) -> Side<C, S> {
        // Relaxed: creating a handle from an existing one needs no ordering (as for Arc).
        let n = self.count().fetch_add(1, Ordering::Relaxed);
        if n > MAX_HANDLES {
            std::process::abort();
        }
        Side {
            counter: self.counter.clone(),
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
    pub(crate) fn same(&self, other: &Side<C, S>) -> bool {
        Arc::ptr_eq(&self.counter, &other.counter)
    }
}

impl<C, const S: bool> Deref for Side<C, S> {
    type Target = C;
    #[inline]
    fn deref(&self) -> &C {
        &self.counter.chan
    }
}

// A zero-capacity channel's allocation (the `Arc`'s two counts and `Counter`) stays
// within 120 bytes, a 128-byte glibc chunk (see `Counter`).
#[cfg(not(loom))] // loom's atomics are larger
const _: () =
    assert!(std::mem::size_of::<Counter<crate::flavors::zero::Channel<()>>>() + 16 <= 120);
