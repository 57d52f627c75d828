//! Every live goroutine of a runtime (Go: `allgs`), for shutdown and deadlock reports.
//!
//! Shutdown must unwind goroutines that are parked with nothing left to wake them —
//! including cycles (a goroutine parked on a channel whose only handle lives on that
//! goroutine's own stack) that reference counting alone would leak. So each G is
//! registered when it first parks — a goroutine that never parks is always in a run
//! queue or running, where shutdown finds it anyway, so the many short-lived ones pay
//! nothing — and deregistered when it finishes.
//!
//! The registry is sharded (one shard per P, chosen by the parking P) so that Ps do not
//! contend; a shard is a slab of `Arc<G>` with a free list, so registration is an
//! uncontended lock and a store. The references are strong: a parked goroutine that
//! nothing else references (it waits on a channel only it holds) must not be freed —
//! and so unwound — wherever its last other reference happens to be dropped (on an M
//! in scheduler code, or nested on another goroutine's stack). It stays, like a leaked
//! goroutine in Go, until it finishes or the runtime shuts down.

use crate::g::G;
use gmp_core::sync::Mutex;
use std::sync::Arc;

pub(crate) struct Registry {
    shards: Box<[Mutex<Slab>]>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Option<Arc<G>>>,
    free: Vec<usize>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Slab::default()))
                .collect(),
        }
    }

    /// Registers `g`, returning its slot (shard in the low byte… packed as
    /// `index * nshards + shard`).
    pub(crate) fn insert(&self, shard: usize, g: &Arc<G>) -> usize {
        let n = self.shards.len();
        let shard = shard % n;
        let mut s = self.shards[shard].lock();
        let w = g.clone();
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i] = Some(w);
                i
            }
            None => {
                s.slots.push(Some(w));
                s.slots.len() - 1
            }
        };
        i * n + shard
    }

    pub(crate) fn remove(&self, slot: usize) {
        let n = self.shards.len();
        let (i, shard) = (slot / n, slot % n);
        let mut s = self.shards[shard].lock();
        if let Some(x) = s.slots.get_mut(i) {
            if x.take().is_some() {
                s.free.push(i);
            }
        }
    }

    /// Every registered goroutine.
    pub(crate) fn all(&self) -> Vec<Arc<G>> {
        let mut out = Vec::new();
        for sh in self.shards.iter() {
            let s = sh.lock();
            out.extend(s.slots.iter().flatten().cloned());
        }
        out
    }

    /// Every registered goroutine, emptying the registry (shutdown).
    pub(crate) fn take_all(&self) -> Vec<Arc<G>> {
        let mut out = Vec::new();
        for sh in self.shards.iter() {
            let mut s = sh.lock();
            out.extend(s.slots.drain(..).flatten());
            s.free.clear();
        }
        out
    }

    /// True if every registered goroutine satisfies `f` (without collecting them).
    pub(crate) fn all_match(&self, mut f: impl FnMut(&G) -> bool) -> bool {
        self.shards
            .iter()
            .all(|sh| sh.lock().slots.iter().flatten().all(|g| f(g)))
    }
}
