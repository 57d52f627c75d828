//! The unbounded channel (`unbounded()`): a lock-free linked list of blocks of slots.
//!
//! # Algorithm
//!
//! The algorithm of crossbeam-channel's list flavour (and of std's `mpsc`, which took it
//! from there), learned from it and written here. Messages live in *blocks* of
//! [`BLOCK_CAP`] slots chained by a `next` pointer. Two *positions*, `head` (the next
//! message to receive) and `tail` (the next slot to fill), each hold an index and a
//! pointer to the block that index falls in. An index counts positions, shifted left by
//! [`SHIFT`]; the low bit is a flag ([`MARK_BIT`]): in `tail` it means *disconnected*,
//! in `head` it means *a later block exists* (so a receiver need not look at `tail` to
//! know the slot it claims will be filled). Every block owns [`LAP`] positions: one per
//! slot, and one more, offset `BLOCK_CAP`, that stands for "moving on to the next block".
//!
//! - **Send**: a sender claims the slot at `tail` with a CAS of the index. The sender that
//!   claims a block's last slot allocates the next block *before* its CAS (so nobody
//!   waits on an allocation), then, having won, installs it: the block pointer first,
//!   then the index past the offset-`BLOCK_CAP` position, then the old block's `next`.
//!   Senders that meet a `tail` at offset `BLOCK_CAP` wait for that install. It writes the
//!   message and sets the slot's `WRITE` bit (Release).
//! - **Receive**: a receiver claims the slot at `head` by CAS, the one that claims a
//!   block's last slot moves `head` on to the next block (waiting for the sender to link
//!   it), and reads the slot once its `WRITE` bit is set (Acquire). Before a claim it
//!   checks for emptiness against `tail` (after a SeqCst fence, so `try_recv` is
//!   linearizable), unless `head`'s flag says a later block exists.
//! - **Freeing blocks**: a block is freed by whoever finishes with it last. The reader of
//!   its last slot starts the destruction: it walks the other slots, and a slot whose
//!   `READ` bit is not set yet gets `DESTROY` instead, telling its reader (still busy with
//!   it) to carry the destruction on from the next slot when it is done. So a block lives
//!   exactly until every slot has been read, and memory follows the backlog: a drained
//!   burst keeps no blocks.
//!
//! A block pointer is only dereferenced after a successful CAS of its position's index
//! claimed a slot in it; a claimed slot's block cannot be freed before that slot is read.
//! The index is loaded before the block pointer (Acquire: the installer stores the
//! pointer before it moves the index), so a pointer newer than its index makes the CAS
//! fail instead of claiming a slot in the wrong block.
//!
//! # Blocking
//!
//! Senders never block. A receiver that finds the list empty spins briefly (a thread; a
//! goroutine parks at once, see [`Backoff`]), then registers a [`Context`] on
//! `receivers`, re-checks and parks. The `tail` CAS and the emptiness re-check are
//! SeqCst, as are the waker flag's store and load, so either the sender's `notify` sees
//! the registration or the re-check sees the message (as in the array flavour).
//!
//! # Disconnection and unwinding
//!
//! `tail`'s flag, set by one `fetch_or`, disconnects: later sends fail with their message
//! back, receivers drain what is left and then see "disconnected". When the last receiver
//! goes, every queued message is dropped at once (their destructors run on that thread,
//! with no lock held). A receiver that unwinds out of its park removes its entry, or
//! passes a wake-up it was chosen for on to the next receiver: no message was reserved
//! for it, so none is lost. A `select` that claimed a message and then unwinds before
//! reading it (its `SelectedOperation` dropped by a panicking thread) reads and drops the
//! message from the token's destructor, so the block is still freed.

use crate::context::{Context, Operation};
use crate::err::{RecvTimeoutError, TryRecvError};
use crate::select::Token;
use crate::utils::Backoff;
use crate::waker::SyncWaker;
use crossbeam_utils::CachePadded;
use gmp_core::park::WaitReason;
use gmp_core::sync::atomic::{self, AtomicPtr, AtomicUsize, Ordering};
use gmp_core::sync::UnsafeCell;
use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::time::Instant;

/// A slot's state bits: the message is written; it was read; the block's destroyer
/// reached it first and left the freeing to its reader.
const WRITE: usize = 1;
const READ: usize = 2;
const DESTROY: usize = 4;

/// Positions per block: [`BLOCK_CAP`] slots and one for the move to the next block.
#[cfg(not(loom))]
const LAP: usize = 32;
/// Under loom, three slots a block: the models cross block boundaries within a handful
/// of messages.
#[cfg(loom)]
const LAP: usize = 4;
/// Messages per block.
const BLOCK_CAP: usize = LAP - 1;
/// Indices are positions shifted left by this much; the bits below are flags.
const SHIFT: usize = 1;
/// In `tail`: disconnected. In `head`: a block after `head`'s exists.
const MARK_BIT: usize = 1;

/// One position further.
const ONE: usize = 1 << SHIFT;

/// The position of an index, flags stripped.
#[inline]
fn position(index: usize) -> usize {
    index >> SHIFT
}

/// Where a position falls in its block: `0..BLOCK_CAP` for a slot, `BLOCK_CAP` for the
/// move to the next block.
#[inline]
fn offset(index: usize) -> usize {
    position(index) % LAP
}

/// How many slots come before a position (each lap of `LAP` positions has one that is
/// not a slot), so that the number of messages between two positions is a difference.
#[inline]
fn slots_before(index: usize) -> usize {
    let p = position(index);
    p - p / LAP
}

/// What `start_recv` claimed: the block and the slot's offset in it. A null block means
/// "disconnected". Dropped unread (a `SelectedOperation` dropped while its thread
/// unwinds), it reads and drops the message so that the block can still be freed.
#[derive(Debug)]
pub(crate) struct ListToken {
    block: *const u8,
    offset: usize,
    /// `Channel::<T>::discard_claimed` for the channel's `T`.
    discard: Option<unsafe fn(*const u8, usize)>,
}

impl Default for ListToken {
    fn default() -> Self {
        ListToken {
            block: ptr::null(),
            offset: 0,
            discard: None,
        }
    }
}

impl Drop for ListToken {
    fn drop(&mut self) {
        if let (false, Some(discard)) = (self.block.is_null(), self.discard) {
            // SAFETY: a token with a block holds a claim made by `start_recv` of the
            // channel whose `discard_claimed` this is, not yet read (`read` takes the
            // token's fields first); reading it here completes the claim once.
            unsafe { discard(self.block, self.offset) };
        }
    }
}

struct Slot<T> {
    msg: UnsafeCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

impl<T> Slot<T> {
    /// Waits for the sender that claimed this slot to finish writing. It is running: a
    /// claim and its write have no suspension point between them.
    fn wait_write(&self) {
        let backoff = Backoff::new();
        // Acquire: pairs with the writer's Release `fetch_or`; the message is visible.
        while self.state.load(Ordering::Acquire) & WRITE == 0 {
            backoff.snooze();
        }
    }
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP],
    /// Under loom and in unit tests, blocks are never given back to the allocator:
    /// [`Block::free`] marks them and
    /// [`Block::get`] checks the mark, so a test that reaches a freed block fails
    /// (neither loom nor a plain test sees a `Box` being freed).
    #[cfg(any(loom, test))]
    freed: gmp_core::sync::atomic::AtomicBool,
}

impl<T> Block<T> {
    /// The block behind `this`.
    ///
    /// # Safety
    ///
    /// `this` is a live block (not freed); the reference is not used after it is freed.
    #[inline]
    unsafe fn get<'a>(this: *mut Block<T>) -> &'a Block<T> {
        // SAFETY: guaranteed by the caller.
        let b = unsafe { &*this };
        #[cfg(any(loom, test))]
        assert!(
            !b.freed.load(Ordering::SeqCst),
            "gmp_chan: a freed block of the list was used"
        );
        b
    }

    /// An empty block: null `next`, every slot state 0.
    fn alloc() -> *mut Block<T> {
        #[cfg(not(loom))]
        {
            let layout = std::alloc::Layout::new::<Block<T>>();
            // SAFETY: the layout is not zero-sized (a block holds its `next` pointer).
            let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut Block<T>;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // All zeroes is an empty block: a null `AtomicPtr`, `AtomicUsize`s of 0 and
            // uninitialised messages (std's atomics and cells are `repr(transparent)`
            // or plain integers).
            p
        }
        #[cfg(loom)]
        {
            // loom's atomics are not plain integers: build the block.
            Box::into_raw(Box::new(Block {
                next: AtomicPtr::new(ptr::null_mut()),
                slots: std::array::from_fn(|_| Slot {
                    msg: UnsafeCell::new(MaybeUninit::uninit()),
                    state: AtomicUsize::new(0),
                }),
                freed: gmp_core::sync::atomic::AtomicBool::new(false),
            }))
        }
    }

    /// Frees a block made by [`Block::alloc`]. Its messages are not dropped.
    ///
    /// # Safety
    ///
    /// `this` came from `alloc`, nothing uses it any more, and it is freed once.
    unsafe fn free(this: *mut Block<T>) {
        #[cfg(not(any(loom, test)))]
        // SAFETY: guaranteed by the caller. `Block` has no drop glue of its own beyond
        // its fields (atomics, `MaybeUninit`s), so this only frees the memory.
        drop(unsafe { Box::from_raw(this) });
        #[cfg(any(loom, test))]
        {
            // SAFETY: guaranteed by the caller (the memory is never released under
            // loom or in unit tests).
            let b = unsafe { Block::get(this) };
            // SeqCst (as every access to the flag): a use after this free, in the
            // interleavings loom explores, reads it.
            b.freed.store(true, Ordering::SeqCst);
        }
    }

    /// Waits for the next block to be linked (its installer is running, as above).
    fn wait_next(&self) -> *mut Block<T> {
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with the installer's Release store; the block is initialised.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }

    /// Frees `this` once every slot from `start` on has been read; a slot still being
    /// read gets `DESTROY`, and its reader calls this again from the slot after it.
    ///
    /// # Safety
    ///
    /// `this` is a live block whose last slot has been read (its reader calls this with
    /// `start == 0`), or whose slot `start - 1` was marked `DESTROY` and has just been
    /// read by the caller.
    unsafe fn destroy(this: *mut Block<T>, start: usize) {
        // The last slot is not visited: its reader is the one that began the destruction.
        for i in start..BLOCK_CAP - 1 {
            // SAFETY: the block is alive until every slot has been read, and slot `i`
            // has not been released to us yet.
            let slot = unsafe { &Block::get(this).slots[i] };
            // Acquire (on both): a reader's Release `fetch_or(READ)` follows its read of
            // the message, which must happen before the free.
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(DESTROY, Ordering::AcqRel) & READ == 0
            {
                // Still being read: its reader goes on from `i + 1`.
                return;
            }
        }
        // SAFETY: every slot has been read and no reader will touch the block again
        // (stale pointers to it are only compared, never followed: module docs).
        unsafe { Block::free(this) };
    }
}

/// What [`Channel::claim`] found.
enum Claim<T> {
    /// The slot at this offset of this block is ours to read.
    Slot(*mut Block<T>, usize),
    /// The list is empty and disconnected.
    Disconnected,
}

/// One end of the list: an index and the block it falls in.
struct Position<T> {
    index: AtomicUsize,
    block: AtomicPtr<Block<T>>,
}

impl<T> Position<T> {
    fn new() -> Self {
        Position {
            index: AtomicUsize::new(0),
            block: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// An unbounded channel.
pub(crate) struct Channel<T> {
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
    receivers: SyncWaker,
    /// The channel owns `T`s (for the drop check).
    _marker: PhantomData<T>,
}

impl<T> Channel<T> {
    pub(crate) fn new() -> Self {
        Channel {
            head: CachePadded::new(Position::new()),
            tail: CachePadded::new(Position::new()),
            receivers: SyncWaker::new(),
            _marker: PhantomData,
        }
    }

    /// Sends (never blocks); gives the message back if the receivers are gone.
    // Go: runtime.chansend (here the buffer simply grows)
    pub(crate) fn send(&self, msg: T) -> Result<(), T> {
        let backoff = Backoff::new();
        // Acquire (index, then pointer): see the module docs.
        let mut tail = self.tail.index.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        let mut next_block: Option<OwnedBlock<T>> = None;
        loop {
            if tail & MARK_BIT != 0 {
                return Err(msg);
            }
            let off = offset(tail);
            if off == BLOCK_CAP {
                // Another sender is installing the next block.
                backoff.snooze();
                tail = self.tail.index.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            if off + 1 == BLOCK_CAP && next_block.is_none() {
                // We may claim the last slot: have the next block ready before the CAS.
                next_block = Some(OwnedBlock::new());
            }
            if block.is_null() {
                // The first send ever: install the first block.
                let first = next_block.take().unwrap_or_else(OwnedBlock::new);
                // Release: the block's (zeroed) contents before its pointer.
                match self.tail.block.compare_exchange(
                    ptr::null_mut(),
                    first.0,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let first = first.into_raw();
                        // Release: as above, for receivers.
                        self.head.block.store(first, Ordering::Release);
                        block = first;
                    }
                    Err(_) => {
                        // Another sender did it; keep ours as the spare next block.
                        next_block = Some(first);
                        tail = self.tail.index.load(Ordering::Acquire);
                        block = self.tail.block.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            // SeqCst: the claim and the later SeqCst load of the waker's flag (in
            // `notify`) pair with a registering receiver's store and re-check.
            match self.tail.index.compare_exchange_weak(
                tail,
                tail + ONE,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if off + 1 == BLOCK_CAP {
                        // We took the last slot: install the next block, pointer first.
                        let next = next_block
                            .take()
                            .expect("gmp_chan: the next block was allocated before the claim")
                            .into_raw();
                        // Release (both): a sender that sees the new index sees the
                        // new block (Acquire loads above).
                        self.tail.block.store(next, Ordering::Release);
                        self.tail.index.fetch_add(ONE, Ordering::Release);
                        // SAFETY: our claim keeps `block` alive (its last slot is unread).
                        // Release: pairs with `wait_next`.
                        unsafe { Block::get(block).next.store(next, Ordering::Release) };
                    }
                    // SAFETY: as above; the claim gives us the slot until we publish it.
                    let slot = unsafe { &Block::get(block).slots[off] };
                    // SAFETY: exclusive access to the unwritten slot (our claim).
                    slot.msg
                        .with_mut(|p| unsafe { p.write(MaybeUninit::new(msg)) });
                    // Release: publishes the message to the reader's Acquire.
                    slot.state.fetch_or(WRITE, Ordering::Release);
                    self.receivers.notify();
                    return Ok(());
                }
                Err(t) => {
                    tail = t;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Claims the message at `head` for a later `read`. False if the list is empty; true
    /// with an empty token if it is empty and disconnected.
    pub(crate) fn start_recv(&self, token: &mut Token) -> bool {
        match self.claim() {
            None => false,
            Some(Claim::Disconnected) => {
                token.list = ListToken::default();
                true
            }
            Some(Claim::Slot(block, off)) => {
                token.list = ListToken {
                    block: block as *const u8,
                    offset: off,
                    discard: Some(Self::discard_claimed),
                };
                true
            }
        }
    }

    /// Claims the message at `head`: `None` if the list is empty. A claimed slot must be
    /// read ([`read_slot`](Self::read_slot)); `recv` and `try_recv` do so at once, with
    /// no `Token` (whose drop glue was 7% of a send + receive).
    #[inline]
    fn claim(&self) -> Option<Claim<T>> {
        let backoff = Backoff::new();
        // Acquire (index, then pointer): see the module docs.
        let mut head = self.head.index.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let off = offset(head);
            if off == BLOCK_CAP {
                // Another receiver is moving `head` to the next block.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            let mut new_head = head + ONE;
            if head & MARK_BIT == 0 {
                // No block is known to follow: the slot may not be claimed yet. SeqCst
                // fence: orders this emptiness check with the senders' SeqCst claims and
                // with a registering receiver's flag (module docs).
                atomic::fence(Ordering::SeqCst);
                // Relaxed: ordered by the fence.
                let tail = self.tail.index.load(Ordering::Relaxed);
                if position(head) == position(tail) {
                    if tail & MARK_BIT != 0 {
                        return Some(Claim::Disconnected);
                    }
                    return None;
                }
                if position(head) / LAP != position(tail) / LAP {
                    new_head |= MARK_BIT;
                }
            }
            if block.is_null() {
                // A sender claimed the first slot and is installing the first block.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            // SeqCst: as the senders' claims (a snapshot `len`/`is_empty` sees both).
            match self.head.index.compare_exchange_weak(
                head,
                new_head,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if off + 1 == BLOCK_CAP {
                        // We took the last slot: move `head` on to the next block.
                        // SAFETY: our claim keeps `block` alive (its last slot is unread).
                        let next = unsafe { Block::get(block).wait_next() };
                        let mut next_index = (new_head & !MARK_BIT) + ONE;
                        // SAFETY: `next` is linked and cannot be freed before `head`
                        // reaches it. Relaxed: a hint, re-checked against `tail` if wrong.
                        if !unsafe { Block::get(next).next.load(Ordering::Relaxed) }.is_null() {
                            next_index |= MARK_BIT;
                        }
                        // Release (both): a receiver that sees the new index sees the
                        // new block.
                        self.head.block.store(next, Ordering::Release);
                        self.head.index.store(next_index, Ordering::Release);
                    }
                    return Some(Claim::Slot(block, off));
                }
                Err(h) => {
                    head = h;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Reads the message claimed by `start_recv`; `Err` if the token says disconnected.
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_recv` on this channel, used once.
    pub(crate) unsafe fn read(&self, token: &mut Token) -> Result<T, ()> {
        let claim = mem::take(&mut token.list);
        let (block, off) = (claim.block, claim.offset);
        // The fields are taken; the claim is completed here, not by the token's drop.
        mem::forget(claim);
        if block.is_null() {
            return Err(());
        }
        // SAFETY: the caller guarantees a claim of this channel, made by `start_recv`.
        Ok(unsafe { Self::read_slot(block as *mut Block<T>, off) })
    }

    /// Reads and drops a claimed message that will not be received (see [`ListToken`]).
    ///
    /// # Safety
    ///
    /// As [`read_slot`](Self::read_slot), with `block` cast from `*mut Block<T>`.
    unsafe fn discard_claimed(block: *const u8, off: usize) {
        // SAFETY: forwarded from the caller.
        drop(unsafe { Self::read_slot(block as *mut Block<T>, off) });
    }

    /// Takes the message out of a claimed slot and releases the slot.
    ///
    /// # Safety
    ///
    /// `block` and `off` were claimed by a `start_recv` of a channel of `T`s and not
    /// read yet; the claim is consumed.
    #[inline]
    unsafe fn read_slot(block: *mut Block<T>, off: usize) -> T {
        // SAFETY: the claim keeps the block alive until this slot is released below.
        let slot = unsafe { &Block::get(block).slots[off] };
        slot.wait_write();
        // SAFETY: written (WRITE seen with Acquire) and ours alone (the claim); moved out
        // once.
        let msg = slot.msg.with(|p| unsafe { p.read().assume_init() });
        if off + 1 == BLOCK_CAP {
            // SAFETY: we read the block's last slot: we begin its destruction.
            unsafe { Block::destroy(block, 0) };
        } else if slot.state.fetch_or(READ, Ordering::AcqRel) & DESTROY != 0 {
            // AcqRel: Release orders our read before a destroyer's free; Acquire, the
            // destroyer's marks before our own walk. The destroyer passed the block on
            // to us at this slot.
            // SAFETY: slot `off` was marked DESTROY and we have just read it.
            unsafe { Block::destroy(block, off + 1) };
        }
        msg
    }

    /// Receives without blocking.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.claim() {
            None => Err(TryRecvError::Empty),
            // SAFETY: just claimed on this channel; completed once.
            Some(claim) => unsafe { self.take(claim) }.map_err(|_| TryRecvError::Disconnected),
        }
    }

    /// Completes a claim at once: the message, or `Err` for "disconnected".
    ///
    /// # Safety
    ///
    /// `claim` was returned by [`claim`](Self::claim) of this channel and is completed
    /// once (a `Claim` is not `Copy`; it is consumed here).
    #[inline]
    unsafe fn take(&self, claim: Claim<T>) -> Result<T, ()> {
        match claim {
            Claim::Disconnected => Err(()),
            Claim::Slot(block, off) => {
                // SAFETY: a slot claimed on this channel (caller), read once.
                Ok(unsafe { Self::read_slot(block, off) })
            }
        }
    }

    /// Receives, blocking while empty, until `deadline` if any.
    // Go: runtime.chanrecv (buffered)
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut waited = false;
        loop {
            let backoff = Backoff::new();
            loop {
                if let Some(claim) = self.claim() {
                    // SAFETY: just claimed on this channel; completed once.
                    return unsafe { self.take(claim) }.map_err(|_| RecvTimeoutError::Disconnected);
                }
                if backoff.is_completed() {
                    break;
                }
                backoff.snooze();
            }
            if !self
                .receivers
                .wait_once(deadline, waited, WaitReason::ChanReceive, || {
                    !self.is_empty() || self.is_disconnected()
                })
            {
                return Err(RecvTimeoutError::Timeout);
            }
            waited = true;
        }
    }

    /// A receiver chosen by a sender's `notify` will not receive after all (a `select`
    /// took another arm, or it unwound): wake the next one. Nothing was reserved for it.
    pub(crate) fn forward(&self) {
        self.receivers.notify();
    }

    /// Registers a `select` arm; true if it is ready right now.
    pub(crate) fn register(&self, oper: Operation, cx: &Context) -> bool {
        self.receivers.register(oper, cx);
        self.is_ready()
    }

    /// Removes a `select` arm's registration.
    pub(crate) fn unregister(&self, oper: Operation, cx: &Context) {
        self.receivers.unregister(oper, cx);
    }

    /// Registers a readiness observer; true if ready right now.
    pub(crate) fn watch(&self, oper: Operation, cx: &Context) -> bool {
        self.receivers.watch(oper, cx);
        self.is_ready()
    }

    /// Removes a readiness observer.
    pub(crate) fn unwatch(&self, oper: Operation, cx: &Context) {
        self.receivers.unwatch(oper, cx);
    }

    /// True if a receive would not block.
    pub(crate) fn is_ready(&self) -> bool {
        !self.is_empty() || self.is_disconnected()
    }

    /// True if no message is waiting (claimed messages do not count).
    pub(crate) fn is_empty(&self) -> bool {
        // SeqCst: used in the re-check after registering (module docs).
        let head = self.head.index.load(Ordering::SeqCst);
        let tail = self.tail.index.load(Ordering::SeqCst);
        slots_before(head) == slots_before(tail)
    }

    /// True once either side is gone.
    pub(crate) fn is_disconnected(&self) -> bool {
        // SeqCst: used in the re-check after registering (module docs).
        self.tail.index.load(Ordering::SeqCst) & MARK_BIT != 0
    }

    /// Messages available to receive (a snapshot).
    pub(crate) fn len(&self) -> usize {
        loop {
            // SeqCst: a consistent snapshot of both indices (tail re-read to validate).
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            if self.tail.index.load(Ordering::SeqCst) == tail {
                return slots_before(tail).saturating_sub(slots_before(head));
            }
        }
    }

    /// The last sender is gone: wake the receivers. True if this call disconnected.
    pub(crate) fn disconnect_senders(&self) -> bool {
        // SeqCst: ordered with the claims and with receivers' registrations.
        if self.tail.index.fetch_or(MARK_BIT, Ordering::SeqCst) & MARK_BIT == 0 {
            self.receivers.disconnect();
            true
        } else {
            false
        }
    }

    /// The last receiver is gone: fail later sends and drop the queued messages now.
    pub(crate) fn disconnect_receivers(&self) -> bool {
        // SeqCst: as in `disconnect_senders`.
        if self.tail.index.fetch_or(MARK_BIT, Ordering::SeqCst) & MARK_BIT == 0 {
            self.receivers.disconnect();
            self.discard_all_messages();
            true
        } else {
            false
        }
    }

    /// Drops every queued message and frees the blocks, once `tail` is marked and no
    /// receiver is left (so nothing but senders still finishing a write touches the
    /// list). Message destructors run here, with no lock held; if one panics, the rest
    /// leak (safe: the list is left empty, with no block).
    fn discard_all_messages(&self) {
        let backoff = Backoff::new();
        // A sender that took a block's last slot before the mark may still be installing
        // the next one: wait until `tail` is a real position.
        let tail = loop {
            // Acquire: the installed block pointer, and every claim before the mark.
            let tail = self.tail.index.load(Ordering::Acquire);
            if offset(tail) != BLOCK_CAP {
                break tail;
            }
            backoff.snooze();
        };
        // Acquire: the last receiver's moves of `head`.
        let mut head = self.head.index.load(Ordering::Acquire);
        // AcqRel: take the chain (a racing first-block install stores it; see below).
        let mut block = self.head.block.swap(ptr::null_mut(), Ordering::AcqRel);
        if position(head) != position(tail) {
            // Messages were claimed, so a first block exists: its installer may not
            // have published it to `head` yet.
            while block.is_null() {
                backoff.snooze();
                block = self.head.block.swap(ptr::null_mut(), Ordering::AcqRel);
            }
        }
        // Say the list is empty before any destructor runs (it may panic, or use the
        // channel): `head` at `tail`, no block.
        self.head.index.store(tail & !MARK_BIT, Ordering::Release);
        while position(head) != position(tail) {
            let off = offset(head);
            if off < BLOCK_CAP {
                // SAFETY: the block holds unread claimed slots from `head` on, so it is
                // alive, and no receiver is left to read them.
                let slot = unsafe { &Block::get(block).slots[off] };
                slot.wait_write();
                // SAFETY: written (Acquire in `wait_write`), read by nobody else; dropped
                // once.
                slot.msg.with_mut(|p| unsafe { (*p).assume_init_drop() });
            } else {
                // SAFETY: as above; the block's last slot was claimed, so a next block
                // is (being) linked.
                let next = unsafe { Block::get(block).wait_next() };
                // SAFETY: every message in it was dropped above; nobody else holds it.
                unsafe { Block::free(block) };
                block = next;
            }
            head += ONE;
        }
        if !block.is_null() {
            // SAFETY: the block `head` ended in; its messages are gone and nobody else
            // holds it (the senders are done with their claims, new ones fail).
            unsafe { Block::free(block) };
        }
    }
}

impl<T> Drop for Channel<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self`, no other thread can touch the channel any more.
        let mut head = self.head.index.load(Ordering::Relaxed);
        let tail = self.tail.index.load(Ordering::Relaxed);
        let mut block = self.head.block.load(Ordering::Relaxed);
        if block.is_null() {
            // Nothing was ever sent, or the receivers' disconnect already emptied it.
            return;
        }
        while position(head) != position(tail) {
            let off = offset(head);
            if off < BLOCK_CAP {
                // SAFETY: the slots from `head` to `tail` hold written, unread messages
                // (exclusive access: every send completed); each is dropped once.
                unsafe {
                    Block::get(block).slots[off]
                        .msg
                        .with_mut(|p| (*p).assume_init_drop())
                };
            } else {
                // SAFETY: as above; a position past the block's last slot means the next
                // block was linked.
                let next = unsafe { Block::get(block).next.load(Ordering::Relaxed) };
                // SAFETY: its messages were dropped above; freed once.
                unsafe { Block::free(block) };
                block = next;
            }
            head += ONE;
        }
        // SAFETY: the last block, freed once.
        unsafe { Block::free(block) };
    }
}

/// A block allocated ahead of need, freed if it is not used.
struct OwnedBlock<T>(*mut Block<T>);

impl<T> OwnedBlock<T> {
    fn new() -> Self {
        OwnedBlock(Block::alloc())
    }

    /// Gives the block up to the list.
    fn into_raw(self) -> *mut Block<T> {
        let p = self.0;
        mem::forget(self);
        p
    }
}

impl<T> Drop for OwnedBlock<T> {
    fn drop(&mut self) {
        // SAFETY: ours, never published (published blocks went through `into_raw`).
        unsafe { Block::free(self.0) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The slot arithmetic: a lap of `LAP` positions holds `BLOCK_CAP` slots.
    #[test]
    fn slots_before_skips_the_block_end_position() {
        assert_eq!(slots_before(0), 0);
        assert_eq!(slots_before((BLOCK_CAP - 1) << SHIFT), BLOCK_CAP - 1);
        assert_eq!(slots_before(BLOCK_CAP << SHIFT), BLOCK_CAP);
        assert_eq!(slots_before(LAP << SHIFT), BLOCK_CAP);
        assert_eq!(slots_before((LAP + 1) << SHIFT | MARK_BIT), BLOCK_CAP + 1);
    }

    /// A burst several blocks long comes out in order, and `len` counts it exactly.
    #[test]
    fn messages_cross_blocks_in_order() {
        let c = Channel::<u32>::new();
        let n = 5 * BLOCK_CAP as u32 + 3;
        for i in 0..n {
            c.send(i).unwrap();
            assert_eq!(c.len(), i as usize + 1);
        }
        for i in 0..n {
            assert_eq!(c.try_recv(), Ok(i));
            assert_eq!(c.len(), (n - i - 1) as usize);
        }
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
        assert!(c.is_empty());
    }

    /// Queued messages are dropped exactly once, by the receivers' disconnect or by the
    /// channel's drop, across block boundaries.
    #[test]
    fn queued_messages_are_dropped_once() {
        use std::sync::Arc;
        for receivers_first in [false, true] {
            let token = Arc::new(());
            let c = Channel::<Arc<()>>::new();
            for _ in 0..2 * BLOCK_CAP + 5 {
                c.send(token.clone()).unwrap();
            }
            drop(c.try_recv().unwrap());
            assert_eq!(Arc::strong_count(&token), 2 * BLOCK_CAP + 5);
            if receivers_first {
                assert!(c.disconnect_receivers());
                assert_eq!(Arc::strong_count(&token), 1);
                assert!(c.send(token.clone()).is_err());
            }
            drop(c);
            assert_eq!(Arc::strong_count(&token), 1);
        }
    }

    /// A block outlives its slowest reader: the reader of the last slot finds earlier
    /// slots claimed but unread and leaves the freeing to them (`DESTROY`), and each
    /// passes it on. (A block used after being freed fails `Block::get` here.)
    #[test]
    fn a_block_outlives_its_slowest_readers() {
        let c = Channel::<u32>::new();
        let n = BLOCK_CAP as u32;
        for i in 0..n + 1 {
            c.send(i).unwrap();
        }
        let (mut t0, mut t1) = (Token::default(), Token::default());
        assert!(c.start_recv(&mut t0));
        let first = t0.list.block as *mut Block<u32>;
        assert!(c.start_recv(&mut t1));
        for i in 2..n {
            assert_eq!(c.try_recv(), Ok(i));
        }
        // SAFETY: tokens filled by `start_recv` of `c`, each read once.
        assert_eq!(unsafe { c.read(&mut t1) }, Ok(1));
        // SAFETY: as above.
        assert_eq!(unsafe { c.read(&mut t0) }, Ok(0));
        // Freed by the last of them (in unit tests the memory stays, marked).
        // SAFETY: blocks are never released in unit tests.
        assert!(unsafe { &*first }.freed.load(Ordering::SeqCst));
        assert_eq!(c.try_recv(), Ok(n));
    }

    /// A claim dropped unread (the token of a `select` whose thread unwinds) drops its
    /// message and lets the block be freed; the next message is received normally.
    #[test]
    fn a_claim_dropped_unread_drops_its_message() {
        use std::sync::Arc;
        let token = Arc::new(());
        let c = Channel::<Arc<()>>::new();
        for _ in 0..BLOCK_CAP + 1 {
            c.send(token.clone()).unwrap();
        }
        for _ in 0..BLOCK_CAP - 1 {
            drop(c.try_recv().unwrap());
        }
        // The block's last slot, claimed and dropped: its token frees the first block.
        let mut t = Token::default();
        assert!(c.start_recv(&mut t));
        drop(t);
        assert_eq!(Arc::strong_count(&token), 2);
        drop(c.try_recv().unwrap());
        assert_eq!(Arc::strong_count(&token), 1);
        assert_eq!(c.try_recv(), Err(TryRecvError::Empty));
    }
}
