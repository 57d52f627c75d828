//! The zero-capacity channel (`bounded(0)`): Go's unbuffered channel, a rendezvous with
//! direct handoff.
//!
//! # Algorithm
//!
//! There is no buffer. A spin lock (`spinlock.rs`) guards two wait queues (blocked
//! senders, blocked receivers) and the disconnected flag. An operation that finds a waiter
//! of the other kind wins that waiter's decision word ([`Context::try_select`]) under the
//! lock and exchanges the message through the waiter's *packet*; otherwise it registers
//! itself, with a packet of its own, and parks. A packet is the exchange slot: the
//! message, a `state` word (`PENDING`, then `READY` or `CANCELLED`, plus a `LEFT` mark,
//! below), and the unparker of a peer that waits for the message (case 4).
//!
//! Packets live on the heap, shared by the two parties (the *owner*, the registered
//! waiter, and the *peer*, the one that selected it). Who frees one follows from the
//! roles below, with no reference count: the *completer*'s last touch is the
//! read-modify-write that publishes the final state, so the *waiting* party, once it has
//! read that state, is the packet's only user and frees it (and whatever message is
//! still in it) without another atomic operation. A waiting party that leaves before the
//! final state (unwound while parked, a dropped token or future) marks the packet `LEFT`
//! instead; whichever of that mark and the final state comes second frees it. So neither
//! party ever waits for the other to be done with memory, and a party that disappears
//! leaves nothing dangling. A registration nobody chose is freed by its owner, who
//! removed it from the queue. (Go: the `sudog` belongs to the parked goroutine, which
//! waits for its wake-up; a goroutine here may leave by unwinding, hence `LEFT`.)
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
//! - *a peer chose it*: the guard only lets go of the packet (`LEFT`). A sender's
//!   message is then delivered exactly once, by the peer, which owns the pairing; a
//!   message a peer hands to a vanished receiver is dropped with the packet (the sender's
//!   handoff completed, as in Go when a receiver dies right after `chanrecv` returned).
//!   Nothing is received twice, nothing leaks. The owner takes the channel's lock before
//!   it lets go (the peer used the owner's waiter record under it); if its `LEFT` comes
//!   before the final state, the completer sees it and does not touch that record
//!   either (it has no count: `context.rs`), else the owner waits for the completer's
//!   wake-up to finish.
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
//! - A packet is freed exactly once: by the waiter after it read the final state, by the
//!   second of `LEFT` and the final state, or by the owner of an entry it removed.
//! - Every party that waits for a flag (`state`) parks in a loop, and the party that sets
//!   the flag unparks it afterwards: no spinning on a peer that might not be running (a
//!   goroutine waiting for a goroutine on the same thread would otherwise never let it
//!   run). Nothing waits while unwinding.
//! - A waiter is never paired with itself: a `select` that sends and receives on one
//!   zero-capacity channel is excluded from its own queues.
//! - Disconnecting marks every undecided waiter `Disconnected`; a blocked sender then gets
//!   its message back out of its own packet.

use crate::context::{Context, OnUnwind, Operation, Selected, WaiterRef};
use crate::err::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::select::Token;
use crate::spinlock::SpinLock;
use crate::utils;
use crate::waker::Waker;
use gmp_core::park::{self, Unparker, WaitReason};
use gmp_core::sync::atomic::{AtomicU8, Ordering};
use gmp_core::sync::UnsafeCell;
use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::mem;
use std::ptr::{self, NonNull};
use std::time::Instant;

const PENDING: u8 = 0;
const READY: u8 = 1;
const CANCELLED: u8 = 2;
/// Or-ed into the state by a waiting party that lets go before the final state.
const LEFT: u8 = 4;
/// The bits of the final state (`PENDING`, `READY`, `CANCELLED`).
const FINAL: u8 = 3;

/// What this party does with the packet of a pairing.
#[derive(Debug)]
enum Role {
    /// Complete the exchange, then wake the owner (cases 1–3: we won its record, see
    /// `context.rs`), or, with `None`, the peer whose unparker is in the packet (case 4:
    /// we are the owner).
    Complete(Option<WaiterRef>),
    /// Wait for the other party to complete (case 4's peer; case 3's owner after
    /// `accept`, which already waited).
    Wait,
}

/// What a completed pairing left for `read`/`write`: the packet (this token's party's
/// share of it, see the module docs) and our role. A null packet means "disconnected".
/// Dropped without being used (a `SelectedOperation` dropped by an unwinding thread), it
/// cancels the pairing: see the module docs.
#[derive(Debug)]
pub(crate) struct ZeroToken {
    packet: *const Header,
    /// Frees the packet (`Packet::<T>::free` of its channel's `T`): a token dropped
    /// unused may have to, and does not know `T`.
    free: Free,
    role: Role,
}

impl Default for ZeroToken {
    fn default() -> Self {
        ZeroToken {
            packet: ptr::null(),
            free: no_packet,
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

    /// A token holding this party's share of `packet`, a `Packet<T>`.
    fn new<T>(packet: *const Header, role: Role) -> ZeroToken {
        ZeroToken {
            packet,
            free: Packet::<T>::free,
            role,
        }
    }
}

impl Drop for ZeroToken {
    fn drop(&mut self) {
        let (packet, role) = self.take();
        if packet.is_null() {
            return;
        }
        match role {
            // SAFETY: a non-null token holds its party's share of a live packet; we are
            // the completer, once: the state is still PENDING and ours to set.
            Role::Complete(owner) => unsafe {
                Header::complete(packet, self.free, CANCELLED, owner)
            },
            // SAFETY: as above; we are the waiting party and let go once. (No record to
            // give up: case 4's peer has none in the pairing, and case 3's owner has
            // already read the final state in `accept`.)
            Role::Wait => unsafe {
                Header::leave(packet, self.free);
            },
        }
    }
}

/// What frees a whole `Packet<T>` given its header (`Packet::<T>::free`), for code
/// that does not know `T`.
type Free = unsafe fn(*const Header);

/// The `free` of a token without a packet; never called.
///
/// # Safety
///
/// Nothing to keep: it touches nothing (`unsafe` only to be a [`Free`]).
unsafe fn no_packet(_: *const Header) {
    unreachable!("gmp_chan: freed the packet of a token that has none");
}

/// The type-independent prefix of every packet: `Packet<T>` starts with the same fields
/// in the same order (both `repr(C)`; asserted in `alloc`), so a `*const Header` is
/// the packet's address and reaches these two fields for any `T`. Read field by field
/// ([`Header::state`], [`Header::waiter`]), never as a whole `&Header`: its tail padding
/// may overlap the message that another party writes. What frees the packet is not in
/// it but with whoever may have to ([`ZeroToken::free`], or the typed caller): for a
/// `()` message a packet is then 24 bytes, a 32-byte chunk instead of 48 (one per
/// parked goroutine in idlemem and park1m).
#[repr(C)]
struct Header {
    /// Case 4: the peer's unparker, stored by the peer before it publishes the packet.
    waiter: UnsafeCell<Option<Unparker>>,
    /// `PENDING`, then `READY` or `CANCELLED` (set by the completer), plus `LEFT` (set by
    /// a waiting party that let go first).
    state: AtomicU8,
}

/// An exchange slot (see the module docs).
#[repr(C)]
struct Packet<T> {
    /// [`Header::waiter`].
    waiter: UnsafeCell<Option<Unparker>>,
    /// [`Header::state`].
    state: AtomicU8,
    msg: UnsafeCell<Option<T>>,
    /// Under loom, a tracked allocation that lives exactly as long as the packet: a
    /// packet nobody frees fails the model ("Arc leaked"), which the message-drop counts
    /// alone miss when the packet is empty.
    #[cfg(loom)]
    _live: gmp_core::sync::Arc<()>,
}

impl<T> Packet<T> {
    /// A packet for a registration: the owner's, until its wait-queue entry hands a share
    /// to the peer that selects it.
    fn alloc(msg: Option<T>) -> *const Header {
        const {
            assert!(mem::offset_of!(Packet<T>, waiter) == mem::offset_of!(Header, waiter));
            assert!(mem::offset_of!(Packet<T>, state) == mem::offset_of!(Header, state));
        }
        let packet = Packet {
            waiter: UnsafeCell::new(None),
            state: AtomicU8::new(PENDING),
            msg: UnsafeCell::new(msg),
            #[cfg(loom)]
            _live: gmp_core::sync::Arc::new(()),
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
    /// `h` came from `Packet::<T>::alloc` and nobody else uses it or will.
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

    /// [`Header::wait_done`], for the waiting party.
    fn wait_done(&self, reason: WaitReason) -> u8 {
        // SAFETY: the packet is live while borrowed; its header is its prefix.
        unsafe { Header::wait_done(ptr::from_ref(self).cast(), reason) }
    }

    /// # Safety
    ///
    /// `h` came from `Packet::<T>::alloc` and the caller's party has not let go of it.
    unsafe fn from_header<'a>(h: *const Header) -> &'a Packet<T> {
        // SAFETY: `repr(C)` puts the header at the packet's address; alive until the
        // caller's party lets go (caller).
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
    /// The packet's state word.
    ///
    /// # Safety
    ///
    /// `h` is a live packet, for as long as the reference is used.
    unsafe fn state<'a>(h: *const Header) -> &'a AtomicU8 {
        // SAFETY: live (caller); a reference to the field alone (type docs).
        unsafe { &(*h).state }
    }

    /// The packet's slot for case 4's peer.
    ///
    /// # Safety
    ///
    /// As for [`Header::state`].
    unsafe fn waiter<'a>(h: *const Header) -> &'a UnsafeCell<Option<Unparker>> {
        // SAFETY: live (caller); a reference to the field alone (type docs).
        unsafe { &(*h).waiter }
    }

    /// The waiter's side: parks until the completer has set the final state; `reason` is
    /// what a goroutine dump shows meanwhile. The packet is then the caller's alone (to
    /// free: `Packet::<T>::free`).
    ///
    /// # Safety
    ///
    /// `h` is a live packet (the caller, its waiting party, frees it only after this
    /// returns).
    unsafe fn wait_done(h: *const Header, reason: WaitReason) -> u8 {
        // SAFETY: live (caller).
        let state = unsafe { Header::state(h) };
        loop {
            // Acquire: pairs with the completer's release in `complete`, so the message
            // (READY) is visible, and so is every use the completer made of the packet
            // before the caller frees it.
            let s = state.load(Ordering::Acquire);
            if s != PENDING {
                debug_assert_eq!(s & LEFT, 0, "gmp_chan: a waiting party left twice");
                return s;
            }
            park::park_for(reason);
        }
    }

    /// The completer's side: publishes the final state, wakes the waiting party, and
    /// frees the packet if that party has already let go. The completer does not touch
    /// the packet after this.
    ///
    /// # Safety
    ///
    /// `h` is a live packet, freed by `free`, of which the caller is the completer (see
    /// the module docs), and this is its one call of `complete`.
    unsafe fn complete(h: *const Header, free: Free, state: u8, owner: Option<WaiterRef>) {
        let peer = match owner {
            Some(_) => None,
            // Case 4: the peer left its unparker before publishing the packet to us.
            // SAFETY: live: the waiting party frees it only after reading the final
            // state, which we have not set yet, or after `LEFT`, which makes us the one
            // to free it; exclusive access to the slot until the state leaves PENDING.
            None => unsafe { Header::waiter(h).with_mut(|w| (*w).take()) },
        };
        // AcqRel: Release publishes the message (READY) and our uses of the packet to the
        // waiting party, which then frees it (`wait_done`'s Acquire) or has let go
        // (`leave`'s Acquire); Acquire makes a `leave` we see happen before our free.
        // One RMW is all the completer pays: the read of `LEFT` comes with the store. An
        // add, not an or: the bits are disjoint and each is set once, and x86 has a
        // single instruction (`lock xadd`) for an add that returns the old value, where
        // `fetch_or` is a `cmpxchg` loop.
        // SAFETY: live, as above.
        let prev = unsafe { Header::state(h) }.fetch_add(state, Ordering::AcqRel);
        debug_assert_eq!(prev & FINAL, PENDING, "gmp_chan: a pairing completed twice");
        let left = prev & LEFT != 0;
        if left {
            // SAFETY: the waiting party let go before our final state: nobody else will
            // touch the packet; `free` is its own (caller).
            unsafe { free(h) };
        }
        if let Some(o) = owner {
            // The owner (cases 1-3) waits for this before its record dies, unless it has
            // left first: then it did not wait, and we must not touch its record.
            if !left {
                o.unpark_release();
            }
        }
        if let Some(p) = peer {
            p.unpark();
        }
    }

    /// A waiting party lets go without (necessarily) having read the final state: it
    /// unwinds out of its park, or drops its token or future. Frees the packet if the
    /// completer is done with it; otherwise the completer will. Never waits. Returns true
    /// if it let go first: the completer has not finished and, seeing `LEFT`, will touch
    /// neither the packet nor the owner's record again (an owner then calls
    /// [`Context::peer_gone`]).
    ///
    /// # Safety
    ///
    /// `h` is a live packet, freed by `free`, the caller is its waiting party (or the
    /// owner of a chosen registration), and this is its last use of the packet.
    unsafe fn leave(h: *const Header, free: Free) -> bool {
        // AcqRel: Release orders our uses of the packet before the completer's free;
        // Acquire makes the completer's uses happen before ours.
        // An add: as in `complete`.
        // SAFETY: live: the completer frees it only after seeing `LEFT`, not set yet.
        let prev = unsafe { Header::state(h) }.fetch_add(LEFT, Ordering::AcqRel);
        debug_assert_eq!(prev & LEFT, 0, "gmp_chan: a waiting party left twice");
        if prev & FINAL != PENDING {
            // SAFETY: the completer published its final state, its last touch; `free`
            // is the packet's own (caller).
            unsafe { free(h) };
            false
        } else {
            true
        }
    }

    /// An owner (cases 1-3) whose registration a peer chose lets go: [`Header::leave`],
    /// and if the peer has not finished, it will not come back to `cx` either.
    ///
    /// # Safety
    ///
    /// As for [`Header::leave`]; `cx` is the record the registration was queued under,
    /// and the caller took the channel's lock after the peer chose it (so the peer's
    /// uses of `cx` under that lock happen before the caller's end).
    unsafe fn owner_leave(h: *const Header, free: Free, cx: &Context) {
        // SAFETY: forwarded from the caller.
        if unsafe { Header::leave(h, free) } {
            cx.peer_gone();
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
    inner: SpinLock<Inner>,
    _marker: PhantomData<T>,
}

impl<T> Channel<T> {
    pub(crate) fn new() -> Self {
        Channel {
            inner: SpinLock::new(Inner {
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
                // The entry's share passes to the token. Cases 2/3: we complete.
                token.zero = ZeroToken::new::<T>(
                    entry.packet as *const Header,
                    Role::Complete(Some(entry.cx)),
                );
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
                // SAFETY: we won the owner's decision word, so the entry's share and the
                // message are ours to use (module invariant 1).
                let p = unsafe { Packet::<T>::from_header(packet) };
                // SAFETY: as above.
                if unsafe { p.has_msg() } {
                    // Case 1: take the message in `read`, then unpark the owner.
                    entry.cx.store_packet(entry.packet);
                    token.zero = ZeroToken::new::<T>(packet, Role::Complete(Some(entry.cx)));
                } else {
                    // Case 4: the owner must run to produce the message; leave our
                    // unparker for it first, then publish the packet (the caller wakes it).
                    // SAFETY: as above; the owner reads `waiter` only after it took the
                    // channel lock that we hold now.
                    unsafe { p.waiter.with_mut(|w| *w = Some(park::current())) };
                    entry.cx.store_packet(entry.packet);
                    token.zero = ZeroToken::new::<T>(packet, Role::Wait);
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
            cx.unpark_release();
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
        // SAFETY: the token held its share of a `Packet<T>` of this channel.
        let p = unsafe { Packet::<T>::from_header(packet) };
        // SAFETY: we are the completer: the waiting party reads the message only after
        // READY, and no one else has access.
        unsafe { p.put_msg(msg) };
        // SAFETY: we are the completer, once (the token is spent).
        unsafe { Header::complete(packet, Packet::<T>::free, READY, owner) };
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
        // SAFETY: the token held its share of a `Packet<T>` of this channel.
        let p = unsafe { Packet::<T>::from_header(packet) };
        match role {
            Role::Complete(owner) => {
                // Case 1. SAFETY: we are the completer: exclusive access until we finish.
                let msg = unsafe { p.take_msg() }.expect("gmp_chan: sender's packet is empty");
                // SAFETY: we are the completer, once (the token is spent).
                unsafe { Header::complete(packet, Packet::<T>::free, READY, owner) };
                Ok(msg)
            }
            Role::Wait => {
                // If we unwind while parked here, the owner completes alone and the
                // message is dropped with the packet (module docs).
                let guard = OnUnwind::new(|| {
                    // SAFETY: we are the waiting party and let go once: here (unwinding)
                    // or below, never both (the guard is disarmed first).
                    unsafe {
                        Header::leave(packet, Packet::<T>::free);
                    }
                });
                // Case 4's peer: a receive waiting for a select's send arm to write.
                // (Case 3's owner has already waited in `accept`: READY at once.)
                let state = p.wait_done(WaitReason::ChanReceive);
                guard.disarm();
                let res = if state == READY {
                    // SAFETY: READY: the completer is done with the message.
                    Ok(unsafe { p.take_msg() }.expect("gmp_chan: ready packet is empty"))
                } else {
                    Err(ReadError::Retry)
                };
                // SAFETY: we read the final state: the packet is ours alone.
                unsafe { Packet::<T>::free(packet) };
                res
            }
        }
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

    /// The owner of a plain operation's registration leaves by unwinding (module docs),
    /// or drops its future (`cancel_send_async`). Once per registration.
    fn abandon(&self, oper: Operation, cx: &Context, packet: *const Header, is_send: bool) {
        let entry = {
            // Taken in every case: a peer that chose us used our record under this lock
            // (its winning CAS, `store_packet`), which must happen before our record dies.
            let mut inner = self.inner.lock();
            match cx.abort() {
                // A peer chose us: it completes or cancels the pairing; we only let go.
                Selected::Operation(_) => None,
                Selected::Aborted | Selected::Disconnected | Selected::Waiting => {
                    if is_send {
                        inner.senders.unregister(oper, cx)
                    } else {
                        inner.receivers.unregister(oper, cx)
                    }
                }
            }
        };
        if entry.is_some() {
            // SAFETY: we removed our entry before any peer chose it: nobody else can
            // reach the packet. Once: the guard runs once.
            unsafe { Packet::<T>::free(packet) };
        } else {
            // SAFETY: a peer chose us (an entry is only ever removed by its owner or by
            // the peer that won its decision word): we are the waiting party (cases 1
            // and 2) and let go once; we took the lock after it chose us.
            unsafe { Header::owner_leave(packet, Packet::<T>::free, cx) };
        }
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
            let res = Context::with(|cx| {
                let oper = Operation::new(0);
                let packet = Packet::alloc(Some(m));
                inner
                    .senders
                    .register_with_packet(oper, packet as *mut (), cx);
                inner.receivers.notify_observers();
                drop(inner);
                // SAFETY: the packet came from `Packet::<T>::alloc` above.
                let p = unsafe { Packet::<T>::from_header(packet) };

                let guard = OnUnwind::new(|| self.abandon(oper, cx, packet, true));
                let res = match cx.wait_until(deadline, WaitReason::ChanSend) {
                    Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                    sel @ (Selected::Aborted | Selected::Disconnected) => {
                        // Nobody chose us, so our entry is still queued and the packet is ours.
                        let entry = self.inner.lock().senders.unregister(oper, cx);
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
                    Selected::Operation(_) => match p.wait_done(WaitReason::ChanSend) {
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
                // SAFETY: we removed our own entry (no peer saw it) or read the final state:
                // the packet is ours alone. Once: the guard is disarmed.
                unsafe { Packet::<T>::free(packet) };
                res
            });
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
            let res = Context::with(|cx| {
                let oper = Operation::new(0);
                let packet = Packet::<T>::alloc(None);
                inner
                    .receivers
                    .register_with_packet(oper, packet as *mut (), cx);
                inner.senders.notify_observers();
                drop(inner);
                // SAFETY: the packet came from `Packet::<T>::alloc` above.
                let p = unsafe { Packet::<T>::from_header(packet) };

                let guard = OnUnwind::new(|| self.abandon(oper, cx, packet, false));
                let res = match cx.wait_until(deadline, WaitReason::ChanReceive) {
                    Selected::Waiting => unreachable!("gmp_chan: woke undecided"),
                    sel @ (Selected::Aborted | Selected::Disconnected) => {
                        let entry = self.inner.lock().receivers.unregister(oper, cx);
                        debug_assert!(entry.is_some(), "gmp_chan: undecided entry vanished");
                        Some(Err(if sel == Selected::Aborted {
                            RecvTimeoutError::Timeout
                        } else {
                            RecvTimeoutError::Disconnected
                        }))
                    }
                    // Case 2: a sender is writing into our packet.
                    Selected::Operation(_) => match p.wait_done(WaitReason::ChanReceive) {
                        READY => Some(Ok(
                            // SAFETY: READY: the sender is done with the message.
                            unsafe { p.take_msg() }.expect("gmp_chan: ready packet is empty"),
                        )),
                        // CANCELLED: the sender gave up before writing; try again.
                        _ => None,
                    },
                };
                guard.disarm();
                // SAFETY: we removed our own entry (no peer saw it) or read the final state:
                // the packet is ours alone. Once: the guard is disarmed.
                unsafe { Packet::<T>::free(packet) };
                res
            });
            if let Some(res) = res {
                return res;
            }
        }
    }

    /// Registers a `select` arm (send if `is_send`) with a fresh packet; true if the arm
    /// is ready right now. The owner's packet is found again through the context once
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
            // SAFETY: its entry was still queued, so no peer ever saw it: the packet is
            // ours alone.
            unsafe { Packet::<T>::free(packet) };
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
            // Case 4: the owner's share passes to the token; we complete.
            token.zero = ZeroToken::new::<T>(packet, Role::Complete(None));
            return true;
        }
        // Case 3. If we unwind while parked here, the sender completes alone and the
        // message is dropped with the packet (module docs).
        let guard = OnUnwind::new(|| {
            // SAFETY: we are the waiting party and let go once: here (unwinding) or
            // below, never both (the guard is disarmed first); `chosen_packet` took the
            // lock after the peer chose us.
            unsafe { Header::owner_leave(packet, Packet::<T>::free, cx) }
        });
        // SAFETY: the owner's share: live until we let go.
        let state = unsafe { Packet::<T>::from_header(packet) }.wait_done(WaitReason::Select);
        guard.disarm();
        if state == READY {
            // `read` takes the message and frees the packet (its wait returns at once).
            token.zero = ZeroToken::new::<T>(packet, Role::Wait);
            true
        } else {
            // SAFETY: we read the final state: the packet is ours alone.
            unsafe { Packet::<T>::free(packet) };
            false
        }
    }

    /// A peer chose a `select` arm of ours, but the select unwinds before `accept`: a
    /// send arm cancels the pairing (the waiting receiver retries), a receive arm lets go
    /// of the packet (module docs). Never parks.
    pub(crate) fn abandon_selected(&self, cx: &Context, is_send: bool) {
        let packet = self.chosen_packet(cx);
        if is_send {
            // SAFETY: case 4, we are the completer, once.
            unsafe { Header::complete(packet, Packet::<T>::free, CANCELLED, None) };
        } else {
            // SAFETY: case 3, we are the waiting party and let go once; `chosen_packet`
            // took the lock after the peer chose us.
            unsafe { Header::owner_leave(packet, Packet::<T>::free, cx) };
        }
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
/// registration is case 1 with a packet the future owns, exactly as a blocked `send`: a
/// receiver takes the message from it and sets the final state; the future frees it once
/// it has seen that state, or lets go first (`LEFT`) and the receiver frees it. Async
/// receives need no code here: they observe the channel (`watch`) and take messages with
/// `try_recv`, so a dropped receive future never holds a message.
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
    /// the registration is over and the packet freed.
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
        // SAFETY: the packet came from `Packet::<T>::alloc` and the owner (the caller)
        // has not let go of it.
        let p = unsafe { Packet::<T>::from_header(h) };
        let res = match cx.selected() {
            Selected::Waiting => return None,
            Selected::Operation(_) => {
                // Acquire: pairs with the completer's release in `complete`.
                match p.state.load(Ordering::Acquire) {
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
                AsyncSend::Disconnected(msg)
            }
        };
        // SAFETY: we read the final state or removed our own entry: the packet is ours
        // alone, and the caller makes no further use of it.
        unsafe { Packet::<T>::free(h) };
        Some(res)
    }

    /// Withdraws a registered async send (its future was dropped): the message is
    /// dropped, unless a receiver already took it (then it was delivered). A receiver
    /// that chose it and is still taking it completes alone and frees the packet; no
    /// one waits for the other.
    ///
    /// # Safety
    ///
    /// As for [`Channel::poll_send_async`].
    pub(crate) unsafe fn cancel_send_async(&self, packet: *mut (), oper: Operation, cx: &Context) {
        // A registered send's owner letting go, exactly as a blocked `send` that unwinds:
        // the entry removed while undecided (the message dropped with the packet), or a
        // receiver that chose it completing alone (case 1). The caller's contract makes
        // this its one use of the registration.
        self.abandon(oper, cx, packet as *const Header, true);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A parked goroutine of idlemem/park1m holds one packet of a `()` message: 24
    /// bytes, which glibc serves from a 32-byte chunk (48 with the `free` pointer that
    /// now travels with the token).
    #[test]
    fn a_unit_packet_is_three_words() {
        assert_eq!(mem::size_of::<Packet<()>>(), 24);
        assert_eq!(mem::size_of::<Header>(), 24);
    }
}
