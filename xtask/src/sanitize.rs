//! `cargo xtask sanitize`: the test suite under AddressSanitizer and ThreadSanitizer
//! (nightly), or Valgrind, with gmp-core's fiber annotations switched on (see
//! `crates/gmp-core/src/sanitizer.rs`).
//!
//! - The sanitizer builds use `cargo +nightly`, `--target <host>` (so build scripts and
//!   proc-macros are not instrumented) and their own target directory,
//!   `<target>/sanitize-<kind>`, so the normal build is never invalidated.
//! - ASan runs against the prebuilt std (it does not need an instrumented one). TSan does:
//!   where the nightly toolchain has the `rust-src` component, std is rebuilt with the
//!   sanitizer (`-Zbuild-std`, a few minutes more) and no suppression is used; without it,
//!   TSan cannot see std's own synchronisation and reports false races inside std
//!   (suppressed by `TSAN_SUPPRESSIONS`, which also hides real ones there). Either way
//!   the TSan run is too slow for CI on 2 cores: it is offered, not part of CI.
//! - Which tests: every crate's unit tests and most integration tests, minus the loom
//!   models, the proptests (slow under a sanitizer), the benches, and the tests that
//!   fight the sanitizer by design (`fault_injection`: RLIMIT_AS against ASan's shadow
//!   memory; `abort`/`signal`/`process`/`debug`: child processes and signal handlers);
//!   `--ci` runs the subset CI can afford: ASan on gmp-core and gmp-chan.

use crate::{cargo, cli::SanitizeOpts, target_dir, Ci};
use std::path::Path;
use std::process::Command;

/// True if `cargo +nightly` works here.
pub fn nightly_available() -> bool {
    Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The host triple (`rustc -vV`'s `host:` line).
fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or("x86_64-unknown-linux-gnu")
        .to_string()
}

/// True if the nightly toolchain has std's sources (`rustup component add rust-src
/// --toolchain nightly`), which `-Zbuild-std` needs.
fn nightly_rust_src() -> bool {
    Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .ok()
        .map(|o| {
            Path::new(String::from_utf8_lossy(&o.stdout).trim())
                .join("lib/rustlib/src/rust/library/std")
                .exists()
        })
        .unwrap_or(false)
}

/// Tests each crate runs under a sanitizer: `(crate, test targets)`; `"--lib"` is the
/// crate's unit tests. Loom models and proptests are left out (see the module docs).
fn suite(ci: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    if ci {
        return vec![
            // Not `overflow`: its stack-overflow tests probe raw stack layout, which
            // ASan changes (large locals move to its fake stack), so they cannot hold
            // under the sanitizer; they run in the normal test step.
            ("gmp-core", vec!["basic", "interleave", "stack"]),
            ("gmp-chan", vec!["behaviour"]),
        ];
    }
    vec![
        (
            "gmp-core",
            vec![
                "--lib",
                "basic",
                "interleave",
                "stack",
                // Not `overflow` (see the CI subset above).
                "registers",
                "backtrace",
            ],
        ),
        ("gmp-queue", vec!["--lib", "edge"]),
        ("gmp-chan", vec!["--lib", "behaviour", "stress"]),
        ("gmp-netpoll", vec!["--lib", "poller"]),
        (
            "gmp-runtime",
            vec![
                "--lib",
                "runtime",
                "chan_goroutines",
                "coroutine_in_goroutine",
                "deadline",
                "deadlock",
                "lifecycle",
                "net_goroutine",
                "net_thread",
                "scheduler_regressions",
            ],
        ),
    ]
}

/// Runs every kind asked for.
pub fn sanitize(ci: &mut Ci, opts: &SanitizeOpts) {
    for kind in &opts.kinds {
        match kind.as_str() {
            "address" | "thread" => sanitizer(ci, kind, opts.ci),
            "valgrind" => valgrind(ci, opts.ci),
            k => unreachable!("cli accepted kind {k}"),
        }
    }
}

/// Test targets of `krate` that exist in this checkout (a renamed test file must not
/// break the run; it is reported instead).
fn existing(krate: &str, tests: &[&'static str]) -> Vec<&'static str> {
    tests
        .iter()
        .copied()
        .filter(|t| {
            let ok = *t == "--lib"
                || Path::new("crates")
                    .join(krate)
                    .join("tests")
                    .join(format!("{t}.rs"))
                    .exists();
            if !ok {
                eprintln!("xtask sanitize: {krate} has no test `{t}`; skipped");
            }
            ok
        })
        .collect()
}

fn sanitizer(ci: &mut Ci, kind: &str, ci_subset: bool) {
    if !nightly_available() {
        ci.fail(
            &format!("sanitize {kind}"),
            "needs a nightly toolchain: rustup toolchain install nightly",
        );
    }
    let cfg = if kind == "address" {
        "gmp_asan"
    } else {
        "gmp_tsan"
    };
    let dir = target_dir().join(format!("sanitize-{kind}"));
    let host = host_triple();
    let supp = target_dir().join("tsan-suppressions.txt");
    // An instrumented std for TSan where its sources are here (module docs).
    let build_std = kind == "thread" && nightly_rust_src();
    if kind == "thread" {
        std::fs::create_dir_all(target_dir()).ok();
        let rules = if build_std { "" } else { TSAN_SUPPRESSIONS };
        std::fs::write(&supp, rules).expect("write the TSan suppressions");
        if !build_std {
            eprintln!(
                "xtask sanitize: no rust-src for nightly: TSan runs against an uninstrumented \
                 std, with suppressions (rustup component add rust-src --toolchain nightly)"
            );
        }
    }
    for (krate, mut tests) in suite(ci_subset) {
        if kind == "thread" {
            // tests/overflow.rs checks gmp-core's SIGSEGV and userfaultfd handling, with
            // small stacks and forked children: TSan's instrumented frames are larger,
            // its runtime refuses threads after a multi-threaded fork, and its shadow
            // accesses do not go through the stack's first-touch check. Run under ASan.
            tests.retain(|t| *t != "overflow");
            // Timing and memory tests that TSan's 5-15x slowdown and shadow memory break
            // by design (`deadline`: "woke early" bounds; `scheduler_regressions`: RSS
            // after dropping a runtime); `deadlock`: its three tests hang under TSan
            // (to investigate: the detector's idle-thread accounting under TSan).
            tests.retain(|t| !matches!(*t, "deadline" | "deadlock" | "scheduler_regressions"));
            // `coroutine_in_goroutine` hangs inside TSan's runtime with an instrumented
            // std: the Ms sit in std's SIGSEGV handler, blocked on TSan's slot lock (a
            // fault taken while TSan held it). Its race report without an instrumented
            // std was real: the park commit did not release the goroutine's saved
            // context (fixed; gmp-core's loom model
            // `committed_context_is_visible_to_whoever_resumes_the_waiter`).
            tests.retain(|t| *t != "coroutine_in_goroutine");
        }
        let tests = existing(krate, &tests);
        if tests.is_empty() {
            continue;
        }
        // Not `$CARGO` (the stable cargo running xtask): `+nightly` needs rustup's proxy.
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "test", "--release", "--target", &host])
            .arg("--target-dir")
            .arg(if build_std {
                dir.join("build-std")
            } else {
                dir.clone()
            })
            .args(["-p", krate]);
        if build_std {
            cmd.arg("-Zbuild-std");
        }
        for t in &tests {
            if *t == "--lib" {
                cmd.arg("--lib");
            } else {
                cmd.args(["--test", t]);
            }
        }
        cmd.args(["--", "--test-threads=2"]);
        // -Cunsafe-allow-abi-mismatch: std is not rebuilt with the sanitizer (see the
        // module docs); the mismatch is the point of not rebuilding it.
        let mismatch = if build_std {
            ""
        } else {
            " -Cunsafe-allow-abi-mismatch=sanitizer"
        };
        cmd.env(
            "RUSTFLAGS",
            format!("-Zsanitizer={kind} --cfg {cfg}{mismatch} -Cforce-frame-pointers=yes"),
        )
        .env("RUST_TEST_THREADS", "2");
        if kind == "address" {
            // Leak checking is off: the runtimes' process-wide singletons (the default
            // runtime, the poller) live until exit by design. handle_segv=0: gmp-core's
            // own SIGSEGV handler (stack-overflow reports, tested by tests/overflow.rs)
            // must stay installed; ASan's would replace it. A wild fault still kills the
            // test.
            cmd.env(
                "ASAN_OPTIONS",
                "detect_leaks=0:detect_stack_use_after_return=1:halt_on_error=1:handle_segv=0",
            );
        } else {
            cmd.env(
                "TSAN_OPTIONS",
                format!(
                    "halt_on_error=1:handle_segv=0:suppressions={}",
                    supp.display()
                ),
            );
        }
        ci.step(&format!("sanitize {kind}: {krate}"), &mut cmd);
    }
}

/// False positives of TSan without an instrumented std: std's synchronisation
/// (futex-based locks, `Once`, thread-locals' destructors, `Arc`'s fence) is invisible,
/// so memory handed over through it looks raced.
///
/// (`gmp_runtime::debug::register_runtime`: the process-wide list of runtimes behind a
/// `std::sync::Mutex`, whose lock TSan cannot see here; the std frames are gone from the
/// report's stacks by the time the list is touched.)
const TSAN_SUPPRESSIONS: &str = "\
race:std::sync::
race:std::sys::
race:std::thread::
race:alloc::sync::Arc
race:core::ptr::drop_in_place<alloc::sync::
race:gmp_runtime::debug::register_runtime
";

fn valgrind(ci: &mut Ci, ci_subset: bool) {
    let have = Command::new("valgrind")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        ci.fail(
            "sanitize valgrind",
            "needs valgrind on PATH (apt-get install valgrind)",
        );
    }
    let krates: &[(&str, &[&str])] = if ci_subset {
        &[("gmp-core", &["basic"])]
    } else {
        &[
            ("gmp-core", &["basic", "interleave", "stack"]),
            ("gmp-chan", &["behaviour"]),
        ]
    };
    for (krate, tests) in krates {
        // Build, then find the test executables in cargo's JSON messages.
        let mut build = cargo();
        build
            .args(["test", "--release", "--no-run", "--message-format=json"])
            .args(["-p", krate, "--features", "gmp-core/valgrind"]);
        for t in *tests {
            build.args(["--test", t]);
        }
        eprintln!("\n==> [xtask] build for valgrind: {krate}");
        let out = build.output().expect("run cargo test --no-run");
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            ci.fail(&format!("valgrind build {krate}"), "cargo failed");
        }
        let json = String::from_utf8_lossy(&out.stdout);
        for line in json.lines().filter(|l| l.contains("\"executable\":\"")) {
            let Some(exe) = crate::json_string_field(line, "executable") else {
                continue;
            };
            let name = Path::new(&exe)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut cmd = Command::new("valgrind");
            cmd.args([
                "--error-exitcode=99",
                "--quiet",
                "--fair-sched=yes",
                "--max-stackframe=16777216",
            ])
            .arg(&exe)
            .args(["--test-threads=1"]);
            ci.step(&format!("valgrind {krate}: {name}"), &mut cmd);
        }
    }
}
