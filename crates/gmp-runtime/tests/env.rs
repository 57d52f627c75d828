//! `GMP_MAXPROCS` and `GMP_SCHEDTRACE`, each checked in a child process (environment
//! variables are process-wide, so the parent re-runs this test binary with them set).

use std::process::Command;
use std::time::Duration;

/// Re-runs this binary's test `name` (exact) with `env` set; returns (success, stderr).
fn child(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("GMP_ENV_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_child() -> bool {
    std::env::var_os("GMP_ENV_CHILD").is_some()
}

#[test]
fn gmp_maxprocs_sets_the_default_procs() {
    if is_child() {
        let rt = gmp_runtime::Runtime::new().unwrap();
        assert_eq!(rt.procs(), 3);
        assert_eq!(gmp_runtime::gomaxprocs(), 3);
        // SAFETY: trivial closure.
        assert_eq!(unsafe { rt.block_on(gmp_runtime::gomaxprocs) }, 3);
        return;
    }
    let (ok, err) = child(
        "gmp_maxprocs_sets_the_default_procs",
        &[("GMP_MAXPROCS", "3")],
    );
    assert!(ok, "{err}");
}

#[test]
fn a_bad_gmp_maxprocs_is_a_clear_error() {
    if is_child() {
        let e = gmp_runtime::Runtime::new().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("GMP_MAXPROCS"), "{e}");
        // The default runtime refuses to start with a message naming the variable.
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let r = std::panic::catch_unwind(|| unsafe { gmp_runtime::go!(|| ()) }.join());
        let p = r.unwrap_err();
        let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("GMP_MAXPROCS"), "{msg}");
        return;
    }
    for bad in ["0", "two", "-1"] {
        let (ok, err) = child(
            "a_bad_gmp_maxprocs_is_a_clear_error",
            &[("GMP_MAXPROCS", bad)],
        );
        assert!(ok, "GMP_MAXPROCS={bad}: {err}");
    }
}

#[test]
fn gmp_schedtrace_prints_go_style_lines() {
    if is_child() {
        let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
        // SAFETY: no thread-local state held across suspension points.
        unsafe {
            rt.block_on(|| {
                let hs: Vec<_> = (0..4)
                    .map(|_| gmp_runtime::go!(|| gmp_runtime::sleep(Duration::from_millis(60))))
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
            })
        };
        return;
    }
    let (ok, err) = child(
        "gmp_schedtrace_prints_go_style_lines",
        &[("GMP_SCHEDTRACE", "10")],
    );
    assert!(ok, "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("SCHED "))
        .unwrap_or_else(|| panic!("no SCHED line in:\n{err}"));
    for field in [
        "ms: gomaxprocs=2",
        "idleprocs=",
        "threads=",
        "spinningthreads=",
        "idlethreads=",
        "runqueue=",
        " [",
    ] {
        assert!(line.contains(field), "{field:?} missing from {line:?}");
    }
    assert!(line.ends_with(']'), "{line}");
}

/// sysmon takes a P from a goroutine that holds it (a hog) through a handshake with
/// the P's M (p.rs, "Taking a P from goroutine code"): `membarrier` on sysmon's side by
/// default, full fences on both sides with `GMP_MEMBARRIER=off`. In both modes a hog
/// is retaken while goroutines on both Ps switch a million times (each switch is the
/// M's side of the handshake), and every goroutine finishes.
#[test]
fn hogs_are_retaken_with_and_without_membarrier() {
    if is_child() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        use std::time::Instant;
        let rt = gmp_runtime::Runtime::builder().procs(2).build().unwrap();
        let before = rt.metrics().retakes_hog;
        let yields = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: the goroutines hold no thread-local state across a suspension point.
        unsafe {
            rt.block_on(|| {
                let switchers: Vec<_> = (0..4)
                    .map(|_| {
                        let (yields, stop) = (yields.clone(), stop.clone());
                        gmp_runtime::go!(move || {
                            while !stop.load(Ordering::Relaxed) {
                                gmp_runtime::yield_now();
                                yields.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for _ in 0..3 {
                    gmp_runtime::go!(|| {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(40) {
                            std::hint::spin_loop();
                        }
                    })
                    .join()
                    .unwrap();
                }
                while yields.load(Ordering::Relaxed) < 1_000_000 {
                    gmp_runtime::sleep(Duration::from_millis(1));
                }
                stop.store(true, Ordering::Relaxed);
                for h in switchers {
                    h.join().unwrap();
                }
            })
        };
        let m = rt.metrics();
        assert!(m.retakes_hog > before, "{m:?}");
        return;
    }
    for mode in ["on", "off"] {
        let (ok, err) = child(
            "hogs_are_retaken_with_and_without_membarrier",
            &[("GMP_MEMBARRIER", mode)],
        );
        assert!(ok, "GMP_MEMBARRIER={mode}: {err}");
    }
}
