//! The one-shot timer channel (`after(d)`, `at(t)`): one message, the instant it was due.
//!
//! No timer thread exists: the message is "materialized" when a receiver asks at or after
//! the due time, and a receiver that asks earlier sleeps through the park hook until then
//! (a goroutine sleeps on the scheduler's timers). The `received` flag, swapped once,
//! ensures exactly one receiver ever gets the message; the channel is never
//! disconnected.

use crate::err::{RecvTimeoutError, TryRecvError};
use crate::utils;
use gmp_core::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A channel that delivers one message at `when`.
pub(crate) struct Channel {
    when: Instant,
    received: AtomicBool,
}

impl Channel {
    pub(crate) fn new(when: Instant) -> Self {
        Channel {
            when,
            received: AtomicBool::new(false),
        }
    }

    /// Receives without blocking.
    pub(crate) fn try_recv(&self) -> Result<Instant, TryRecvError> {
        // Relaxed: an optimistic check; the swap below decides.
        if self.received.load(Ordering::Relaxed) || Instant::now() < self.when {
            return Err(TryRecvError::Empty);
        }
        self.claim().ok_or(TryRecvError::Empty)
    }

    fn claim(&self) -> Option<Instant> {
        // Relaxed: the message is a plain value, nothing else is published with it.
        if self.received.swap(true, Ordering::Relaxed) {
            None
        } else {
            Some(self.when)
        }
    }

    /// Receives, sleeping until the message is due or `deadline` passes.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Instant, RecvTimeoutError> {
        // Relaxed: as in `try_recv`.
        if !self.received.load(Ordering::Relaxed) {
            let wake = match deadline {
                Some(d) if d < self.when => {
                    utils::sleep_until(Some(d));
                    return Err(RecvTimeoutError::Timeout);
                }
                _ => self.when,
            };
            utils::sleep_until(Some(wake));
            if let Some(t) = self.claim() {
                return Ok(t);
            }
        }
        // Already delivered to someone: nothing more will ever come.
        utils::sleep_until(deadline);
        Err(RecvTimeoutError::Timeout)
    }

    /// True if a receive would not block.
    pub(crate) fn is_ready(&self) -> bool {
        // Relaxed: a snapshot.
        !self.received.load(Ordering::Relaxed) && Instant::now() >= self.when
    }

    /// When a blocked `select` must wake up to check again.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        // Relaxed: a snapshot; a stale answer only causes one extra wake-up.
        if self.received.load(Ordering::Relaxed) {
            None
        } else {
            Some(self.when)
        }
    }

    /// Messages waiting: 1 once due and not yet received.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.is_ready())
    }
}
