//! The periodic timer channel (`tick(d)`): a message every period, the instant it was due.
//!
//! Like [`at`](super::at) there is no timer thread: `next` is the due time of the next
//! message, held in a mutex (an `Instant` is two words). A receiver that claims a message
//! moves `next` one period past the later of its due time and now, so a slow receiver
//! gets one late message and then the ticks resume from now (capacity one: ticks missed
//! while nobody received are not queued up), as crossbeam-channel's `tick` does.

use crate::err::{RecvTimeoutError, TryRecvError};
use crate::utils;
use gmp_core::sync::Mutex;
use std::time::{Duration, Instant};

/// A channel that delivers a message every `period`.
pub(crate) struct Channel {
    next: Mutex<Instant>,
    period: Duration,
}

fn add(t: Instant, d: Duration) -> Instant {
    // A period so long that the next tick is beyond `Instant`'s range never fires.
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(86400 * 365 * 100))
}

impl Channel {
    pub(crate) fn new(first: Instant, period: Duration) -> Self {
        Channel {
            next: Mutex::new(first),
            period,
        }
    }

    /// Receives without blocking.
    pub(crate) fn try_recv(&self) -> Result<Instant, TryRecvError> {
        let mut next = self.next.lock();
        let now = Instant::now();
        if now < *next {
            return Err(TryRecvError::Empty);
        }
        let due = *next;
        *next = add(now, self.period);
        Ok(due)
    }

    /// Receives, sleeping until the next tick or `deadline`.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Instant, RecvTimeoutError> {
        let due = {
            let mut next = self.next.lock();
            let due = *next;
            if let Some(d) = deadline {
                if d < due {
                    drop(next);
                    utils::sleep_until(Some(d));
                    return Err(RecvTimeoutError::Timeout);
                }
            }
            *next = add(due.max(Instant::now()), self.period);
            due
        };
        utils::sleep_until(Some(due));
        Ok(due)
    }

    /// True if a receive would not block.
    pub(crate) fn is_ready(&self) -> bool {
        Instant::now() >= *self.next.lock()
    }

    /// When the next message is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        Some(*self.next.lock())
    }

    /// Messages waiting: 1 once due.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.is_ready())
    }
}
