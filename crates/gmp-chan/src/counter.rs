//! Reference counting of a channel's two sides.
//!
//! A channel is one heap block shared by all its `Sender`s and `Receiver`s; it counts
//! senders and receivers, because a channel *disconnects* when either count reaches zero
//! (crossbeam-channel's semantics), long before its memory is freed. The handle whose
//! drop takes its side's count to zero runs the flavour's disconnect routine; the memory
//! goes when the last handle of either kind is dropped.
//!
//! Both counts share one word and nothing else counts: no `Arc` with its own two counts
//! around it. The last handle of a side keeps its count while it disconnects (so the
//! other side cannot free the channel under it), then gives it up; whoever takes the
//! word to zero frees. A zero-capacity channel of `()` is then 104 bytes, a 112-byte
//! glibc chunk instead of 128 with an `Arc` (a channel per parked goroutine is common:
//! idlemem, park1m).

use gmp_core::sync::atomic::{AtomicU64, Ordering};
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// The shared block: both counts and the flavour.
struct Counter<C> {
    /// Senders in the low 32 bits, receivers in the high 32.
    counts: AtomicU64,
    chan: C,
    /// Under loom, a tracked allocation that lives exactly as long as the channel: a
    /// channel nobody frees fails the model ("Arc leaked").
    #[cfg(loom)]
    _live: gmp_core::sync::Arc<()>,
}

/// Beyond this many handles of one side the process aborts (as `Arc` does beyond
/// `isize::MAX`, and crossbeam-channel there too): 2^31 live handles, or clones leaked
/// with `mem::forget`. The check follows every increment, so a count cannot reach the
/// other side's half: that would take 2^31 threads cloning at once.
const MAX_HANDLES: u64 = i32::MAX as u64;

/// Creates both sides of a channel around `chan`.
pub(crate) fn new<C>(chan: C) -> (Side<C, SENDER>, Side<C, RECEIVER>) {
    let counter = NonNull::from(Box::leak(Box::new(Counter {
        counts: AtomicU64::new(Side::<C, SENDER>::ONE + Side::<C, RECEIVER>::ONE),
        chan,
        #[cfg(loom)]
        _live: gmp_core::sync::Arc::new(()),
    })));
    (
        Side {
            counter,
            _owns: PhantomData,
        },
        Side {
            counter,
            _owns: PhantomData,
        },
    )
}

/// [`Side`]'s parameter for a sender's share.
pub(crate) const SENDER: bool = true;
/// [`Side`]'s parameter for a receiver's share.
pub(crate) const RECEIVER: bool = false;

/// One sender's (`S` = [`SENDER`]) or receiver's share of a channel: one count of its
/// side. Which side is in the type, not in a field: a handle is one pointer, and a
/// `Sender` or `Receiver` (an enum of the flavours) two words instead of three.
///
/// Its count is given back only by [`Side::release`] (the `Sender`'s or `Receiver`'s
/// `Drop`, which knows the flavour's disconnect routine); a `Side` dropped without it
/// leaks the channel.
pub(crate) struct Side<C, const S: bool> {
    counter: NonNull<Counter<C>>,
    /// A share of the block, as an `Arc<Counter<C>>` would be (for auto traits and
    /// drop check).
    _owns: PhantomData<Counter<C>>,
}

// SAFETY: a handle gives shared access to `C` from any thread and may be the one that
// drops it, as an `Arc<C>` does: `Send` and `Sync` when `C` is both.
unsafe impl<C: Send + Sync, const S: bool> Send for Side<C, S> {}
// SAFETY: as above.
unsafe impl<C: Send + Sync, const S: bool> Sync for Side<C, S> {}

impl<C, const S: bool> Side<C, S> {
    /// One count of this side in the shared word.
    const ONE: u64 = if S { 1 } else { 1 << 32 };

    /// This side's count in the word `w`.
    #[inline]
    fn mine(w: u64) -> u64 {
        if S {
            w & u64::from(u32::MAX)
        } else {
            w >> 32
        }
    }

    #[inline]
    fn counter(&self) -> &Counter<C> {
        // SAFETY: the block lives while any handle holds a count, and this one does
        // until its `release`, which consumes the right to use it.
        unsafe { self.counter.as_ref() }
    }

    /// Another handle of the same side.
    pub(crate) fn acquire(&self) -> Side<C, S> {
        // Relaxed: creating a handle from an existing one needs no ordering (as for Arc).
        let prev = self
            .counter()
            .counts
            .fetch_add(Self::ONE, Ordering::Relaxed);
        if Self::mine(prev) >= MAX_HANDLES {
            std::process::abort();
        }
        Side {
            counter: self.counter,
            _owns: PhantomData,
        }
    }

    /// Gives this handle's count back; if it was the last of its side, runs
    /// `disconnect` first; if it was the last handle of the channel, frees it. The
    /// handle must not be used afterwards (the `Drop` of a `Sender`/`Receiver` calls it).
    pub(crate) fn release(&self, disconnect: impl FnOnce(&C)) {
        let counts = &self.counter().counts;
        // Acquire (load and failed CAS): if we turn out to be the last of our side, our
        // disconnect sees every other handle's operations, which happened before their
        // own Release decrement.
        let mut w = counts.load(Ordering::Acquire);
        while Self::mine(w) > 1 {
            // Release: our operations happen before the last handle's disconnect.
            match counts.compare_exchange_weak(
                w,
                w - Self::ONE,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
        // The last handle of our side: none other exists to change our half, and our
        // count keeps the block alive while we disconnect. Given back after it, also
        // if it panics (a task waker woken by the disconnect may).
        let _give_back = LastCount(self);
        disconnect(&self.counter().chan);
    }

    /// True if both handles belong to the same channel.
    pub(crate) fn same(&self, other: &Side<C, S>) -> bool {
        self.counter == other.counter
    }
}

/// The count of the last handle of a side, given back when dropped: the word reaching
/// zero is the end of the channel, and whoever makes it so frees the block, once.
struct LastCount<'a, C, const S: bool>(&'a Side<C, S>);

impl<C, const S: bool> Drop for LastCount<'_, C, S> {
    fn drop(&mut self) {
        let counter = self.0.counter;
        // AcqRel: Release orders our disconnect before the other side's free; Acquire
        // orders the other side's last uses before ours.
        let prev = self
            .0
            .counter()
            .counts
            .fetch_sub(Side::<C, S>::ONE, Ordering::AcqRel);
        if prev == Side::<C, S>::ONE {
            // SAFETY: made by `Box::leak` in `new`; no handle holds a count any more, so
            // nobody else can reach it, and only one decrement reaches zero.
            drop(unsafe { Box::from_raw(counter.as_ptr()) });
        }
    }
}

impl<C, const S: bool> Deref for Side<C, S> {
    type Target = C;
    #[inline]
    fn deref(&self) -> &C {
        &self.counter().chan
    }
}

// A zero-capacity channel's allocation (`Counter`, no `Arc` around it) stays within
// 104 bytes, a 112-byte glibc chunk (see the module docs).
#[cfg(not(loom))] // loom's atomics are larger
const _: () = assert!(std::mem::size_of::<Counter<crate::flavors::zero::Channel<()>>>() <= 104);
