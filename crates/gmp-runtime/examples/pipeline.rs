//! A shell-style pipeline of child processes, `a | b | c`, run from goroutines: each
//! child's stdout feeds the next one's stdin, the last one's output is read by a
//! goroutine, and every `wait` parks its goroutine on the child's pidfd.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example pipeline -- "seq 1 100000" "grep 7" "wc -l"
//! cargo run --release -p gmp-runtime --example pipeline -- --smoke   # self-check, then exit
//! ```
//!
//! Each argument is one command, split on whitespace (no quoting). With `--smoke` (or
//! `GMP_SMOKE=1`) it runs `seq 1 20000 | grep 7 | sort -r | head -n 3` and checks the
//! result, plus 50 such pipelines at once.

use gmp_runtime::go;
use gmp_runtime::process::{Child, Command, Stdio};
use std::io::{self, Read};

/// Starts `stages` as a pipeline; returns the children and the last one's output.
fn pipeline(stages: &[Vec<String>]) -> io::Result<(Vec<Child>, String)> {
    let mut children: Vec<Child> = Vec::new();
    for (i, argv) in stages.iter().enumerate() {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdout(Stdio::piped());
        if let Some(prev) = children.last_mut() {
            cmd.stdin(prev.stdout.take().expect("piped"));
        } else {
            cmd.stdin(Stdio::null());
        }
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("stage {i} ({}): {e}", argv[0])))?;
        children.push(child);
    }
    let mut out = String::new();
    if let Some(last) = children.last_mut() {
        last.stdout
            .take()
            .expect("piped")
            .read_to_string(&mut out)?;
    }
    Ok((children, out))
}

/// Runs the pipeline and waits for every stage; fails if one fails.
fn run_pipeline(stages: &[Vec<String>]) -> io::Result<String> {
    let (children, out) = pipeline(stages)?;
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c.wait()?;
        // `head` may close early: the stages before it can die of SIGPIPE, as in a shell.
        use std::os::unix::process::ExitStatusExt;
        if !status.success() && status.signal() != Some(libc::SIGPIPE) {
            return Err(io::Error::other(format!("stage {i} failed: {status}")));
        }
    }
    Ok(out)
}

fn split(cmds: &[&str]) -> Vec<Vec<String>> {
    cmds.iter()
        .map(|c| c.split_whitespace().map(String::from).collect())
        .collect()
}

fn smoke() {
    let stages = split(&["seq 1 20000", "grep 7", "sort -r", "head -n 3"]);
    let out = run_pipeline(&stages).expect("pipeline");
    let mut expect: Vec<String> = (1..=20000)
        .map(|i: u32| i.to_string())
        .filter(|s| s.contains('7'))
        .collect();
    expect.sort_unstable_by(|a, b| b.cmp(a));
    let expect: String = expect[..3].iter().map(|s| format!("{s}\n")).collect();
    assert_eq!(out, expect);
    let many: Vec<_> = (0..50)
        .map(|_| {
            let stages = stages.clone();
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe { go!(move || run_pipeline(&stages).expect("pipeline")) }
        })
        .collect();
    for h in many {
        assert_eq!(h.join().expect("a pipeline goroutine panicked"), expect);
    }
    println!("pipeline: smoke test passed (1 + 50 concurrent 4-stage pipelines)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke_mode = args.iter().any(|a| a == "--smoke") || std::env::var_os("GMP_SMOKE").is_some();
    // SAFETY: the goroutines hold no thread-local state across their waits.
    unsafe {
        gmp_runtime::run(|| {
            if smoke_mode {
                return smoke();
            }
            let cmds: Vec<&str> = args.iter().map(String::as_str).collect();
            let cmds = if cmds.is_empty() {
                vec!["seq 1 100000", "grep 7", "wc -l"]
            } else {
                cmds
            };
            match run_pipeline(&split(&cmds)) {
                Ok(out) => print!("{out}"),
                Err(e) => {
                    eprintln!("pipeline: {e}");
                    std::process::exit(1);
                }
            }
        })
    }
}
