//! The zero-capacity channel (`bounded(0)`): Go's unbuffered channel, a rendezvous with
//! direct handoff.
//!
//! # Algorithm
//!
//! There is no buffer. A mutex guards two wait queues (blocked senders, blocked
//! receivers) and the disconnected flag. An operation that finds a waiter of the other
//! kind wins that waiter's decision word ([`Context::try_select`]) under the lock and
//! exchanges the message through the waiter's *packet*; otherwise it registers itself,
//! with its own packet, and parks. A packet is the exchange slot: the message, a `ready`
//! flag, and (see case 4) the unparker of a peer that waits for the message.
//!
//! The four ways a pair meets (the *owner* is the registered waiter, the *peer* the one
//! that selected it):
//!
//! 1. owner is a plain `send` (packet on its stack, holding the message); the peer takes
//!    the message, sets `ready`, then unparks the owner, which returns once it sees
//!    `ready` (its stack packet is dead after that, so `ready` is the last write);
//! 2. owner is a plain `recv` (empty packet on its stack); the peer writes the message,
//!    sets `ready`, unparks the owner;
//! 3. owner is a `select` receive arm (empty packet on the heap): as 2; the owner frees
//!    the packet after reading it;
//! 4. owner is a `select` send arm (empty packet on the heap: `select!` evaluates the
//!    message only once the arm is chosen). The peer stores its own unparker in the
//!    packet, publishes the packet to the owner and unparks it as soon as the channel
//!    lock is released; the owner writes
//!    the message, takes the unparker, sets `ready`, and unparks the peer, which parks
//!    until `ready` and frees the packet.
//!
//! # Invariants
//!
//! - A packet is touched by a peer only after the peer won the owner's decision word, and
//!   by the owner only before registering, after unregistering an entry no one took, or
//!   after learning (through `Context::wait_packet`, or `ready`) that a peer chose it.
//! - Every party that waits for a flag (`ready`, the published packet) parks in a loop,
//!   and the party that sets the flag unparks it afterwards: no spinning on a peer that
//!   might not be running (a goroutine waiting for a goroutine on the same thread would
//!   otherwise never let it run).
//! - A waiter is never paired with itself: a `select` that sends and receives on one
//!   zero-capacity channel is excluded from its own queues.
//! - Disconnecting marks every undecided waiter `Disconnected`; a blocked sender then gets
//!   its message back out of its own packet.

use crate::context::{Context, Operation, Selected};
use crate::err::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::select::Token;
use crate::utils;
use crate::waker::Waker;
use gmp_core::park::{self, Unparker};
use gmp_core::sync::atomic::{AtomicBool, Ordering};
use gmp_core::sync::{Mutex, UnsafeCell};
use std::marker::PhantomData;
use std::ptr;
use std::time::Instant;

/// What a completed pairing left for `read`/`write`: the packet, and (cases 1 and 2/3)
/// the owner to unpark after the exchange. A null packet means "disconnected".
#[derive(Debug)]
pub(crate) struct ZeroToken {
    packet: *mut (),
    owner: Option<Context>,
}

impl Default for ZeroToken {
    fn default() -> Self {
        ZeroToken {
            packet: ptr::null_mut(),
            owner: None,
        }
    }
}

/// An exchange slot (see the module docs).
struct Packet<T> {
    msg: UnsafeCell<Option<T>>,
    ready: AtomicBool,
    waiter: UnsafeCell<Option<Unparker>>,
}

impl<T> Packet<T> {
    fn new(msg: Option<T>) -> Self {
        Packet {
            msg: UnsafeCell::new(msg),
            ready: AtomicBool::new(false),
            waiter: UnsafeCell::new(None),
        }
    }

    /// Parks until the exchange is complete. The party that sets `ready` unparks us after.
    fn wait_ready(&self) {
        // Acquire: pairs with the Release store of `ready`, making the message visible.
        while !self.ready.load(Ordering::Acquire) {
            park::park();
        }
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the message under the protocol above.
    unsafe fn take_msg(&self) -> Option<T> {
        // SAFETY: exclusive access, guaranteed by the caller.
        self.msg.with_mut(|p| unsafe { (*p).take() })
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the message under the protocol above.
    unsafe fn put_msg(&self, msg: T) {
        // SAFETY: exclusive access, guaranteed by the caller.
        self.msg.with_mut(|p| unsafe { *p = Some(msg) });
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the message under the protocol above.
    unsafe fn has_msg(&self) -> bool {
        // SAFETY: exclusive access, guaranteed by the caller.
        self.msg.with(|p| unsafe { (*p).is_some() })
    }
}

struct Inner {
    senders: Waker,
    receivers: Waker,
    disconnected: bool,
}

/// A zero-capacity channel.
pub(crate) struct Channel<T> {
    inner: Mutex<Inner>,
    _marker: PhantomData<T>,
}

impl<T> Channel<T> {
    pub(crate) fn new() -> Self {
        Channel {
            inner: Mutex::new(Inner {
                senders: Waker::new(),
                receivers: Waker::new(),
                disconnected: false,
            }),
            _marker: PhantomData,
        }
    }

    /// Pairs with a waiting receiver (the lock is held by the caller). Fills the token.
    fn pair_with_receiver(inner: &mut Inner, token: &mut Token) -> bool {
        match inner.receivers.try_select(None) {
            Some(entry) => {
                entry.cx.store_packet(entry.packet);
                token.zero = ZeroToken {
                    packet: entry.packet,
                    owner: Some(entry.cx),
                };
                true
            }
            None => false,
        }
    }

    /// Pairs with a waiting sender (the lock is held by the caller). Fills the token.
    fn pair_with_sender(inner: &mut Inner, token: &mut Token) -> bool {
        match inner.senders.try_select(None) {
            Some(entry) => {
                let packet = entry.packet as *const Packet<T>;
                // SAFETY: we won the owner's decision word, so the packet is ours to use
                // (module invariant 1); it is alive because its owner waits for us.
                let has_msg = unsafe { (*packet).has_msg() };
                if has_msg {
                    // Case 1: take the message in `read`, then unpark the owner.
                    entry.cx.store_packet(entry.packet);
                    token.zero = ZeroToken {
                        packet: entry.packet,
                        owner: Some(entry.cx),
                    };
                } else {
                    // Case 4: the owner must run to produce the message; leave our
                    // unparker for it first, then publish the packet (the caller wakes it).
                    // SAFETY: as above; the owner reads `waiter` only after it sees the
                    // packet published below (Release/Acquire on the packet pointer).
                    unsafe { (*packet).waiter.with_mut(|w| *w = Some(park::current())) };
                    entry.cx.store_packet(entry.packet);
                    // The caller unparks it once the channel lock is released.
                    token.zero = ZeroToken {
                        packet: entry.packet,
                        owner: None,
                    };
                    token.zero_wake = Some(entry.cx);
                }
                true
            }
            None => false,
        }
    }

    /// Case 4: wakes the chosen `select` sender so that it produces the message (after
    /// the channel lock is released: Go, too, readies goroutines only after unlocking).
    fn wake_producer(token: &mut Token) {
        if let Some(cx) = token.zero_wake.take() {
            cx.unpark();
        }
    }

    /// Pairs with a waiting receiver, or sees the disconnection. False if neither.
    pub(crate) fn start_send(&self, token: &mut Token) -> bool {
        let mut inner = self.inner.lock();
        if Self::pair_with_receiver(&mut inner, token) {
            true
        } else if inner.disconnected {
            token.zero = ZeroToken::default();
            true
        } else {
            false
        }
    }

    /// Completes a send: cases 2/3 (token from `start_send`) and 4 (token from `accept`
    /// of a `select` send arm).
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_send` or send-arm `accept` on this
    /// channel, used once.
    pub(crate) unsafe fn write(&self, token: &mut Token, msg: T) -> Result<(), T> {
        if token.zero.packet.is_null() {
            return Err(msg);
        }
        // SAFETY: the token names a live packet that this pairing owns (module docs).
        let packet = unsafe { &*(token.zero.packet as *const Packet<T>) };
        // SAFETY: exclusive access to the message: the other party waits for `ready`.
        unsafe { packet.put_msg(msg) };
        let wake: Unparker = match token.zero.owner.take() {
            Some(owner) => {
                // Cases 2/3: the owner waits for `ready`.
                // Release: publishes the message to the owner's Acquire in `wait_ready`.
                packet.ready.store(true, Ordering::Release);
                owner.unpark();
                return Ok(());
            }
            // Case 4: the peer left its unparker before publishing the packet to us.
            // SAFETY: exclusive access until `ready` is set.
            None => unsafe { packet.waiter.with_mut(|w| (*w).take()) }
                .expect("gmp_chan: zero-capacity peer left no unparker"),
        };
        // Release: as above. The peer may free the packet right after: do not touch it.
        packet.ready.store(true, Ordering::Release);
        wake.unpark();
        Ok(())
    }

    /// Pairs with a waiting sender, or sees the disconnection. False if neither.
    pub(crate) fn start_recv(&self, token: &mut Token) -> bool {
        let mut inner = self.inner.lock();
        if Self::pair_with_sender(&mut inner, token) {
            drop(inner);
            Self::wake_producer(token);
            true
        } else if inner.disconnected {
            token.zero = ZeroToken::default();
            true
        } else {
            false
        }
    }

    /// Completes a receive: case 1 (token from `start_recv`, owner set), or cases 3 and 4
    /// (heap packet: ours from a receive arm's `accept`, or a send arm's from
    /// `start_recv`), where we wait for `ready` and free the packet.
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_recv` or receive-arm `accept` on this
    /// channel, used once.
    pub(crate) unsafe fn read(&self, token: &mut Token) -> Result<T, ()> {
        if token.zero.packet.is_null() {
            return Err(());
        }
        let raw = token.zero.packet as *mut Packet<T>;
        match token.zero.owner.take() {
            Some(owner) => {
                // SAFETY: case 1: the packet lives on the owner's stack until `ready`.
                let packet = unsafe { &*raw };
                // SAFETY: exclusive access until `ready` is set.
                let msg = unsafe { packet.take_msg() }.expect("gmp_chan: sender's packet is empty");
                // Release: the owner may return (and its stack packet die) after this.
                packet.ready.store(true, Ordering::Release);
                owner.unpark();
                Ok(msg)
            }
            None => {
                // SAFETY: cases 3/4: a heap packet that only we free, after `ready`.
                let packet = unsafe { &*raw };
                packet.wait_ready();
                // SAFETY: `ready` is set: the writer is done with the packet.
                let msg = unsafe { packet.take_msg() }.expect("gmp_chan: ready packet is empty");
                // SAFETY: created by `Box::into_raw` in `register`; nobody else frees it
                // (its entry was taken by the pairing, so `unregister` will not).
                drop(unsafe { Box::from_raw(raw) });
                Ok(msg)
            }
        }
    }

    /// Sends without blocking: succeeds only if a receiver is waiting.
    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut token = Token::default();
        if self.start_send(&mut token) {
            // SAFETY: the token was just filled by `start_send` on this channel.
            unsafe { self.write(&mut token, msg) }.map_err(TrySendError::Disconnected)
        } else {
            Err(TrySendError::Full(msg))
        }
    }

    /// Sends, blocking until a receiver takes the message, until `deadline` if any.
    // Go: runtime.chansend (unbuffered: direct handoff to a waiting receiver, else park)
    pub(crate) fn send(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut token = Token::default();
        let mut inner = self.inner.lock();
        if Self::pair_with_receiver(&mut inner, &mut token) {
            drop(inner);
            // SAFETY: the token was just filled for this channel.
            return unsafe { self.write(&mut token, msg) }.map_err(SendTimeoutError::Disconnected);
        }
        if inner.disconnected {
            return Err(SendTimeoutError::Disconnected(msg));
        }
        if let Some(d) = deadline {
            if utils::passed(d) {
                return Err(SendTimeoutError::Timeout(msg));
            }
        }
        let cx = Context::new();
        let oper = Operation::new(0);
        let packet = Packet::new(Some(msg));
        inner
            .senders
            .register_with_packet(oper, &packet as *const Packet<T> as *mut (), &cx);
        inner.receivers.notify_observers();
        drop(inner);

        let res = match cx.wait_until(deadline) {
            Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
            sel @ (Selected::Aborted | Selected::Disconnected) => {
                // Nobody chose us, so our entry is still queued and the packet is ours.
                self.inner.lock().senders.unregister(oper, &cx);
                // SAFETY: unregistered while undecided-by-peers: exclusive access.
                let msg = unsafe { packet.take_msg() }.expect("gmp_chan: own packet is empty");
                Err(if sel == Selected::Aborted {
                    SendTimeoutError::Timeout(msg)
                } else {
                    SendTimeoutError::Disconnected(msg)
                })
            }
            Selected::Operation(_) => {
                // Case 1: a receiver is taking the message; wait until it is done with
                // our stack packet.
                packet.wait_ready();
                Ok(())
            }
        };
        cx.recycle();
        res
    }

    /// Receives without blocking: succeeds only if a sender is waiting.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut token = Token::default();
        if self.start_recv(&mut token) {
            // SAFETY: the token was just filled by `start_recv` on this channel.
            unsafe { self.read(&mut token) }.map_err(|_| TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Receives, blocking until a sender hands a message over, until `deadline` if any.
    // Go: runtime.chanrecv (unbuffered: take from a waiting sender, else park)
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut token = Token::default();
        let mut inner = self.inner.lock();
        if Self::pair_with_sender(&mut inner, &mut token) {
            drop(inner);
            Self::wake_producer(&mut token);
            // SAFETY: the token was just filled for this channel.
            return unsafe { self.read(&mut token) }.map_err(|_| RecvTimeoutError::Disconnected);
        }
        if inner.disconnected {
            return Err(RecvTimeoutError::Disconnected);
        }
        if let Some(d) = deadline {
            if utils::passed(d) {
                return Err(RecvTimeoutError::Timeout);
            }
        }
        let cx = Context::new();
        let oper = Operation::new(0);
        let packet = Packet::<T>::new(None);
        inner
            .receivers
            .register_with_packet(oper, &packet as *const Packet<T> as *mut (), &cx);
        inner.senders.notify_observers();
        drop(inner);

        let res = match cx.wait_until(deadline) {
            Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
            sel @ (Selected::Aborted | Selected::Disconnected) => {
                self.inner.lock().receivers.unregister(oper, &cx);
                Err(if sel == Selected::Aborted {
                    RecvTimeoutError::Timeout
                } else {
                    RecvTimeoutError::Disconnected
                })
            }
            Selected::Operation(_) => {
                // Case 2: a sender is writing into our stack packet.
                packet.wait_ready();
                // SAFETY: `ready` is set, the sender is done with the packet.
                Ok(unsafe { packet.take_msg() }.expect("gmp_chan: ready packet is empty"))
            }
        };
        cx.recycle();
        res
    }

    /// Registers a `select` arm (send if `is_send`) with a fresh heap packet; true if the
    /// arm is ready right now.
    pub(crate) fn register(&self, oper: Operation, cx: &Context, is_send: bool) -> bool {
        let packet = Box::into_raw(Box::new(Packet::<T>::new(None))) as *mut ();
        let mut inner = self.inner.lock();
        if is_send {
            inner.senders.register_with_packet(oper, packet, cx);
            inner.receivers.notify_observers();
            inner.receivers.can_select(Some(cx)) || inner.disconnected
        } else {
            inner.receivers.register_with_packet(oper, packet, cx);
            inner.senders.notify_observers();
            inner.senders.can_select(Some(cx)) || inner.disconnected
        }
    }

    /// Removes a `select` arm's registration and frees its packet, unless a peer took it.
    pub(crate) fn unregister(&self, oper: Operation, cx: &Context, is_send: bool) {
        let entry = {
            let mut inner = self.inner.lock();
            if is_send {
                inner.senders.unregister(oper, cx)
            } else {
                inner.receivers.unregister(oper, cx)
            }
        };
        if let Some(entry) = entry {
            // SAFETY: the packet came from `Box::into_raw` in `register`, and its entry was
            // still queued, so no peer ever saw it.
            drop(unsafe { Box::from_raw(entry.packet as *mut Packet<T>) });
        }
    }

    /// A `select` arm of ours was chosen by a peer: fetch the packet it published.
    pub(crate) fn accept(&self, token: &mut Token, cx: &Context) -> bool {
        token.zero = ZeroToken {
            packet: cx.wait_packet(),
            owner: None,
        };
        true
    }

    /// Registers a readiness observer; true if ready right now.
    pub(crate) fn watch(&self, oper: Operation, cx: &Context, is_send: bool) -> bool {
        let mut inner = self.inner.lock();
        if is_send {
            inner.senders.watch(oper, cx);
            inner.receivers.can_select(None) || inner.disconnected
        } else {
            inner.receivers.watch(oper, cx);
            inner.senders.can_select(None) || inner.disconnected
        }
    }

    /// Removes a readiness observer.
    pub(crate) fn unwatch(&self, oper: Operation, cx: &Context, is_send: bool) {
        let mut inner = self.inner.lock();
        if is_send {
            inner.senders.unwatch(oper, cx);
        } else {
            inner.receivers.unwatch(oper, cx);
        }
    }

    /// True if a send (`is_send`) or receive would not block.
    pub(crate) fn is_ready(&self, is_send: bool) -> bool {
        let inner = self.inner.lock();
        if is_send {
            inner.receivers.can_select(None) || inner.disconnected
        } else {
            inner.senders.can_select(None) || inner.disconnected
        }
    }

    /// Disconnects and wakes every waiter. True if this call did it.
    // Go: runtime.closechan (every waiter is released; senders get their value back here
    // instead of panicking)
    pub(crate) fn disconnect(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.disconnected {
            return false;
        }
        inner.disconnected = true;
        inner.senders.disconnect();
        inner.receivers.disconnect();
        true
    }
}

/// Async sends (`Sender::send_async`, see `async_ops`). A future cannot park, so its
/// registration is case 1 with the packet on the heap instead of a stack: the packet
/// holds the message from the start, a receiver takes it exactly as from a blocked
/// `send`, and the future frees the packet once it sees `ready`. Async receives need no
/// code here: they observe the channel (`watch`) and take messages with `try_recv`, so a
/// dropped receive future never holds a message.
impl<T> Channel<T> {
    /// Hands `msg` to a waiting receiver (`Ok(None)`), fails if the channel is
    /// disconnected (`Err(msg)`), or registers it in a heap packet under `cx`
    /// (`Ok(Some(packet))`, to pass to [`Channel::poll_send_async`] and
    /// [`Channel::cancel_send_async`]).
    pub(crate) fn start_send_async(
        &self,
        msg: T,
        oper: Operation,
        cx: &Context,
    ) -> Result<Option<*mut ()>, T> {
        let mut token = Token::default();
        let mut inner = self.inner.lock();
        if Self::pair_with_receiver(&mut inner, &mut token) {
            drop(inner);
            // SAFETY: the token was just filled for this channel.
            return unsafe { self.write(&mut token, msg) }.map(|()| None);
        }
        if inner.disconnected {
            return Err(msg);
        }
        let packet = Box::into_raw(Box::new(Packet::new(Some(msg)))) as *mut ();
        inner.senders.register_with_packet(oper, packet, cx);
        inner.receivers.notify_observers();
        Ok(Some(packet))
    }

    /// Where a registered async send stands: `Some(Ok(()))` once a receiver has taken
    /// the message, `Some(Err(msg))` if the channel disconnected first, `None` while it
    /// waits (the receiver unparks `cx` after setting `ready`, so `None` is never final).
    /// On `Some` the registration is over and the packet freed.
    ///
    /// # Safety
    ///
    /// `packet` came from [`Channel::start_send_async`] on this channel with `oper` and
    /// `cx`, and no `Some` was returned for it yet, nor was it cancelled.
    pub(crate) unsafe fn poll_send_async(
        &self,
        packet: *mut (),
        oper: Operation,
        cx: &Context,
    ) -> Option<Result<(), T>> {
        let raw = packet as *mut Packet<T>;
        match cx.selected() {
            Selected::Waiting => None,
            Selected::Operation(_) => {
                // SAFETY: the packet lives until we free it below; a receiver chose it and
                // touches only `msg` (before `ready`) and `ready`.
                // Acquire: pairs with the receiver's Release store of `ready`.
                if !unsafe { &*raw }.ready.load(Ordering::Acquire) {
                    return None;
                }
                // SAFETY: `ready` is set: the receiver is done with the packet, which
                // came from `Box::into_raw` and is freed only here or in `cancel`.
                drop(unsafe { Box::from_raw(raw) });
                Some(Ok(()))
            }
            Selected::Aborted | Selected::Disconnected => {
                // Nobody chose us, so the entry is still queued and the packet ours.
                self.inner.lock().senders.unregister(oper, cx);
                // SAFETY: unregistered while undecided by peers: exclusive access, and
                // the packet came from `Box::into_raw`.
                let packet = unsafe { Box::from_raw(raw) };
                // SAFETY: as above.
                let msg = unsafe { packet.take_msg() }.expect("gmp_chan: own packet is empty");
                Some(Err(msg))
            }
        }
    }

    /// Withdraws a registered async send (its future was dropped): the message is
    /// dropped unless a receiver already chose it, in which case it was delivered and
    /// this waits (briefly: the receiver is running, between its pairing and `ready`)
    /// for the receiver to be done with the packet before freeing it.
    ///
    /// # Safety
    ///
    /// As for [`Channel::poll_send_async`].
    pub(crate) unsafe fn cancel_send_async(&self, packet: *mut (), oper: Operation, cx: &Context) {
        let raw = packet as *mut Packet<T>;
        match cx.abort() {
            Selected::Operation(_) => {
                // SAFETY: as in `poll_send_async`.
                let p = unsafe { &*raw };
                // Acquire: as in `poll_send_async`. No parking: the wake-up for `ready`
                // goes to the dropped future's task, not to us.
                while !p.ready.load(Ordering::Acquire) {
                    gmp_core::sync::spin_loop();
                    #[cfg(not(loom))]
                    std::thread::yield_now();
                }
            }
            _ => {
                self.inner.lock().senders.unregister(oper, cx);
            }
        }
        // SAFETY: `ready` is set or the entry was unregistered before any peer chose
        // it: nobody else touches the packet, which came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(raw) });
    }
}
