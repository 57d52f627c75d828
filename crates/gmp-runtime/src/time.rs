//! Go's `time.Timer`, `time.Ticker` and `time.AfterFunc`, on the per-P timer heaps.
//!
//! # How a timer runs
//!
//! An armed timer is served by one parked goroutine of its own (spawned when the timer is
//! armed, on the current runtime — the default runtime when armed from a plain thread).
//! That goroutine parks with the timer's deadline, which puts exactly one entry on the
//! timer heap of its P (`timers.rs`); no OS thread is involved, and while nothing is due
//! it costs one parked goroutine (a lazily committed stack from the pool). When the
//! deadline comes the scheduler readies it, and it fires under the timer's lock: a
//! [`Timer`] sends the time on its channel, a [`Ticker`] sends (dropping the tick if the
//! previous one was not received) and re-arms, an [`after_func`] timer runs `f` in that
//! same goroutine. A timer that is stopped (or that fired and was not reset) has no
//! goroutine: [`stop`](Timer::stop) unparks the serving goroutine, which sees the timer
//! disarmed and exits; [`reset`](Timer::reset) re-uses a running one or spawns a new one.
//!
//! So an armed timer costs a goroutine and a heap entry where Go's costs a heap entry
//! only; the runtime's heaps hold goroutines, not callbacks, and this keeps the timer
//! machinery out of the scheduler core. The serving goroutine belongs to the runtime it
//! was spawned on: if that runtime shuts down, the timer stops with it (its goroutine is
//! unwound; a later `reset` spawns a new one where it is called).
//!
//! # Stale values (Go 1.23's guarantee)
//!
//! Firing and `stop`/`reset` take the same lock, and `stop`/`reset` drain the channel
//! under it: once either returns, no value prepared before the call can be received.
//! As in Go 1.23, `stop` and `reset` return `true` if the timer was armed *or* a value it
//! had sent was still waiting in the channel (the call prevented its receipt).
//!
//! Go: time.NewTimer, (*Timer).Stop/Reset, time.NewTicker, time.AfterFunc;
//! runtime.(*timer).stop/modify, timerchandrain.

use crate::chan::{bounded, never, Receiver, Sender};
use gmp_core::park::{self, Unparker};
use gmp_core::sync::Mutex;
// std's `Arc`, not the shim's: it holds `dyn` callbacks (loom's cannot), and no loom model
// covers timers (their protocol is the park hook's and the timer heap's, modelled there).
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What firing does.
enum Action {
    /// Send the time on the timer's channel (dropped if the one-slot buffer is full).
    Send(Sender<Instant>),
    /// Run a function once (`after_func`).
    Func(Option<Box<dyn FnOnce() + Send>>),
    /// Run a callback each time it fires (context deadlines).
    Callback(Arc<dyn Fn() + Send + Sync>),
}

struct State {
    /// When the timer fires next; `None` when disarmed.
    when: Option<Instant>,
    /// A ticker's period.
    period: Option<Duration>,
    /// A goroutine is serving the timer.
    running: bool,
    /// The serving goroutine, once it has started.
    server: Option<Unparker>,
    action: Action,
}

/// The timer shared by its handle and its serving goroutine.
pub(crate) struct Shared {
    st: Mutex<State>,
}

impl Shared {
    fn new(action: Action, period: Option<Duration>) -> Arc<Shared> {
        Arc::new(Shared {
            st: Mutex::new(State {
                when: None,
                period,
                running: false,
                server: None,
                action,
            }),
        })
    }

    /// Arms the timer for `when`; true if it was armed before.
    fn arm(self: &Arc<Self>, when: Instant, period: Option<Duration>) -> bool {
        self.arm_with(when, period, || false)
    }

    /// Arms the timer for `when`, first running `pre` under the timer's lock (a reset's
    /// drain of the channel, so that no fire of the old arming can slip in between);
    /// returns whether it was armed before, or'ed with `pre`'s answer.
    fn arm_with(
        self: &Arc<Self>,
        when: Instant,
        period: Option<Duration>,
        pre: impl FnOnce() -> bool,
    ) -> bool {
        let mut st = self.st.lock();
        let was = pre() | st.when.replace(when).is_some();
        if period.is_some() {
            st.period = period;
        }
        if st.running {
            let server = st.server.clone();
            drop(st);
            if let Some(u) = server {
                u.unpark();
            }
        } else {
            st.running = true;
            drop(st);
            let me = self.clone();
            // SAFETY: the serving goroutine holds no thread-local state across its parks
            // (it re-reads everything under the timer's lock after each one); a user's
            // `after_func` closure runs under `after_func`'s own contract.
            drop(unsafe { crate::spawn(move || serve(&me)) });
        }
        was
    }

    /// Disarms the timer; true if it was armed.
    fn disarm(&self) -> bool {
        let mut st = self.st.lock();
        let was = st.when.take().is_some();
        let server = if st.running { st.server.clone() } else { None };
        drop(st);
        if let Some(u) = server {
            u.unpark();
        }
        was
    }

    /// Stops a context's deadline timer.
    pub(crate) fn stop(&self) {
        self.disarm();
    }
}

/// The serving goroutine leaves the timer consistent even if it is unwound (runtime
/// shutdown): a later `reset` then starts a new one.
struct Leave<'a>(&'a Shared);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut st = self.0.st.lock();
        st.running = false;
        st.server = None;
    }
}

/// The body of a timer's goroutine (see the module docs).
fn serve(sh: &Shared) {
    sh.st.lock().server = Some(park::current());
    let leave = Leave(sh);
    loop {
        let mut st = sh.st.lock();
        let Some(when) = st.when else {
            return; // disarmed: `leave` marks the timer idle under the lock
        };
        let now = Instant::now();
        if now < when {
            drop(st);
            // One entry on this P's timer heap; `stop`/`reset` unpark us early.
            park::park_deadline(when);
            continue;
        }
        match &mut st.action {
            Action::Send(tx) => {
                let _ = tx.try_send(now);
                match st.period {
                    Some(p) => {
                        // Go: a ticker skips the ticks it missed rather than bursting.
                        let late = now.duration_since(when).as_nanos() / p.as_nanos().max(1);
                        let next = when + p * (u32::try_from(late + 1).unwrap_or(u32::MAX));
                        st.when = Some(next);
                    }
                    None => {
                        st.when = None;
                    }
                }
            }
            Action::Func(f) => {
                let f = f.take();
                st.when = None;
                st.running = false;
                st.server = None;
                drop(st);
                std::mem::forget(leave);
                if let Some(f) = f {
                    f();
                }
                return;
            }
            Action::Callback(cb) => {
                let cb = cb.clone();
                st.when = None;
                st.running = false;
                st.server = None;
                drop(st);
                std::mem::forget(leave);
                cb();
                return;
            }
        }
    }
}

fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}

/// Go's `time.Timer`: one value on [`receiver`](Timer::receiver) when it fires, unless
/// stopped first.
///
/// Dropping a channel timer stops it; dropping an [`after_func`] timer does not (its
/// function still runs, as in Go).
///
/// ```
/// use gmp_runtime::time::Timer;
/// use std::time::Duration;
///
/// let t = Timer::new(Duration::from_millis(5));
/// let fired = t.receiver().recv().unwrap();
/// assert!(!t.stop()); // already fired and received
/// assert!(!t.reset(Duration::from_secs(60)));
/// assert!(t.stop()); // stopped before firing
/// # let _ = fired;
/// ```
pub struct Timer {
    shared: Arc<Shared>,
    rx: Receiver<Instant>,
    func: bool,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = self.shared.st.lock().when;
        f.debug_struct("Timer").field("when", &when).finish()
    }
}

impl Timer {
    /// A timer that sends the current time on its channel after `d`.
    ///
    /// ```
    /// use gmp_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::from_millis(1));
    /// t.receiver().recv().unwrap();
    /// ```
    pub fn new(d: Duration) -> Timer {
        let (tx, rx) = bounded(1);
        let shared = Shared::new(Action::Send(tx), None);
        shared.arm(deadline_after(d), None);
        Timer {
            shared,
            rx,
            func: false,
        }
    }

    /// The channel the timer fires on (Go's `t.C`). An [`after_func`] timer's never
    /// receives anything.
    ///
    /// ```
    /// use gmp_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::from_secs(60));
    /// assert!(t.receiver().try_recv().is_err());
    /// ```
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the timer. Returns true if the call stopped it: it was armed, or the value
    /// it sent had not been received yet (that value is discarded: Go 1.23).
    ///
    /// ```
    /// use gmp_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::from_secs(60));
    /// assert!(t.stop());
    /// assert!(!t.stop());
    /// ```
    pub fn stop(&self) -> bool {
        let mut st = self.shared.st.lock();
        let mut was = st.when.take().is_some();
        was |= self.drain();
        let server = if st.running { st.server.clone() } else { None };
        drop(st);
        if let Some(u) = server {
            u.unpark();
        }
        was
    }

    /// Re-arms the timer to fire after `d` (from now). Returns what [`stop`](Timer::stop)
    /// would have: whether the timer was armed (or had an unreceived value, discarded).
    ///
    /// ```
    /// use gmp_runtime::time::Timer;
    /// use std::time::Duration;
    /// let t = Timer::new(Duration::from_secs(60));
    /// assert!(t.reset(Duration::from_millis(1)));
    /// t.receiver().recv().unwrap();
    /// ```
    pub fn reset(&self, d: Duration) -> bool {
        // The drain and the re-arm under one lock: a fire of the old arming either
        // happened before (and is drained) or sees the new deadline.
        self.shared
            .arm_with(deadline_after(d), None, || self.drain())
    }

    /// Discards a sent, unreceived value (timer lock held by the caller).
    fn drain(&self) -> bool {
        !self.func && self.rx.try_recv().is_ok()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.func {
            self.shared.disarm();
        }
    }
}

/// Go's `time.AfterFunc`: runs `f` in its own goroutine once `d` has passed, unless the
/// returned timer is stopped first. Dropping the timer does not cancel it.
///
/// [`Timer::reset`] before `f` ran moves its time (or re-arms a stopped timer). `f` is an
/// `FnOnce`, so unlike Go it runs at most once: a reset after it ran arms a timer that
/// fires without running anything.
///
/// # Safety
///
/// As [`spawn`](fn@crate::spawn): `f` runs as a goroutine, and must not hold thread-local
/// state across a suspension point.
///
/// ```
/// use gmp_runtime::time::after_func;
/// use std::time::Duration;
///
/// let (tx, rx) = gmp_runtime::chan::bounded(1);
/// // SAFETY: the closure holds no thread-local state.
/// let t = unsafe { after_func(Duration::from_millis(1), move || tx.send(7).unwrap()) };
/// assert_eq!(rx.recv(), Ok(7));
/// assert!(!t.stop());
/// ```
pub unsafe fn after_func<F>(d: Duration, f: F) -> Timer
where
    F: FnOnce() + Send + 'static,
{
    let shared = Shared::new(Action::Func(Some(Box::new(f))), None);
    shared.arm(deadline_after(d), None);
    Timer {
        shared,
        rx: never(),
        func: true,
    }
}

/// Runs `cb` after `d` (context deadlines); the returned handle stops it.
pub(crate) fn callback_at(when: Instant, cb: Arc<dyn Fn() + Send + Sync>) -> Arc<Shared> {
    let shared = Shared::new(Action::Callback(cb), None);
    shared.arm(when, None);
    shared
}

/// Go's `time.Ticker`: sends the time on its channel every period; a tick is dropped
/// if the previous one has not been received (the channel holds one).
///
/// Dropping the ticker stops it.
///
/// ```
/// use gmp_runtime::time::Ticker;
/// use std::time::Duration;
///
/// let t = Ticker::new(Duration::from_millis(2));
/// for _ in 0..3 {
///     t.receiver().recv().unwrap();
/// }
/// t.stop();
/// ```
pub struct Ticker {
    timer: Timer,
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.timer.shared.st.lock();
        f.debug_struct("Ticker")
            .field("period", &st.period)
            .field("next", &st.when)
            .finish()
    }
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    ///
    /// With `non-positive interval for Ticker::new` if `d` is zero (Go's message).
    ///
    /// ```
    /// use gmp_runtime::time::Ticker;
    /// use std::time::Duration;
    /// let t = Ticker::new(Duration::from_millis(1));
    /// t.receiver().recv().unwrap();
    /// ```
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for Ticker::new");
        let (tx, rx) = bounded(1);
        let shared = Shared::new(Action::Send(tx), Some(d));
        shared.arm(deadline_after(d), Some(d));
        Ticker {
            timer: Timer {
                shared,
                rx,
                func: false,
            },
        }
    }

    /// The channel the ticks arrive on (Go's `t.C`).
    ///
    /// ```
    /// use gmp_runtime::time::Ticker;
    /// use std::time::Duration;
    /// let t = Ticker::new(Duration::from_secs(60));
    /// assert!(t.receiver().try_recv().is_err());
    /// ```
    pub fn receiver(&self) -> &Receiver<Instant> {
        self.timer.receiver()
    }

    /// Stops the ticker: no tick is received after this returns (a pending one is
    /// discarded). It can be restarted with [`reset`](Ticker::reset).
    ///
    /// ```
    /// use gmp_runtime::time::Ticker;
    /// use std::time::Duration;
    /// let t = Ticker::new(Duration::from_millis(1));
    /// t.stop();
    /// assert!(t.receiver().recv_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn stop(&self) {
        self.timer.stop();
    }

    /// Stops the ticker and restarts it with period `d`, the next tick `d` from now.
    ///
    /// # Panics
    ///
    /// With `non-positive interval for Ticker::reset` if `d` is zero.
    ///
    /// ```
    /// use gmp_runtime::time::Ticker;
    /// use std::time::Duration;
    /// let t = Ticker::new(Duration::from_secs(60));
    /// t.reset(Duration::from_millis(1));
    /// t.receiver().recv().unwrap();
    /// ```
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for Ticker::reset");
        self.timer
            .shared
            .arm_with(deadline_after(d), Some(d), || self.timer.drain());
    }
}
