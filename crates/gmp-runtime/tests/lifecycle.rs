//! Lifecycle soundness: spawn failure, shutdown with queued and parked goroutines,
//! swallowed forced unwinds, nested runtimes, timers starved by blocking calls
//! (issue 10, findings 3, 6, 8, 9 and 12). Each test failed before its fix.
//!
//! A test that could hang runs its body on a helper thread with a generous limit
//! (`within`): the limits detect hangs, they are not timing assertions. Tests whose
//! failure mode is a process abort run in a child process (`in_child`).

use gmp_runtime::{blocking, chan, go, sleep, Builder, JoinHandle, Runtime};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().expect("runtime")
}

fn payload_msg(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string payload>".into())
}

/// Runs `f` on a helper thread; `Err` if it panicked or did not finish in `secs`.
fn within<T: Send + 'static>(
    secs: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(p)) => Err(format!("panicked: {}", payload_msg(&*p))),
        Err(_) => Err(format!("still not finished after {secs} s (hang)")),
    }
}

const CHILD_ENV: &str = "GMP_LIFECYCLE_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs test `name` alone in a child process: (exit status success, stderr).
fn in_child(name: &str) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

// ---------------------------------------------------------------------------------
// Finding 3: a failed `Builder::spawn_scoped` must not end the scope early.
// ---------------------------------------------------------------------------------

#[test]
fn failed_spawn_scoped_does_not_release_the_scope_early() {
    let r = within(30, || {
        let rt = rt(2);
        let mut written = false;
        // SAFETY: no thread-local state is held across suspension points.
        unsafe {
            rt.block_on(|| {
                gmp_runtime::scope(|s| {
                    s.spawn(|| {
                        sleep(Duration::from_millis(100));
                        written = true;
                    });
                    // Above the maximum stack size: the spawn fails after its result
                    // packet (which counts in the scope) was made.
                    let e = Builder::new()
                        .stack_size(usize::MAX / 2)
                        .spawn_scoped(s, || ())
                        .expect_err("an impossible stack size must fail");
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
                });
            })
        };
        // The scope waited for the sleeping child.
        written
    });
    assert_eq!(r, Ok(true));
}

// ---------------------------------------------------------------------------------
// Finding 8: a `Builder::spawn` goroutine (stack taken at once) still queued at
// shutdown: its `join` returns `Err`.
// ---------------------------------------------------------------------------------

static HOLD_P: AtomicBool = AtomicBool::new(true);
static QUEUED_RAN: AtomicBool = AtomicBool::new(false);

#[test]
fn builder_goroutine_queued_at_shutdown_is_joined_with_err() {
    // The scenario needs the queued goroutine not to run before the shutdown flag is
    // up; sysmon could hand it to another M meanwhile, so try a few times.
    for _ in 0..10 {
        HOLD_P.store(true, Ordering::SeqCst);
        QUEUED_RAN.store(false, Ordering::SeqCst);
        let rt = rt(1);
        let (tx, rx) = std::sync::mpsc::channel::<JoinHandle<u32>>();
        // SAFETY: no thread-local state is held across suspension points.
        let _a = unsafe {
            rt.spawn(move || {
                let b = Builder::new()
                    .spawn(|| {
                        QUEUED_RAN.store(true, Ordering::SeqCst);
                        7
                    })
                    .expect("spawn");
                tx.send(b).unwrap();
                // Hold the only P (no scheduling point) until the shutdown has begun.
                while HOLD_P.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            })
        };
        let b = rx.recv().unwrap();
        let stopper = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(3));
        HOLD_P.store(false, Ordering::SeqCst);
        stopper.join().unwrap();
        if QUEUED_RAN.load(Ordering::SeqCst) {
            continue; // it ran before the shutdown: try again
        }
        let r = within(10, move || b.join().map_err(|p| payload_msg(&*p)));
        let msg = r
            .expect("join of a goroutine queued at shutdown hung")
            .expect_err("it never ran");
        assert!(msg.contains("shut down before goroutine"), "{msg}");
        return;
    }
    eprintln!("the queued goroutine always ran before the shutdown; scenario not reached");
}

// ---------------------------------------------------------------------------------
// Finding 9: a goroutine that swallows the shutdown's forced unwind.
// ---------------------------------------------------------------------------------

#[test]
fn swallowing_the_shutdown_unwind_forever_aborts_with_a_message() {
    if !is_child() {
        let (status, out) =
            in_child("swallowing_the_shutdown_unwind_forever_aborts_with_a_message");
        assert!(!status.success(), "the child should abort:\n{out}");
        assert!(
            out.contains("caught the runtime's shutdown unwind 100 times")
                && out.contains("('worker')"),
            "{out}"
        );
        return;
    }
    let rt = rt(1);
    let (tx, rx) = chan::bounded::<u32>(0);
    // SAFETY: no thread-local state is held across suspension points.
    let _h = unsafe {
        rt.block_on(|| {
            Builder::new()
                .name("worker".into())
                .spawn(move || loop {
                    // The idiom the rule is for: a worker loop that survives panics.
                    let _ = catch_unwind(AssertUnwindSafe(|| rx.recv()));
                })
                .unwrap()
        })
    };
    sleep(Duration::from_millis(20));
    drop(rt); // aborts the process, naming the goroutine
    drop(tx);
    unreachable!("the shutdown should have aborted");
}

#[test]
fn catching_the_shutdown_unwind_once_still_unwinds_the_goroutine() {
    static CLEANED: AtomicUsize = AtomicUsize::new(0);
    let r = within(30, || {
        let rt = rt(2);
        let (tx, rx) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(0);
        // SAFETY: no thread-local state is held across suspension points.
        unsafe {
            rt.block_on(|| {
                go!(move || {
                    struct Clean;
                    impl Drop for Clean {
                        fn drop(&mut self) {
                            CLEANED.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    let _c = Clean;
                    // Catches the forced unwind once, then parks again: the unwind is
                    // raised again there and the goroutine unwinds to its end.
                    let first = catch_unwind(AssertUnwindSafe(|| rx.recv()));
                    assert!(first.is_err());
                    let _ = rx2.recv();
                    unreachable!("the second park must re-raise the unwind");
                });
            })
        };
        sleep(Duration::from_millis(20));
        drop(rt);
        drop((tx, tx2));
        CLEANED.load(Ordering::SeqCst)
    });
    assert_eq!(r, Ok(1));
}

// ---------------------------------------------------------------------------------
// Finding 6: block_on from a goroutine of another runtime is refused.
// ---------------------------------------------------------------------------------

#[test]
fn block_on_from_a_goroutine_of_another_runtime_panics() {
    let outer = rt(1);
    let inner = Arc::new(rt(1));
    let i2 = inner.clone();
    // SAFETY: no thread-local state is held across suspension points.
    let r = unsafe {
        outer.block_on(move || {
            catch_unwind(AssertUnwindSafe(|| i2.block_on(|| 1))).map_err(|p| payload_msg(&*p))
        })
    };
    let msg = r.expect_err("nested block_on of another runtime must panic");
    assert!(msg.contains("from a goroutine of another runtime"), "{msg}");
    // The same runtime nested is fine (it is a spawn and a join).
    // SAFETY: as above.
    let v = unsafe { outer.block_on(|| outer.block_on(|| 5)) };
    assert_eq!(v, 5);
    drop(inner);
}

// ---------------------------------------------------------------------------------
// Finding 12: short blocking calls in a loop must not starve a timer.
// ---------------------------------------------------------------------------------

#[test]
fn blocking_loops_do_not_starve_a_sleeper_on_one_p() {
    let r = within(60, || {
        let rt = rt(1);
        // SAFETY: no thread-local state is held across suspension points.
        unsafe {
            rt.block_on(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let loops: Vec<_> = (0..2)
                    .map(|_| {
                        let stop = stop.clone();
                        go!(move || {
                            use std::io::Write;
                            let mut f = std::fs::OpenOptions::new()
                                .write(true)
                                .open("/dev/null")
                                .unwrap();
                            while !stop.load(Ordering::Relaxed) {
                                blocking(|| f.write_all(b"x").unwrap());
                            }
                        })
                    })
                    .collect();
                let sleeper = go!(|| {
                    let t = Instant::now();
                    sleep(Duration::from_millis(10));
                    t.elapsed()
                });
                let late = sleeper.join().unwrap();
                stop.store(true, Ordering::Relaxed);
                for h in loops {
                    h.join().unwrap();
                }
                late
            })
        }
    });
    let late = r.expect("runtime");
    eprintln!("sleep(10 ms) on one P beside two blocking loops took {late:?}");
    // Before the fix: 0.24 s to 13.6 s. The bound only tells "starved" from "served".
    assert!(
        late < Duration::from_millis(1000),
        "sleep(10 ms) took {late:?}"
    );
}

/// A goroutine's result is dropped exactly once, whoever ends up owning it: the joiner
/// (`join`, or awaiting the handle), the last owner of a detached goroutine's result
/// slot (handle dropped before or after the goroutine finished), or a panic payload.
/// The slot is uninitialised memory guarded by the packet's state (goroutine.rs
/// `Packet`): a double drop or a leak shows up in the counts.
#[test]
fn a_goroutines_result_is_dropped_exactly_once() {
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let r = within(60, || {
        let rt = rt(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        // SAFETY: no thread-local state held across suspension points.
        unsafe {
            rt.block_on(move || {
                // 1. Joined: the joiner owns it.
                let h = go!({
                    let d = d.clone();
                    move || Counted(d)
                });
                drop(h.join().unwrap());
                // 2. Detached before it finished: the slot drops it.
                let (tx, rx) = chan::bounded::<()>(0);
                drop(go!({
                    let d = d.clone();
                    move || {
                        rx.recv().unwrap();
                        Counted(d)
                    }
                }));
                tx.send(()).unwrap();
                // 3. Detached after it finished.
                let h = go!({
                    let d = d.clone();
                    move || Counted(d)
                });
                while !h.is_finished() {
                    gmp_runtime::yield_now();
                }
                drop(h);
                // 4. Awaited as a future.
                let h = go!({
                    let d = d.clone();
                    move || Counted(d)
                });
                drop(gmp_runtime::future::block_on(h).unwrap());
                // 5. A panic: the payload is the result; joined, and detached.
                let h = go!({
                    let d = d.clone();
                    move || -> Counted { std::panic::panic_any(Counted(d)) }
                });
                drop(h.join().unwrap_err());
                drop(go!({
                    let d = d.clone();
                    move || -> Counted { std::panic::panic_any(Counted(d)) }
                }));
                // The detached ones (2 and the last 5) may not have run yet: a
                // goroutine still queued at shutdown is cancelled without running,
                // and would make no result at all. Wait (bounded) until all six
                // have been dropped; a leak shows up as a count below six.
                let deadline = Instant::now() + Duration::from_secs(10);
                while d.load(Ordering::SeqCst) < 6 && Instant::now() < deadline {
                    gmp_runtime::yield_now();
                }
            })
        };
        rt.shutdown_timeout(Duration::from_secs(10));
        // After shutdown nothing can drop a result any more: a double drop shows
        // up as a count above six.
        drops.load(Ordering::SeqCst)
    });
    assert_eq!(r, Ok(6), "six results, each dropped once");
}
