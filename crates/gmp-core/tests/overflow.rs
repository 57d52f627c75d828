//! Stack overflows, checked from child processes (each case re-runs this test binary with
//! `GMP_CORE_OVERFLOW_CASE` set, running only `child_entry`).
//!
//! - a guard-page hit prints `goroutine <id> ('<name>') has overflowed its stack (<size>
//!   bytes)` and aborts (SIGABRT);
//! - so does a canary stack whose red zone was written, found at the next switch;
//! - a plain thread's overflow still gets Rust's own message (our handler chains to it);
//! - a fault that is not an overflow (a wild write) is passed on: the process dies of
//!   SIGSEGV, with no overflow message;
//! - running out of address space is an `io::Error`, not an abort;
//! - beyond the guarded budget (set to 0 here: the real code path a process takes after
//!   16,382 guarded stacks), userfaultfd chunk stacks report a single frame that jumps
//!   the page below the stack and a runaway recursion with the same message, before a
//!   suspended neighbour's locals are touched; a system call into an untouched page of such
//!   a stack works; a stack recycled by the pool (pages given back) is watched the same;
//!   a forked child watches the stacks it inherited;
//! - without userfaultfd, `Stack::new` beyond the budget fails with an error naming the
//!   sysctl, unless the caller opted into canary stacks.

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

/// One frame of 128 KiB (never initialised as a whole) that writes 1 KiB at `target`
/// inside its far end. Rust probes such a frame page by page from the top, so the first
/// page touched below the stack is the one right under it.
#[inline(never)]
fn big_frame(target: usize) -> u8 {
    const LEN: usize = 128 * 1024;
    let mut a = std::mem::MaybeUninit::<[u8; LEN]>::uninit();
    let p = a.as_mut_ptr().cast::<u8>();
    let off = black_box(target.wrapping_sub(p as usize));
    assert!(
        off + 1024 <= LEN,
        "target {target:#x} outside the frame at {p:p}"
    );
    // SAFETY: within the local array (checked above): this frame's own memory, which
    // reaches below the 64 KiB stack it runs on: the overflow under test.
    unsafe { p.add(off).write_bytes(0x5A, 1024) };
    black_box(&mut a);
    // SAFETY: initialised just above.
    unsafe { *p.add(off + 7) }
}

static NEIGHBOUR_LOCALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A suspended coroutine holding 1 KiB of 0x11 locals; when resumed it says whether they
/// survived.
fn neighbour(s: &gmp_core::Suspender) {
    let mut locals = [0x11u8; 1024];
    black_box(&mut locals);
    NEIGHBOUR_LOCALS.store(
        locals.as_ptr() as usize,
        std::sync::atomic::Ordering::SeqCst,
    );
    s.suspend();
    black_box(&mut locals);
    if locals.iter().any(|b| *b != 0x11) {
        eprintln!("NEIGHBOUR CORRUPTED");
    } else {
        eprintln!("neighbour intact");
    }
}

/// Touches `pages` pages below the current frame (deep first touches), returns a sum.
#[inline(never)]
fn touch_deep(pages: usize) -> u64 {
    let mut buf = [1u8; 2048];
    black_box(&mut buf);
    if pages == 0 {
        return buf[5] as u64;
    }
    // Two 2 KiB frames per page.
    touch_deep(pages - 1) + buf[9] as u64
}

fn run_child_case(case: &str) {
    match case {
        "uffd-large-frame" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            // Slots are handed out top-down: `lower` is the slot right below `upper`.
            let upper = Stack::new(64 * 1024).unwrap();
            let lower = Stack::new(64 * 1024).unwrap();
            assert_ne!(upper.protection(), StackProtection::GuardPage);
            assert_eq!(
                upper.bottom() as usize - lower.top() as usize,
                4096,
                "not neighbours"
            );
            let mut low = Coroutine::new(lower, neighbour);
            low.set_label(20, Some("neighbour"));
            assert!(matches!(low.resume(), Resume::Suspended));
            let target = NEIGHBOUR_LOCALS.load(std::sync::atomic::Ordering::SeqCst);
            let mut up = Coroutine::new(upper, move |_| big_frame(target));
            up.set_label(21, Some("big-frame"));
            let _ = up.resume();
            eprintln!("large frame not detected");
            let _ = low.resume();
        }
        "uffd-recursion" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            // The first slot handed out is the highest of its chunk: other slots below.
            let s = Stack::new(64 * 1024).unwrap();
            let below: Vec<Stack> = (0..3).map(|_| Stack::new(64 * 1024).unwrap()).collect();
            assert_ne!(s.protection(), StackProtection::GuardPage);
            let mut co = Coroutine::new(s, |_| recurse_forever(0));
            co.set_label(22, Some("runaway"));
            let _ = co.resume();
            drop(below);
        }
        "uffd-syscall" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            let s = Stack::new(256 * 1024).unwrap();
            assert_eq!(s.protection(), StackProtection::Userfault);
            let mut co = Coroutine::new(s, |_| {
                let mut fds = [0i32; 2];
                // SAFETY: a pipe into our array.
                assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
                let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
                // SAFETY: writing our buffer into our pipe (fits its 64 KiB).
                let w = unsafe { libc::write(fds[1], data.as_ptr().cast(), data.len()) };
                assert_eq!(w, 8192);
                // 128 KiB below this frame, unaligned, spanning three untouched pages of
                // this coroutine's stack: the kernel is their first toucher.
                let here = black_box(&fds) as *const _ as usize;
                let dst = ((here - 128 * 1024) & !4095) + 100;
                // SAFETY: `dst..dst + 8192` lies in this coroutine's usable stack, far
                // below every live frame (nothing here calls that deep).
                let r = unsafe { libc::read(fds[0], dst as *mut libc::c_void, 8192) };
                assert_eq!(r, 8192, "read: {}", std::io::Error::last_os_error());
                // SAFETY: just written by the kernel.
                let got = unsafe { std::slice::from_raw_parts(dst as *const u8, 8192) };
                assert!(got == &data[..]);
                // SAFETY: our fds.
                unsafe {
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                }
                touch_deep(100)
            });
            assert!(matches!(co.resume(), Resume::Returned(_)));
            println!("SYSCALL-OK");
        }
        "uffd-recycled" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            // No hot set: every stack put back gives its pages back (MADV_DONTNEED).
            let pool = gmp_core::StackPool::with_limits(64 * 1024, 8, 0);
            let s = pool.get().unwrap();
            let below: Vec<Stack> = (0..2).map(|_| Stack::new(64 * 1024).unwrap()).collect();
            let top = s.top();
            let mut co = Coroutine::new(s, |_| touch_deep(20));
            assert!(matches!(co.resume(), Resume::Returned(_)));
            pool.put(co.into_stack().unwrap());
            let s = pool.get().unwrap();
            assert_eq!(s.top(), top, "the pool reuses the stack");
            let mut co = Coroutine::new(s, |_| recurse_forever(0));
            co.set_label(23, Some("recycled"));
            let _ = co.resume();
            drop(below);
        }
        "uffd-fork" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            let s = Stack::new(64 * 1024).unwrap();
            let below = Stack::new(64 * 1024).unwrap();
            assert_eq!(s.protection(), StackProtection::Userfault);
            // SAFETY: the child only uses async-signal-safe calls until it creates a stack
            // (which opens its own userfaultfd: this test's point), then exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // A new stack makes the child watch its inherited chunks again.
                let fresh = Stack::new(64 * 1024).unwrap();
                assert_eq!(fresh.protection(), StackProtection::Userfault);
                let mut co = Coroutine::new(s, |_| recurse_forever(0));
                co.set_label(24, Some("forked"));
                let _ = co.resume();
                eprintln!("child overflow not detected");
                // SAFETY: leave the child without running the parent's test harness.
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            // SAFETY: waiting for our child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFSIGNALED(status), "child status {status:#x}");
            println!("CHILD-SIGNAL {}", libc::WTERMSIG(status));
            drop(below);
        }
        "nested-migration" => {
            // A coroutine nested in another parks the *outer* one (as a runtime's park
            // hook does for a goroutine), and the outer one moves to another thread before
            // the inner one switches back to its resumer. The resumer's bookkeeping of the
            // running coroutine must then be this thread's, not the first thread's.
            struct SendCo(Coroutine<u64>);
            // SAFETY: the closures hold nothing thread-bound.
            unsafe impl Send for SendCo {}
            let a = std::thread::Builder::new()
                .name("thread-a".into())
                .stack_size(256 * 1024)
                .spawn(|| {
                    let mut outer = Coroutine::new(Stack::new(64 * 1024).unwrap(), |s| {
                        let sp = s as *const gmp_core::Suspender as usize;
                        let mut inner = Coroutine::new(Stack::new(64 * 1024).unwrap(), move |_| {
                            // SAFETY: the outer coroutine's Suspender, called on its
                            // (nested) stack while it runs: a park from a nested coroutine.
                            unsafe { (*(sp as *const gmp_core::Suspender)).suspend() };
                            7u64
                        });
                        match inner.resume() {
                            Resume::Returned(v) => v,
                            _ => 0,
                        }
                    });
                    assert!(matches!(outer.resume(), Resume::Suspended));
                    let outer = SendCo(outer);
                    let b = std::thread::spawn(move || {
                        let mut o = outer;
                        matches!(o.0.resume(), Resume::Returned(7))
                    });
                    assert!(b.join().unwrap());
                    // The outer coroutine and its stack are gone. An overflow of this
                    // thread's own stack must get Rust's report, not a crash in our handler
                    // reading a stale "running coroutine".
                    recurse_forever(0)
                })
                .unwrap();
            let _ = a.join();
        }
        "no-uffd" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            stack::set_userfaultfd(false);
            let e = Stack::new(64 * 1024).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("vm.max_map_count"), "{msg}");
            assert!(msg.contains("sysctl -w"), "{msg}");
            assert!(msg.contains("allow_canary_stacks"), "{msg}");
            // SAFETY: nothing in this case overflows a stack.
            unsafe { stack::allow_canary_stacks() };
            let s = Stack::new(64 * 1024).unwrap();
            assert_eq!(s.protection(), StackProtection::Canary);
            stack::set_userfaultfd(true);
            let s = Stack::new(64 * 1024).unwrap();
            assert_eq!(s.protection(), StackProtection::Userfault);
            println!("ERR-OK: {msg}");
        }
        "guard" => {
            let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |_| recurse_forever(0));
            assert_eq!(co.stack().protection(), StackProtection::GuardPage);
            co.set_label(7, Some("deep"));
            let _ = co.resume();
        }
        "guard-mapping" => {
            // A stack with a mapping of its own (kernels before 6.13, or this switch).
            stack::set_guard_regions(false);
            let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |_| recurse_forever(0));
            assert_eq!(co.stack().protection(), StackProtection::GuardPage);
            assert_eq!(stack::guarded_stacks_alive(), 1);
            co.set_label(8, Some("mapped"));
            let _ = co.resume();
        }
        "region-large-frame" => {
            // Guard-region chunk stacks (the default on Linux 6.13+): neighbours in one
            // mapping, a guard region between them.
            let upper = Stack::new(64 * 1024).unwrap();
            let lower = Stack::new(64 * 1024).unwrap();
            assert_eq!(upper.protection(), StackProtection::GuardPage);
            assert_eq!(stack::guarded_stacks_alive(), 0, "not guard-region stacks");
            assert_eq!(
                upper.bottom() as usize - lower.top() as usize,
                4096,
                "not neighbours"
            );
            let mut low = Coroutine::new(lower, neighbour);
            low.set_label(30, Some("neighbour"));
            assert!(matches!(low.resume(), Resume::Suspended));
            let target = NEIGHBOUR_LOCALS.load(std::sync::atomic::Ordering::SeqCst);
            let mut up = Coroutine::new(upper, move |_| big_frame(target));
            up.set_label(31, Some("big-frame"));
            let _ = up.resume();
            eprintln!("large frame not detected");
            let _ = low.resume();
        }
        "guard-unnamed" => {
            let mut co = Coroutine::new(Stack::new(32 * 1024).unwrap(), |_| recurse_forever(0));
            co.set_label(12345, None);
            let _ = co.resume();
        }
        "canary" => {
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            stack::set_userfaultfd(false);
            // SAFETY: the overflow is the test; the process aborts right after it.
            unsafe { stack::allow_canary_stacks() };
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
            stack::set_guard_regions(false);
            stack::set_guarded_stack_limit(0);
            stack::set_userfaultfd(false);
            // SAFETY: the overflow is the test; the process aborts right after it.
            unsafe { stack::allow_canary_stacks() };
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
fn own_mapping_guard_page_overflow_prints_message_and_aborts() {
    let (status, _, err) = run_case("guard-mapping");
    assert!(
        err.contains("goroutine 8 ('mapped') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}

/// On kernels without guard regions (before 6.13) the stacks fall back to the other
/// kinds and this case's `guarded_stacks_alive() == 0` fails: it is skipped there.
#[test]
fn guard_region_large_frame_is_reported_before_the_neighbour_is_touched() {
    let (status, _, err) = run_case("region-large-frame");
    if err.contains("not guard-region stacks") {
        eprintln!("skipped: this kernel has no MADV_GUARD_INSTALL (Linux 6.13+)");
        return;
    }
    assert!(
        err.contains("goroutine 31 ('big-frame') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert!(!err.contains("NEIGHBOUR CORRUPTED"), "stderr: {err}");
    assert!(!err.contains("not detected"), "stderr: {err}");
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

#[test]
fn chunk_stack_large_frame_is_reported_before_the_neighbour_is_touched() {
    let (status, _, err) = run_case("uffd-large-frame");
    assert!(
        err.contains("goroutine 21 ('big-frame') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert!(!err.contains("NEIGHBOUR CORRUPTED"), "stderr: {err}");
    assert!(!err.contains("not detected"), "stderr: {err}");
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}

#[test]
fn chunk_stack_runaway_recursion_is_reported_not_a_bare_sigsegv() {
    let (status, _, err) = run_case("uffd-recursion");
    assert!(
        err.contains("goroutine 22 ('runaway') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}

#[test]
fn chunk_stack_syscall_into_untouched_page_works() {
    let (status, out, err) = run_case("uffd-syscall");
    assert!(status.success(), "status {status:?}, stderr: {err}");
    assert!(out.contains("SYSCALL-OK"), "stdout: {out}");
}

#[test]
fn recycled_chunk_stack_is_still_watched() {
    let (status, _, err) = run_case("uffd-recycled");
    assert!(
        err.contains("goroutine 23 ('recycled') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}

#[test]
fn forked_child_watches_inherited_chunk_stacks() {
    let (status, out, err) = run_case("uffd-fork");
    assert!(status.success(), "status {status:?}, stderr: {err}");
    assert!(
        err.contains("goroutine 24 ('forked') has overflowed its stack (65536 bytes)\n"),
        "stderr: {err}"
    );
    assert!(!err.contains("not detected"), "stderr: {err}");
    assert!(
        out.contains(&format!("CHILD-SIGNAL {}", libc::SIGABRT)),
        "stdout: {out}"
    );
}

#[test]
fn without_userfaultfd_beyond_the_budget_is_an_error_unless_opted_in() {
    let (status, out, err) = run_case("no-uffd");
    assert!(status.success(), "status {status:?}, stderr: {err}");
    assert!(out.contains("ERR-OK"), "stdout: {out}");
}

#[test]
fn nested_coroutine_migrating_mid_resume_keeps_thread_bookkeeping() {
    let (status, _, err) = run_case("nested-migration");
    assert!(err.contains("thread 'thread-a'"), "stderr: {err}");
    assert!(err.contains("has overflowed its stack"), "stderr: {err}");
    assert!(!err.contains("goroutine"), "stderr: {err}");
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "status {status:?}, stderr: {err}"
    );
}
