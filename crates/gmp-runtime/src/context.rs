//! Go's `context`: cancellation trees with deadlines.
//!
//! A [`Context`] is a node of a tree. [`Context::background`] is the root (never done).
//! [`with_cancel`](Context::with_cancel), [`with_timeout`](Context::with_timeout) and
//! [`with_deadline`](Context::with_deadline) make a child and return it with its
//! [`Cancel`]. A node ends once: cancelled (its `Cancel` called or dropped — Go's
//! `defer cancel()`), its deadline passed, or its parent ended (with the parent's error).
//!
//! # How a node ends
//!
//! Each node owns the only [`Sender`] of a zero-capacity channel whose [`Receiver`] is
//! [`done`](Context::done). Ending the node drops the sender, which disconnects the
//! channel: every goroutine blocked in `recv(ctx.done())` (alone or in a `select!`) is
//! woken by the channel's own disconnect path, and every later receive returns at once.
//! So a goroutine waits for cancellation exactly as it waits for anything else.
//!
//! A cancellable parent keeps weak references to its children under its lock; ending a
//! node marks it, takes its children and its sender under that lock, then drops the
//! sender and ends the children (an explicit work list: a deep chain does not recurse).
//! A child created under a parent that already ended ends at once. A child ended on its
//! own unlinks itself from its parent, so a long-lived parent does not accumulate dead
//! children.
//!
//! A deadline costs one timer (`time.rs`: a goroutine parked on the per-P timer heap with
//! that deadline), stopped as soon as the node ends for another reason.
//!
//! Go: context.WithCancel, WithDeadline, WithTimeout, propagateCancel,
//! (*cancelCtx).cancel, removeChild.

use crate::chan::{bounded, never, Receiver, Sender};
use crate::time::Shared as TimerShared;
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use gmp_core::sync::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Why a context ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its [`Cancel`] (or a parent's) was called or dropped.
    Canceled,
    /// Its deadline (or a parent's) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

const LIVE: u8 = 0;
const CANCELED: u8 = 1;
const DEADLINE: u8 = 2;

fn code(e: ContextError) -> u8 {
    match e {
        ContextError::Canceled => CANCELED,
        ContextError::DeadlineExceeded => DEADLINE,
    }
}

struct Node {
    id: u64,
    done: Receiver<()>,
    deadline: Option<Instant>,
    /// `LIVE`, or why it ended (a lock-free mirror of `inner.err` for `err()`).
    err: AtomicU8,
    /// The parent to unlink from when cancelled on its own; `None` under the background
    /// context, which never ends and keeps no children.
    parent: Option<Arc<Node>>,
    /// The background context: never ends.
    root: bool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Dropped when the node ends: that disconnects `done`.
    tx: Option<Sender<()>>,
    children: HashMap<u64, Weak<Node>>,
    timer: Option<Arc<TimerShared>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A cancellation scope: Go's `context.Context` without values.
///
/// ```
/// use gmp_runtime::chan::select;
/// use gmp_runtime::context::{Context, ContextError};
/// use std::time::Duration;
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// let (child, _c) = ctx.with_timeout(Duration::from_secs(60));
/// assert!(child.err().is_none());
/// cancel.cancel(); // the parent's cancel ends the child too
/// select! {
///     recv(child.done()) -> _ => {}
///     default(Duration::from_secs(5)) => panic!("not cancelled"),
/// }
/// assert_eq!(child.err(), Some(ContextError::Canceled));
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

/// Ends its context: [`cancel`](Cancel::cancel), or drop it (Go's `defer cancel()`).
#[must_use = "dropping a Cancel cancels its context at once"]
pub struct Cancel {
    node: Arc<Node>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.node.deadline)
            .field("err", &self.err())
            .finish()
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel").finish_non_exhaustive()
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::background()
    }
}

impl Context {
    /// The root context: never cancelled, no deadline (Go's `context.Background()`).
    ///
    /// ```
    /// let bg = gmp_runtime::context::Context::background();
    /// assert!(bg.err().is_none() && bg.deadline().is_none());
    /// ```
    pub fn background() -> Context {
        static ROOT: OnceLock<Arc<Node>> = OnceLock::new();
        Context {
            node: ROOT
                .get_or_init(|| {
                    Arc::new(Node {
                        id: 0,
                        done: never(),
                        deadline: None,
                        err: AtomicU8::new(LIVE),
                        parent: None,
                        root: true,
                        inner: Mutex::new(Inner::default()),
                    })
                })
                .clone(),
        }
    }

    /// A child that ends when `cancel` is called (or dropped), or when `self` ends.
    ///
    /// ```
    /// use gmp_runtime::context::{Context, ContextError};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// drop(cancel);
    /// assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// ```
    pub fn with_cancel(&self) -> (Context, Cancel) {
        self.child(self.node.deadline)
    }

    /// A child that also ends at `deadline` (with [`ContextError::DeadlineExceeded`]).
    /// If `self` ends earlier, the child keeps the parent's deadline.
    ///
    /// ```
    /// use gmp_runtime::context::{Context, ContextError};
    /// use std::time::Instant;
    /// let (ctx, _cancel) = Context::background().with_deadline(Instant::now());
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> (Context, Cancel) {
        if self.node.deadline.is_some_and(|d| d <= deadline) {
            // Go: the parent's deadline is earlier; this is just a cancel context.
            return self.with_cancel();
        }
        let (ctx, cancel) = self.child(Some(deadline));
        if ctx.err().is_none() {
            if Instant::now() >= deadline {
                end(&ctx.node, ContextError::DeadlineExceeded);
            } else {
                let weak = Arc::downgrade(&ctx.node);
                let cb: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                    if let Some(n) = weak.upgrade() {
                        end(&n, ContextError::DeadlineExceeded);
                    }
                });
                let mut inner = ctx.node.inner.lock();
                if inner.tx.is_some() {
                    inner.timer = Some(crate::time::callback_at(deadline, cb));
                }
            }
        }
        (ctx, cancel)
    }

    /// A child that also ends after `timeout` (`with_deadline(now + timeout)`).
    ///
    /// ```
    /// use gmp_runtime::context::{Context, ContextError};
    /// use std::time::Duration;
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(2));
    /// let _ = ctx.done().recv(); // disconnected when the deadline passes
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> (Context, Cancel) {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30));
        self.with_deadline(deadline)
    }

    /// A channel that is disconnected when the context ends (it never carries a value):
    /// `recv` on it returns `Err` once the context is done, so it can be an arm of a
    /// `select!`.
    ///
    /// ```
    /// use gmp_runtime::context::Context;
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert!(ctx.done().try_recv().unwrap_err().is_empty());
    /// cancel.cancel();
    /// assert!(ctx.done().recv().is_err());
    /// ```
    pub fn done(&self) -> &Receiver<()> {
        &self.node.done
    }

    /// Why the context ended, or `None` while it is live.
    ///
    /// ```
    /// let bg = gmp_runtime::context::Context::background();
    /// assert_eq!(bg.err(), None);
    /// ```
    pub fn err(&self) -> Option<ContextError> {
        // Acquire: pairs with the Release in `end`, so a caller that sees the error also
        // sees everything the canceller did before cancelling.
        match self.node.err.load(Ordering::Acquire) {
            CANCELED => Some(ContextError::Canceled),
            DEADLINE => Some(ContextError::DeadlineExceeded),
            _ => None,
        }
    }

    /// The instant the context ends by itself, if it has a deadline (its own or an
    /// ancestor's).
    ///
    /// ```
    /// use gmp_runtime::context::Context;
    /// use std::time::Duration;
    /// let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(1));
    /// assert!(ctx.deadline().is_some());
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// True once the context has ended (`err().is_some()`).
    ///
    /// ```
    /// let (ctx, cancel) = gmp_runtime::context::Context::background().with_cancel();
    /// cancel.cancel();
    /// assert!(ctx.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    fn child(&self, deadline: Option<Instant>) -> (Context, Cancel) {
        let (tx, rx) = bounded(0);
        let cancellable_parent = !self.node.root;
        let node = Arc::new(Node {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            done: rx,
            deadline,
            err: AtomicU8::new(LIVE),
            parent: cancellable_parent.then(|| self.node.clone()),
            root: false,
            inner: Mutex::new(Inner {
                tx: Some(tx),
                children: HashMap::new(),
                timer: None,
            }),
        });
        if cancellable_parent {
            // Go: propagateCancel. Checking and linking under the parent's lock: either
            // the parent's `end` sees us, or we see that it ended.
            let mut p = self.node.inner.lock();
            if p.tx.is_some() {
                p.children.insert(node.id, Arc::downgrade(&node));
            } else {
                drop(p);
                let e = self.err().unwrap_or(ContextError::Canceled);
                end(&node, e);
            }
        }
        (Context { node: node.clone() }, Cancel { node })
    }
}

impl Cancel {
    /// Ends the context (and its descendants) with [`ContextError::Canceled`]; does
    /// nothing if it has already ended.
    ///
    /// ```
    /// let (ctx, cancel) = gmp_runtime::context::Context::background().with_cancel();
    /// cancel.cancel();
    /// cancel.cancel(); // idempotent
    /// assert!(ctx.is_done());
    /// ```
    pub fn cancel(&self) {
        if end(&self.node, ContextError::Canceled) {
            // Go: removeChild. Only the node cancelled on its own leaves its parent;
            // descendants are dropped with the parent's map.
            if let Some(p) = &self.node.parent {
                p.inner.lock().children.remove(&self.node.id);
            }
        }
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Ends `node` and its descendants with `err`; false if `node` had already ended.
fn end(node: &Arc<Node>, err: ContextError) -> bool {
    let mut work = vec![node.clone()];
    let mut first = true;
    let mut ended_first = false;
    while let Some(n) = work.pop() {
        let (tx, children, timer) = {
            let mut inner = n.inner.lock();
            let Some(tx) = inner.tx.take() else {
                first = false;
                continue;
            };
            // Release: see `err`.
            n.err.store(code(err), Ordering::Release);
            (tx, std::mem::take(&mut inner.children), inner.timer.take())
        };
        if first {
            ended_first = true;
            first = false;
        }
        // Disconnects `done`: wakes every receiver and select waiting on it.
        drop(tx);
        if let Some(t) = timer {
            t.stop();
        }
        work.extend(children.into_values().filter_map(|w| w.upgrade()));
    }
    ended_first
}
