//! Child processes whose pipes and exit park the goroutine: `std::process`'s API on the
//! poller (Go's `os/exec`).
//!
//! - [`Command`] is `std`'s builder; `spawn` runs as a [`crate::blocking`] call (fork and
//!   exec take a while, and `std` waits for the exec to report its error), so the
//!   goroutine's P runs others meanwhile.
//! - The piped stdin/stdout/stderr of a [`Child`] are [`PollFd`]s: reads and writes park
//!   the goroutine on the poller.
//! - [`Child::wait`] opens a pidfd for the child (`pidfd_open(2)`, Linux ≥ 5.3), which
//!   becomes readable when the child exits, and parks the goroutine on it; then it reaps
//!   the child with `waitpid`. Where `pidfd_open` fails (an old kernel, a seccomp filter)
//!   it falls back to a blocking `waitpid` inside [`crate::blocking`]. No thread per
//!   child either way (Go: `os.Process.Wait` on a pidfd since Go 1.23).
//! - On a plain thread everything is `std`'s blocking behaviour.
//!
//! ```
//! use gmp_runtime::process::{Command, Stdio};
//! use std::io::{Read, Write};
//!
//! let mut child = Command::new("cat")
//!     .stdin(Stdio::piped())
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! child.stdin.take().unwrap().write_all(b"hello")?; // dropped: cat sees end of input
//! let mut out = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut out)?;
//! assert_eq!(out, "hello");
//! assert!(child.wait()?.success());
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::io::PollFd;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub use std::process::{abort, exit, id, ExitCode, ExitStatus, Output, Stdio};

/// A process builder, as [`std::process::Command`]; `spawn`, `output` and `status` park
/// the goroutine rather than its thread.
///
/// ```
/// use gmp_runtime::process::Command;
///
/// let out = Command::new("echo").arg("hi").output()?;
/// assert_eq!(out.stdout, b"hi\n");
/// assert!(out.status.success());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    // Whether each stream was configured: `output` captures the unconfigured ones.
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
}

impl Command {
    /// A command to run `program`, looked up in `PATH` if it has no `/`.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Clears the child's environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's stdin: [`Stdio::piped`] gives [`Child::stdin`], or pass another child's
    /// [`ChildStdout`] to build a pipeline.
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's stdout.
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// The child's stderr.
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Starts the child. A program that does not exist is `ErrorKind::NotFound`, as in
    /// `std`. Streams not configured are inherited.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let inner = &mut self.inner;
        let child = crate::blocking(|| inner.spawn())?;
        Child::from_std(child)
    }

    /// Runs the child to completion, capturing its stdout and stderr (stdin is null
    /// unless configured), as `std`'s `output`.
    pub fn output(&mut self) -> io::Result<Output> {
        if !crate::in_goroutine() {
            return self.inner.output();
        }
        if !self.stdin_set {
            self.inner.stdin(Stdio::null());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::piped());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.spawn();
        // Back to the defaults of `spawn` and `status` (inherit).
        if !self.stdin_set {
            self.inner.stdin(Stdio::inherit());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::inherit());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::inherit());
        }
        child?.wait_with_output()
    }

    /// Runs the child to completion (streams inherited unless configured) and returns its
    /// exit status.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        if !crate::in_goroutine() {
            return self.inner.status();
        }
        self.spawn()?.wait()
    }

    /// The program.
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments (without the program).
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment changes made with `env`, `env_remove`.
    pub fn get_envs(&self) -> std::process::CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The working directory, if set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The `std` builder, for the rest of its API (`std::os::unix::process::CommandExt`:
    /// `uid`, `process_group`, `pre_exec`, …). Streams configured through it count as
    /// configured only for `spawn` and `status`, not for `output`'s defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// The `std` builder.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }
}

impl From<std::process::Command> for Command {
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// A running or exited child process, as [`std::process::Child`].
pub struct Child {
    inner: std::process::Child,
    /// The child's pidfd on the poller, if `pidfd_open` worked.
    pidfd: Option<PollFd<OwnedFd>>,
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
}

/// `pidfd_open(2)`; `None` where the kernel or a sandbox refuses it.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: on success a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl Child {
    /// Wraps a `std` child: its piped streams move onto the poller, and a pidfd is opened
    /// for `wait`.
    pub fn from_std(mut child: std::process::Child) -> io::Result<Child> {
        let stdin = child
            .stdin
            .take()
            .map(|s| PollFd::new_lazy(OwnedFd::from(s)));
        let stdout = child
            .stdout
            .take()
            .map(|s| PollFd::new_lazy(OwnedFd::from(s)));
        let stderr = child
            .stderr
            .take()
            .map(|s| PollFd::new_lazy(OwnedFd::from(s)));
        let pidfd = pidfd_open(child.id()).and_then(|fd| PollFd::new_lazy(fd).ok());
        Ok(Child {
            inner: child,
            pidfd,
            stdin: stdin.transpose()?.map(|inner| ChildStdin { inner }),
            stdout: stdout.transpose()?.map(|inner| ChildStdout { inner }),
            stderr: stderr.transpose()?.map(|inner| ChildStderr { inner }),
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `SIGKILL` (nothing if the child was already reaped), as `std`.
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Waits for the child to exit and returns its status; closes its stdin first, as
    /// `std`. In a goroutine, parks on the child's pidfd (module docs).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if !crate::in_goroutine() {
            return self.inner.wait();
        }
        if let Some(pidfd) = &self.pidfd {
            loop {
                if let Some(status) = self.inner.try_wait()? {
                    return Ok(status);
                }
                // Readable once the child has exited (and stays so until reaped).
                if pidfd.wait_readable(None).is_err() {
                    break; // Cannot poll it after all: wait the blocking way.
                }
            }
        }
        // Go: the `wait4` fallback, a blocking system call that hands the P on.
        let inner = &mut self.inner;
        crate::blocking(|| inner.wait())
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Closes stdin, reads stdout and stderr to their ends (both at once, so that neither
    /// pipe fills up), and waits.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read2(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Reads both streams to their ends at once.
fn read2(out: Option<ChildStdout>, err: Option<ChildStderr>) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    match (out, err) {
        (None, None) => {}
        (Some(mut out), None) => {
            out.read_to_end(&mut o)?;
        }
        (None, Some(mut err)) => {
            err.read_to_end(&mut e)?;
        }
        (Some(mut out), Some(mut err)) if crate::in_goroutine() => {
            crate::scope(|s| -> io::Result<()> {
                // SAFETY: the goroutine only reads a pipe; it holds no thread-local state.
                let h = unsafe { s.spawn(|| err.read_to_end(&mut e)) };
                let r = out.read_to_end(&mut o);
                let r2 = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                r?;
                r2.map(drop)
            })?;
        }
        (Some(out), Some(err)) => thread_read2(&out.inner, &err.inner, &mut o, &mut e)?,
    }
    Ok((o, e))
}

/// Reads two non-blocking pipes to their ends on a plain thread with `poll(2)`.
fn thread_read2(
    a: &PollFd<OwnedFd>,
    b: &PollFd<OwnedFd>,
    va: &mut Vec<u8>,
    vb: &mut Vec<u8>,
) -> io::Result<()> {
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 * 1024];
    while open[0] || open[1] {
        let mut pfds = [a, b].map(|p| libc::pollfd {
            fd: p.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for (p, o) in pfds.iter_mut().zip(open) {
            if !o {
                p.fd = -1;
            }
        }
        // SAFETY: `pfds` is a valid array of 2 pollfds for the duration of the call.
        if unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (i, (fd, v)) in [(a, &mut *va), (b, &mut *vb)].into_iter().enumerate() {
            if !open[i] || pfds[i].revents == 0 {
                continue;
            }
            loop {
                // SAFETY: `buf` is writable for its length; the descriptor is open.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    v.extend_from_slice(&buf[..n as usize]);
                    continue;
                }
                if n == 0 {
                    open[i] = false;
                    break;
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => break,
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(())
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.inner.id())
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish_non_exhaustive()
    }
}

macro_rules! pipe_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The child's ", $what, " pipe, on the poller (a [`PollFd`]): ",
                                "in a goroutine, I/O that would block parks the goroutine.")]
        ///
        /// Convert it into a [`Stdio`] to connect it to another child (a pipeline); it
        /// is handed over in blocking mode.
        pub struct $name {
            inner: PollFd<OwnedFd>,
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            /// Deregisters the pipe and restores its blocking mode.
            fn from(p: $name) -> OwnedFd {
                p.inner.into_inner()
            }
        }

        impl From<$name> for Stdio {
            fn from(p: $name) -> Stdio {
                Stdio::from(OwnedFd::from(p))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.inner.as_raw_fd())
                    .finish()
            }
        }
    };
}

pipe_type!(ChildStdin, "stdin");
pipe_type!(ChildStdout, "stdout");
pipe_type!(ChildStderr, "stderr");

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.inner).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.inner).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}

impl Read for &ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}

impl Read for &ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
}
