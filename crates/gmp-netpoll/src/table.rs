//! The descriptor table: Go's `pollcache`, pooled and type-stable.
//!
//! epoll can report an event for a file descriptor after the owner has closed it and
//! freed its poll descriptor (the event was already queued, or a `dup` of the descriptor
//! kept the registration alive). Go therefore allocates `pollDesc`s from memory that is
//! never returned to the heap, and tags the epoll user data with a sequence number
//! (`fdseq`) that is bumped on every reuse. We do the same:
//!
//! - descriptors live in pages of `PAGE` entries, allocated on demand and freed only when
//!   the poller itself is dropped, so a stale index always points at a valid [`Desc`];
//! - a page is found from the index through a fixed array of atomic page pointers, so the
//!   poller thread looks a descriptor up without a lock;
//! - a descriptor carries a generation (`seq`), bumped when it is freed; the mio token
//!   packs `generation << INDEX_BITS | index`, and an event whose generation does not match
//!   is dropped.
//!
//! One race is left open on purpose, as in Go: the poller may check the generation just
//! before the descriptor is freed and reused, and then mark the new owner ready. A
//! readiness notification is only ever a hint (the owner retries its non-blocking syscall
//! and waits again on `EAGAIN`), so a spurious one costs a syscall, never correctness.
//!
//! Allocation and freeing take a mutex: they happen once per socket, next to a
//! registration syscall that costs far more.

use crate::poll_desc::Desc;
use gmp_core::sync::atomic::{AtomicPtr, Ordering};
use gmp_core::sync::Mutex;
use std::io;
use std::ptr;

#[cfg(not(loom))]
const PAGE_SHIFT: u32 = 8;
#[cfg(loom)]
const PAGE_SHIFT: u32 = 2;
const PAGE: usize = 1 << PAGE_SHIFT;
#[cfg(not(loom))]
const MAX_PAGES: usize = 1 << 14; // 4,194,304 descriptors
#[cfg(loom)]
const MAX_PAGES: usize = 4;

/// Bits of a token that hold the index (enough for `MAX_PAGES * PAGE`).
pub(crate) const INDEX_BITS: u32 = 24;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// Generations wrap below the top bit, so that no token ever equals [`WAKER_TOKEN`].
pub(crate) const GEN_MASK: usize = (usize::MAX >> 1) >> INDEX_BITS;
/// The mio token of the poller's waker.
pub(crate) const WAKER_TOKEN: usize = usize::MAX;

const _: () = assert!(MAX_PAGES * PAGE <= 1 << INDEX_BITS);

/// Packs an index and a generation into a mio token.
pub(crate) fn token(index: u32, gen: usize) -> usize {
    ((gen & GEN_MASK) << INDEX_BITS) | index as usize
}

/// Splits a token into index and generation.
pub(crate) fn untoken(token: usize) -> (u32, usize) {
    ((token & INDEX_MASK) as u32, token >> INDEX_BITS)
}

pub(crate) struct Table {
    /// Page `i` holds descriptors `i * PAGE ..`; null until allocated. Never freed before
    /// the table is dropped.
    pages: Box<[AtomicPtr<Desc>]>,
    alloc: Mutex<Alloc>,
}

struct Alloc {
    free: Vec<u32>,
    next: u32,
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            pages: (0..MAX_PAGES)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            alloc: Mutex::new(Alloc {
                free: Vec::new(),
                next: 0,
            }),
        }
    }

    /// Takes a free descriptor (its fields are in their idle state).
    pub(crate) fn alloc(&self) -> io::Result<(u32, &Desc)> {
        let mut a = self.alloc.lock();
        let index = match a.free.pop() {
            Some(i) => i,
            None => {
                let i = a.next as usize;
                if i >= MAX_PAGES * PAGE {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        format!(
                            "gmp-netpoll: more than {} poll descriptors",
                            MAX_PAGES * PAGE
                        ),
                    ));
                }
                if i % PAGE == 0 {
                    let page: Box<[Desc]> = (0..PAGE).map(|_| Desc::new()).collect();
                    // Release: publishes the page's initialised descriptors to the
                    // lock-free lookups in `get` (Acquire).
                    self.pages[i / PAGE].store(Box::into_raw(page).cast(), Ordering::Release);
                }
                a.next += 1;
                i as u32
            }
        };
        drop(a);
        let desc = self
            .get(index)
            .expect("gmp-netpoll: allocated descriptor has no page");
        Ok((index, desc))
    }

    /// Returns a descriptor to the pool. The caller has bumped its generation and reset it.
    pub(crate) fn free(&self, index: u32) {
        self.alloc.lock().free.push(index);
    }

    /// The descriptor at `index`, if its page exists. Lock-free.
    pub(crate) fn get(&self, index: u32) -> Option<&Desc> {
        let index = index as usize;
        // Acquire: pairs with the Release store of the page in `alloc`.
        let page = self.pages.get(index / PAGE)?.load(Ordering::Acquire);
        if page.is_null() {
            return None;
        }
        // SAFETY: a non-null page pointer came from `Box::into_raw` of a `[Desc; PAGE]`
        // slice that stays allocated until `self` is dropped (`Drop` below), and
        // `index % PAGE < PAGE`. Descriptors are only used through shared references.
        Some(unsafe { &*page.add(index % PAGE) })
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for p in self.pages.iter() {
            let page = p.load(Ordering::Acquire);
            if !page.is_null() {
                // SAFETY: `page` came from `Box::into_raw` of a boxed slice of exactly
                // `PAGE` descriptors in `alloc`, and is freed once, here; `&mut self` means
                // no lookup can be running.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(page, PAGE)) });
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_hit_the_waker() {
        for (i, g) in [
            (0, 0),
            (5, 7),
            (INDEX_MASK as u32, GEN_MASK),
            (1, GEN_MASK + 3),
        ] {
            let t = token(i, g);
            assert_ne!(t, WAKER_TOKEN);
            assert_eq!(untoken(t), (i, g & GEN_MASK));
        }
    }

    #[test]
    fn alloc_reuses_freed_indices_and_grows_pages() {
        let t = Table::new();
        let ids: Vec<u32> = (0..PAGE as u32 + 3).map(|_| t.alloc().unwrap().0).collect();
        assert_eq!(ids, (0..PAGE as u32 + 3).collect::<Vec<_>>());
        t.free(4);
        assert_eq!(t.alloc().unwrap().0, 4);
        assert!(t.get(PAGE as u32 + 2).is_some());
        assert!(t.get((2 * PAGE) as u32).is_none());
        assert!(t.get(u32::MAX).is_none());
    }
}
