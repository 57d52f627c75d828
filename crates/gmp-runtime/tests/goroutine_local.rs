//! `goroutine_local!` (API.md "Goroutine-local storage"): one value per goroutine,
//! created on first use, held across suspension points, dropped when the goroutine
//! ends — by return, panic, abort or shutdown — and per thread on plain threads.

use gmp_runtime::{chan, goroutine_local, sleep, yield_now, JoinHandle, Runtime};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().expect("runtime")
}

/// Starts a goroutine (the tests' closures hold no thread-local state across
/// suspension points, which is `spawn`'s whole contract).
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see above.
    unsafe { gmp_runtime::spawn(f) }
}

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Tracked(u64);
impl Tracked {
    fn new() -> Tracked {
        CREATED.fetch_add(1, Ordering::SeqCst);
        Tracked(0)
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

goroutine_local! {
    static COUNTER: Cell<u64> = Cell::new(0);
    static LOG: RefCell<Vec<u64>> = RefCell::new(Vec::new());
    static TRACKED: RefCell<Tracked> = RefCell::new(Tracked::new());
}

#[test]
fn each_goroutine_has_its_own_value_across_migrations() {
    let r = rt(2);
    // SAFETY: no thread-local state is held across suspension points.
    let sums: Vec<u64> = unsafe {
        r.block_on(|| {
            let hs: Vec<_> = (0..200u64)
                .map(|i| {
                    go(move || {
                        COUNTER.with(|c| {
                            // The borrow is held across suspension points: the value
                            // lives in the goroutine, wherever it resumes.
                            for _ in 0..10 {
                                c.set(c.get() + i);
                                yield_now();
                            }
                        });
                        LOG.with_borrow_mut(|l| l.push(i));
                        sleep(Duration::from_millis(1));
                        assert_eq!(LOG.with_borrow(|l| l.clone()), vec![i]);
                        COUNTER.get()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    for (i, s) in sums.into_iter().enumerate() {
        assert_eq!(s, 10 * i as u64);
    }
}

#[test]
fn values_are_dropped_at_return_panic_abort_and_shutdown() {
    let before_c = CREATED.load(Ordering::SeqCst);
    let before_d = DROPPED.load(Ordering::SeqCst);
    let r = rt(2);
    let (_tx, rx) = chan::bounded::<u8>(0);
    // SAFETY: as above.
    unsafe {
        r.block_on(|| {
            let ret = go(|| TRACKED.with_borrow(|t| t.0));
            let pan = go(|| {
                TRACKED.with_borrow_mut(|t| t.0 = 1);
                panic!("goroutine panics")
            });
            let rx2 = rx.clone();
            let abo = go(move || {
                TRACKED.with_borrow_mut(|t| t.0 = 2);
                let _ = rx2.recv();
            });
            let rx3 = rx.clone();
            // Parked at shutdown: unwound then.
            go(move || {
                TRACKED.with_borrow_mut(|t| t.0 = 3);
                let _ = rx3.recv();
            });
            assert_eq!(ret.join().unwrap(), 0);
            assert!(pan.join().is_err());
            sleep(Duration::from_millis(10));
            abo.abort();
            assert!(abo.join().is_err());
            sleep(Duration::from_millis(10));
        })
    };
    assert_eq!(CREATED.load(Ordering::SeqCst) - before_c, 4);
    assert_eq!(DROPPED.load(Ordering::SeqCst) - before_d, 3);
    drop(r);
    assert_eq!(DROPPED.load(Ordering::SeqCst) - before_d, 4);
}

#[test]
fn plain_threads_get_one_value_each() {
    let t = std::thread::spawn(|| {
        COUNTER.set(5);
        COUNTER.replace(6)
    });
    assert_eq!(t.join().unwrap(), 5);
    assert_eq!(COUNTER.get(), 0, "another thread's value");
    COUNTER.set(9);
    assert_eq!(COUNTER.take(), 9);
    assert_eq!(COUNTER.get(), 0);
}

static CHAINED: AtomicUsize = AtomicUsize::new(0);
static AGAIN: AtomicUsize = AtomicUsize::new(0);

/// Makes a `SECOND` value when dropped.
struct First;
impl Drop for First {
    fn drop(&mut self) {
        CHAINED.fetch_add(1, Ordering::SeqCst);
        SECOND.with(|_| {});
    }
}
struct Second;
impl Drop for Second {
    fn drop(&mut self) {
        CHAINED.fetch_add(1, Ordering::SeqCst);
    }
}
/// Makes itself again whenever it is dropped.
struct Again;
impl Drop for Again {
    fn drop(&mut self) {
        AGAIN.fetch_add(1, Ordering::SeqCst);
        AGAIN_KEY.with(|_| {});
    }
}

goroutine_local! {
    static FIRST: First = First;
    static SECOND: Second = Second;
    static AGAIN_KEY: Again = Again;
}

/// A destructor that makes a new goroutine-local value: that value is dropped too, when
/// the goroutine ends; one that makes itself again forever stops after a few rounds (the
/// rest is leaked, as std does with thread-locals) instead of hanging the M.
#[test]
fn values_made_by_destructors_are_dropped_and_a_loop_of_them_ends() {
    let r = rt(1);
    // SAFETY: as above.
    unsafe {
        r.block_on(|| {
            go(|| FIRST.with(|_| {})).join().unwrap();
            go(|| AGAIN_KEY.with(|_| {})).join().unwrap();
        })
    };
    assert_eq!(
        CHAINED.load(Ordering::SeqCst),
        2,
        "First and the Second it made"
    );
    let rounds = AGAIN.load(Ordering::SeqCst);
    assert!((2..=16).contains(&rounds), "dropped {rounds} times");
}
