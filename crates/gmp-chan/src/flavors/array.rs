//! The bounded channel: a lock-free ring of stamped slots (`bounded(cap)`, `cap > 0`).
//!
//! # Algorithm
//!
//! Dmitry Vyukov's bounded MPMC queue (1024cores.net, "Bounded MPMC queue"), with
//! crossbeam-channel's encoding of positions. A *position* is `lap | index`: `index` in
//! `0..cap` in the low bits, a lap counter above them (multiples of `one_lap`). `tail` is
//! the next position to write, `head` the next to read. Each slot carries a `stamp`:
//!
//! - `stamp == pos`: the slot is free for the sender at position `pos`;
//! - `stamp == pos + 1`: the slot holds the message of position `pos`;
//! - after reading position `pos`, the receiver sets `stamp = pos + one_lap`, freeing the
//!   slot for the same index one lap later.
//!
//! A sender claims position `tail` by CAS (`tail -> next(tail)`) only after seeing the
//! slot's stamp say "free for `tail`"; then it writes the message and publishes it with a
//! Release store of `tail + 1` into the stamp. Receivers mirror this on `head`. A stamp one
//! lap behind tells a sender the ring may be full; it then compares `head` and `tail`
//! (after a SeqCst fence, so the answer is linearizable) to decide between "full" and
//! "a receiver is just finishing, retry".
//!
//! `mark_bit`, a bit above every index, set in `tail`, means *disconnected*. One
//! `fetch_or` sets it, so no send can succeed after the disconnection (their CAS would
//! see the bit), and receivers drain what is left and then see the bit as "empty and
//! disconnected". `one_lap = 2 * mark_bit` and `mark_bit >= cap + 1`, so `pos + 1` never
//! aliases a free-stamp of another lap (this matters for `cap == 1`).
//!
//! # Blocking
//!
//! The fast paths touch only `head` or `tail`, the slot, and one read-mostly flag per
//! wait queue ([`SyncWaker`]). A sender that finds the ring full spins briefly
//! ([`Backoff`]), then registers a [`Context`](crate::context::Context) on `senders`, re-checks `is_full` and parks.
//! The index CASes are SeqCst and so are the flag's store and load, so either the peer's
//! `notify` sees the registration or the registrant's re-check sees the peer's progress.
//! A notified waiter simply retries; a value is never handed over, so a waiter that was
//! selected elsewhere leaves every message where it is.
//!
//! # Unwinding out of a park
//!
//! A waiter that leaves its park by unwinding (a panic, or gmp-core's forced unwind of a
//! goroutine dropped while parked at a runtime's shutdown) runs [`SyncWaker::abandon`]
//! from a guard armed right after it registered ([`SyncWaker::wait_once`]): its entry is
//! removed, or, if a peer had already chosen it, the wake-up is passed on to the next
//! waiter. Nothing was reserved, so every
//! message stays in the ring for a live receiver, and an unwound sender's message (never
//! written) is dropped with its stack.

use crate::err::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::select::Token;
use crate::utils::Backoff;
use crate::waker::SyncWaker;
use crossbeam_utils::CachePadded;
use gmp_core::park::WaitReason;
use gmp_core::sync::atomic::{self, AtomicUsize, Ordering};
use gmp_core::sync::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::time::Instant;

/// What `start_send`/`start_recv` reserved: the slot and the stamp to publish after the
/// message is written or read. A null slot means "disconnected".
#[derive(Debug)]
pub(crate) struct ArrayToken {
    slot: *const u8,
    stamp: usize,
}

impl Default for ArrayToken {
    fn default() -> Self {
        ArrayToken {
            slot: ptr::null(),
            stamp: 0,
        }
    }
}

struct Slot<T> {
    stamp: AtomicUsize,
    msg: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded channel of capacity `cap > 0`.
pub(crate) struct Channel<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    buffer: Box<[Slot<T>]>,
    cap: usize,
    one_lap: usize,
    mark_bit: usize,
    senders: SyncWaker,
    receivers: SyncWaker,
}

impl<T> Channel<T> {
    /// A channel holding at most `cap` messages. Panics if `cap` is too large.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        assert!(
            cap > 0,
            "gmp_chan: an array channel needs a capacity above zero"
        );
        let mark_bit = cap
            .checked_add(1)
            .and_then(usize::checked_next_power_of_two)
            .filter(|m| m.checked_mul(2).is_some())
            .unwrap_or_else(|| panic!("gmp_chan::bounded: capacity {cap} is too large"));
        let one_lap = mark_bit * 2;
        let buffer: Box<[Slot<T>]> = (0..cap)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                msg: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Channel {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            buffer,
            cap,
            one_lap,
            mark_bit,
            senders: SyncWaker::new(),
            receivers: SyncWaker::new(),
        }
    }

    /// The position after `pos`.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.mark_bit - 1);
        if index + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & (self.mark_bit - 1);
        debug_assert!(index < self.cap);
        // SAFETY: positions are built by `next` from 0, so their index is below `cap`,
        // the length of `buffer`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// Reserves a slot to write. False if the ring is full; true with an empty token if
    /// the channel is disconnected.
    #[inline]
    pub(crate) fn start_send(&self, token: &mut Token) -> bool {
        self.start_send_inner(token, true)
    }

    /// As `start_send`; with `exact == false` a slot still holding the previous lap's
    /// message counts as "full" without checking `head`. Blocking senders use that while
    /// they spin: it spares them a SeqCst fence and a read of the receivers' hot `head`
    /// line per poll, and they re-check exactly before parking.
    fn start_send_inner(&self, token: &mut Token, exact: bool) -> bool {
        let backoff = Backoff::new();
        // Relaxed: a stale tail is caught by the stamp check or the CAS below.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & self.mark_bit != 0 {
                token.array = ArrayToken::default();
                return true;
            }
            let slot = self.slot(tail);
            // Acquire: the receiver that freed the slot has finished reading it.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // SeqCst: this claim and the later SeqCst load of the receivers' flag
                // (in `write`) pair with a registering receiver (see module docs).
                match self.tail.compare_exchange_weak(
                    tail,
                    self.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        token.array = ArrayToken {
                            slot: slot as *const Slot<T> as *const u8,
                            stamp: tail + 1,
                        };
                        return true;
                    }
                    Err(t) => {
                        tail = t;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds the previous lap's message: full, unless a
                // receiver has claimed it and is reading right now.
                if !exact {
                    return false;
                }
                atomic::fence(Ordering::SeqCst);
                // Relaxed: ordered by the fence.
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return false;
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Our tail is stale: another sender got there first.
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed); // Relaxed: re-validated by the stamp.
            }
        }
    }

    /// Writes into the reserved slot; gives the message back if the token says the
    /// channel is disconnected.
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_send` on this channel, used once.
    pub(crate) unsafe fn write(&self, token: &mut Token, msg: T) -> Result<(), T> {
        if token.array.slot.is_null() {
            return Err(msg);
        }
        // SAFETY: the caller guarantees the token was reserved on this channel, so `slot`
        // points into `buffer`, and the CAS on `tail` gave this thread exclusive write
        // access to the slot until the stamp is published.
        let slot = unsafe { &*(token.array.slot as *const Slot<T>) };
        // SAFETY: exclusive access, see above; the slot is empty (its stamp said so).
        slot.msg
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(msg)) });
        // Release: publishes the message to the receiver's Acquire load of the stamp.
        slot.stamp.store(token.array.stamp, Ordering::Release);
        self.receivers.notify();
        Ok(())
    }

    /// Reserves a slot to read. False if the ring is empty; true with an empty token if
    /// it is empty and disconnected.
    #[inline]
    pub(crate) fn start_recv(&self, token: &mut Token) -> bool {
        self.start_recv_inner(token, true)
    }

    /// As `start_recv`; with `exact == false` a free slot counts as "empty" without
    /// checking `tail` (nor the disconnection mark), for spinning receivers (see
    /// `start_send_inner`).
    fn start_recv_inner(&self, token: &mut Token, exact: bool) -> bool {
        let backoff = Backoff::new();
        // Relaxed: a stale head is caught by the stamp check or the CAS below.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the sender's Release store of the stamp.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if head + 1 == stamp {
                // SeqCst: pairs with a registering sender (see module docs).
                match self.head.compare_exchange_weak(
                    head,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        token.array = ArrayToken {
                            slot: slot as *const Slot<T> as *const u8,
                            stamp: head.wrapping_add(self.one_lap),
                        };
                        return true;
                    }
                    Err(h) => {
                        head = h;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // The slot is free for this lap: empty, unless a sender has claimed it
                // and is writing right now.
                if !exact {
                    return false;
                }
                atomic::fence(Ordering::SeqCst);
                // Relaxed: ordered by the fence.
                let tail = self.tail.load(Ordering::Relaxed);
                if tail & !self.mark_bit == head {
                    if tail & self.mark_bit != 0 {
                        token.array = ArrayToken::default();
                        return true;
                    }
                    return false;
                }
                backoff.spin();
                head = self.head.load(Ordering::Relaxed); // Relaxed: re-validated by the stamp.
            } else {
                // Our head is stale: another receiver got there first.
                backoff.spin();
                head = self.head.load(Ordering::Relaxed); // Relaxed: re-validated by the stamp.
            }
        }
    }

    /// Reads the reserved slot; `Err` if the token says the channel is disconnected.
    ///
    /// # Safety
    ///
    /// `token` must come from a successful `start_recv` on this channel, used once.
    pub(crate) unsafe fn read(&self, token: &mut Token) -> Result<T, ()> {
        if token.array.slot.is_null() {
            return Err(());
        }
        // SAFETY: as in `write`: the CAS on `head` gave this thread the slot.
        let slot = unsafe { &*(token.array.slot as *const Slot<T>) };
        // SAFETY: the stamp said the slot holds an initialized message, and the claim is
        // exclusive; it is moved out exactly once.
        let msg = slot.msg.with(|p| unsafe { p.read().assume_init() });
        // Release: the next lap's sender sees the slot empty only after our read.
        slot.stamp.store(token.array.stamp, Ordering::Release);
        self.senders.notify();
        Ok(msg)
    }

    /// Sends without blocking.
    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut token = Token::default();
        if self.start_send(&mut token) {
            // SAFETY: the token was just reserved on this channel.
            unsafe { self.write(&mut token, msg) }.map_err(TrySendError::Disconnected)
        } else {
            Err(TrySendError::Full(msg))
        }
    }

    /// Sends, blocking while the ring is full, until `deadline` if any.
    // Go: runtime.chansend (buffered)
    pub(crate) fn send(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut token = Token::default();
        let mut waited = false;
        loop {
            // Spin a little before parking; only the first and the last polls are exact.
            let backoff = Backoff::new();
            let mut first = true;
            loop {
                let last = backoff.is_completed();
                if self.start_send_inner(&mut token, first || last) {
                    // SAFETY: the token was just reserved on this channel.
                    return unsafe { self.write(&mut token, msg) }
                        .map_err(SendTimeoutError::Disconnected);
                }
                if last {
                    break;
                }
                first = false;
                backoff.snooze();
            }
            if !self
                .senders
                .wait_once(deadline, waited, WaitReason::ChanSend, || {
                    !self.is_full() || self.is_disconnected()
                })
            {
                return Err(SendTimeoutError::Timeout(msg));
            }
            waited = true;
        }
    }

    /// Receives without blocking.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut token = Token::default();
        if self.start_recv(&mut token) {
            // SAFETY: the token was just reserved on this channel.
            unsafe { self.read(&mut token) }.map_err(|_| TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Receives, blocking while the ring is empty, until `deadline` if any.
    // Go: runtime.chanrecv (buffered)
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut token = Token::default();
        let mut waited = false;
        loop {
            // Spin a little before parking; only the first and the last polls are exact.
            let backoff = Backoff::new();
            let mut first = true;
            loop {
                let last = backoff.is_completed();
                if self.start_recv_inner(&mut token, first || last) {
                    // SAFETY: the token was just reserved on this channel.
                    return unsafe { self.read(&mut token) }
                        .map_err(|_| RecvTimeoutError::Disconnected);
                }
                if last {
                    break;
                }
                first = false;
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

    /// The number of messages in the ring (a snapshot).
    pub(crate) fn len(&self) -> usize {
        loop {
            // SeqCst: a consistent snapshot of both indices (tail re-read to validate).
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return self.distance(head, tail);
            }
        }
    }

    fn distance(&self, head: usize, tail: usize) -> usize {
        let hix = head & (self.mark_bit - 1);
        let tix = tail & (self.mark_bit - 1);
        if hix < tix {
            tix - hix
        } else if hix > tix {
            self.cap - hix + tix
        } else if tail & !self.mark_bit == head {
            0
        } else {
            self.cap
        }
    }

    /// The capacity.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Marks the channel disconnected and wakes every waiter. True if this call did it.
    pub(crate) fn disconnect(&self) -> bool {
        // SeqCst: the mark is ordered with the index CASes and waiter registrations.
        let tail = self.tail.fetch_or(self.mark_bit, Ordering::SeqCst);
        if tail & self.mark_bit == 0 {
            self.senders.disconnect();
            self.receivers.disconnect();
            true
        } else {
            false
        }
    }

    /// True once either side is gone.
    pub(crate) fn is_disconnected(&self) -> bool {
        // SeqCst: used in the re-check after registering (see module docs).
        self.tail.load(Ordering::SeqCst) & self.mark_bit != 0
    }

    /// True if there is nothing to read.
    pub(crate) fn is_empty(&self) -> bool {
        // SeqCst: used in the re-check after registering (see module docs).
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        tail & !self.mark_bit == head
    }

    /// True if there is no room to write.
    pub(crate) fn is_full(&self) -> bool {
        // SeqCst: used in the re-check after registering (see module docs).
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        head.wrapping_add(self.one_lap) == tail & !self.mark_bit
    }

    /// The wait queue of blocked senders.
    pub(crate) fn senders(&self) -> &SyncWaker {
        &self.senders
    }

    /// The wait queue of blocked receivers.
    pub(crate) fn receivers(&self) -> &SyncWaker {
        &self.receivers
    }
}

impl<T> Drop for Channel<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // Relaxed: `&mut self`, no other thread can touch the channel any more.
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let len = self.distance(head, tail);
        let hix = head & (self.mark_bit - 1);
        for i in 0..len {
            let index = if hix + i < self.cap {
                hix + i
            } else {
                hix + i - self.cap
            };
            let slot = &self.buffer[index];
            // SAFETY: the `len` slots from `head` on hold initialized messages that no
            // one else will read; each is dropped once.
            slot.msg.with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}
