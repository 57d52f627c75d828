//! `cargo xtask`: the project's automation, in plain `std` so it compiles in seconds.
//!
//! - `cargo xtask ci` is the whole of CI (`.ci/run` calls exactly this): formatting,
//!   clippy, the test suite, docs, the loom models, `cargo bench --no-run`, every
//!   example run briefly, `cargo package` of every crate (verified), and the gmp side
//!   of the peer workloads at a small size. It prints a timed summary; a failing step
//!   names itself and stops the run with a non-zero exit.
//! - `cargo xtask package` runs the package step alone.
//! - `cargo xtask loom [crate]` runs the loom models alone (all crates, or one).
//! - `cargo xtask bench [args]` runs the criterion benches, then the comparison suite
//!   against Go, tokio, may and threads (`benches/peers/`, see its README).
//! - `cargo xtask soak [--minutes N | --seconds N]` runs the randomized soak
//!   (`crates/gmp-runtime/examples/soak.rs`).
//! - `cargo xtask sanitize [address|thread|valgrind]` runs tests under the sanitizers.
//! - `cargo xtask profile <bench> [--peer P]` records one comparison workload with perf
//!   and writes a flame graph (`benches/peers/profile.sh`).
//!
//! `cargo xtask --help` (or `<command> --help`) prints the usage (`cli.rs`).

mod cli;
mod sanitize;
mod soak;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::{Duration, Instant};

const CRATES: &[&str] = &[
    "gmp-core",
    "gmp-queue",
    "gmp-chan",
    "gmp-netpoll",
    "gmp-runtime",
];

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let root = workspace_root();
    absolute_target_dir_env();
    env::set_current_dir(&root).expect("cd to the workspace root");
    let mut ci = Ci::default();
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("ci") => {
            cli::parse_ci(rest);
            ci_all(&mut ci)
        }
        Some("loom") => loom(&mut ci, cli::parse_loom(rest, CRATES)),
        Some("bench") => bench(&mut ci, &cli::parse_bench(rest)),
        Some("soak") => soak::soak(&mut ci, &cli::parse_soak(rest)),
        Some("package") => {
            cli::parse_package(rest);
            package(&mut ci)
        }
        Some("profile") => {
            let args = cli::parse_profile(rest);
            ci.step(
                "profile",
                Command::new("bash")
                    .arg("benches/peers/profile.sh")
                    .args(args),
            );
        }
        Some("sanitize") => sanitize::sanitize(&mut ci, &cli::parse_sanitize(rest)),
        Some("help") => cli::help_for(rest),
        Some("-h" | "--help") => cli::help(cli::USAGE),
        Some(c) => cli::bad(cli::USAGE, &format!("no command `{c}`")),
        None => cli::bad(cli::USAGE, "no command given"),
    }
    ci.summary();
}

/// A relative `CARGO_TARGET_DIR` is relative to where `cargo xtask` was started; every
/// command below runs from the workspace root, so make it absolute first.
fn absolute_target_dir_env() {
    if let Some(d) = env::var_os("CARGO_TARGET_DIR") {
        let p = PathBuf::from(&d);
        if p.is_relative() {
            if let Ok(cwd) = env::current_dir() {
                env::set_var("CARGO_TARGET_DIR", cwd.join(p));
            }
        }
    }
}

/// The workspace's target directory as cargo sees it (`CARGO_TARGET_DIR`,
/// `build.target-dir`, or `target/`), from `cargo metadata`.
fn target_dir() -> PathBuf {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(std::process::Stdio::inherit())
        .output();
    let json = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => return PathBuf::from("target"),
    };
    json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The value of the first `"key":"..."` in `json` (no escapes expected in paths other
/// than `\\` and `\"`).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat)? + pat.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The steps run so far, with their times, for the summary.
#[derive(Default)]
struct Ci {
    steps: Vec<(String, Duration)>,
    start: Option<Instant>,
}

impl Ci {
    /// Runs one step; on failure prints the summary so far and exits non-zero.
    fn step(&mut self, name: &str, cmd: &mut Command) {
        self.start.get_or_insert_with(Instant::now);
        eprintln!("\n==> [xtask] {name}\n    $ {}", show(cmd));
        let t = Instant::now();
        let status = cmd.status();
        let took = t.elapsed();
        match status {
            Ok(s) if s.success() => self.steps.push((name.to_string(), took)),
            Ok(s) => self.fail(name, &format!("exited with {s}")),
            Err(e) => self.fail(name, &format!("could not start: {e}")),
        }
    }

    fn fail(&mut self, name: &str, why: &str) -> ! {
        self.summary();
        eprintln!("\nxtask: step `{name}` FAILED ({why})");
        exit(1);
    }

    fn summary(&self) {
        if self.steps.is_empty() {
            return;
        }
        eprintln!("\n==> [xtask] summary");
        for (name, took) in &self.steps {
            eprintln!("    {:>7.1}s  ok  {name}", took.as_secs_f64());
        }
        if let Some(s) = self.start {
            eprintln!("    {:>7.1}s  total", s.elapsed().as_secs_f64());
        }
    }
}

fn show(cmd: &Command) -> String {
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "{}{}{} {}",
        envs.join(" "),
        if envs.is_empty() { "" } else { " " },
        cmd.get_program().to_string_lossy(),
        args.join(" ")
    )
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci_all(ci: &mut Ci) {
    ci.step("fmt", cargo().args(["fmt", "--all", "--check"]));
    ci.step(
        "clippy",
        cargo()
            .args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])
            .args(["-D", "clippy::undocumented_unsafe_blocks"]),
    );
    ci.step("test", cargo().args(["test", "--workspace", "--release"]));
    ci.step(
        "doc",
        cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    );
    // The private module docs are the design notes (the scheduler's, the stacks', the
    // channels'): their links are checked too. A separate run, because documenting
    // private items silences the lint for public docs that link to private ones.
    ci.step(
        "doc (private items)",
        cargo()
            .args([
                "doc",
                "--workspace",
                "--no-deps",
                "--document-private-items",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    );
    loom(ci, None);
    ci.step(
        "bench --no-run",
        cargo().args(["bench", "--workspace", "--no-run"]),
    );
    examples(ci);
    package(ci);
    // The gmp side of every comparison workload at 1/100 size, each result checked
    // (no Go, no wrk, no other peer is built).
    ci.step(
        "peers: gmp workloads at small size",
        Command::new("bash")
            .arg("benches/peers/run.sh")
            .arg("gmp")
            .env("CHECK", "1"),
    );
    ci_hardening(ci);
}

/// The soak and sanitizer steps of CI (issue 11): 30 seconds of the soak, and the
/// small sanitizer subset when a nightly toolchain is installed.
fn ci_hardening(ci: &mut Ci) {
    soak::soak(
        ci,
        &cli::SoakOpts {
            seconds: 30.0,
            seed: None,
        },
    );
    if sanitize::nightly_available() {
        sanitize::sanitize(
            ci,
            &cli::SanitizeOpts {
                ci: true,
                kinds: vec!["address".into()],
            },
        );
    } else {
        eprintln!(
            "\n==> [xtask] sanitizers SKIPPED: no nightly toolchain (`cargo +nightly` failed); \
             `rustup toolchain install nightly` enables them"
        );
    }
}

/// `cargo package` of every library crate, verified: cargo builds each packaged crate on
/// its own from its `.crate` file, against its packaged siblings (a local registry
/// overlay), so a missing file, an unversioned path dependency or a README doctest path
/// that only exists in the workspace fails here.
///
/// The crates say `publish = false` (publishing is a person's decision), and cargo keeps
/// unpublishable crates out of that overlay, so their dependents could not resolve. The
/// step therefore packages a scratch copy of the sources (git's tracked and untracked,
/// not ignored, files) in which only `[workspace.package] publish` is flipped to `true`;
/// the checkout is never modified. `--offline`: earlier steps fetched every dependency.
/// The `.crate` files land in `target/package-check/package/`.
fn package(ci: &mut Ci) {
    let copy = env::temp_dir().join(format!("gmp-xtask-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    let files = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .unwrap_or_else(|e| ci.fail("package", &format!("cannot run git ls-files: {e}")));
    for rel in files.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("UTF-8 file names"));
        let (from, to) = (Path::new(".").join(rel), copy.join(rel));
        let copied =
            std::fs::create_dir_all(to.parent().expect("a file has a parent")).and_then(|()| {
                match std::fs::read_link(&from) {
                    Ok(target) => std::os::unix::fs::symlink(target, &to),
                    Err(_) if !from.exists() => Ok(()), // deleted but not yet committed
                    Err(_) => std::fs::copy(&from, &to).map(drop),
                }
            });
        if let Err(e) = copied {
            ci.fail("package", &format!("cannot copy {}: {e}", rel.display()));
        }
    }
    let manifest = copy.join("Cargo.toml");
    let root = std::fs::read_to_string(&manifest).expect("the copied Cargo.toml");
    if root.matches("\npublish = false\n").count() != 1 {
        ci.fail(
            "package",
            "expected one `publish = false` line, in [workspace.package], in Cargo.toml",
        );
    }
    std::fs::write(
        &manifest,
        root.replace("\npublish = false\n", "\npublish = true\n"),
    )
    .expect("write the copied Cargo.toml");
    // A target directory of its own (as the loom models have): cargo takes a registry
    // crate's build to be current whenever its name and version match, so the
    // verification builds of our unchanged-version crates must be removed before each
    // run — which must not touch the normal build's artifacts. Dependencies stay cached.
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env::current_dir().expect("cwd").join("target"))
        .join("package-check");
    for dir in ["debug/.fingerprint", "debug/deps"] {
        for entry in std::fs::read_dir(target.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("gmp-") || name.starts_with("gmp_") || name.starts_with("libgmp_") {
                let p = entry.path();
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
            }
        }
    }
    // Cargo unpacks the overlay's crates into `$CARGO_HOME/registry/src/<local registry>/`
    // and, a registry crate being immutable per version, reuses a copy unpacked by an
    // earlier run: with our unchanged version numbers each crate would be verified
    // against stale siblings. Remove those copies (local registries' directories are
    // named `-<hash>`; only our crates' `<name>-<version>` directories go).
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let registries = cargo_home.map(|h| h.join("registry/src"));
    for reg in registries
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
    {
        if !reg.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in std::fs::read_dir(reg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            let ours = CRATES.iter().any(|c| {
                name.strip_prefix(c)
                    .and_then(|v| v.strip_prefix('-'))
                    .is_some_and(|v| v.starts_with(|ch: char| ch.is_ascii_digit()))
            });
            if ours {
                let _ = std::fs::remove_dir_all(unpacked.path());
            }
        }
    }
    let mut cmd = cargo();
    cmd.current_dir(&copy)
        .args(["package", "--workspace", "--exclude", "xtask", "--offline"])
        .env("CARGO_TARGET_DIR", target);
    ci.step("package (verified, each crate built alone)", &mut cmd);
    let _ = std::fs::remove_dir_all(&copy);
}

/// The loom models: release, `--cfg loom`, in their own target dir so the normal
/// build is not invalidated; preemptions bounded so the suite runs in minutes.
fn loom(ci: &mut Ci, only: Option<&str>) {
    let crates: Vec<&str> = match only {
        Some(c) => vec![c],
        None => CRATES.to_vec(),
    };
    for c in crates {
        let tests = loom_tests(c);
        // Models of crate internals live in `src/loom_tests.rs` (unit tests).
        let lib = Path::new("crates")
            .join(c)
            .join("src/loom_tests.rs")
            .exists();
        if tests.is_empty() && !lib {
            continue;
        }
        let mut cmd = cargo();
        cmd.args(["test", "--release", "--target-dir"])
            .arg(target_dir().join("loom"))
            .args(["-p", c]);
        if lib {
            cmd.arg("--lib");
        }
        for t in &tests {
            cmd.args(["--test", t]);
        }
        cmd.env("RUSTFLAGS", "--cfg loom").env(
            "LOOM_MAX_PREEMPTIONS",
            env::var("LOOM_MAX_PREEMPTIONS").unwrap_or("2".into()),
        );
        ci.step(&format!("loom {c}"), &mut cmd);
    }
}

/// `tests/loom_*.rs` of a crate.
fn loom_tests(krate: &str) -> Vec<String> {
    let dir = Path::new("crates").join(krate).join("tests");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".rs")?;
            stem.starts_with("loom_").then(|| stem.to_string())
        })
        .collect();
    out.sort();
    out
}

/// Every example of every crate, run briefly (`--smoke`): each checks its own result.
fn examples(ci: &mut Ci) {
    for c in CRATES {
        let dir = Path::new("crates").join(c).join("examples");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".rs")
                    .map(String::from)
            })
            .collect();
        names.sort();
        for n in names {
            ci.step(
                &format!("example {c}/{n}"),
                cargo().args([
                    "run",
                    "--release",
                    "-q",
                    "-p",
                    c,
                    "--example",
                    &n,
                    "--",
                    "--smoke",
                ]),
            );
        }
    }
}

/// Criterion benches of every crate, then the peer comparison suite.
fn bench(ci: &mut Ci, opts: &cli::BenchOpts) {
    let quick = opts.quick;
    let peers = &opts.peers;
    if !opts.no_criterion {
        let mut cmd = cargo();
        cmd.args(["bench", "--workspace"]);
        if quick {
            cmd.args(["--", "--warm-up-time", "1", "--measurement-time", "2"]);
        }
        ci.step("criterion benches", &mut cmd);
    }
    let harness = Path::new("benches/peers/run.sh");
    if harness.exists() {
        let mut cmd = Command::new("bash");
        cmd.arg(harness).args(peers.iter().map(|s| s.as_str()));
        if quick {
            // One small run of each workload, into bench-results/tmp/ (the committed
            // table is not overwritten).
            cmd.env("QUICK", "1");
        }
        ci.step("peer comparison", &mut cmd);
    } else {
        eprintln!(
            "xtask: {} is missing; comparison suite skipped",
            harness.display()
        );
    }
}
