//! `JoinHandle::abort` (API.md "Ending a goroutine from outside"): each hard case.
//! Limits passed to `within` detect hangs; they are not timing assertions.

use gmp_runtime::{blocking, chan, sleep, Aborted, JoinHandle, Runtime};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn on<T: Send>(procs: usize, f: impl FnOnce() -> T + Send) -> T {
    let r = rt(procs);
    // SAFETY: the tests hold no thread-local state across suspension points.
    unsafe { r.block_on(f) }
}

fn is_aborted<T>(r: std::thread::Result<T>) -> bool {
    matches!(r, Err(p) if p.is::<Aborted>())
}

/// Waits (yielding) until `f` holds; a hang detector with a generous limit.
fn wait_until(f: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < give_up, "condition never came true");
        sleep(Duration::from_millis(1));
    }
}

#[test]
fn aborted_while_parked_in_recv_leaves_the_value_in_the_channel() {
    on(2, || {
        let (tx, rx) = chan::bounded::<u32>(1);
        let rx2 = rx.clone();
        let parked = Arc::new(AtomicBool::new(false));
        let p2 = parked.clone();
        let h = go(move || {
            p2.store(true, Ordering::SeqCst);
            rx.recv()
        });
        wait_until(|| parked.load(Ordering::SeqCst));
        sleep(Duration::from_millis(10)); // let it park
        h.abort();
        assert!(is_aborted(h.join()));
        tx.send(5).unwrap();
        assert_eq!(
            rx2.try_recv(),
            Ok(5),
            "the value stays for the next receiver"
        );
    });
}

#[test]
fn aborted_in_select_leaves_both_channels_usable() {
    on(2, || {
        let (t1, r1) = chan::bounded::<u32>(0);
        let (t2, r2) = chan::unbounded::<u32>();
        let (a, b) = (r1.clone(), r2.clone());
        let h = go(move || {
            chan::select! {
                recv(a) -> v => v.ok(),
                recv(b) -> v => v.ok(),
            }
        });
        sleep(Duration::from_millis(10));
        h.abort();
        assert!(is_aborted(h.join()));
        t2.send(2).unwrap();
        assert_eq!(r2.recv(), Ok(2));
        let g = go(move || r1.recv().unwrap());
        t1.send(1).unwrap();
        assert_eq!(g.join().unwrap(), 1);
    });
}

#[test]
fn aborted_while_sleeping() {
    on(1, || {
        let t = Instant::now();
        let h = go(|| sleep(Duration::from_secs(3600)));
        sleep(Duration::from_millis(5));
        h.abort();
        assert!(is_aborted(h.join()));
        assert!(t.elapsed() < Duration::from_secs(60));
    });
}

#[test]
fn aborted_in_blocking_unwinds_when_the_call_returns() {
    on(2, || {
        let after = Arc::new(AtomicBool::new(false));
        let in_call = Arc::new(AtomicBool::new(false));
        let (a, c) = (after.clone(), in_call.clone());
        let h = go(move || {
            blocking(|| {
                c.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            });
            a.store(true, Ordering::SeqCst);
        });
        wait_until(|| in_call.load(Ordering::SeqCst));
        h.abort();
        assert!(is_aborted(h.join()));
        assert!(
            !after.load(Ordering::SeqCst),
            "code after the blocking call ran"
        );
    });
}

#[test]
fn aborted_inside_scope_waits_for_the_scoped_goroutines() {
    on(2, || {
        let child_done = Arc::new(AtomicBool::new(false));
        let in_scope = Arc::new(AtomicBool::new(false));
        let (cd, is) = (child_done.clone(), in_scope.clone());
        let h = go(move || {
            let mut borrowed = 0u64;
            gmp_runtime::scope(|s| {
                // SAFETY: no thread-local state is held across suspension points.
                unsafe {
                    s.spawn(|| {
                        sleep(Duration::from_millis(100));
                        borrowed += 1; // writes into the parent's frame
                        cd.store(true, Ordering::SeqCst);
                    });
                }
                is.store(true, Ordering::SeqCst);
            });
            borrowed
        });
        wait_until(|| in_scope.load(Ordering::SeqCst));
        h.abort();
        assert!(is_aborted(h.join()));
        assert!(
            child_done.load(Ordering::SeqCst),
            "the parent unwound before its scoped goroutine finished"
        );
    });
}

#[test]
fn aborted_twice_and_after_finishing() {
    on(2, || {
        let h = go(|| sleep(Duration::from_secs(3600)));
        sleep(Duration::from_millis(5));
        h.abort();
        h.abort();
        assert!(is_aborted(h.join()));
        let done: JoinHandle<u32> = go(|| 7);
        while !done.is_finished() {
            sleep(Duration::from_millis(1));
        }
        done.abort();
        assert_eq!(done.join().unwrap(), 7);
    });
}

static DROP_FINISHED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn abort_during_drop_code_of_an_unwind_does_not_interrupt_it() {
    struct SlowDrop;
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            // A suspension point inside a destructor run by a panic's unwinding.
            sleep(Duration::from_millis(50));
            DROP_FINISHED.fetch_add(1, Ordering::SeqCst);
        }
    }
    on(2, || {
        let h = go(|| {
            let _d = SlowDrop;
            panic!("boom");
        });
        sleep(Duration::from_millis(20));
        h.abort();
        let r = h.join();
        let msg = r.expect_err("it panicked");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(DROP_FINISHED.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn abort_runs_destructors_and_scoped_abort_is_not_a_panic() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    struct D;
    impl Drop for D {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
    on(2, || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            gmp_runtime::scope(|s| {
                // SAFETY: as above.
                let h = unsafe {
                    s.spawn(|| {
                        let _d = D;
                        sleep(Duration::from_secs(3600));
                    })
                };
                sleep(Duration::from_millis(5));
                h.abort();
            })
        }));
        assert!(r.is_ok(), "an aborted scoped goroutine is not a panic");
        assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
    });
}
