//! The contenders of the run-queue benchmarks, behind one trait, and the contended
//! workload; shared by `queue.rs` (criterion) and `queue_min.rs` (interleaved minimum).

use std::collections::VecDeque;
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gmp_queue::{Global, Item, Local, Stealer};

/// A pointer-sized element that owns nothing, so allocation stays out of the numbers.
#[derive(Clone, Copy, Debug)]
pub struct Tok(NonNull<()>);

// SAFETY: `Tok` is a plain address that is never dereferenced.
unsafe impl Send for Tok {}

// SAFETY: the pointer is the value; `from_raw(into_raw(t))` is `t`, and there is nothing
// to free, so duplicates could not cause harm either.
unsafe impl Item for Tok {
    fn into_raw(self) -> NonNull<()> {
        self.0
    }
    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        Tok(ptr)
    }
}

pub fn tok() -> Tok {
    Tok(NonNull::dangling())
}

/// What every contender provides: an owner that pushes and pops, and a thief handle that
/// steals about half into another owner's queue and returns one element.
pub trait RunQueue: 'static {
    const NAME: &'static str;
    type Owner: Send;
    type Thief: Clone + Send;
    fn new() -> (Self::Owner, Self::Thief);
    fn push(owner: &Self::Owner, v: Tok);
    fn pop(owner: &Self::Owner) -> Option<Tok>;
    fn steal_half(thief: &Self::Thief, dest: &Self::Owner) -> Option<Tok>;
    /// Elements the owner's queue moved elsewhere (gmp-queue's bounded ring overflows to
    /// its global queue); drains and counts them.
    fn overflowed(_owner: &Self::Owner) -> u64 {
        0
    }
}

/// gmp-queue: a local ring (with a global queue for overflow, which these runs never hit).
pub struct Gmp;

pub struct GmpOwner {
    local: Local<Tok>,
    global: Global<Tok>,
}

impl RunQueue for Gmp {
    const NAME: &'static str = "gmp-queue";
    type Owner = GmpOwner;
    type Thief = Stealer<Tok>;
    fn new() -> (GmpOwner, Stealer<Tok>) {
        let (local, stealer) = gmp_queue::local();
        (
            GmpOwner {
                local,
                global: Global::new(),
            },
            stealer,
        )
    }
    #[inline]
    fn push(o: &GmpOwner, v: Tok) {
        o.local.push(v, &o.global);
    }
    #[inline]
    fn pop(o: &GmpOwner) -> Option<Tok> {
        o.local.pop().map(|(v, _)| v)
    }
    #[inline]
    fn steal_half(t: &Stealer<Tok>, dest: &GmpOwner) -> Option<Tok> {
        t.steal_into(&dest.local, false)
    }
    fn overflowed(o: &GmpOwner) -> u64 {
        o.global.drain().len() as u64
    }
}

/// crossbeam-deque, FIFO flavour.
pub struct Crossbeam;

impl RunQueue for Crossbeam {
    const NAME: &'static str = "crossbeam-deque";
    type Owner = crossbeam_deque::Worker<Tok>;
    type Thief = crossbeam_deque::Stealer<Tok>;
    fn new() -> (Self::Owner, Self::Thief) {
        let w = crossbeam_deque::Worker::new_fifo();
        let s = w.stealer();
        (w, s)
    }
    #[inline]
    fn push(o: &Self::Owner, v: Tok) {
        o.push(v);
    }
    #[inline]
    fn pop(o: &Self::Owner) -> Option<Tok> {
        o.pop()
    }
    #[inline]
    fn steal_half(t: &Self::Thief, dest: &Self::Owner) -> Option<Tok> {
        // crossbeam takes min(about half, limit): with our cap of 128 per steal it moves
        // the same elements as gmp-queue. `Retry` means it lost a race: retry.
        loop {
            match t.steal_batch_with_limit_and_pop(dest, gmp_queue::LOCAL_CAPACITY / 2) {
                crossbeam_deque::Steal::Success(v) => return Some(v),
                crossbeam_deque::Steal::Empty => return None,
                crossbeam_deque::Steal::Retry => {}
            }
        }
    }
}

/// The obvious baseline: a `VecDeque` behind a std mutex.
pub struct Locked;

pub type Shared = Arc<Mutex<VecDeque<Tok>>>;

impl RunQueue for Locked {
    const NAME: &'static str = "mutex-vecdeque";
    type Owner = Shared;
    type Thief = Shared;
    fn new() -> (Shared, Shared) {
        let q = Arc::new(Mutex::new(VecDeque::with_capacity(256)));
        (q.clone(), q)
    }
    #[inline]
    fn push(o: &Shared, v: Tok) {
        o.lock().unwrap().push_back(v);
    }
    #[inline]
    fn pop(o: &Shared) -> Option<Tok> {
        o.lock().unwrap().pop_front()
    }
    #[inline]
    fn steal_half(t: &Shared, dest: &Shared) -> Option<Tok> {
        let mut batch: Vec<Tok> = {
            let mut victim = t.lock().unwrap();
            let n = victim.len().div_ceil(2);
            victim.drain(..n).collect()
        };
        let last = batch.pop();
        dest.lock().unwrap().extend(batch);
        last
    }
}

/// One owner pushes `n` elements in bursts of 8, popping 4 after each burst; one thief
/// steals into its own queue and pops what it took, until the owner is done and empty.
/// When the thief falls behind, gmp-queue's ring overflows to its global queue (part of
/// the measured cost); those elements are counted at the end.
pub fn contended_run<Q: RunQueue>(n: u64) -> Duration {
    let (owner, thief) = Q::new();
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mine, _) = Q::new();
            let mut count = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                if let Some(v) = Q::steal_half(&thief, &mine) {
                    black_box(v);
                    count += 1;
                    while let Some(v) = Q::pop(&mine) {
                        black_box(v);
                        count += 1;
                    }
                } else if finished {
                    return count;
                }
            }
        })
    };
    let start = Instant::now();
    let mut count = 0u64;
    let mut pushed = 0u64;
    while pushed < n {
        for _ in 0..8 {
            Q::push(&owner, tok());
        }
        pushed += 8;
        for _ in 0..4 {
            if Q::pop(&owner).is_some() {
                count += 1;
            }
        }
    }
    while Q::pop(&owner).is_some() {
        count += 1;
    }
    done.store(true, Ordering::Release);
    count += handle.join().unwrap();
    let elapsed = start.elapsed();
    count += Q::overflowed(&owner);
    assert_eq!(count, pushed, "{}: elements lost or duplicated", Q::NAME);
    elapsed
}
