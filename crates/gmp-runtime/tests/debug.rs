//! Seeing inside a running program (API.md): `debug::dump`, `GMP_TRACEBACK=all`,
//! `Runtime::metrics`, `GMP_SCHEDTRACE=ms,detail`. Limits given to `within` detect
//! hangs; they are not timing assertions.

use gmp_runtime::{blocking, chan, debug, sleep, JoinHandle, Runtime};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::symbols_in_backtraces;

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().expect("runtime")
}

/// Starts a goroutine (no thread-local state is held across suspension points).
#[track_caller]
fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see above.
    unsafe { gmp_runtime::spawn(f) }
}

fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("still not finished after {secs} s (hang)"),
    }
}

fn dump_string() -> String {
    let mut out = Vec::new();
    debug::dump(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The dump's entry for goroutine `id`: its header line and body.
fn entry(dump: &str, id: u64) -> Option<String> {
    let head = format!("goroutine {id} [");
    let start = dump.find(&head)?;
    let rest = &dump[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

#[inline(never)]
fn parks_in_sleep_here() {
    sleep(Duration::from_secs(3600));
    // Not a tail call: keep this frame in the backtrace.
    std::hint::black_box(());
}

#[inline(never)]
fn parks_in_recv_here(rx: chan::Receiver<u8>) {
    let _ = rx.recv();
    // Not a tail call: keep this frame in the backtrace.
    std::hint::black_box(());
}

#[inline(never)]
fn parks_in_select_here(a: chan::Receiver<u8>, b: chan::Receiver<u8>) {
    chan::select! {
        recv(a) -> _ => {},
        recv(b) -> _ => {},
    }
    // Not a tail call: keep this frame in the backtrace.
    std::hint::black_box(());
}

#[inline(never)]
fn parks_in_net_read_here(l: gmp_runtime::net::TcpListener) {
    use std::io::Read;
    let (mut s, _) = l.accept().unwrap();
    let mut b = [0u8; 1];
    let _ = s.read(&mut b);
    // Not a tail call: keep this frame in the backtrace.
    std::hint::black_box(());
}

#[test]
fn dump_lists_every_parked_goroutine_with_its_stack_and_creator() {
    let text = within(60, || {
        let r = rt(2);
        let stop = Arc::new(AtomicBool::new(false));
        let (ids, text) = {
            // SAFETY: as `go`.
            unsafe {
                r.block_on(|| {
                    let (_t1, r1) = chan::bounded::<u8>(0);
                    let (_t2, r2) = chan::bounded::<u8>(0);
                    let (_t3, r3) = chan::bounded::<u8>(0);
                    let l = gmp_runtime::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let addr = l.local_addr().unwrap();
                    let s = stop.clone();
                    let hs = vec![
                        go(parks_in_sleep_here),
                        go(move || parks_in_recv_here(r1)),
                        go(move || parks_in_select_here(r2, r3)),
                        go(move || parks_in_net_read_here(l)),
                        go(move || {
                            blocking(|| {
                                while !s.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                            })
                        }),
                    ];
                    let _client = gmp_runtime::net::TcpStream::connect(addr).unwrap();
                    sleep(Duration::from_millis(50));
                    let ids: Vec<u64> = hs
                        .iter()
                        .map(|h| h.goroutine().id().as_u64().get())
                        .collect();
                    let text = dump_string();
                    for h in &hs {
                        h.abort();
                    }
                    stop.store(true, Ordering::SeqCst);
                    for h in hs {
                        let _ = h.join();
                    }
                    (ids, text)
                })
            }
        };
        (ids, text)
    });
    let (ids, text) = text;
    let expect = [
        (ids[0], "[sleep]", "parks_in_sleep_here"),
        (ids[1], "[chan receive]", "parks_in_recv_here"),
        (ids[2], "[select]", "parks_in_select_here"),
        (ids[3], "[IO wait]", "parks_in_net_read_here"),
    ];
    for (id, state, func) in expect {
        let e = entry(&text, id).unwrap_or_else(|| panic!("goroutine {id} missing:\n{text}"));
        assert!(e.contains(state), "{e}");
        assert!(
            e.contains(func) || !symbols_in_backtraces(),
            "the stack must name {func}:\n{e}"
        );
        assert!(
            e.contains("created by ") && e.contains("tests/debug.rs:"),
            "{e}"
        );
        assert_eq!(
            text.matches(&format!("goroutine {id} [")).count(),
            1,
            "{text}"
        );
    }
    let blocked = entry(&text, ids[4]).expect("the blocking goroutine is listed");
    assert!(
        blocked.contains("[syscall]") || blocked.contains("[running]"),
        "{blocked}"
    );
    // The caller (the main goroutine) is running, with its own stack.
    assert!(text.contains("[running]"), "{text}");
    assert!(
        text.contains("dump_string") || !symbols_in_backtraces(),
        "the caller's own stack:\n{text}"
    );
}

#[test]
fn dump_while_goroutines_park_and_wake_concurrently() {
    within(120, || {
        let r = rt(2);
        // SAFETY: as `go`.
        unsafe {
            r.block_on(|| {
                let n = 10_000;
                let done = Arc::new(AtomicUsize::new(0));
                let (tx, rx) = chan::bounded::<u32>(64);
                let hs: Vec<_> = (0..n)
                    .map(|_| {
                        let rx = rx.clone();
                        let done = done.clone();
                        go(move || {
                            for _ in 0..3 {
                                let _ = rx.recv();
                                gmp_runtime::yield_now();
                            }
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                let feeder = go(move || {
                    for i in 0..(3 * n as u32) {
                        tx.send(i).unwrap();
                    }
                });
                for _ in 0..5 {
                    let text = dump_string();
                    // Each goroutine listed at most once.
                    let mut seen = std::collections::HashSet::new();
                    for line in text.lines().filter(|l| l.starts_with("goroutine ")) {
                        let id = line.split_whitespace().nth(1).unwrap().to_string();
                        assert!(seen.insert(id.clone()), "goroutine {id} listed twice");
                    }
                }
                feeder.join().unwrap();
                for h in hs {
                    h.join().unwrap();
                }
                assert_eq!(done.load(Ordering::SeqCst), n);
            })
        }
    });
}

#[test]
fn sigquit_with_gmp_traceback_all_dumps_and_exits_2() {
    if std::env::var_os("GMP_DEBUG_CHILD").is_some() {
        let r = rt(1);
        // SAFETY: as `go`.
        unsafe {
            r.block_on(|| {
                let _h = go(parks_in_sleep_here);
                sleep(Duration::from_millis(20));
                libc_raise_sigquit();
                sleep(Duration::from_secs(30));
            })
        };
        unreachable!("SIGQUIT should have ended the process");
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "sigquit_with_gmp_traceback_all_dumps_and_exits_2",
            "--exact",
            "--nocapture",
        ])
        .env("GMP_DEBUG_CHILD", "1")
        .env("GMP_TRACEBACK", "all")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("SIGQUIT: quit"), "{err}");
    assert!(err.contains("[sleep]"), "{err}");
    assert!(
        err.contains("parks_in_sleep_here") || !symbols_in_backtraces(),
        "{err}"
    );
}

/// `kill(getpid(), SIGQUIT)` without a libc dependency in the test.
///
/// # Safety
/// Sends SIGQUIT to this process.
unsafe fn libc_raise_sigquit() {
    extern "C" {
        fn raise(sig: i32) -> i32;
    }
    const SIGQUIT: i32 = 3;
    // SAFETY: `raise` is the C library's; the caller accepts the signal.
    unsafe { raise(SIGQUIT) };
}

#[test]
fn metrics_count_a_known_workload() {
    let r = rt(2);
    let spawned_before = r.metrics().spawned;
    // SAFETY: as `go`.
    unsafe {
        r.block_on(|| {
            // 100 spawns from one goroutine: the other P must steal some.
            let hs: Vec<_> = (0..100)
                .map(|_| {
                    go(|| {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(200) {
                            std::hint::spin_loop();
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            // A hog: 30 ms without a scheduling point is retaken by sysmon.
            go(|| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(30) {
                    std::hint::spin_loop();
                }
            })
            .join()
            .unwrap();
            // Timers.
            for _ in 0..5 {
                sleep(Duration::from_millis(1));
            }
        })
    };
    let m = r.metrics();
    assert_eq!(m.spawned - spawned_before, 1 + 100 + 1, "{m:?}");
    assert!(m.steals > 0, "{m:?}");
    assert!(m.retakes_hog > 0, "{m:?}");
    assert!(m.timers_armed >= 5 && m.timers_fired >= 5, "{m:?}");
    assert_eq!(m.local_queues.len(), 2);
    // The main goroutine is counted until its M has finished it, just after
    // `block_on` returned.
    let give_up = Instant::now() + Duration::from_secs(10);
    while r.metrics().goroutines != 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(r.metrics().goroutines, 0, "{:?}", r.metrics());
}

#[test]
fn schedtrace_detail_prints_p_m_and_g_lines() {
    if std::env::var_os("GMP_DEBUG_CHILD").is_some() {
        let r = rt(2);
        // SAFETY: as `go`.
        unsafe {
            r.block_on(|| {
                let _h = go(parks_in_sleep_here);
                sleep(Duration::from_millis(60));
            })
        };
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "schedtrace_detail_prints_p_m_and_g_lines",
            "--exact",
            "--nocapture",
        ])
        .env("GMP_DEBUG_CHILD", "1")
        .env("GMP_SCHEDTRACE", "10,detail")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("SCHED "), "{err}");
    assert!(err.contains("\n  P0: status="), "{err}");
    assert!(err.contains("\n  M"), "{err}");
    assert!(err.contains("(sleep)"), "{err}");
}

#[test]
fn dump_lists_runnable_goroutines_that_never_parked() {
    within(60, || {
        let rt = rt(1);
        // SAFETY: no thread-local state is held across suspension points.
        unsafe {
            rt.block_on(|| {
                // On one P the spawner keeps running: these wait in the run queue (one in
                // `runnext`, the others in the ring), never having run, let alone parked.
                // If the dump takes over 10 ms (a loaded machine, other tests' goroutines
                // to symbolise), sysmon hands our P to another M, which may run them
                // first: then the attempt does not count, and we try again.
                for _attempt in 0..10 {
                    let ran = Arc::new(AtomicUsize::new(0));
                    let hs: Vec<_> = (0..5)
                        .map(|_| {
                            let ran = ran.clone();
                            go(move || ran.fetch_add(1, Ordering::SeqCst))
                        })
                        .collect();
                    let ids: Vec<u64> = hs
                        .iter()
                        .map(|h| h.goroutine().id().as_u64().get())
                        .collect();
                    let dump = dump_string();
                    let preempted = ran.load(Ordering::SeqCst) != 0;
                    if !preempted {
                        for id in &ids {
                            let e = entry(&dump, *id)
                                .unwrap_or_else(|| panic!("goroutine {id} not listed:\n{dump}"));
                            assert!(e.starts_with(&format!("goroutine {id} [runnable]")), "{e}");
                            assert!(
                                e.contains("created by crates/gmp-runtime/tests/debug.rs:"),
                                "{e}"
                            );
                            let head = format!("goroutine {id} [");
                            assert_eq!(dump.matches(&head).count(), 1, "{dump}");
                        }
                    }
                    // Put back on the run queues: they all still run, once each.
                    for h in hs {
                        h.join().unwrap();
                    }
                    assert_eq!(ran.load(Ordering::SeqCst), 5);
                    if !preempted {
                        return;
                    }
                }
                panic!("the spawner lost its P during every one of 10 dumps");
            })
        }
    });
}
