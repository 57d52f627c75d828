//! The one allocation of every spawn: a goroutine's closure and result slot in a
//! refcounted block, shared by the goroutine (its [`Entry`]) and its `JoinHandle` (a
//! [`PacketRef`]), and recycled through per-M caches instead of `malloc`/`free`.
//!
//! # Why not `Arc`
//!
//! The block is allocated by the spawning M and freed by the M that ran the goroutine
//! (on 2 Ps, half of all goroutines are stolen), and when the handle was dropped at
//! once (the common `go(...)`), at the goroutine's start. glibc's per-thread cache then
//! fills only on the freeing thread and stays empty on the spawning one, so every
//! spawn's `malloc` took the arena path: `_int_malloc`, `_int_free`, `unlink_chunk` and
//! `malloc_consolidate` were 11-12% of skynet's profile and 23% of spawn's (profiles in
//! `bench-results/profiles/`). With glibc's cache made larger by a tunable both ran
//! 8-10% faster. An `Arc` cannot be given another allocator on stable Rust, so the
//! block has its own two-word header (count and vtable, the size of `Arc`'s) and small
//! blocks come from the M's cache, which, like Go's per-P free lists of dead Gs
//! (`gfget`/`gfput`), trades half of itself with the runtime's pool when it runs
//! empty or full.
//!
//! # The protocol
//!
//! The count starts at 2 (the entry and the packet reference). Each reference drops
//! once: `Release` on the decrement, and the last one takes an `Acquire` fence before
//! it drops the job in place and frees the block, as `Arc` does, so every use through
//! another reference happens before the free. [`Entry::is_unique`] is `Arc::get_mut`'s
//! test (no weak references exist to race with it).

use crate::{m, slab};
use gmp_core::sync::Mutex;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The layout of every block the caches hold: blocks whose own layout fits are
/// allocated with this one (a job with a closure of up to 56 bytes and a result of up
/// to 16: the goroutines of skynet, spawn and a typical server's connection handler),
/// from slabs of their own (`slab.rs`: a burst's blocks, freed as its goroutines
/// start, would otherwise stay behind as holes in the heap). Larger or more aligned
/// blocks go straight to the allocator.
const SMALL: Layout = slab::BLOCK;

/// Blocks an M keeps; at this many, half go to the runtime's pool.
const M_CACHE: usize = 64;
/// Blocks the runtime's pool keeps (32 KiB); beyond it, freed blocks are freed. The
/// pool only evens out what one M frees and another allocates, a few halves of an M's
/// cache at a time; what it keeps is memory no goroutine uses.
const POOL_MAX: usize = 256;

/// The start of every block.
#[repr(C)]
struct Header {
    refs: AtomicUsize,
    vtable: &'static VTable,
}

/// What a block holds, type-erased.
struct VTable {
    /// Runs (or, with an error, fails) the goroutine body; consumes the entry's
    /// reference.
    start: unsafe fn(Entry, u64, Option<io::Error>),
    /// The goroutine will never run; consumes the entry's reference.
    cancel: unsafe fn(Entry, u64),
    /// Drops the payload in place (the block stays allocated).
    drop_payload: unsafe fn(NonNull<Header>),
    /// The block's allocation: [`SMALL`] or its own layout.
    layout: Layout,
}

#[repr(C)]
struct Block<J> {
    header: Header,
    payload: J,
}

/// A payload's behaviour when its goroutine starts or is cancelled. Implemented by
/// `spawn::Job`.
///
/// The methods are reached through the block's vtable, which [`new`] stores for the
/// payload's own type: that is what makes their `# Safety` hold.
pub(crate) trait Payload: Sized {
    /// Runs the body of goroutine `id` (or, with `Some(error)`, reports that no stack
    /// could be had). `entry` is the goroutine's reference to this payload.
    ///
    /// # Safety
    /// `entry`'s block holds a `Self`.
    unsafe fn start(entry: Entry, id: u64, no_stack: Option<io::Error>);
    /// The runtime shut down before goroutine `id` ran.
    ///
    /// # Safety
    /// `entry`'s block holds a `Self`.
    unsafe fn cancel(entry: Entry, id: u64);
}

impl<J: Payload> Block<J> {
    const LAYOUT: Layout = {
        let own = Layout::new::<Block<J>>();
        if own.size() <= SMALL.size() && own.align() <= SMALL.align() {
            SMALL
        } else {
            own
        }
    };

    const VTABLE: VTable = VTable {
        start: J::start,
        cancel: J::cancel,
        drop_payload: drop_payload::<J>,
        layout: Self::LAYOUT,
    };
}

/// # Safety
/// `h` points at a live `Block<J>` whose payload is dropped nowhere else, now or later.
unsafe fn drop_payload<J>(h: NonNull<Header>) {
    // SAFETY: per the contract, the payload is live and ours to drop.
    unsafe { std::ptr::drop_in_place(&raw mut (*h.cast::<Block<J>>().as_ptr()).payload) }
}

/// Allocates a block for `payload` and returns its two references: the entry (for the
/// goroutine) and a shared pointer to the payload (for the handle, as a
/// [`PacketRef`]).
///
/// # Safety
/// The references carry no lifetime: whatever `J` borrows must outlive every use of
/// the payload through either reference and the payload's drop (by whichever
/// reference drops last). `J` must be `Send + Sync` in all but its lifetimes: both
/// references are sent between threads and used from several at once.
pub(crate) unsafe fn new<J: Payload>(payload: J) -> (Entry, NonNull<J>) {
    let layout = Block::<J>::LAYOUT;
    let ptr = alloc_block(layout).cast::<Block<J>>();
    // SAFETY: `ptr` is a fresh allocation of at least `Block<J>`'s size and alignment
    // (`LAYOUT` is its own or `SMALL`, which was chosen only if it fits).
    unsafe {
        ptr.as_ptr().write(Block {
            header: Header {
                refs: AtomicUsize::new(2),
                vtable: &Block::<J>::VTABLE,
            },
            payload,
        })
    };
    // SAFETY: just written; the field projection stays inside the allocation.
    let payload = unsafe { NonNull::new_unchecked(&raw mut (*ptr.as_ptr()).payload) };
    (Entry(ptr.cast()), payload)
}

/// The goroutine's reference to its block: started or cancelled once, or dropped.
pub(crate) struct Entry(NonNull<Header>);

// SAFETY: `new`'s contract: the payload may be used and dropped from any thread.
unsafe impl Send for Entry {}
// SAFETY: as above; `&Entry` gives access to nothing but the count.
unsafe impl Sync for Entry {}

impl Entry {
    /// The reference as a pointer to its block (for a G's one-word `Body`), to be
    /// turned back with [`Entry::from_raw`]; its count goes with it.
    pub(crate) fn into_raw(self) -> NonNull<()> {
        std::mem::ManuallyDrop::new(self).0.cast()
    }

    /// The reference [`Entry::into_raw`] gave.
    ///
    /// # Safety
    /// `p` came from `into_raw`, and is turned back once.
    pub(crate) unsafe fn from_raw(p: NonNull<()>) -> Entry {
        Entry(p.cast())
    }

    /// Runs the goroutine body (see [`Payload::start`]).
    pub(crate) fn start(self, id: u64, no_stack: Option<io::Error>) {
        // SAFETY: the vtable is the one `new` stored for this block's payload type, so
        // the block holds the `Self` its `start` expects.
        unsafe { (self.header().vtable.start)(self, id, no_stack) }
    }

    /// The goroutine will never run (see [`Payload::cancel`]).
    pub(crate) fn cancel(self, id: u64) {
        // SAFETY: as in `start`.
        unsafe { (self.header().vtable.cancel)(self, id) }
    }

    /// True if this is the block's only reference (the handle is gone): like
    /// `Arc::get_mut`, with `Acquire` so that the handle's last use happens before
    /// whatever the caller does next (such as dropping this reference, which frees).
    pub(crate) fn is_unique(&self) -> bool {
        self.header().refs.load(Ordering::Acquire) == 1
    }

    /// The payload, for the payload's own `start`/`cancel`.
    ///
    /// # Safety
    /// The block holds a `J` (the caller is `J`'s `Payload` implementation).
    pub(crate) unsafe fn payload<J>(&self) -> &J {
        // SAFETY: per the contract the block is a `Block<J>`, alive while we hold a
        // reference to it.
        unsafe { &(*self.0.cast::<Block<J>>().as_ptr()).payload }
    }

    fn header(&self) -> &Header {
        // SAFETY: the block lives while this reference does.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: this reference owns one count.
        unsafe { release(self.0) }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Entry").field(&self.0).finish()
    }
}

/// The handle's reference to a block: shared access to one part of the payload (its
/// result packet, of type `P`).
pub(crate) struct PacketRef<P> {
    header: NonNull<Header>,
    part: NonNull<P>,
}

// SAFETY: `new`'s contract: the payload (and so `P`, a part of it) may be used from
// any thread; `P` itself must be shareable for `&P` to cross threads.
unsafe impl<P: Sync> Send for PacketRef<P> {}
// SAFETY: as above.
unsafe impl<P: Sync> Sync for PacketRef<P> {}

impl<P> PacketRef<P> {
    /// The other reference of a block `new` made: `payload` is the pointer it returned
    /// with the entry, and `part` picks the packet out of it.
    ///
    /// # Safety
    /// `payload` came from [`new`] and its second count is not yet used by another
    /// `PacketRef`; `part` returns a pointer into `*payload` that stays valid for the
    /// payload's life.
    pub(crate) unsafe fn from_payload<J>(payload: NonNull<J>, part: impl FnOnce(&J) -> &P) -> Self {
        // SAFETY: `payload` is the `payload` field of a `Block<J>` (`new`): the header
        // is at the block's start (`repr(C)`), at the field's offset before it.
        let header = unsafe {
            NonNull::new_unchecked(
                payload
                    .as_ptr()
                    .cast::<u8>()
                    .sub(std::mem::offset_of!(Block<J>, payload))
                    .cast::<Header>(),
            )
        };
        // SAFETY: the payload is alive (we hold a count).
        let part = NonNull::from(part(unsafe { payload.as_ref() }));
        PacketRef { header, part }
    }

    /// The packet.
    pub(crate) fn get(&self) -> &P {
        // SAFETY: the block, and so the part, lives while this reference does.
        unsafe { self.part.as_ref() }
    }
}

impl<P> Drop for PacketRef<P> {
    fn drop(&mut self) {
        // SAFETY: this reference owns one count.
        unsafe { release(self.header) }
    }
}

/// Drops one count of block `h`; the last drops the payload and frees the block.
///
/// # Safety
/// The caller owns one count of the live block `h` and gives it up.
unsafe fn release(h: NonNull<Header>) {
    // SAFETY: alive until the count reaches zero, which only the last `release` sees.
    let header = unsafe { h.as_ref() };
    // Release: our uses of the payload happen before the last holder's drop of it.
    if header.refs.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    // Acquire: pairs with every other holder's Release decrement (as `Arc`'s drop).
    // ThreadSanitizer does not model fences: under it, an Acquire load of the count
    // instead, as std's `Arc` does (`--cfg gmp_tsan`, set by `cargo xtask sanitize`).
    #[cfg(not(gmp_tsan))]
    std::sync::atomic::fence(Ordering::Acquire);
    #[cfg(gmp_tsan)]
    header.refs.load(Ordering::Acquire);
    let vtable = header.vtable;
    // SAFETY: we are the last holder: nobody else uses or drops the payload.
    unsafe { (vtable.drop_payload)(h) };
    // SAFETY: the payload is gone and no reference remains; `layout` is the one the
    // block was allocated with.
    unsafe { free_block(h.cast(), vtable.layout) };
}

/// A block from the M's cache or the runtime's pool, else from the allocator.
fn alloc_block(layout: Layout) -> NonNull<u8> {
    if layout == SMALL {
        return match m::ctx() {
            Some(c) => c.jobs.take(&c.sched.job_pool).into_raw(),
            None => slab::alloc_one(),
        };
    }
    // SAFETY: `layout` has a non-zero size (a block holds at least its header).
    let p = unsafe { alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
}

/// # Safety
/// `p` was allocated by [`alloc_block`] with `layout`, holds nothing alive, and is not
/// used again.
unsafe fn free_block(p: NonNull<u8>, layout: Layout) {
    if layout == SMALL {
        match m::ctx() {
            Some(c) => c.jobs.put(FreeBlock(p), &c.sched.job_pool),
            // Dropping a free block gives it back to its slab.
            None => drop(FreeBlock(p)),
        }
        return;
    }
    // SAFETY: per the contract.
    unsafe { dealloc(p.as_ptr(), layout) }
}

/// A free block of [`SMALL`] layout, owned by whichever cache holds it.
struct FreeBlock(NonNull<u8>);

// SAFETY: free memory: no value in it, nothing shared.
unsafe impl Send for FreeBlock {}

impl FreeBlock {
    /// The memory, now the caller's to free (the block no longer frees it).
    fn into_raw(self) -> NonNull<u8> {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Drop for FreeBlock {
    fn drop(&mut self) {
        // SAFETY: a free block came from the slabs (`alloc_block`), and only the cache
        // holding it gives it back.
        unsafe { slab::free_batch(std::iter::once(self.0)) }
    }
}

/// An M's free blocks (in `MCtx`): used only by its own thread, from goroutine code
/// and scheduler code alike.
#[derive(Default)]
pub(crate) struct MCache(std::cell::UnsafeCell<Vec<FreeBlock>>);

impl MCache {
    /// A free block: the cache's, or, when it is empty, half a cache from the pool, or
    /// else from the slabs.
    fn take(&self, pool: &Pool) -> FreeBlock {
        // SAFETY: only this M's thread reaches its `MCtx`, and no code of ours runs
        // while the cell is borrowed (the pool's lock runs none; moving blocks runs
        // none), so the borrow is unique.
        let cache = unsafe { &mut *self.0.get() };
        if let Some(b) = cache.pop() {
            return b;
        }
        let mut pool = pool.0.lock();
        let keep = pool.len().saturating_sub(M_CACHE / 2);
        cache.extend(pool.drain(keep..));
        drop(pool);
        if cache.is_empty() {
            slab::alloc_batch(M_CACHE / 2, |b| cache.push(FreeBlock(b)));
        }
        cache.pop().expect("gmp: a refilled block cache is empty")
    }

    /// Keeps a free block; when the cache is full, half of it goes to the pool, or is
    /// freed if the pool is full.
    fn put(&self, b: FreeBlock, pool: &Pool) {
        // SAFETY: as in `take`.
        let cache = unsafe { &mut *self.0.get() };
        cache.push(b);
        if cache.len() >= M_CACHE {
            let mut pool = pool.0.lock();
            let room = POOL_MAX.saturating_sub(pool.len()).min(M_CACHE / 2);
            let from = cache.len() - M_CACHE / 2;
            pool.extend(cache.drain(from..from + room));
            drop(pool);
            // The rest of the half (none while the pool has room) goes back to the
            // slabs, under one lock.
            let rest = cache.drain(M_CACHE / 2..).map(FreeBlock::into_raw);
            // SAFETY: free blocks from the slabs, each given back once (`into_raw`
            // took it from its `FreeBlock`).
            unsafe { slab::free_batch(rest) };
        }
    }

    /// Blocks held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        // SAFETY: as in `take`.
        unsafe { (*self.0.get()).len() }
    }
}

/// The runtime's free blocks, traded in halves of an M's cache.
#[derive(Default)]
pub(crate) struct Pool(Mutex<Vec<FreeBlock>>);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// A payload that records its drop.
    struct Probe(Arc<AtomicBool>, [u64; 2]);

    impl Drop for Probe {
        fn drop(&mut self) {
            assert!(!self.0.swap(true, Ordering::SeqCst), "dropped twice");
        }
    }

    impl Payload for Probe {
        unsafe fn start(entry: Entry, _id: u64, _no_stack: Option<io::Error>) {
            drop(entry)
        }
        unsafe fn cancel(entry: Entry, _id: u64) {
            drop(entry)
        }
    }

    /// The payload is dropped exactly once, by whichever reference goes last, and
    /// `is_unique` tells the entry when the other one is gone.
    #[test]
    fn the_last_reference_drops_the_payload_once() {
        for entry_last in [false, true] {
            let dropped = Arc::new(AtomicBool::new(false));
            // SAFETY: `Probe` borrows nothing and is `Send + Sync`.
            let (entry, payload) = unsafe { new(Probe(dropped.clone(), [7, 9])) };
            // SAFETY: the second count, used once.
            let part = unsafe { PacketRef::from_payload(payload, |p: &Probe| &p.1) };
            assert_eq!(part.get(), &[7, 9]);
            assert!(!entry.is_unique());
            if entry_last {
                drop(part);
                assert!(entry.is_unique());
                assert!(!dropped.load(Ordering::SeqCst));
                entry.start(1, None);
            } else {
                entry.cancel(1);
                assert!(!dropped.load(Ordering::SeqCst));
                drop(part);
            }
            assert!(dropped.load(Ordering::SeqCst));
        }
    }

    /// A block too large for the caches goes to and from the allocator with its own
    /// layout (Miri and the sanitizers check the pairing).
    #[test]
    fn a_large_payload_has_its_own_layout() {
        struct Big([u64; 64], Arc<AtomicBool>);
        impl Drop for Big {
            fn drop(&mut self) {
                self.1.store(true, Ordering::SeqCst);
            }
        }
        impl Payload for Big {
            unsafe fn start(entry: Entry, _: u64, _: Option<io::Error>) {
                drop(entry)
            }
            unsafe fn cancel(entry: Entry, _: u64) {
                drop(entry)
            }
        }
        assert_ne!(Block::<Big>::LAYOUT, SMALL);
        assert_eq!(Block::<Probe>::LAYOUT, SMALL);
        let dropped = Arc::new(AtomicBool::new(false));
        // SAFETY: `Big` borrows nothing and is `Send + Sync`.
        let (entry, payload) = unsafe { new(Big([3; 64], dropped.clone())) };
        // SAFETY: the second count, used once.
        let part = unsafe { PacketRef::from_payload(payload, |b: &Big| &b.0) };
        assert_eq!(part.get()[63], 3);
        drop(part);
        entry.cancel(0);
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// An M's cache trades halves with the pool: a full cache leaves half of itself
    /// there, an empty one takes half a cache back (or half a cache from the slabs when
    /// the pool is empty too), and the pool gives back to the slabs beyond its bound.
    #[test]
    fn caches_trade_halves_with_the_pool() {
        let pool = Pool::default();
        let (a, b) = (MCache::default(), MCache::default());
        let fresh = || FreeBlock(slab::alloc_one());
        // A block put in a cache is the next one taken from it.
        let blk = fresh();
        let addr = blk.0;
        a.put(blk, &pool);
        let again = a.take(&pool);
        assert_eq!(again.0, addr);
        drop(again);
        for _ in 0..M_CACHE {
            a.put(fresh(), &pool);
        }
        assert_eq!(a.len(), M_CACHE / 2);
        assert_eq!(pool.0.lock().len(), M_CACHE / 2);
        let got = b.take(&pool);
        assert_eq!(b.len(), M_CACHE / 2 - 1);
        assert!(pool.0.lock().is_empty());
        drop(got);
        // Pool and cache empty: half a cache from the slabs.
        let c = MCache::default();
        drop(c.take(&Pool::default()));
        assert_eq!(c.len(), M_CACHE / 2 - 1);
        // A full pool: the half that does not fit goes back to the slabs.
        let full = Pool::default();
        full.0.lock().extend((0..POOL_MAX).map(|_| fresh()));
        for _ in 0..M_CACHE {
            a.put(fresh(), &full);
        }
        assert_eq!(full.0.lock().len(), POOL_MAX);
        assert_eq!(a.len(), M_CACHE / 2);
    }
}
