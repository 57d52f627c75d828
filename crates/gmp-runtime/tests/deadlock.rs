//! The deadlock detector (sysmon.rs `check_dead`), issue 10 findings 5, 7 and 13.
//!
//! A report is fatal only when it is certain: every thread of the process is an M, a
//! sysmon or a `block_on` caller. So these scenarios cannot run inside libtest (its
//! main thread waits for the test thread, and is a thread the runtime does not know):
//! this is a `harness = false` test whose `main` runs each scenario in a child process
//! of its own, where the scenario's thread is the process's main thread.

use gmp_runtime::{chan, sleep, JoinHandle, Runtime};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::symbols_in_backtraces;

const SCENARIO_ENV: &str = "GMP_DEADLOCK_SCENARIO";

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

fn payload_msg(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string payload>".into())
}

/// Runs `f` as a main goroutine and returns the panic message, if it panicked.
fn block_on_msg<T: Send>(rt: &Runtime, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    // SAFETY: the scenarios hold no thread-local state across suspension points.
    catch_unwind(AssertUnwindSafe(|| unsafe { rt.block_on(f) })).map_err(|p| payload_msg(&*p))
}

/// A true deadlock is reported with Go's message and the goroutines' list.
fn true_deadlock() {
    let rt = rt(2);
    let r = block_on_msg(&rt, || {
        let (tx, rx) = chan::bounded::<u8>(0);
        let v = rx.recv(); // we hold the only sender
        drop(tx);
        v.ok()
    });
    let msg = r.expect_err("a true deadlock must be reported");
    assert!(
        msg.starts_with("all goroutines are asleep - deadlock!"),
        "{msg}"
    );
    assert!(msg.contains("('main')"), "{msg}");
    // The report carries each goroutine's stack and creator (debug.rs).
    assert!(
        msg.contains("true_deadlock") || !symbols_in_backtraces(),
        "{msg}"
    );
    assert!(msg.contains("created by "), "{msg}");
    // The runtime still works for a new main goroutine.
    assert_eq!(
        block_on_msg(&rt, || {
            sleep(Duration::from_millis(20));
            5
        }),
        Ok(5)
    );
}

/// Finding 13: a main goroutine waiting 600 ms for a value a plain thread will send
/// is not a deadlock (the thread is alive: the report is not certain).
fn plain_thread_sender_is_not_a_deadlock() {
    let rt = rt(1);
    let (tx, rx) = chan::bounded::<u32>(0);
    let t = std::thread::spawn(move || {
        // A stdin reader, say: busy outside gmp, then sends.
        std::thread::sleep(Duration::from_millis(600));
        tx.send(42).unwrap();
    });
    assert_eq!(block_on_msg(&rt, move || rx.recv().unwrap()), Ok(42));
    t.join().unwrap();
}

static CHILD_RAN_AFTER_REPORT: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Finding 5: after a (certain) report, the main goroutine's scoped children — which
/// borrow from the `block_on` caller's frame — never run again, even when a thread
/// created afterwards sends them what they waited for.
fn scoped_children_never_run_after_a_report() {
    let rt = rt(2);
    let (tx, rx) = chan::bounded::<u32>(1);
    let tx_keep = tx.clone();
    let borrowed = vec![1u32, 2, 3];
    let r = block_on_msg(&rt, || {
        gmp_runtime::scope(|s| {
            // SAFETY: no thread-local state is held across suspension points.
            unsafe {
                s.spawn(|| {
                    let v = rx.recv().unwrap();
                    if REPORTED.load(Ordering::SeqCst) {
                        CHILD_RAN_AFTER_REPORT.store(true, Ordering::SeqCst);
                    }
                    v + borrowed.iter().sum::<u32>()
                });
            }
        });
        drop(tx);
    });
    REPORTED.store(true, Ordering::SeqCst);
    let msg = r.expect_err("a true deadlock must be reported");
    assert!(msg.starts_with("all goroutines are asleep"), "{msg}");
    drop(borrowed);
    // A thread created now sends what the child waited for: it must not run.
    std::thread::spawn(move || tx_keep.send(1).unwrap())
        .join()
        .unwrap();
    let give_up = Instant::now() + Duration::from_millis(300);
    while Instant::now() < give_up {
        assert!(
            !CHILD_RAN_AFTER_REPORT.load(Ordering::SeqCst),
            "an abandoned goroutine ran after the report"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::mem::forget(rt); // its goroutines are abandoned; nothing to unwind
}

/// Finding 7: a failed thread creation leaves the M accounting right, so a true
/// deadlock is still reported afterwards.
fn failed_thread_creation_keeps_detection() {
    let rt = rt(2);
    gmp_runtime::__inject_thread_spawn_failures(1);
    // Work for a second M: its creation fails once; the goroutines still run on the
    // Ms that exist.
    let r = block_on_msg(&rt, || {
        let hs: Vec<_> = (0..4u64).map(|i| go(move || i * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(r, Ok(12));
    let r = block_on_msg(&rt, || {
        let (_tx, rx) = chan::bounded::<u8>(0);
        rx.recv().ok()
    });
    let msg = r.expect_err("detection must still work after a failed newm");
    assert!(msg.starts_with("all goroutines are asleep"), "{msg}");
}

/// A long computation joined by the main goroutine is not a deadlock.
fn joining_a_long_computation_is_not_a_deadlock() {
    let rt = rt(1);
    let r = block_on_msg(&rt, || {
        let h = {
            go(|| {
                let t = Instant::now();
                let mut x = 1u64;
                while t.elapsed() < Duration::from_millis(600) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x | 1
            })
        };
        h.join().unwrap() != 0
    });
    assert_eq!(r, Ok(true));
}

/// A main goroutine waiting for a goroutine of another runtime that computes for
/// 600 ms without a scheduling point is not deadlocked (that runtime's M runs).
fn another_runtime_computing_is_not_a_deadlock() {
    let rt_a = rt(1);
    let rt_b = rt(1);
    let (tx, rx) = chan::bounded::<u32>(0);
    // SAFETY: no thread-local state is held across suspension points.
    let hb = unsafe {
        rt_b.spawn(move || {
            let t = Instant::now();
            let mut x = 1u64;
            while t.elapsed() < Duration::from_millis(600) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            tx.send(3).unwrap();
            x
        })
    };
    assert_eq!(block_on_msg(&rt_a, move || rx.recv().unwrap()), Ok(3));
    let _ = hb.join();
}

const SCENARIOS: &[(&str, fn())] = &[
    (
        "another_runtime_computing_is_not_a_deadlock",
        another_runtime_computing_is_not_a_deadlock,
    ),
    ("true_deadlock", true_deadlock),
    (
        "plain_thread_sender_is_not_a_deadlock",
        plain_thread_sender_is_not_a_deadlock,
    ),
    (
        "scoped_children_never_run_after_a_report",
        scoped_children_never_run_after_a_report,
    ),
    (
        "failed_thread_creation_keeps_detection",
        failed_thread_creation_keeps_detection,
    ),
    (
        "joining_a_long_computation_is_not_a_deadlock",
        joining_a_long_computation_is_not_a_deadlock,
    ),
];

fn main() {
    if let Ok(name) = std::env::var(SCENARIO_ENV) {
        let (_, f) = SCENARIOS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("unknown scenario");
        f();
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let exe = std::env::current_exe().unwrap();
    let (mut passed, mut failed) = (0, 0);
    for (name, _) in SCENARIOS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mut child = Command::new(&exe)
            .env(SCENARIO_ENV, name)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn child");
        // A hang detector, not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                // Before killing it, say what its threads were doing: a hang here is
                // rare enough that the report must carry what is needed to explain it.
                eprintln!("{}", thread_states(child.id()));
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        match status {
            Some(s) if s.success() => {
                println!("test {name} ... ok");
                passed += 1;
            }
            other => {
                println!(
                    "test {name} ... FAILED ({})\n{}{}",
                    other.map_or("hung for 60 s".to_string(), |s| s.to_string()),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                failed += 1;
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The name, state and kernel wait channel of each thread of process `pid` (Linux
/// `/proc`; elsewhere a note that it is unavailable), for the report of a hung
/// scenario.
fn thread_states(pid: u32) -> String {
    let dir = format!("/proc/{pid}/task");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return format!("(no {dir}: thread states unavailable)");
    };
    let mut out = format!("threads of the hung scenario (pid {pid}):\n");
    for e in entries.flatten() {
        let path = e.path();
        let read = |f: &str| {
            std::fs::read_to_string(path.join(f))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("")
            .to_string();
        out += &format!(
            "  {} {:<16} {} wchan={}\n",
            e.file_name().to_string_lossy(),
            read("comm"),
            state,
            read("wchan")
        );
    }
    out
}
