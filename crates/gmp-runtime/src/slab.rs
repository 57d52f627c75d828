//! Where the spawn blocks of `job.rs` come from: 64 KiB slabs of 128-byte blocks, given
//! back to the kernel once every block of a slab is free.
//!
//! # Why not `malloc`
//!
//! A spawn block lives from the spawn to the goroutine's start (longer only while a
//! `JoinHandle` is kept): a burst of spawns that outruns the Ps leaves a backlog of
//! blocks, freed as the goroutines start. From glibc's heap those blocks are freed
//! between the long-lived allocations made beside them (each goroutine's G, its
//! channel, ...), so the holes stay resident for good: after 100,000 goroutines each
//! parked on its own channel, 36,000-76,000 free 144-byte chunks (52-110 bytes per
//! goroutine, `malloc_info`) that no later allocation of another size could use
//! (issue 16, idlemem and park1m; `bench-results/profiles/memory-per-goroutine.txt`).
//! Here short-lived blocks share slabs only with each other, and a slab whose blocks
//! are all free is unmapped, so a burst's memory goes back once it has started. (Go's
//! heap keeps its size classes in spans for the same reason.)
//!
//! # Design
//!
//! A slab is 64 KiB, aligned to 64 KiB, from `mmap`: the block at an address is in the
//! slab at that address rounded down, whose first block holds the slab's header. A
//! slab hands out blocks from its free list, then from its untouched tail (so a fresh
//! slab's pages are touched only as its blocks are used). Slabs with free blocks are on
//! a list, under one process-wide lock; the lock is reached only when an M's cache and
//! the runtime's pool of blocks (`job.rs`) are both empty, or both full, and then
//! for a batch. One wholly free slab is kept for the next burst; any other is unmapped.
//! Slabs are process-wide, not a runtime's: a `JoinHandle` may keep its block after its
//! runtime is gone.
//!
//! Under loom, Miri and the sanitizers, blocks come from the global allocator instead,
//! so that those tools see every block's life.

use std::alloc::Layout;
use std::ptr::NonNull;

/// The layout of every block.
pub(crate) const BLOCK: Layout = match Layout::from_size_align(128, 16) {
    Ok(l) => l,
    Err(_) => panic!("bad layout"),
};

/// A block of [`BLOCK`] layout from [`alloc_batch`], the caller's until it gives it
/// back with [`free_batch`].
pub(crate) type RawBlock = NonNull<u8>;

/// Hands `n` fresh blocks to `out`, under one lock.
///
/// # Panics
///
/// Aborts the process, as a failed allocation does (`handle_alloc_error`), if the
/// kernel refuses a new slab.
pub(crate) fn alloc_batch(n: usize, out: impl FnMut(RawBlock)) {
    imp::alloc_batch(n, out)
}

/// One fresh block (see [`alloc_batch`]).
pub(crate) fn alloc_one() -> RawBlock {
    let mut block = None;
    alloc_batch(1, |b| block = Some(b));
    block.expect("gmp: the slab allocator handed out no block")
}

/// Gives blocks back.
///
/// # Safety
///
/// Every block came from [`alloc_batch`], is given back once, holds nothing alive and is
/// not used again.
pub(crate) unsafe fn free_batch(blocks: impl Iterator<Item = RawBlock>) {
    // SAFETY: the caller's contract.
    unsafe { imp::free_batch(blocks) }
}

/// Blocks handed out and not given back, process-wide (in use, or held by the M caches
/// and runtime pools of `job.rs`), for gmp's tests: the global allocator does not see
/// them.
pub(crate) fn blocks_in_use() -> usize {
    imp::in_use()
}

#[cfg(any(loom, miri, gmp_asan, gmp_tsan))]
mod imp {
    use super::{RawBlock, BLOCK};
    use std::alloc::{alloc, dealloc, handle_alloc_error};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// Relaxed: a statistic for tests, read after the fact.
    static IN_USE: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn in_use() -> usize {
        IN_USE.load(Relaxed)
    }

    pub(super) fn alloc_batch(n: usize, mut out: impl FnMut(RawBlock)) {
        for _ in 0..n {
            // SAFETY: `BLOCK` has a non-zero size.
            let p = unsafe { alloc(BLOCK) };
            IN_USE.fetch_add(1, Relaxed);
            out(NonNull::new(p).unwrap_or_else(|| handle_alloc_error(BLOCK)));
        }
    }

    pub(super) unsafe fn free_batch(blocks: impl Iterator<Item = RawBlock>) {
        for b in blocks {
            IN_USE.fetch_sub(1, Relaxed);
            // SAFETY: allocated with `BLOCK` above and given back once (caller).
            unsafe { dealloc(b.as_ptr(), BLOCK) }
        }
    }
}

#[cfg(not(any(loom, miri, gmp_asan, gmp_tsan)))]
mod imp {
    use super::{RawBlock, BLOCK};
    use parking_lot::Mutex;
    use std::alloc::{handle_alloc_error, Layout};
    use std::ptr::{self, NonNull};

    /// Bytes per slab (and its alignment).
    pub(super) const SLAB: usize = 64 * 1024;
    /// Blocks per slab; the first holds the header.
    const BLOCKS: u32 = (SLAB / BLOCK.size()) as u32;
    const _: () = assert!(std::mem::size_of::<Header>() <= BLOCK.size());

    /// The start of every slab (its first block). Touched only under [`SLABS`]'s lock.
    struct Header {
        /// The free blocks that have been used before, as a list through their first
        /// word.
        free: *mut FreeBlock,
        /// Blocks handed out and not given back.
        used: u32,
        /// Blocks `1..untouched` have been handed out at least once; the rest have
        /// never been touched.
        untouched: u32,
        /// The list of slabs with free blocks ([`Slabs::partial`]).
        prev: *mut Header,
        next: *mut Header,
        /// On that list.
        listed: bool,
    }

    struct FreeBlock {
        next: *mut FreeBlock,
    }

    /// A set of slabs: the process's ([`SLABS`]), or a test's own.
    pub(super) struct Slabs {
        /// Slabs with a free block, the one to use first at the head.
        partial: *mut Header,
        /// A slab with no block in use, kept for the next burst (not on `partial`).
        spare: *mut Header,
        /// Slabs mapped now.
        pub(super) mapped: usize,
        /// Blocks handed out and not given back.
        in_use: usize,
    }

    // SAFETY: the raw pointers are slabs that only the owner of the set touches (for
    // the process's set, the holder of its lock).
    unsafe impl Send for Slabs {}

    static SLABS: Mutex<Slabs> = Mutex::new(Slabs::new());

    pub(super) fn in_use() -> usize {
        SLABS.lock().in_use
    }

    pub(super) fn alloc_batch(n: usize, mut out: impl FnMut(RawBlock)) {
        let mut slabs = SLABS.lock();
        for _ in 0..n {
            out(slabs.alloc());
        }
    }

    pub(super) unsafe fn free_batch(blocks: impl Iterator<Item = RawBlock>) {
        let mut slabs = SLABS.lock();
        for b in blocks {
            // SAFETY: the caller's contract.
            unsafe { slabs.free(b) };
        }
    }

    impl Slabs {
        pub(super) const fn new() -> Slabs {
            Slabs {
                partial: ptr::null_mut(),
                spare: ptr::null_mut(),
                mapped: 0,
                in_use: 0,
            }
        }

        pub(super) fn alloc(&mut self) -> RawBlock {
            if self.partial.is_null() {
                let slab = match std::mem::replace(&mut self.spare, ptr::null_mut()) {
                    s if !s.is_null() => s,
                    _ => self.map(),
                };
                self.push(slab);
            }
            let slab = self.partial;
            // SAFETY: a listed slab is mapped, and its header is ours under the lock.
            let h = unsafe { &mut *slab };
            let block = if !h.free.is_null() {
                let b = h.free;
                // SAFETY: a block on the free list is free and holds its link.
                h.free = unsafe { (*b).next };
                b.cast::<u8>()
            } else {
                debug_assert!(h.untouched < BLOCKS);
                // SAFETY: block `untouched` is inside the slab (a listed slab with an
                // empty free list has untouched blocks).
                let b = unsafe { slab.cast::<u8>().add(h.untouched as usize * BLOCK.size()) };
                h.untouched += 1;
                b
            };
            h.used += 1;
            self.in_use += 1;
            if h.free.is_null() && h.untouched == BLOCKS {
                self.unlink(slab);
            }
            // SAFETY: inside a mapped slab, so not null.
            unsafe { NonNull::new_unchecked(block) }
        }

        /// # Safety
        ///
        /// `b` came from this set's `alloc`, is given back once, and is not used again.
        pub(super) unsafe fn free(&mut self, b: RawBlock) {
            let slab = (b.as_ptr() as usize & !(SLAB - 1)) as *mut Header;
            // SAFETY: the block's slab is mapped while the block is in use, and its
            // header is ours under the lock.
            let h = unsafe { &mut *slab };
            debug_assert!(h.used > 0 && b.as_ptr() != slab.cast());
            let f = b.as_ptr().cast::<FreeBlock>();
            // SAFETY: the block is free now (caller): its first word becomes its link.
            unsafe { f.write(FreeBlock { next: h.free }) };
            h.free = f;
            h.used -= 1;
            self.in_use -= 1;
            if h.used == 0 {
                if h.listed {
                    self.unlink(slab);
                }
                if self.spare.is_null() {
                    self.spare = slab;
                } else {
                    self.unmap(slab);
                }
            } else if !h.listed {
                self.push(slab);
            }
        }

        /// Puts `slab` at the head of the list.
        fn push(&mut self, slab: *mut Header) {
            // SAFETY: mapped slabs, headers ours under the lock.
            unsafe {
                (*slab).prev = ptr::null_mut();
                (*slab).next = self.partial;
                (*slab).listed = true;
                if !self.partial.is_null() {
                    (*self.partial).prev = slab;
                }
            }
            self.partial = slab;
        }

        fn unlink(&mut self, slab: *mut Header) {
            // SAFETY: `slab` is on the list: it and its neighbours are mapped slabs.
            unsafe {
                let (prev, next) = ((*slab).prev, (*slab).next);
                if prev.is_null() {
                    self.partial = next;
                } else {
                    (*prev).next = next;
                }
                if !next.is_null() {
                    (*next).prev = prev;
                }
                (*slab).listed = false;
            }
        }

        /// A fresh slab: twice its size mapped, then trimmed to an aligned slab.
        fn map(&mut self) -> *mut Header {
            let fail = || handle_alloc_error(Layout::from_size_align(SLAB, SLAB).unwrap());
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing
            // touches no existing memory.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    2 * SLAB,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                fail();
            }
            let start = p as usize;
            let slab = (start + SLAB - 1) & !(SLAB - 1);
            let (head, tail) = (slab - start, start + SLAB - slab);
            // SAFETY: the parts of our own fresh mapping outside the aligned slab.
            unsafe {
                if head > 0 {
                    libc::munmap(p, head);
                }
                if tail > 0 {
                    libc::munmap((slab + SLAB) as *mut libc::c_void, tail);
                }
            }
            let h = slab as *mut Header;
            // SAFETY: the slab is ours and writable; its first block is the header.
            unsafe {
                h.write(Header {
                    free: ptr::null_mut(),
                    used: 0,
                    untouched: 1,
                    prev: ptr::null_mut(),
                    next: ptr::null_mut(),
                    listed: false,
                })
            };
            self.mapped += 1;
            h
        }

        fn unmap(&mut self, slab: *mut Header) {
            // SAFETY: a slab with no block in use and on no list: nobody refers to it.
            // A failure would leave the memory mapped, nothing worse.
            unsafe { libc::munmap(slab.cast(), SLAB) };
            self.mapped -= 1;
        }
    }
}

#[cfg(all(test, not(any(loom, miri, gmp_asan, gmp_tsan))))]
mod tests {
    use super::imp::{Slabs, SLAB};
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const PER_SLAB: usize = SLAB / 128 - 1;

    /// Hands out `n` blocks of `s`, each distinct, aligned, and filled with a pattern.
    fn take(s: &mut Slabs, n: usize, live: &mut Vec<RawBlock>, seen: &mut HashSet<usize>) {
        for _ in 0..n {
            let b = s.alloc();
            assert!(
                seen.insert(b.as_ptr() as usize),
                "a block was handed out twice"
            );
            assert_eq!(b.as_ptr() as usize % BLOCK.align(), 0, "misaligned block");
            // SAFETY: a block of `BLOCK.size()` bytes, ours until freed.
            unsafe { b.as_ptr().write_bytes(0xa5, BLOCK.size()) };
            live.push(b);
        }
    }

    /// Gives back the last `n` blocks of `live`.
    fn give(s: &mut Slabs, n: usize, live: &mut Vec<RawBlock>, seen: &mut HashSet<usize>) {
        for b in live.drain(live.len() - n.min(live.len())..) {
            seen.remove(&(b.as_ptr() as usize));
            // SAFETY: from `s.alloc`, given back once, not used again.
            unsafe { s.free(b) };
        }
    }

    /// Slabs go back to the kernel once their blocks are all free, keeping one spare,
    /// and a freed block is handed out again before a new slab is mapped.
    #[test]
    fn slabs_are_given_back_when_their_blocks_are() {
        let (mut s, mut live, mut seen) = (Slabs::new(), Vec::new(), HashSet::new());
        take(&mut s, 3 * PER_SLAB + 5, &mut live, &mut seen);
        assert_eq!(s.mapped, 4);
        give(&mut s, 10, &mut live, &mut seen);
        take(&mut s, 10, &mut live, &mut seen);
        assert_eq!(s.mapped, 4, "a new slab while blocks were free");
        give(&mut s, usize::MAX, &mut live, &mut seen);
        assert_eq!(s.mapped, 1, "free slabs stayed mapped (one spare is kept)");
        take(&mut s, PER_SLAB, &mut live, &mut seen);
        assert_eq!(s.mapped, 1, "the spare was not reused");
        give(&mut s, usize::MAX, &mut live, &mut seen);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random batches of allocation and release (from either end of the live
        /// set): no block is handed out twice, blocks keep what was written to them,
        /// and once all are free at most the spare slab stays mapped; in between, no
        /// more slabs are mapped than the live blocks need plus the spare and the
        /// partly used ones.
        #[test]
        fn slabs_match_a_model(ops in proptest::collection::vec((0u8..3, 0usize..1500), 1..40)) {
            let (mut s, mut live, mut seen) = (Slabs::new(), Vec::new(), HashSet::new());
            for (op, n) in ops {
                match op {
                    0 => take(&mut s, n, &mut live, &mut seen),
                    1 => give(&mut s, n, &mut live, &mut seen),
                    _ => {
                        // Give back from the front: the oldest blocks, other slabs.
                        live.reverse();
                        give(&mut s, n, &mut live, &mut seen);
                        live.reverse();
                    }
                }
                for b in &live {
                    // SAFETY: a live block, written by `take`.
                    prop_assert_eq!(unsafe { *b.as_ptr().add(BLOCK.size() - 1) }, 0xa5);
                }
                prop_assert!(s.mapped <= live.len() + 1, "{} slabs for {} blocks", s.mapped, live.len());
            }
            give(&mut s, usize::MAX, &mut live, &mut seen);
            prop_assert!(s.mapped <= 1, "{} slabs stayed mapped", s.mapped);
        }
    }

    /// The process's slabs through the batch functions.
    #[test]
    fn batches_round_trip() {
        let mut blocks = Vec::new();
        alloc_batch(PER_SLAB + 1, |b| blocks.push(b));
        blocks.push(alloc_one());
        let distinct: HashSet<_> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        assert_eq!(distinct.len(), blocks.len());
        // SAFETY: from `alloc_batch`, given back once.
        unsafe { free_batch(blocks.into_iter()) };
    }
}
