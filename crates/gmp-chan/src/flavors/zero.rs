//! The zero-capacity channel (`bounded(0)`): Go's unbuffered channel, a rendezvous with
//! direct handoff.
//!
//! # Algorithm
//!
//! There is no buffer. A mutex guards two wait queues (blocked senders, blocked
//! receivers) and the disconnected flag. An operation that finds a waiter of the other
//! kind wins that waiter's decision word ([`Context::try_select`]) under the lock and
//! exchanges the message through the waiter's *packet*; otherwise it registers itself,
//! with a packet of its own, and parks. A packet is the exchange slot: the message, a
//! `state` word (`PENDING`, then `READY` or `CANCELLED`), the unparker of a peer that
//! waits for the message (case 4), and a reference count.
//!
//! Packets live on the heap, shared by the two parties (the *owner*, the registered
//! waiter, and the *peer*, the one that selected it) with a count of two; each party
//! drops its reference when it is done, and the last one frees the packet and whatever
//! message is still in it. So neither party ever waits for the other to be done with
//! memory, and a party that disappears (unwound while parked) leaves nothing dangling.
//! Go keeps its `sudog`s in a per-P cache; one allocation per blocked operation is the
//! price here (the operation parks anyway, which costs more).
//!
//! The four ways a pair meets:
//!
//! 1. owner is a plain `send` (its packet holds the message); the peer takes the message
//!    and sets `READY`, then unparks the owner, which returns once it sees `READY`;
//! 2. owner is a plain `recv` (empty packet); the peer writes the message, sets `READY`,
//!    unparks the owner;
//! 3. owner is a `select` receive arm (empty packet): as 2; the owner's `accept` waits
//!    for `READY` before the select returns;
//! 4. owner is a `select` send arm (empty packet: `select!` evaluates the message only
//!    once the arm is chosen). The peer stores its own unparker in the packet, publishes
//!    the packet to the owner and unparks it once the channel lock is released; the owner
//!    writes the message, sets `READY`, and unparks the peer, which waits for `READY`.
//!
//! In every case one party *completes* the exchange (the peer in 1–3, the owner in 4) and
//! the other *waits* for it. Only the completer moves `state` away from `PENDING`.
//!
//! # Unwinding out of a park, and cancelled pairings
//!
//! A waiter may leave its park by unwinding: a panic, or gmp-core's forced unwind of a
//! goroutine dropped while parked (a runtime's shutdown). Every blocking operation arms
//! an [`OnUnwind`] guard right after registering. The rule, decided by the decision word:
//!
//! - *nobody chose it yet*: the guard decides `Aborted`, removes the entry, and frees the
//!   packet. An offered message is dropped with the sender (it was never delivered); a
//!   receiver took nothing.
//! - *a peer chose it*: the guard only drops the owner's reference. A sender's message is
//!   then delivered exactly once, by the peer, which owns the pairing; a message a peer
//!   hands to a vanished receiver is dropped with the packet (the sender's handoff
//!   completed, as in Go when a receiver dies right after `chanrecv` returned). Nothing is
//!   received twice, nothing leaks.
//! - *a `select` send arm chosen but not yet written* (case 4): the owner cannot produce
//!   the message, so it *cancels*: `CANCELLED`, and the waiting peer retries its receive
//!   as if the pairing never happened.
//!
//! A completer that gives up without completing (a `SelectedOperation` dropped while its
//! thread unwinds) cancels the same way, from the token's `Drop`: the waiting party sees
//! `CANCELLED` and retries its operation (a sender with its message back). So a pairing
//! always ends: `READY` (exactly one message moved) or `CANCELLED` (none did).
//!
//! # Invariants
//!
//! - A packet's message is touched by the peer only after the peer won the owner's
//!   decision word, by the completer only before it publishes the final state, by the
//!   waiter only after it read `READY`, and by the owner of a queued entry only after
//!   removing it (no peer can have seen it then).
//! - Every party that waits for a flag (`state`) parks in a loop, and the party that sets
//!   the flag unparks it afterwards: no spinning on a peer that might not be running (a
//!   goroutine waiting for a goroutine on the same thread would otherwise never let it
//!   run). Nothing waits while unwinding.
//! - A waiter is never paired with itself: a `select` that sends and receives on one
//!   zero-capacity channel is excluded from its own queues.
//! - Disconnecting marks every undecided waiter `Disconnected`; a blocked sender then gets
//!   its message back out of its own packet.

use crate::context::{Context, OnUnwind, Operation, Selected};
use crate::err::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::select::Token;
use crate::utils;
use crate::waker::Waker;
use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use gmp_core::sync::{Mutex, UnsafeCell};
use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::mem;
use std::ptr::{self, NonNull};
use std::time::Instant;

const PENDING: u8 = 0;
const READY: u8 = 1;
const CANCELLED: u8 = 2;

/// What this party does with the packet of a pairing.
#[derive(Debug)]
enum Role {
    /// Complete the exchange, then wake the owner (cases 1–3), or, with `None`, the peer
    /// whose unparker is in the packet (case 4: we are the owner).
    Complete(Option<Context>),
    /// Wait for the other party to complete (case 4's peer; case 3's owner after
    /// `accept`, which already waited).
    Wait,
}

/// What a completed pairing left for `read`/`write`: the packet (holding one reference,
/// which this token owns) and our role. A null packet means "disconnected". Dropped
/// without being used (a `SelectedOperation` dropped by an unwinding thread), it cancels
/// the pairing: see the module docs.
#[derive(Debug)]
pub(crate) struct ZeroToken {
    packet: *const Header,
    role: Role,
}

impl Default for ZeroToken {
    fn default() -> Self {
        ZeroToken {
            packet: ptr::null(),
            role: Role::Wait,
        }
    }
}

impl ZeroToken {
    /// Takes the packet and the role out, leaving an inert token.
    fn take(&mut self) -> (*const Header, Role) {
        (
            mem::replace(&mut self.packet, ptr::null()),
            mem::replace(&mut self.role, Role::Wait),
        )
    }
}

impl Drop for ZeroToken {
    fn drop(&mut self) {
        let (packet, role) = self.take();
        if packet.is_null() {
            return;
        }
        // SAFETY: a non-null token packet holds one reference, owned by this token.
        let hdr = unsafe { &*packet };
        if let Role::Complete(owner) = role {
            // SAFETY: we are the completer: the state is still PENDING and ours to set,
            // and (case 4) the waiter's unparker is ours to take.
            unsafe { hdr.finish(CANCELLED, owner) };
        }
        // SAFETY: this token's reference, released once.
        unsafe { Header::release(packet) };
    }
}

/// The type-independent part of a packet (first field of `Packet<T>`, `repr(C)`, so a
/// `*const Header` is also the packet's address).
#[repr(C)]
struct Header {
    state: AtomicU8,
    refs: AtomicUsize,
    /// Case 4: the peer's unparker, stored by the peer before it publishes the packet.
    waiter: UnsafeCell<Option<Unparker>>,
    /// Frees the whole `Packet<T>`.
    free: unsafe fn(*const Header),
}

/// An exchange slot (see the module docs).
#[repr(C)]
struct Packet<T> {
    hdr: Header,
    msg: UnsafeCell<Option<T>>,
}

impl<T> Packet<T> {
    /// A packet with two references (the owner's, and the one its wait-queue entry hands
    /// to the peer that selects it).
    fn alloc(msg: Option<T>) -> *const Header {
        let packet = Packet {
            hdr: Header {
                state: AtomicU8::new(PENDING),
                refs: AtomicUsize::new(2),
                waiter: UnsafeCell::new(None),
                free: Packet::<T>::free,
            },
            msg: UnsafeCell::new(msg),
        };
        let layout = Layout::new::<Packet<T>>();
        let block = blocks::take(layout).unwrap_or_else(|| {
            // SAFETY: `layout` is not zero-sized (a packet holds a header).
            let p = unsafe { alloc::alloc(layout) };
            NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(layout))
        });
        let p = block.as_ptr() as *mut Packet<T>;
        // SAFETY: `block` is a fresh (or recycled, unused) allocation of `layout`.
        unsafe { p.write(packet) };
        p as *const Header
    }

    /// # Safety
    ///
    /// `h` came from `Packet::<T>::alloc` and has no reference left.
    unsafe fn free(h: *const Header) {
        let p = h as *mut Packet<T>;
        // SAFETY: guaranteed by the caller: a live packet nobody else uses; this drops a
        // message still inside.
        unsafe { ptr::drop_in_place(p) };
        // SAFETY: `p` came from `alloc` with this layout and is no longer used.
        unsafe {
            blocks::put(
                NonNull::new_unchecked(p as *mut u8),
                Layout::new::<Packet<T>>(),
            )
        };
    }

    /// # Safety
    ///
    /// `h` came from `Packet::<T>::alloc` and the caller holds a reference.
    unsafe fn from_header<'a>(h: *const Header) -> &'a Packet<T> {
        // SAFETY: `repr(C)` puts the header at the packet's address; alive while referenced.
        unsafe { &*(h as *const Packet<T>) }
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

impl Header {
    /// Drops one reference; the last one frees the packet.
    ///
    /// # Safety
    ///
    /// `h` is a live packet and the caller gives up a reference it holds.
    unsafe fn release(h: *const Header) {
        // SAFETY: alive while we hold our reference.
        let hdr = unsafe { &*h };
        // Release: our uses of the packet happen before the free; the last holder's
        // Acquire load below makes them (and the other party's) visible to the drop.
        if hdr.refs.fetch_sub(1, Ordering::Release) == 1 {
            // An Acquire load of the count rather than an Acquire fence: the same
            // synchronisation (it reads the value our RMW wrote, at the end of the release
            // sequence of every earlier decrement), and ThreadSanitizer, which does not
            // model fences, sees it (std's `Arc` does the same under TSan). With a fence,
            // TSan reported the packet's later free racing the other party's last read.
            hdr.refs.load(Ordering::Acquire);
            // SAFETY: no reference left.
            unsafe { (hdr.free)(h) };
        }
    }

    /// The waiter's side: parks until the completer has set the final state; `reason` is
    /// what a goroutine dump shows meanwhile.
    fn wait_done(&self, reason: WaitReason) -> u8 {
        loop {
            // Acquire: pairs with the completer's Release store, so the message (READY)
            // is visible.
            let s = self.state.load(Ordering::Acquire);
            if s != PENDING {
                return s;
            }
            park::park_for(reason);
        }
    }

    /// The completer's side: publishes the final state and wakes the waiting party.
    ///
    /// # Safety
    ///
    /// The caller is the completer of this pairing (see the module docs), calls this once,
    /// and holds a reference.
    unsafe fn finish(&self, state: u8, owner: Option<Context>) {
        let peer = match owner {
            Some(_) => None,
            // Case 4: the peer left its unparker before publishing the packet to us.
            // SAFETY: exclusive access until the state leaves PENDING (caller).
            None => unsafe { self.waiter.with_mut(|w| (*w).take()) },
        };
        // Release: publishes the message (READY) to the waiter's Acquire in `wait_done`.
        self.state.store(state, Ordering::Release);
        if let Some(o) = owner {
            o.unpark();
        }
        if let Some(p) = peer {
            p.unpark();
        }
    }
}

/// A one-block cache of packet memory per thread: a blocked operation allocates one
/// packet, and a ping-pong between two parties would otherwise pay a `malloc`/`free` pair
/// per message (Go keeps its `sudog`s in a per-P cache for the same reason). One block of
/// the most recently freed layout; skipped under loom.
mod blocks {
    use std::alloc::{self, Layout};
    use std::ptr::NonNull;

    /// Owned memory of `layout`, given back to the allocator on drop.
    struct Block(NonNull<u8>, Layout);

    impl Drop for Block {
        fn drop(&mut self) {
            // SAFETY: allocated with this layout by `Packet::alloc`, and owned.
            unsafe { alloc::dealloc(self.0.as_ptr(), self.1) };
        }
    }

    #[cfg(not(loom))]
    std::thread_local! {
        static SPARE: std::cell::Cell<Option<Block>> = const { std::cell::Cell::new(None) };
    }

    /// A cached block of exactly `layout`, if there is one.
    // Never inlined: the caller may be a goroutine that moves between threads (rust#33368).
    #[inline(never)]
    pub(super) fn take(layout: Layout) -> Option<NonNull<u8>> {
        #[cfg(not(loom))]
        {
            let b = SPARE.try_with(|s| s.take()).ok().flatten()?;
            if b.1 == layout {
                let p = b.0;
                std::mem::forget(b);
                return Some(p);
            }
            drop(b);
        }
        let _ = layout;
        None
    }

    /// Keeps a block of `layout` for the next packet, or frees it.
    ///
    /// # Safety
    ///
    /// `p` was allocated with `layout` by the global allocator, and nothing uses it.
    #[inline(never)]
    pub(super) unsafe fn put(p: NonNull<u8>, layout: Layout) {
        let b = Block(p, layout);
        #[cfg(not(loom))]
        {
            // In a thread-local destructor the cache may be gone: then `b` is freed here.
            // A block already cached is freed here too, outside the thread-local access.
            let old = SPARE.try_with(|s| s.replace(Some(b)));
            drop(old);
        }
        #[cfg(loom)]
        drop(b);
    }
}

/// Why `read` produced no message.
enum ReadError {
    /// The channel is disconnected and empty.
    Disconnected,
    /// The sender's pairing was cancelled (see the module docs): try again.
    Retry,
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
                // The entry's reference passes to the token. Cases 2/3: we complete.
                token.zero = ZeroToken {
                    packet: entry.packet as *const Header,
                    role: Role::Complete(Some(entry.cx)),
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
                let packet = entry.packet as *const Header;
                // SAFETY: we won the owner's decision word, so the entry's reference and
                // the message are ours to use (module invariant 1).
                let p = unsafe { Packet::<T>::from_header(packet) };
                // SAFETY: as above.
                if unsafe { p.has_msg() } {
                    // Case 1: take the message in `read`, then unpark the owner.
                    entry.cx.store_packet(entry.packet);
                    token.zero = ZeroToken {
                        packet,
                        role: Role::Complete(Some(entry.cx)),
                    };
                } else {
                    // Case 4: the owner must run to produce the message; leave our
                    // unparker for it first, then publish the packet (the caller wakes it).
                    // SAFETY: as above; the owner reads `waiter` only after it took the
                    // channel lock that we hold now.
                    unsafe { p.hdr.waiter.with_mut(|w| *w = Some(park::current())) };
                    entry.cx.store_packet(entry.packet);
                    token.zero = ZeroToken {
                        packet,
                        role: Role::Wait,
                    };
                    // The caller unparks it once the channel lock is released.
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
        let (packet, role) = token.zero.take();
        if packet.is_null() {
            return Err(msg);
        }
        let Role::Complete(owner) = role else {
            unreachable!("gmp_chan: a send token always completes its pairing")
        };
        // SAFETY: the token held a reference to a `Packet<T>` of this channel.
        let p = unsafe { Packet::<T>::from_header(packet) };
        // SAFETY: we are the completer: the waiting party reads the message only after
        // READY, and no one else has access.
        unsafe { p.put_msg(msg) };
        // SAFETY: we are the completer, once; we hold the token's reference.
        unsafe { p.hdr.finish(READY, owner) };
        // SAFETY: the token's reference, released once.
        unsafe { Header::release(packet) };
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

    /// Completes a receive: case 1 (we complete), or cases 3 and 4 (we wait for the
    /// completer; in case 3 `accept` has already waited).
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_recv` or receive-arm `accept` on this
    /// channel, used once.
    unsafe fn read_inner(&self, token: &mut Token) -> Result<T, ReadError> {
        let (packet, role) = token.zero.take();
        if packet.is_null() {
            return Err(ReadError::Disconnected);
        }
        // SAFETY: the token held a reference to a `Packet<T>` of this channel.
        let p = unsafe { Packet::<T>::from_header(packet) };
        let res = match role {
            Role::Complete(owner) => {
                // Case 1. SAFETY: we are the completer: exclusive access until we finish.
                let msg = unsafe { p.take_msg() }.expect("gmp_chan: sender's packet is empty");
                // SAFETY: we are the completer, once; we hold the token's reference.
                unsafe { p.hdr.finish(READY, owner) };
                Ok(msg)
            }
            Role::Wait => {
                // If we unwind while parked here, the owner completes alone and the
                // message is dropped with the packet (module docs).
                let guard = OnUnwind::new(|| {
                    // SAFETY: the token's reference, released once: here (unwinding) or
                    // below, never both (the guard is disarmed first).
                    unsafe { Header::release(packet) }
                });
                // Case 4's peer: a receive waiting for a select's send arm to write.
                let state = p.hdr.wait_done(WaitReason::ChanReceive);
                guard.disarm();
                if state == READY {
                    // SAFETY: READY: the completer is done with the message.
                    Ok(unsafe { p.take_msg() }.expect("gmp_chan: ready packet is empty"))
                } else {
                    Err(ReadError::Retry)
                }
            }
        };
        // SAFETY: the token's reference, released once.
        unsafe { Header::release(packet) };
        res
    }

    /// Completes a receive reserved by `select` (see `read_inner`). A cancelled pairing
    /// (its sender unwound before producing the message) is not an error the caller can
    /// see: the receive then simply blocks until another sender comes, or the channel
    /// disconnects.
    ///
    /// # Safety
    ///
    /// As `read_inner`.
    pub(crate) unsafe fn read(&self, token: &mut Token) -> Result<T, ()> {
        // SAFETY: forwarded from the caller.
        match unsafe { self.read_inner(token) } {
            Ok(msg) => Ok(msg),
            Err(ReadError::Disconnected) => Err(()),
            Err(ReadError::Retry) => self.recv(None).map_err(|_| ()),
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

    /// The owner of a plain operation's registration leaves by unwinding (module docs).
    fn abandon(&self, oper: Operation, cx: &Context, packet: *const Header, is_send: bool) {
        match cx.abort() {
            // A peer chose us: it owns the entry's reference and completes or cancels
            // the pairing; we only let go of ours.
            Selected::Operation(_) => {}
            Selected::Aborted | Selected::Disconnected | Selected::Waiting => {
                let mut inner = self.inner.lock();
                let entry = if is_send {
                    inner.senders.unregister(oper, cx)
                } else {
                    inner.receivers.unregister(oper, cx)
                };
                drop(inner);
                if entry.is_some() {
                    // SAFETY: the entry's reference, which no peer took.
                    unsafe { Header::release(packet) };
                }
            }
        }
        // SAFETY: the owner's reference, released once (the guard runs once).
        unsafe { Header::release(packet) };
    }

    /// Sends, blocking until a receiver takes the message, until `deadline` if any.
    // Go: runtime.chansend (unbuffered: direct handoff to a waiting receiver, else park)
    pub(crate) fn send(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        // `Some` until the message moves into a packet; back after a cancelled pairing.
        let mut msg = Some(msg);
        loop {
            let mut token = Token::default();
            let m = msg.take().expect("gmp_chan: send lost its message");
            let mut inner = self.inner.lock();
            if Self::pair_with_receiver(&mut inner, &mut token) {
                drop(inner);
                // SAFETY: the token was just filled for this channel.
                return unsafe { self.write(&mut token, m) }
                    .map_err(SendTimeoutError::Disconnected);
            }
            if inner.disconnected {
                return Err(SendTimeoutError::Disconnected(m));
            }
            if let Some(d) = deadline {
                if utils::passed(d) {
                    return Err(SendTimeoutError::Timeout(m));
                }
            }
            let cx = Context::new();
            let oper = Operation::new(0);
            let packet = Packet::alloc(Some(m));
            inner
                .senders
                .register_with_packet(oper, packet as *mut (), &cx);
            inner.receivers.notify_observers();
            drop(inner);
            // SAFETY: the packet came from `Packet::<T>::alloc` above.
            let p = unsafe { Packet::<T>::from_header(packet) };

            let guard = OnUnwind::new(|| self.abandon(oper, &cx, packet, true));
            let res = match cx.wait_until(deadline, WaitReason::ChanSend) {
                Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                sel @ (Selected::Aborted | Selected::Disconnected) => {
                    // Nobody chose us, so our entry is still queued and the packet is ours.
                    let entry = self.inner.lock().senders.unregister(oper, &cx);
                    debug_assert!(entry.is_some(), "gmp_chan: undecided entry vanished");
                    // SAFETY: unregistered while undecided-by-peers: exclusive access.
                    let back = unsafe { p.take_msg() }.expect("gmp_chan: own packet is empty");
                    Some(Err(if sel == Selected::Aborted {
                        SendTimeoutError::Timeout(back)
                    } else {
                        SendTimeoutError::Disconnected(back)
                    }))
                }
                // Case 1: a receiver is taking the message.
                Selected::Operation(_) => match p.hdr.wait_done(WaitReason::ChanSend) {
                    READY => Some(Ok(())),
                    _ => {
                        // CANCELLED: the receiver gave up before taking it; try again.
                        // SAFETY: CANCELLED: the completer never touched the message.
                        msg = unsafe { p.take_msg() };
                        None
                    }
                },
            };
            guard.disarm();
            if matches!(res, Some(Err(_))) {
                // SAFETY: the entry's reference (we removed the entry ourselves).
                unsafe { Header::release(packet) };
            }
            // SAFETY: the owner's reference, released once.
            unsafe { Header::release(packet) };
            cx.recycle();
            if let Some(res) = res {
                return res;
            }
        }
    }

    /// Receives without blocking: succeeds only if a sender is waiting.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        loop {
            let mut token = Token::default();
            if !self.start_recv(&mut token) {
                return Err(TryRecvError::Empty);
            }
            // SAFETY: the token was just filled by `start_recv` on this channel.
            match unsafe { self.read_inner(&mut token) } {
                Ok(msg) => return Ok(msg),
                Err(ReadError::Disconnected) => return Err(TryRecvError::Disconnected),
                Err(ReadError::Retry) => {}
            }
        }
    }

    /// Receives, blocking until a sender hands a message over, until `deadline` if any.
    // Go: runtime.chanrecv (unbuffered: take from a waiting sender, else park)
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        loop {
            let mut token = Token::default();
            let mut inner = self.inner.lock();
            if Self::pair_with_sender(&mut inner, &mut token) {
                drop(inner);
                Self::wake_producer(&mut token);
                // SAFETY: the token was just filled for this channel.
                match unsafe { self.read_inner(&mut token) } {
                    Ok(msg) => return Ok(msg),
                    Err(ReadError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                    Err(ReadError::Retry) => continue,
                }
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
            let packet = Packet::<T>::alloc(None);
            inner
                .receivers
                .register_with_packet(oper, packet as *mut (), &cx);
            inner.senders.notify_observers();
            drop(inner);
            // SAFETY: the packet came from `Packet::<T>::alloc` above.
            let p = unsafe { Packet::<T>::from_header(packet) };

            let guard = OnUnwind::new(|| self.abandon(oper, &cx, packet, false));
            let res = match cx.wait_until(deadline, WaitReason::ChanReceive) {
                Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                sel @ (Selected::Aborted | Selected::Disconnected) => {
                    let entry = self.inner.lock().receivers.unregister(oper, &cx);
                    debug_assert!(entry.is_some(), "gmp_chan: undecided entry vanished");
                    Some(Err(if sel == Selected::Aborted {
                        RecvTimeoutError::Timeout
                    } else {
                        RecvTimeoutError::Disconnected
                    }))
                }
                // Case 2: a sender is writing into our packet.
                Selected::Operation(_) => match p.hdr.wait_done(WaitReason::ChanReceive) {
                    READY => Some(Ok(
                        // SAFETY: READY: the sender is done with the message.
                        unsafe { p.take_msg() }.expect("gmp_chan: ready packet is empty"),
                    )),
                    // CANCELLED: the sender gave up before writing; try again.
                    _ => None,
                },
            };
            guard.disarm();
            if matches!(res, Some(Err(_))) {
                // SAFETY: the entry's reference (we removed the entry ourselves).
                unsafe { Header::release(packet) };
            }
            // SAFETY: the owner's reference, released once.
            unsafe { Header::release(packet) };
            cx.recycle();
            if let Some(res) = res {
                return res;
            }
        }
    }

    /// Registers a `select` arm (send if `is_send`) with a fresh packet; true if the arm
    /// is ready right now. The owner's reference is found again through the context once
    /// a peer chose the arm (`accept`, `abandon_selected`), or through the entry
    /// (`unregister`).
    pub(crate) fn register(&self, oper: Operation, cx: &Context, is_send: bool) -> bool {
        let packet = Packet::<T>::alloc(None) as *mut ();
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
            let packet = entry.packet as *const Header;
            // SAFETY: its entry was still queued, so no peer ever saw it: both references
            // (the entry's and the owner's) are ours.
            unsafe {
                Header::release(packet);
                Header::release(packet);
            }
        }
    }

    /// The packet a peer published after choosing one of `cx`'s arms on this channel.
    fn chosen_packet(&self, cx: &Context) -> *const Header {
        // The peer published it under this lock, in the critical section where it won
        // the decision word we have already seen: taking the lock makes it visible.
        drop(self.inner.lock());
        let packet = cx.packet() as *const Header;
        assert!(!packet.is_null(), "gmp_chan: chosen arm without a packet");
        packet
    }

    /// A `select` arm of ours was chosen by a peer: take over the pairing. A receive arm
    /// waits here until the sender completes (false if it cancelled: the select goes on
    /// with its other arms); a send arm gets a token to write the message with.
    pub(crate) fn accept(&self, token: &mut Token, cx: &Context, is_send: bool) -> bool {
        let packet = self.chosen_packet(cx);
        if is_send {
            // Case 4: the owner's reference passes to the token.
            token.zero = ZeroToken {
                packet,
                role: Role::Complete(None),
            };
            return true;
        }
        // Case 3. If we unwind while parked here, the sender completes alone and the
        // message is dropped with the packet (module docs).
        let guard = OnUnwind::new(|| {
            // SAFETY: the owner's reference, released once: here (unwinding) or below,
            // never both (the guard is disarmed first).
            unsafe { Header::release(packet) }
        });
        // SAFETY: we hold the owner's reference.
        let state = unsafe { &*packet }.wait_done(WaitReason::Select);
        guard.disarm();
        if state == READY {
            token.zero = ZeroToken {
                packet,
                role: Role::Wait,
            };
            true
        } else {
            // SAFETY: the owner's reference, released once.
            unsafe { Header::release(packet) };
            false
        }
    }

    /// A peer chose a `select` arm of ours, but the select unwinds before `accept`: a
    /// send arm cancels the pairing (the waiting receiver retries), a receive arm lets go
    /// of its reference (module docs). Never parks.
    pub(crate) fn abandon_selected(&self, cx: &Context, is_send: bool) {
        let packet = self.chosen_packet(cx);
        if is_send {
            // SAFETY: case 4, we are the completer and hold the owner's reference.
            unsafe { (*packet).finish(CANCELLED, None) };
        }
        // SAFETY: the owner's reference, released once.
        unsafe { Header::release(packet) };
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

/// Where a registered async send stands (see [`Channel::poll_send_async`]).
pub(crate) enum AsyncSend<T> {
    /// A receiver took the message.
    Sent,
    /// The channel disconnected before any receiver took it: the message comes back.
    Disconnected(T),
    /// A receiver chose it and then gave up (a cancelled pairing): send it again.
    Retry(T),
}

/// Async sends (`Sender::send_async`, see `async_ops`). A future cannot park, so its
/// registration is case 1 with a packet the future owns a reference to, exactly as a
/// blocked `send`: a receiver takes the message from it and sets the final state, and
/// whichever of the two lets go last frees it. Async receives need no code here: they
/// observe the channel (`watch`) and take messages with `try_recv`, so a dropped
/// receive future never holds a message.
impl<T> Channel<T> {
    /// Hands `msg` to a waiting receiver (`Ok(None)`), fails if the channel is
    /// disconnected (`Err(msg)`), or registers it in a packet under `cx`
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
        let packet = Packet::alloc(Some(msg));
        inner
            .senders
            .register_with_packet(oper, packet as *mut (), cx);
        inner.receivers.notify_observers();
        Ok(Some(packet as *mut ()))
    }

    /// Where a registered async send stands; `None` while it waits (the receiver
    /// unparks `cx` after setting the final state, so `None` is never final). On `Some`
    /// the registration is over and the future's reference to the packet released.
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
    ) -> Option<AsyncSend<T>> {
        let h = packet as *const Header;
        // SAFETY: the packet came from `Packet::<T>::alloc` and we hold the owner's
        // reference (caller).
        let p = unsafe { Packet::<T>::from_header(h) };
        let res = match cx.selected() {
            Selected::Waiting => return None,
            Selected::Operation(_) => {
                // Acquire: pairs with the completer's Release store of the state.
                match p.hdr.state.load(Ordering::Acquire) {
                    PENDING => return None,
                    READY => AsyncSend::Sent,
                    // CANCELLED: the receiver gave up before taking the message.
                    // SAFETY: the completer never touched the message.
                    _ => AsyncSend::Retry(
                        unsafe { p.take_msg() }.expect("gmp_chan: own packet is empty"),
                    ),
                }
            }
            Selected::Aborted | Selected::Disconnected => {
                // Nobody chose us, so the entry is still queued and the packet ours.
                let entry = self.inner.lock().senders.unregister(oper, cx);
                debug_assert!(entry.is_some(), "gmp_chan: undecided entry vanished");
                // SAFETY: unregistered while undecided by peers: exclusive access.
                let msg = unsafe { p.take_msg() }.expect("gmp_chan: own packet is empty");
                // SAFETY: the entry's reference (we removed the entry ourselves).
                unsafe { Header::release(h) };
                AsyncSend::Disconnected(msg)
            }
        };
        // SAFETY: the owner's reference, released once.
        unsafe { Header::release(h) };
        Some(res)
    }

    /// Withdraws a registered async send (its future was dropped): the message is
    /// dropped, unless a receiver already took it (then it was delivered). A receiver
    /// that chose it and is still taking it holds its own reference: the packet goes
    /// when the last of us lets go, and no one waits for the other.
    ///
    /// # Safety
    ///
    /// As for [`Channel::poll_send_async`].
    pub(crate) unsafe fn cancel_send_async(&self, packet: *mut (), oper: Operation, cx: &Context) {
        let h = packet as *const Header;
        if !matches!(cx.abort(), Selected::Operation(_))
            && self.inner.lock().senders.unregister(oper, cx).is_some()
        {
            // SAFETY: the entry's reference (we removed the entry ourselves).
            unsafe { Header::release(h) };
        }
        // SAFETY: the owner's reference, released once; the message (if still inside)
        // is dropped with the packet.
        unsafe { Header::release(h) };
    }
}
