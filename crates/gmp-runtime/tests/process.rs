//! Child processes: piped stdio and `wait` park the goroutine on the poller.

use gmp_runtime::process::{Command, Stdio};
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: the test goroutines hold no thread-local state across I/O.
    unsafe { gmp_runtime::spawn(f) }
}

fn block_on<T: Send>(rt: &Runtime, f: impl FnOnce() -> T + Send) -> T {
    // SAFETY: as for `go`.
    unsafe { rt.block_on(f) }
}

/// A goroutine ticking every 5 ms until `stop`; returns the worst gap between ticks.
fn ticker(stop: Arc<AtomicBool>) -> JoinHandle<(Duration, u32)> {
    go(move || {
        let (mut worst, mut ticks) = (Duration::ZERO, 0);
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            gmp_runtime::sleep(Duration::from_millis(5));
            let now = Instant::now();
            worst = worst.max(now - last);
            last = now;
            ticks += 1;
        }
        (worst, ticks)
    })
}

#[test]
fn cat_ten_megabytes_on_one_p_while_a_ticker_ticks() {
    const LEN: usize = 10 << 20;
    let (worst, ticks, took) = block_on(&rt(1), || {
        let stop = Arc::new(AtomicBool::new(false));
        let tick = ticker(stop.clone());
        let t = Instant::now();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let writer = go(move || {
            let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 253) as u8).collect();
            for chunk in data.chunks(100_000) {
                stdin.write_all(chunk).unwrap();
            }
            // `stdin` dropped: cat sees the end of its input.
        });
        let reader = go(move || {
            let mut got = Vec::with_capacity(LEN);
            stdout.read_to_end(&mut got).unwrap();
            got
        });
        writer.join().unwrap();
        let got = reader.join().unwrap();
        assert!(child.wait().unwrap().success());
        let took = t.elapsed();
        assert_eq!(got.len(), LEN);
        let bad = got
            .iter()
            .enumerate()
            .position(|(i, &b)| b != (i * 7 % 253) as u8);
        assert_eq!(bad, None, "first differing byte");
        stop.store(true, Ordering::Relaxed);
        let (worst, ticks) = tick.join().unwrap();
        (worst, ticks, took)
    });
    println!("cat 10 MB on procs(1): {took:?}, ticker {ticks} ticks, worst gap {worst:?}");
    // Generous: the box is shared; the point is that the ticker was never starved.
    assert!(worst < Duration::from_secs(2), "worst tick gap {worst:?}");
}

#[test]
fn two_hundred_concurrent_children() {
    block_on(&rt(2), || {
        let kids: Vec<_> = (0..200)
            .map(|i| {
                go(move || {
                    let out = Command::new("sh")
                        .arg("-c")
                        .arg(format!("echo child {i}; exit {}", i % 7))
                        .output()
                        .unwrap();
                    assert_eq!(out.stdout, format!("child {i}\n").into_bytes());
                    assert_eq!(out.status.code(), Some(i % 7));
                })
            })
            .collect();
        for k in kids {
            k.join().unwrap();
        }
    });
}

#[test]
fn kill_a_sleeping_child() {
    block_on(&rt(1), || {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        let waiter = go({
            let t = Instant::now();
            move || {
                gmp_runtime::sleep(Duration::from_millis(30));
                child.kill().unwrap();
                (child.wait().unwrap(), child, t.elapsed())
            }
        });
        let (status, mut child, took) = waiter.join().unwrap();
        assert!(!status.success());
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        assert!(took < Duration::from_secs(20));
        // Waiting again gives the same status; killing a reaped child is fine, as std.
        assert_eq!(child.wait().unwrap(), status);
        assert_eq!(child.try_wait().unwrap(), Some(status));
    });
}

#[test]
fn wait_parks_only_the_goroutine() {
    // One P: while a goroutine waits for a child, another keeps running.
    block_on(&rt(1), || {
        let stop = Arc::new(AtomicBool::new(false));
        let tick = ticker(stop.clone());
        let status = Command::new("sleep").arg("0.2").status().unwrap();
        assert!(status.success());
        stop.store(true, Ordering::Relaxed);
        let (_, ticks) = tick.join().unwrap();
        assert!(ticks >= 5, "only {ticks} ticks while waiting for the child");
    });
}

#[test]
fn a_missing_program_is_not_found() {
    let thread = Command::new("/nonexistent/gmp-no-such-program")
        .spawn()
        .unwrap_err();
    assert_eq!(thread.kind(), ErrorKind::NotFound);
    let goroutine = block_on(&rt(1), || {
        Command::new("gmp-no-such-program-anywhere")
            .output()
            .unwrap_err()
            .kind()
    });
    assert_eq!(goroutine, ErrorKind::NotFound);
}

#[test]
fn output_captures_both_streams() {
    let cmd = || {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        c
    };
    let check = |out: gmp_runtime::process::Output| {
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    };
    check(block_on(&rt(1), || cmd().output().unwrap()));
    check(cmd().output().unwrap());
    // Through spawn and wait_with_output, on a plain thread and in a goroutine.
    let spawned = || {
        cmd()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap()
    };
    check(spawned());
    check(block_on(&rt(1), spawned));
}

#[test]
fn a_pipeline_of_children() {
    let run = || {
        let mut producer = Command::new("seq")
            .arg("1000")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut filter = Command::new("grep")
            .arg("7")
            .stdin(producer.stdout.take().unwrap())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let counter = Command::new("wc")
            .arg("-l")
            .stdin(filter.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(producer.wait().unwrap().success());
        assert!(filter.wait().unwrap().success());
        String::from_utf8(counter.stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let expect = (1..=1000).filter(|i| i.to_string().contains('7')).count();
    assert_eq!(block_on(&rt(2), run), expect.to_string());
    assert_eq!(run(), expect.to_string());
}
