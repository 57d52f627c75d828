//! `select`: wait on several channel operations, complete exactly one.
//!
//! # Algorithm (Go: runtime.selectgo, with crossbeam-channel's two-phase operations)
//!
//! 1. *Poll order.* Unless biased, the operations are shuffled (Fisher–Yates with a
//!    per-thread xorshift generator), so that when several are ready each is chosen with
//!    equal probability, as Go's `pollorder` does.
//! 2. *Try.* Each operation is tried without blocking, in that order; the first that can
//!    proceed is *reserved* (`try_select` fills a [`Token`]: a claimed ring slot, a claimed
//!    list message, a paired zero-capacity waiter, a timer instant) and returned as a
//!    [`SelectedOperation`], which the caller completes with `send`/`recv`. A
//!    non-blocking select makes a second pass before reporting that nothing is ready, so
//!    that the report is linearizable (see `run_select`).
//! 3. *Block.* Otherwise a fresh [`Context`] is registered on every channel. Registering
//!    reports whether the operation became ready meanwhile; if so the select aborts its
//!    own context and retries. Else it parks until a peer decides the context (choosing
//!    one operation: exactly one, because deciding is a CAS on the context's word), a
//!    channel disconnects, or the earliest deadline (the caller's, or a timer channel's)
//!    passes.
//! 4. *Unregister* everywhere, then `accept` the chosen operation (re-try it, or for a
//!    zero-capacity channel take over the peer's pairing). If that fails (another thread
//!    took the message first) go back to 2.
//!
//! Nothing is lost: peers of array and list channels only *notify* (the message stays in
//! the channel until someone reserves it), and zero-capacity peers exchange a message
//! only after winning the waiter's decision word.
//!
//! No lock order is needed (unlike Go, which locks every channel of the select in address
//! order): each channel is locked alone, and the decision word settles races between
//! channels.
//!
//! [`Select::ready`] and friends use the same machinery with *observers* instead of
//! registrations: they are told that something changed and report an index, without
//! reserving anything.

use crate::channel::{self, Receiver, Sender};
use crate::context::{Context, Operation, Selected, WaiterRef};
use crate::err::{
    ReadyTimeoutError, RecvError, SelectTimeoutError, SendError, TryReadyError, TrySelectError,
};
use crate::flavors;
use crate::utils::{self, Backoff};
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::time::{Duration, Instant};

/// What a reservation left for the completing `send`/`recv`; one field per flavour.
#[derive(Debug, Default)]
pub(crate) struct Token {
    pub(crate) array: flavors::array::ArrayToken,
    pub(crate) list: flavors::list::ListToken,
    pub(crate) zero: flavors::zero::ZeroToken,
    /// The message of a timer channel (`at`, `tick`).
    pub(crate) instant: Option<Instant>,
    /// A zero-capacity `select` sender to wake once the channel lock is released (its
    /// record, won by this token's party: see `context.rs`).
    pub(crate) zero_wake: Option<WaiterRef>,
}

/// One side of a channel as `select` sees it (implemented by `Sender` and `Receiver`).
pub(crate) trait SelectHandle {
    /// Reserves the operation if it can proceed now (or the channel is disconnected).
    fn try_select(&self, token: &mut Token) -> bool;
    /// A time at which the operation becomes ready by itself (timer channels).
    fn deadline(&self) -> Option<Instant>;
    /// Registers a blocked operation; true if it is ready right now.
    fn register(&self, oper: Operation, cx: &Context) -> bool;
    /// Removes a registration (if a peer did not already take it).
    fn unregister(&self, oper: Operation, cx: &Context);
    /// Reserves the operation after a peer chose it for `cx`.
    fn accept(&self, token: &mut Token, cx: &Context) -> bool;
    /// A peer chose the operation for `cx`, but the select unwinds before `accept`: pass
    /// the wake-up on (buffered channels) or release the pairing (zero capacity). Never
    /// parks.
    fn abandon(&self, cx: &Context);
    /// True if the operation would not block.
    fn is_ready(&self) -> bool;
    /// Registers a readiness observer; true if ready right now.
    fn watch(&self, oper: Operation, cx: &Context) -> bool;
    /// Removes a readiness observer.
    fn unwatch(&self, oper: Operation, cx: &Context);
}

/// One operation of a select: the channel side, the user's index, and the address of
/// the `Sender`/`Receiver` (to check that the operation is completed on the right one).
///
/// Public only for the `select!` macro; not part of the API.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct SelectArm<'a> {
    handle: &'a dyn SelectHandle,
    index: usize,
    ptr: *const u8,
}

impl<'a> SelectArm<'a> {
    /// A receive operation with index `index`.
    #[inline]
    pub fn recv<T>(r: &'a Receiver<T>, index: usize) -> Self {
        SelectArm {
            handle: r,
            index,
            ptr: r as *const Receiver<T> as *const u8,
        }
    }

    /// A send operation with index `index`.
    #[inline]
    pub fn send<T>(s: &'a Sender<T>, index: usize) -> Self {
        SelectArm {
            handle: s,
            index,
            ptr: s as *const Sender<T> as *const u8,
        }
    }
}

impl fmt::Debug for SelectArm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectArm")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timeout {
    Now,
    Never,
    At(Instant),
}

/// Waits until `timeout` with no operation at all (an empty select).
fn wait_for_nothing(timeout: Timeout) {
    match timeout {
        Timeout::Now => {}
        Timeout::Never => utils::sleep_until(None),
        Timeout::At(d) => utils::sleep_until(Some(d)),
    }
}

/// The earliest of the caller's deadline and the operations' own deadlines.
fn earliest_deadline(arms: &[SelectArm<'_>], timeout: Timeout) -> Option<Instant> {
    let mut deadline = match timeout {
        Timeout::At(d) => Some(d),
        _ => None,
    };
    for arm in arms {
        if let Some(d) = arm.handle.deadline() {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
    }
    deadline
}

/// The registrations (or readiness observers) of one blocking round of a select, on
/// the select's own stack.
///
/// [`disarm`](SelectGuard::disarm) removes them on the normal path; if the select leaves
/// its park by unwinding instead (a panic, or gmp-core's forced unwind of a goroutine
/// dropped while parked at a runtime's shutdown), `Drop` does: it decides `Aborted` so
/// that no peer can choose an arm any more, removes every registration, and if a peer had
/// already chosen an arm, `abandon`s that arm (the wake-up is passed on to another waiter
/// of a buffered channel; a zero-capacity pairing is released or cancelled, see
/// `flavors/zero.rs`). So no channel keeps an entry of a select whose stack is gone.
struct SelectGuard<'s, 'a> {
    arms: &'s [SelectArm<'a>],
    cx: &'s Context,
    /// `arms[..registered]` are registered (or watched).
    registered: usize,
    /// Readiness observers (`ready`) rather than registrations (`select`).
    watching: bool,
}

impl SelectGuard<'_, '_> {
    /// Removes every registration; the caller goes on with the decided outcome.
    fn disarm(&mut self) {
        for (pos, arm) in self.arms.iter().enumerate().take(self.registered) {
            if self.watching {
                arm.handle.unwatch(Operation::new(pos), self.cx);
            } else {
                arm.handle.unregister(Operation::new(pos), self.cx);
            }
        }
        self.registered = 0;
    }
}

impl Drop for SelectGuard<'_, '_> {
    fn drop(&mut self) {
        if self.registered == 0 {
            return;
        }
        let sel = self.cx.abort();
        self.disarm();
        if let (false, Selected::Operation(op)) = (self.watching, sel) {
            self.arms[op.position()].handle.abandon(self.cx);
        }
    }
}

// Go: runtime.selectgo
fn run_select(
    arms: &mut [SelectArm<'_>],
    timeout: Timeout,
    biased: bool,
) -> Option<(Token, usize, *const u8)> {
    if arms.is_empty() {
        wait_for_nothing(timeout);
        return None;
    }
    if !biased {
        utils::shuffle(arms);
    }
    let mut token = Token::default();
    for arm in arms.iter() {
        if arm.handle.try_select(&mut token) {
            return Some((token, arm.index, arm.ptr));
        }
    }
    if timeout == Timeout::Now {
        // A second pass before answering "nothing ready", so that the answer is
        // linearizable: if the first pass missed a message in arm `a` because a peer
        // took it after we looked, and that peer had filled arm `b` (checked earlier in
        // the pass, still empty then) before taking it, then seeing `a` empty
        // synchronised with the take, and this pass sees `b`'s message. One pass could
        // report "nothing" although some arm was ready at every instant (crossbeam's
        // `linearizable_try`; the loom model `try_select_is_linearizable_*`).
        for arm in arms.iter() {
            if arm.handle.try_select(&mut token) {
                return Some((token, arm.index, arm.ptr));
            }
        }
        return None;
    }

    let arms: &[SelectArm<'_>] = arms;
    let mut waited = false;
    loop {
        let chosen = Context::with(|cx| {
            let mut sel = Selected::Waiting;
            let mut guard = SelectGuard {
                arms,
                cx,
                registered: 0,
                watching: false,
            };
            let mut ready_now = None;
            for (pos, arm) in arms.iter().enumerate() {
                guard.registered += 1;
                if arm.handle.register(Operation::new(pos), cx) {
                    sel = cx.abort();
                    if sel == Selected::Aborted {
                        ready_now = Some(pos);
                    }
                    break;
                }
                sel = cx.selected();
                if sel != Selected::Waiting {
                    break;
                }
            }
            if sel == Selected::Waiting {
                sel = cx.wait_until(
                    earliest_deadline(arms, timeout),
                    gmp_core::park::WaitReason::Select,
                );
                waited = true;
            }
            guard.disarm();
            drop(guard);
            match sel {
                Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                Selected::Aborted => {
                    ready_now.filter(|&pos| arms[pos].handle.try_select(&mut token))
                }
                Selected::Disconnected => None,
                Selected::Operation(op) => {
                    Some(op.position()).filter(|&pos| arms[pos].handle.accept(&mut token, cx))
                }
            }
        });
        if let Some(pos) = chosen {
            return Some((token, arms[pos].index, arms[pos].ptr));
        }
        for arm in arms.iter() {
            if arm.handle.try_select(&mut token) {
                return Some((token, arm.index, arm.ptr));
            }
        }
        if let Timeout::At(d) = timeout {
            if utils::timed_out(d, waited) {
                return None;
            }
        }
    }
}

fn run_ready(arms: &mut [SelectArm<'_>], timeout: Timeout, biased: bool) -> Option<usize> {
    if arms.is_empty() {
        wait_for_nothing(timeout);
        return None;
    }
    if !biased {
        utils::shuffle(arms);
    }
    let arms: &[SelectArm<'_>] = arms;
    let mut waited = false;
    loop {
        let backoff = Backoff::new();
        loop {
            if let Some(arm) = arms.iter().find(|a| a.handle.is_ready()) {
                return Some(arm.index);
            }
            if timeout == Timeout::Now {
                // A second pass, for a linearizable "nothing ready" (see `run_select`).
                return arms.iter().find(|a| a.handle.is_ready()).map(|a| a.index);
            }
            if backoff.is_completed() {
                break;
            }
            backoff.snooze();
        }
        match timeout {
            Timeout::Now => return None,
            Timeout::At(d) if utils::timed_out(d, waited) => return None,
            _ => {}
        }

        let sel = Context::with(|cx| {
            let mut sel = Selected::Waiting;
            let mut guard = SelectGuard {
                arms,
                cx,
                registered: 0,
                watching: true,
            };
            for (pos, arm) in arms.iter().enumerate() {
                guard.registered += 1;
                let oper = Operation::new(pos);
                if arm.handle.watch(oper, cx) {
                    sel = match cx.try_select(Selected::Operation(oper)) {
                        Ok(()) => Selected::Operation(oper),
                        Err(s) => s,
                    };
                    break;
                }
                sel = cx.selected();
                if sel != Selected::Waiting {
                    break;
                }
            }
            if sel == Selected::Waiting {
                sel = cx.wait_until(
                    earliest_deadline(arms, timeout),
                    gmp_core::park::WaitReason::Select,
                );
                waited = true;
            }
            guard.disarm();
            drop(guard);
            sel
        });
        if let Selected::Operation(op) = sel {
            return Some(arms[op.position()].index);
        }
    }
}

/// Blocks until one operation is selected (for `select!`).
#[doc(hidden)]
pub fn select<'a>(arms: &mut [SelectArm<'a>], biased: bool) -> SelectedOperation<'a> {
    assert!(
        !arms.is_empty(),
        "no operations have been added to `Select`"
    );
    let (token, index, ptr) =
        run_select(arms, Timeout::Never, biased).expect("gmp_chan: select without deadline ended");
    SelectedOperation::new(token, index, ptr)
}

/// Selects an operation that is ready now, if any (for `select!`).
#[doc(hidden)]
pub fn try_select<'a>(arms: &mut [SelectArm<'a>], biased: bool) -> Option<SelectedOperation<'a>> {
    run_select(arms, Timeout::Now, biased).map(|(t, i, p)| SelectedOperation::new(t, i, p))
}

/// Selects an operation, waiting at most `timeout` (for `select!`).
#[doc(hidden)]
pub fn select_timeout<'a>(
    arms: &mut [SelectArm<'a>],
    timeout: Duration,
    biased: bool,
) -> Option<SelectedOperation<'a>> {
    let t = match Instant::now().checked_add(timeout) {
        Some(d) => Timeout::At(d),
        None => Timeout::Never,
    };
    run_select(arms, t, biased).map(|(t, i, p)| SelectedOperation::new(t, i, p))
}

/// Selects from a dynamic list of channel operations.
///
/// Add operations with [`send`](Select::send) and [`recv`](Select::recv) (each returns the
/// operation's index), then either
///
/// - *select* one with [`try_select`](Select::try_select), [`select`](Select::select),
///   [`select_timeout`](Select::select_timeout) or
///   [`select_deadline`](Select::select_deadline): the returned [`SelectedOperation`] has
///   already begun and **must** be completed with [`SelectedOperation::send`] or
///   [`SelectedOperation::recv`]; or
/// - wait until one is *ready* with [`try_ready`](Select::try_ready),
///   [`ready`](Select::ready), [`ready_timeout`](Select::ready_timeout) or
///   [`ready_deadline`](Select::ready_deadline), then attempt it yourself (it may have been
///   taken meanwhile, and readiness may be reported spuriously, so retry in a loop).
///
/// An operation is ready when it would not block, which includes failing because the
/// channel is disconnected. When several are ready, one is chosen uniformly at random
/// ([`Select::new_biased`] prefers the first added instead).
///
/// In a goroutine, blocking parks the goroutine; on a thread, the thread.
///
/// ```
/// use gmp_chan::{unbounded, Select};
///
/// let (s1, r1) = unbounded();
/// let (s2, r2) = unbounded::<i32>();
/// s1.send(10).unwrap();
///
/// let mut sel = Select::new();
/// let a = sel.recv(&r1);
/// let b = sel.recv(&r2);
/// let oper = sel.select();
/// match oper.index() {
///     i if i == a => assert_eq!(oper.recv(&r1), Ok(10)),
///     i if i == b => panic!("r2 is empty"),
///     _ => unreachable!(),
/// }
/// # drop(s2);
/// ```
pub struct Select<'a> {
    arms: Vec<SelectArm<'a>>,
    next_index: usize,
    biased: bool,
}

// SAFETY: a `Select` only holds shared references to `Sender`s/`Receiver`s and uses them
// for reservations, registrations and readiness checks, which never move a message
// between threads; messages move only in `SelectedOperation::send`/`recv`, which take the
// typed `&Sender<T>`/`&Receiver<T>` and so obey their `Send`/`Sync` bounds. The raw
// pointers are only compared, never dereferenced. (crossbeam-channel's `Select` is `Send`
// and `Sync` for the same reason.)
unsafe impl Send for Select<'_> {}
// SAFETY: see the `Send` impl; `&Select` allows no operation at all.
unsafe impl Sync for Select<'_> {}

impl<'a> Select<'a> {
    /// An empty list of operations; when several become ready, one is chosen at random.
    ///
    /// ```
    /// use gmp_chan::Select;
    ///
    /// let mut sel = Select::new();
    /// assert!(sel.try_select().is_err()); // nothing to select
    /// ```
    pub fn new() -> Select<'a> {
        Select {
            arms: Vec::with_capacity(4),
            next_index: 0,
            biased: false,
        }
    }

    /// An empty list of operations; when several are ready, the one added first wins.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s1, r1) = unbounded();
    /// let (s2, r2) = unbounded();
    /// s1.send(1).unwrap();
    /// s2.send(2).unwrap();
    /// let mut sel = Select::new_biased();
    /// let first = sel.recv(&r1);
    /// sel.recv(&r2);
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), first);
    /// assert_eq!(oper.recv(&r1), Ok(1));
    /// ```
    pub fn new_biased() -> Select<'a> {
        Select {
            biased: true,
            ..Select::new()
        }
    }

    /// Adds a send operation; returns its index.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded();
    /// let mut sel = Select::new();
    /// let i = sel.send(&s);
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), i);
    /// oper.send(&s, 5).unwrap();
    /// assert_eq!(r.recv(), Ok(5));
    /// ```
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        let i = self.next_index;
        self.arms.push(SelectArm::send(s, i));
        self.next_index += 1;
        i
    }

    /// Adds a receive operation; returns its index.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded();
    /// s.send(5).unwrap();
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), i);
    /// assert_eq!(oper.recv(&r), Ok(5));
    /// ```
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        let i = self.next_index;
        self.arms.push(SelectArm::recv(r, i));
        self.next_index += 1;
        i
    }

    /// Removes the operation with index `index`. Indices of later additions are never
    /// reused.
    ///
    /// # Panics
    ///
    /// If no operation has that index (never added, or already removed).
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s1, r1) = unbounded::<i32>();
    /// let (s2, r2) = unbounded();
    /// drop(s1); // r1 is ready: disconnected
    /// s2.send(2).unwrap();
    /// let mut sel = Select::new();
    /// let a = sel.recv(&r1);
    /// let b = sel.recv(&r2);
    /// sel.remove(a);
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), b);
    /// assert_eq!(oper.recv(&r2), Ok(2));
    /// ```
    pub fn remove(&mut self, index: usize) {
        assert!(
            index < self.next_index,
            "index out of bounds; {} >= {}",
            index,
            self.next_index
        );
        let pos = self
            .arms
            .iter()
            .position(|a| a.index == index)
            .expect("no operation with this index");
        // Order-preserving, so that a biased select keeps preferring the lowest index.
        self.arms.remove(pos);
    }

    /// Selects an operation that is ready now, without blocking.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.try_select().is_err());
    /// s.send(1).unwrap();
    /// let oper = sel.try_select().unwrap();
    /// assert_eq!(oper.recv(&r), Ok(1));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        try_select(&mut self.arms, self.biased).ok_or(TrySelectError)
    }

    /// Blocks until an operation can be selected, and selects it.
    ///
    /// # Panics
    ///
    /// If no operation has been added.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::thread;
    ///
    /// let (s, r) = unbounded();
    /// thread::spawn(move || s.send(3).unwrap());
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert_eq!(sel.select().recv(&r), Ok(3));
    /// ```
    pub fn select(&mut self) -> SelectedOperation<'a> {
        select(&mut self.arms, self.biased)
    }

    /// Blocks for at most `timeout` until an operation can be selected.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::time::Duration;
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.select_timeout(Duration::from_millis(10)).is_err());
    /// ```
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        select_timeout(&mut self.arms, timeout, self.biased).ok_or(SelectTimeoutError)
    }

    /// Blocks until `deadline` at the latest until an operation can be selected.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::time::{Duration, Instant};
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(sel.select_deadline(deadline).is_err());
    /// ```
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        run_select(&mut self.arms, Timeout::At(deadline), self.biased)
            .map(|(t, i, p)| SelectedOperation::new(t, i, p))
            .ok_or(SelectTimeoutError)
    }

    /// The index of an operation that is ready now, without blocking.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded();
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// assert!(sel.try_ready().is_err());
    /// s.send(1).unwrap();
    /// assert_eq!(sel.try_ready(), Ok(i));
    /// ```
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        run_ready(&mut self.arms, Timeout::Now, self.biased).ok_or(TryReadyError)
    }

    /// Blocks until an operation is ready; returns its index.
    ///
    /// # Panics
    ///
    /// If no operation has been added.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::thread;
    ///
    /// let (s, r) = unbounded();
    /// thread::spawn(move || s.send(1).unwrap());
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// assert_eq!(sel.ready(), i);
    /// assert_eq!(r.recv(), Ok(1));
    /// ```
    pub fn ready(&mut self) -> usize {
        assert!(
            !self.arms.is_empty(),
            "no operations have been added to `Select`"
        );
        run_ready(&mut self.arms, Timeout::Never, self.biased)
            .expect("gmp_chan: ready without deadline ended")
    }

    /// Blocks for at most `timeout` until an operation is ready.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::time::Duration;
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.ready_timeout(Duration::from_millis(10)).is_err());
    /// ```
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.ready_deadline(deadline),
            None => Ok(self.ready()),
        }
    }

    /// Blocks until `deadline` at the latest until an operation is ready.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select};
    /// use std::time::{Duration, Instant};
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.ready_deadline(Instant::now() + Duration::from_millis(10)).is_err());
    /// ```
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        run_ready(&mut self.arms, Timeout::At(deadline), self.biased).ok_or(ReadyTimeoutError)
    }
}

impl<'a> Clone for Select<'a> {
    fn clone(&self) -> Select<'a> {
        Select {
            arms: self.arms.clone(),
            next_index: self.next_index,
            biased: self.biased,
        }
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Select { .. }")
    }
}

/// An operation chosen by [`Select`] or `select!`, already begun: complete it with
/// [`send`](SelectedOperation::send) or [`recv`](SelectedOperation::recv).
///
/// # Panics
///
/// Dropping it without completing it panics (the reservation would otherwise be stuck,
/// and a zero-capacity peer would wait forever).
#[must_use]
pub struct SelectedOperation<'a> {
    token: Token,
    index: usize,
    ptr: *const u8,
    _marker: PhantomData<&'a ()>,
}

impl SelectedOperation<'_> {
    fn new(token: Token, index: usize, ptr: *const u8) -> Self {
        SelectedOperation {
            token,
            index,
            ptr,
            _marker: PhantomData,
        }
    }

    /// The index of the chosen operation (as returned by `Select::send`/`recv`).
    ///
    /// ```
    /// use gmp_chan::{bounded, Select};
    ///
    /// let (s, r) = bounded(1);
    /// let mut sel = Select::new();
    /// let i = sel.send(&s);
    /// let oper = sel.select();
    /// assert_eq!(oper.index(), i);
    /// oper.send(&s, ()).unwrap();
    /// # drop(r);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes a send operation; `s` must be the sender that was added.
    ///
    /// # Panics
    ///
    /// If `s` is not the `Sender` the operation was added with.
    ///
    /// ```
    /// use gmp_chan::{unbounded, Select, SendError};
    ///
    /// let (s, r) = unbounded();
    /// drop(r);
    /// let mut sel = Select::new();
    /// sel.send(&s);
    /// let oper = sel.select(); // ready: the channel is disconnected
    /// assert_eq!(oper.send(&s, 1), Err(SendError(1)));
    /// ```
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        assert!(
            s as *const Sender<T> as *const u8 == self.ptr,
            "passed a sender that wasn't selected",
        );
        let mut token = mem::take(&mut self.token);
        mem::forget(self);
        // SAFETY: the token was reserved by this very `Sender` (checked by address above).
        unsafe { channel::write(s, &mut token, msg) }.map_err(SendError)
    }

    /// Completes a receive operation; `r` must be the receiver that was added.
    ///
    /// # Panics
    ///
    /// If `r` is not the `Receiver` the operation was added with.
    ///
    /// ```
    /// use gmp_chan::{unbounded, RecvError, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// drop(s);
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// let oper = sel.select(); // ready: the channel is disconnected
    /// assert_eq!(oper.recv(&r), Err(RecvError));
    /// ```
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        assert!(
            r as *const Receiver<T> as *const u8 == self.ptr,
            "passed a receiver that wasn't selected",
        );
        let mut token = mem::take(&mut self.token);
        mem::forget(self);
        // SAFETY: the token was reserved by this very `Receiver` (checked by address).
        unsafe { channel::read(r, &mut token) }.map_err(|_| RecvError)
    }
}

impl fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SelectedOperation { .. }")
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("dropped `SelectedOperation` without completing the operation");
        }
    }
}
