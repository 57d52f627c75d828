//! Backtraces taken inside a coroutine end cleanly at the coroutine's first frame.

use gmp_core::{Coroutine, Resume, Stack};
use std::backtrace::Backtrace;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[inline(never)]
fn resumer_marker_fn(co: &mut Coroutine<String>) -> Resume<String> {
    std::hint::black_box(co.resume())
}

#[inline(never)]
fn inside_marker_fn(depth: u32) -> String {
    if depth == 0 {
        Backtrace::force_capture().to_string()
    } else {
        std::hint::black_box(inside_marker_fn(depth - 1))
    }
}

#[test]
fn backtrace_inside_coroutine_ends_at_its_root() {
    let mut co = Coroutine::new(Stack::new(256 * 1024).unwrap(), |s| {
        s.suspend();
        inside_marker_fn(5)
    });
    assert!(matches!(resumer_marker_fn(&mut co), Resume::Suspended));
    let bt = match resumer_marker_fn(&mut co) {
        Resume::Returned(bt) => bt,
        _ => panic!("coroutine did not return"),
    };
    assert!(bt.contains("inside_marker_fn"), "backtrace:\n{bt}");
    assert!(bt.contains("coroutine_main"), "backtrace:\n{bt}");
    // The walk stops at the trampoline: nothing of the resumer's stack appears.
    assert!(
        !bt.contains("resumer_marker_fn"),
        "backtrace walked past the coroutine:\n{bt}"
    );
    // The last frame printed is the coroutine's root (or the trampoline), not garbage.
    let last_fn = bt
        .lines()
        .rev()
        .find(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .unwrap_or("");
    assert!(
        last_fn.contains("coroutine_main") || last_fn.contains("trampoline"),
        "last frame: {last_fn}\n{bt}"
    );
}

#[test]
fn panic_with_rust_backtrace_inside_coroutine() {
    if std::env::var_os("GMP_CORE_BT_CHILD").is_some() {
        let mut co = Coroutine::new(Stack::new(256 * 1024).unwrap(), |_| -> u32 {
            panic!("panic inside coroutine for backtrace");
        });
        assert!(matches!(co.resume(), Resume::Panicked(_)));
        println!("CHILD-OK");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "panic_with_rust_backtrace_inside_coroutine",
            "--exact",
            "--nocapture",
        ])
        .env("GMP_CORE_BT_CHILD", "1")
        .env("RUST_BACKTRACE", "full")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?} signal {:?}\n{err}",
        out.status,
        out.status.signal()
    );
    assert!(stdout.contains("CHILD-OK"), "{stdout}");
    assert!(
        err.contains("panic inside coroutine for backtrace"),
        "{err}"
    );
    assert!(err.contains("stack backtrace"), "{err}");
    assert!(err.contains("coroutine_main"), "{err}");
}
