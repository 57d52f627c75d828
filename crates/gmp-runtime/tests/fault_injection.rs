//! Fault injection: the faults real servers meet, each injected in a child process (the
//! test binary runs itself again with `GMP_FAULT_CHILD` set) so that a lowered resource
//! limit, a setuid or an abort cannot disturb the other tests. The parent gives each
//! child a generous deadline: a hang is a failure, reported as such.
//!
//! `harness = false` (Cargo.toml): the child runs its scenario on the process's main
//! thread, so that its only threads are the runtime's own and a deadlock report can be
//! certain (and fatal), as in `tests/deadlock.rs`. `main` prints libtest-style lines;
//! arguments filter the tests by name.
//!
//! - `emfile_in_accept`: descriptor exhaustion (`RLIMIT_NOFILE`) makes `accept` fail with
//!   `EMFILE`; an accept loop that backs off and retries, as Go's `net/http` server does,
//!   serves every queued connection once descriptors are free again.
//! - `enomem_for_stacks`: an address-space limit (`RLIMIT_AS`) and an absurd stack size
//!   make `Builder::spawn` return `Err(OutOfMemory)`, never abort, and the runtime goes on.
//! - `failed_thread_spawn`: thread creation fails (`RLIMIT_NPROC`); the work still runs on
//!   the threads there are, and a true deadlock is still reported (issue 10, finding 7;
//!   `tests/deadlock.rs` checks the same through the injection hook, this one through a
//!   real `pthread_create` failure: `EAGAIN` from `RLIMIT_NPROC`, as `nobody` when root).
//! - `panic_in_destructor_during_forced_unwind`: shutdown unwinds a parked goroutine whose
//!   local panics in its destructor: the process aborts with Rust's message, it never hangs.

use gmp_runtime::chan;
use gmp_runtime::net::TcpListener;
use gmp_runtime::{Builder, Runtime};
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "GMP_FAULT_CHILD";

/// What a child process left behind.
struct Outcome {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs test `test` of this binary in a child with `GMP_FAULT_CHILD=scenario`; kills it
/// and fails if it has not exited within `limit`.
fn run_child(_test: &str, scenario: &str, limit: Duration) -> Outcome {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, scenario)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the child") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let st = child.wait().expect("reap the child");
            let o = Outcome {
                status: st,
                stdout: t_out.join().unwrap(),
                stderr: t_err.join().unwrap(),
            };
            panic!("{scenario}: the child HUNG (killed after {limit:?}): {o}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut r) }, 0);
    r.rlim_cur = soft.min(r.rlim_max);
    // SAFETY: `r` is a valid, initialised rlimit.
    let rc = unsafe { libc::setrlimit(resource, &r) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// A copy of descriptor 0 (stdin: /dev/null in the child), or -1 with errno set.
fn dup_stdin() -> i32 {
    // SAFETY: dup of a descriptor we own; the copy is ours to close.
    unsafe { libc::dup(0) }
}

/// Closes a descriptor from `dup_stdin`.
fn close_fd(fd: i32) {
    // SAFETY: `fd` came from `dup_stdin` and is closed once.
    unsafe { libc::close(fd) };
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---------------------------------------------------------------------------------------
// EMFILE in accept

fn emfile_in_accept() {
    let o = run_child("emfile_in_accept", "emfile", Duration::from_secs(60));
    assert!(o.status.success(), "emfile child failed: {o}");
    assert!(o.stdout.contains("EMFILE-RECOVERED"), "{o}");
}

fn emfile_child() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    // SAFETY: no goroutine here holds thread-local state across a suspension point.
    unsafe {
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Three clients connect before descriptors run out: the kernel completes
            // their handshakes into the listen backlog.
            let mut clients: Vec<std::net::TcpStream> = (0..3)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            // Exhaust the descriptor table: a low limit, then dups until EMFILE.
            set_limit(libc::RLIMIT_NOFILE, open_fds() as u64 + 16);
            let mut hogs = Vec::new();
            loop {
                let fd = dup_stdin();
                if fd < 0 {
                    assert_eq!(
                        io::Error::last_os_error().raw_os_error(),
                        Some(libc::EMFILE)
                    );
                    break;
                }
                hogs.push(fd);
            }
            let (emfile_tx, emfile_rx) = chan::unbounded::<()>();
            // The accept loop of a Go server (`net/http.Server.Serve`): on a temporary
            // error, back off (5 ms doubling to 1 s there; to 50 ms here) and retry.
            let server = gmp_runtime::go!(move || {
                let mut served = 0;
                let mut emfiles = 0;
                let mut backoff = Duration::from_millis(5);
                while served < 4 {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            served += 1;
                            backoff = Duration::from_millis(5);
                            gmp_runtime::go!(move || {
                                let mut buf = [0u8; 64];
                                while let Ok(n @ 1..) = s.read(&mut buf) {
                                    if s.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                            emfiles += 1;
                            let _ = emfile_tx.send(());
                            gmp_runtime::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_millis(50));
                        }
                        Err(e) => panic!("accept: unexpected error {e}"),
                    }
                }
                (served, emfiles)
            });
            // Let the server meet EMFILE a few times, then free the descriptors.
            for _ in 0..3 {
                emfile_rx
                    .recv_timeout(Duration::from_secs(20))
                    .expect("the accept loop never reported EMFILE");
            }
            for fd in hogs {
                close_fd(fd);
            }
            // A fourth client, after recovery: this one goes through the poller.
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            for (i, c) in clients.iter_mut().enumerate() {
                let msg = format!("hello {i}");
                let back = gmp_runtime::blocking(|| {
                    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    c.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).map(|_| back)
                });
                assert_eq!(back.expect("echo after EMFILE"), msg.as_bytes());
            }
            let (served, emfiles) = server.join().unwrap();
            assert_eq!(served, 4);
            assert!(emfiles >= 3, "{emfiles}");
            println!("EMFILE-RECOVERED served={served} emfile_errors={emfiles}");
        })
    }
}

// ---------------------------------------------------------------------------------------
// ENOMEM for stacks

fn enomem_for_stacks() {
    let o = run_child("enomem_for_stacks", "enomem", Duration::from_secs(60));
    assert!(o.status.success(), "enomem child failed: {o}");
    assert!(o.stdout.contains("ENOMEM-ERR"), "{o}");
}

fn vm_size() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn enomem_child() {
    const BIG: usize = 64 << 20;
    let rt = Runtime::builder().procs(1).build().unwrap();
    // SAFETY: no goroutine here holds thread-local state across a suspension point.
    unsafe {
        rt.block_on(|| {
            // A size no machine can map: an error naming the problem, not an abort.
            let huge = Builder::new().stack_size(1 << 60).spawn(|| ());
            let Err(e) = huge else {
                panic!("a 2^60-byte stack was allocated?")
            };
            println!("huge stack: {e} ({:?})", e.kind());
            // Now a real address-space limit: 512 MiB above what is mapped now.
            set_limit(libc::RLIMIT_AS, vm_size() + (512 << 20));
            let (stop_tx, stop_rx) = chan::bounded::<()>(0);
            let mut parked = Vec::new();
            let err = loop {
                let rx = stop_rx.clone();
                match Builder::new().stack_size(BIG).spawn(move || {
                    let _ = rx.recv();
                }) {
                    Ok(h) => parked.push(h),
                    Err(e) => break e,
                }
                assert!(parked.len() < 64, "RLIMIT_AS did not bound the stacks");
            };
            assert_eq!(err.kind(), io::ErrorKind::OutOfMemory, "{err}");
            println!(
                "ENOMEM-ERR after {} stacks of {BIG} bytes: {err}",
                parked.len()
            );
            // The runtime goes on: the parked goroutines finish, joins return, and
            // new goroutines start.
            drop(stop_tx);
            let n = parked.len();
            for h in parked {
                h.join().unwrap();
            }
            let hs: Vec<_> = (0..100u64).map(|i| gmp_runtime::go!(move || i)).collect();
            let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 4950);
            println!("after: {n} joined, 100 more goroutines ran");
        })
    }
}

// ---------------------------------------------------------------------------------------
// A failed thread spawn

fn failed_thread_spawn() {
    let o = run_child("failed_thread_spawn", "nproc", Duration::from_secs(30));
    assert!(
        o.stderr.contains("cannot start a scheduler thread"),
        "the fault was not injected (no thread creation failed): {o}"
    );
    assert!(o.status.success(), "nproc child failed: {o}");
    assert!(o.stdout.contains("WORK-DONE"), "{o}");
    assert!(o.stdout.contains("DEADLOCK-REPORTED"), "{o}");
}

fn nproc_child() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    // SAFETY: no goroutine here holds thread-local state across a suspension point.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        rt.block_on(|| {
            // Warm up: sysmon and this M exist; then forbid new threads. RLIMIT_NPROC
            // counts the tasks of the real user; root is exempt, so drop to `nobody`
            // first (this child process only).
            gmp_runtime::go!(|| ()).join().unwrap();
            // SAFETY: plain libc calls; the ids are constants.
            if libc::geteuid() == 0 {
                assert_eq!(libc::setgid(65534), 0, "{}", io::Error::last_os_error());
                assert_eq!(libc::setuid(65534), 0, "{}", io::Error::last_os_error());
            }
            set_limit(libc::RLIMIT_NPROC, 1);
            assert!(
                std::thread::Builder::new().spawn(|| ()).is_err(),
                "RLIMIT_NPROC did not stop thread creation"
            );
            // Three goroutines in long blocking calls on two Ps: each blocking call
            // hands its P to another M (Go's `handoffp` → `startm` → `newm`), and new
            // threads cannot be made. The work must still finish on the threads there
            // are, each P taken back when a blocking call returns.
            let hs: Vec<_> = (0..3u32)
                .map(|i| {
                    gmp_runtime::go!(move || {
                        gmp_runtime::blocking(|| std::thread::sleep(Duration::from_millis(200)));
                        i
                    })
                })
                .collect();
            let sum: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 3);
            println!("WORK-DONE");
            // A true deadlock: nobody will ever send. It must still be reported.
            let (_keep, never) = chan::bounded::<u32>(0);
            let _ = never.recv();
            unreachable!("recv on a channel nobody sends to returned");
        })
    }));
    let p = r.expect_err("block_on returned from a deadlock");
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("deadlock"), "{msg}");
    println!("DEADLOCK-REPORTED: {msg}");
    // The runtime's threads cannot be joined cleanly without new ones either; leave.
    std::mem::forget(rt);
}

// ---------------------------------------------------------------------------------------
// A panic in a destructor during a forced unwind

fn panic_in_destructor_during_forced_unwind() {
    let o = run_child(
        "panic_in_destructor_during_forced_unwind",
        "dtor",
        Duration::from_secs(60),
    );
    assert!(
        o.stdout.contains("PARKED"),
        "the goroutine never parked: {o}"
    );
    assert!(
        !o.stdout.contains("SHUTDOWN-RETURNED"),
        "a panic while unwinding was swallowed: {o}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "not an abort: {o}");
    assert!(
        o.stderr.contains("destructor panicked"),
        "no clear message: {o}"
    );
}

struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor panicked");
    }
}

fn dtor_child() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let (parked_tx, parked_rx) = chan::bounded::<()>(1);
    // SAFETY: no goroutine here holds thread-local state across a suspension point.
    unsafe {
        rt.block_on(|| {
            let (_tx, rx) = chan::bounded::<()>(0);
            let _g = gmp_runtime::go!(move || {
                let _bomb = PanicOnDrop;
                parked_tx.send(()).unwrap();
                let _ = rx.recv(); // parked here at shutdown; `_tx` lives in main's frame
            });
            parked_rx.recv().unwrap();
            println!("PARKED");
            std::mem::forget(_tx);
        });
    }
    // Shutdown force-unwinds the parked goroutine: `_bomb`'s destructor panics while
    // unwinding, which Rust turns into an abort.
    rt.shutdown_timeout(Duration::from_secs(5));
    println!("SHUTDOWN-RETURNED");
}

/// One test: its name, its scenario in the child, the parent's check, the child's body.
type Test = (&'static str, &'static str, fn(), fn());

const TESTS: &[Test] = &[
    ("emfile_in_accept", "emfile", emfile_in_accept, emfile_child),
    (
        "enomem_for_stacks",
        "enomem",
        enomem_for_stacks,
        enomem_child,
    ),
    (
        "failed_thread_spawn",
        "nproc",
        failed_thread_spawn,
        nproc_child,
    ),
    (
        "panic_in_destructor_during_forced_unwind",
        "dtor",
        panic_in_destructor_during_forced_unwind,
        dtor_child,
    ),
];

fn main() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        let (_, _, _, child) = TESTS
            .iter()
            .find(|t| t.1 == scenario)
            .unwrap_or_else(|| panic!("unknown {CHILD_ENV} scenario {scenario}"));
        child();
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    let start = Instant::now();
    for (name, _, test, _) in TESTS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s",
        if failed == 0 { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(101);
    }
}
