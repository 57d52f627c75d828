//! Stack overflows, checked from child processes (each case re-runs this test binary with
//! `GMP_CORE_OVERFLOW_CASE` set, running only `child_entry`).
//!
//! - a guard-page hit prints `goroutine <id> ('<name>') has overflowed its stack (<size>
//!   bytes)` and aborts (SIGABRT);
//! - so does a canary stack whose red zone was written, found at the next switch;
//! - a plain thread's overflow still gets Rust's own message (our handler chains to it);
//! - a fault that is not an overflow (a wild write) is passed on: the process dies of
//!   SIGSEGV, with no overflow message;
//! - running out of address space is an `io::Error`, not an abort.

use gmp_core::stack::{self, StackProtection};
use gmp_core::{Coroutine, Resume, Stack};
use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CASE_VAR: &str = "GMP_CORE_OVERFLOW_CASE";

#[inline(never)]
fn recurse_forever(depth: u64) -> u64 {
    let mut buf = [0u8; 512];
    buf[0] = depth as u8;
    black_box(&mut buf);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse_forever(depth + 1) + buf[1] as u64
}

/// Recurses until a 1 KiB non-zero local covers the top of the red zone below `bottom`,
/// then returns: the overflow writes the canary without faulting.
#[inline(never)]
fn recurse_into_red_zone(bottom: usize) -> u64 {
    let mut buf = [0x5Au8; 1024];
    black_box(&mut buf);
    let here = buf.as_ptr() as usize;
    if here < bottom - 512 {
        return buf[3] as u64;
    }
    recurse_into_red_zone(bottom) + buf[7] as u64
}

fn run_child_case(case: &str) {
    match case {
        "guard" => {
            let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |_| recurse_forever(0));
            assert_eq!(co.stack().protection(), StackProtection::GuardPage);
            co.set_label(7, Some("deep"));
            let _ = co.resume();
        }
        "guard-unnamed" => {
            let mut co = Coroutine::new(Stack::new(32 * 1024).unwrap(), |_| recurse_forever(0));
            co.set_label(12345, None);
            let _ = co.resume();
        }
        "canary" => {
            stack::set_guarded_stack_limit(0);
            let s = Stack::new(64 * 1024).unwrap();
            assert_eq!(s.protection(), StackProtection::Canary);
            let bottom = s.bottom() as usize;
            let mut co = Coroutine::new(s, move |sus| {
                let v = recurse_into_red_zone(bottom);
                sus.suspend(); // the resumer checks the canary here
                v
            });
            co.set_label(9, Some("canary"));
            let _ = co.resume();
            eprintln!("canary overflow not detected");
        }
        "canary-chunk-guard" => {
            // The lowest stack of a chunk has the chunk's guard page below its red zone:
            // an overflow there faults and is reported at once.
            stack::set_guarded_stack_limit(0);
            let mut stacks: Vec<Stack> = Vec::new();
            let lowest = loop {
                let s = Stack::new(1 << 20).unwrap();
                let b = s.bottom() as usize;
                // Slots are handed out top-down; the lowest one is the last of its chunk.
                if stacks
                    .last()
                    .is_some_and(|p: &Stack| p.bottom() as usize != b + (1 << 20) + 4096)
                {
                    break stacks.pop().unwrap();
                }
                stacks.push(s);
                if stacks.len() > 200 {
                    panic!("no chunk boundary found");
                }
            };
            let mut co = Coroutine::new(lowest, |_| recurse_forever(0));
            co.set_label(11, Some("lowest"));
            let _ = co.resume();
        }
        "plain-thread" => {
            // Install our handler first, by running a coroutine.
            let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |_| 1);
            assert!(matches!(co.resume(), Resume::Returned(1)));
            let t = std::thread::Builder::new()
                .name("plain-overflow".into())
                .stack_size(256 * 1024)
                .spawn(|| recurse_forever(0))
                .unwrap();
            let _ = t.join();
        }
        "wild-write" => {
            let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |_| {
                let p = black_box(16usize) as *mut u64;
                // SAFETY: not safe at all: this is the fault under test.
                unsafe { p.write_volatile(1) };
            });
            let _ = co.resume();
        }
        "enomem" => {
            // Cap the address space a little above what the process uses now.
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let vm_pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
            let cap = vm_pages * 4096 + (256 << 20);
            let lim = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            // SAFETY: lowering our own limit.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
            let mut held = Vec::new();
            loop {
                match Stack::new(16 << 20) {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::ENOMEM), "{e}");
                        println!("ENOMEM-OK after {} stacks", held.len());
                        return;
                    }
                }
                assert!(held.len() < 1000, "address-space limit not enforced");
            }
        }
        other => panic!("unknown case {other}"),
    }
}

/// Entry point of the child processes; does nothing in a normal test run.
#[test]
fn child_entry() {
    if let Ok(case) = std::env::var(CASE_VAR) {
        run_child_case(&case);
    }
}

fn run_case(case: &str) -> (std::process::ExitStatus, String, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn guard_page_overflow_prints_message_and_aborts() {
    let (status, _, err) = run_case("guard");
    assert!(
        err.contains("goroutine 7 ('deep') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}

#[test]
fn unnamed_overflow_message() {
    let (status, _, err) = run_case("guard-unnamed");
    assert!(
        err.contains("goroutine 12345 ('<unnamed>') has overflowed its stack (32768 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}");
}

#[test]
fn canary_overflow_is_caught_at_the_next_switch() {
    let (status, _, err) = run_case("canary");
    assert!(
        err.contains("goroutine 9 ('canary') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert!(!err.contains("not detected"), "stderr: {err}");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}");
}

#[test]
fn canary_stack_at_chunk_bottom_faults_on_the_chunk_guard() {
    let (status, _, err) = run_case("canary-chunk-guard");
    assert!(
        err.contains("goroutine 11 ('lowest') has overflowed its stack (1048576 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}");
}

#[test]
fn plain_thread_overflow_keeps_rusts_message() {
    let (status, _, err) = run_case("plain-thread");
    assert!(err.contains("thread 'plain-overflow'"), "stderr: {err}");
    assert!(err.contains("has overflowed its stack"), "stderr: {err}");
    assert!(!err.contains("goroutine"), "stderr: {err}");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}");
}

#[test]
fn foreign_fault_is_not_reported_as_overflow() {
    let (status, _, err) = run_case("wild-write");
    assert!(!err.contains("overflowed"), "stderr: {err}");
    assert_eq!(
        status.signal(),
        Some(libc::SIGSEGV),
        "status {status:?}, stderr: {err}"
    );
}

#[test]
fn out_of_address_space_is_an_error() {
    let (status, out, err) = run_case("enomem");
    assert!(status.success(), "status {status:?}, stderr: {err}");
    assert!(out.contains("ENOMEM-OK"), "stdout: {out}");
}
