//! Signals on channels: Go's `os/signal` (`signal.Notify`, `signal.Stop`).
//!
//! ```no_run
//! use gmp_runtime::signal;
//!
//! let rx = signal::notify(&[libc::SIGTERM, libc::SIGINT])?;
//! // ... serve ...
//! let sig = rx.recv().unwrap(); // parks the goroutine (or blocks the thread)
//! println!("got signal {sig}, shutting down");
//! signal::stop(&rx);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How it works
//!
//! The handlers are installed through `signal-hook-registry`, the ecosystem's signal
//! multiplexer, so they coexist with other libraries' handlers. A handler does one
//! async-signal-safe thing: it writes the signal number, one byte, to a non-blocking pipe.
//! One process-wide dispatcher thread (Go's `signal.loop` goroutine; a thread here because
//! signals belong to the process, not to any one runtime, and must arrive on plain threads
//! too) waits on the pipe's read end in `poll(2)`, as a [`PollFd`](crate::io::PollFd)
//! read on a plain thread does, and sends each signal to every channel registered for it.
//!
//! As in Go, delivery never blocks: each channel holds up to 64 pending signals and
//! further ones are dropped while it is full (the same signal arriving twice before it is
//! handled may anyway be merged by the kernel).
//!
//! # Differences from Go
//!
//! Once a signal has been registered, its handler stays installed for the life of the
//! process (`signal-hook-registry` never restores the default disposition): after the
//! last channel for it is [`stop`]ped, the signal is ignored rather than, for instance,
//! terminating the process.

use crate::chan::{self, Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// Signals a channel can hold before further ones are dropped.
const CHANNEL_CAP: usize = 64;

/// Signals that cannot be caught, or only as a synchronous fault that a handler returning
/// normally would re-raise forever (`signal-hook-registry`'s `FORBIDDEN`).
const FORBIDDEN: &[i32] = &[
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
];

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSEGV => "SIGSEGV",
        _ => "signal",
    }
}

struct Subscriber {
    signals: Vec<i32>,
    tx: Sender<i32>,
    /// To recognise the channel in `stop`.
    rx: Receiver<i32>,
}

struct State {
    subscribers: Vec<Subscriber>,
    /// Signals whose handler is installed (registered once, kept).
    installed: HashMap<i32, signal_hook_registry::SigId>,
    /// The write end of the pipe the handlers write to.
    pipe_w: RawFd,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// The pipe's write end, kept open for the life of the process.
static PIPE_W: OnceLock<OwnedFd> = OnceLock::new();

/// Every signal [`notify`] with an empty list relays: the catchable standard signals and
/// the real-time ones (not `SIGBUS`, a synchronous fault as a rule).
fn all_signals() -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|s| !FORBIDDEN.contains(s) && *s != libc::SIGBUS)
        .filter(|s| !(32..libc::SIGRTMIN()).contains(s)) // Reserved by the C library.
        .collect()
}

fn validate(sig: i32) -> io::Result<()> {
    if FORBIDDEN.contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "signal::notify: {} ({sig}) cannot be caught",
                signal_name(sig)
            ),
        ));
    }
    if !(1..=libc::SIGRTMAX()).contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "signal::notify: {sig} is not a signal number (1..={})",
                libc::SIGRTMAX()
            ),
        ));
    }
    Ok(())
}

/// Creates the pipe and starts the dispatcher thread, once.
fn start(state: &mut Option<State>) -> io::Result<&mut State> {
    if state.is_none() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two new descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: new descriptors nothing else owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The handler must never block: a full pipe drops the signal.
        // SAFETY: F_SETFL on our own open descriptor.
        if unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let pipe_w = w.as_raw_fd();
        std::thread::Builder::new()
            .name("gmp-signal".into())
            .spawn(move || dispatch(r))?;
        let _ = PIPE_W.set(w);
        *state = Some(State {
            subscribers: Vec::new(),
            installed: HashMap::new(),
            pipe_w,
        });
    }
    Ok(state.as_mut().expect("just set"))
}

/// The dispatcher thread: Go's `signal.loop`.
fn dispatch(r: OwnedFd) {
    let mut buf = [0u8; 128];
    loop {
        // SAFETY: `buf` is writable for its length; `r` is open (owned by this thread).
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return; // Cannot happen: the write end is never closed.
        }
        let state = STATE.lock();
        let Some(state) = state.as_ref() else {
            continue;
        };
        for &b in &buf[..n as usize] {
            let sig = i32::from(b);
            for s in &state.subscribers {
                if s.signals.contains(&sig) {
                    let _ = s.tx.try_send(sig); // Full: dropped, as Go.
                }
            }
        }
    }
}

/// Relays the given signals to a new channel, and returns its receiving end: Go's
/// `signal.Notify`. An empty list means every signal that can be caught. Signals keep
/// arriving until [`stop`] is called on the receiver.
///
/// Errors: a signal that cannot be caught (`SIGKILL`, `SIGSTOP`; and `SIGILL`, `SIGFPE`,
/// `SIGSEGV`, whose handlers belong to the runtime) or a number that is not a signal —
/// `ErrorKind::InvalidInput` naming it; or the OS refusing the handler.
///
/// ```
/// use gmp_runtime::signal;
///
/// let rx = signal::notify(&[libc::SIGUSR2])?;
/// // SAFETY: sending a signal to ourselves; SIGUSR2 is now caught.
/// unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
/// assert_eq!(rx.recv().unwrap(), libc::SIGUSR2);
/// signal::stop(&rx);
/// assert!(signal::notify(&[libc::SIGKILL]).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn notify(signals: &[i32]) -> io::Result<Receiver<i32>> {
    let relay_all = signals.is_empty();
    let signals = if relay_all {
        all_signals()
    } else {
        for &s in signals {
            validate(s)?;
        }
        let mut v = signals.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut guard = STATE.lock();
    let state = start(&mut guard)?;
    for &sig in &signals {
        if state.installed.contains_key(&sig) {
            continue;
        }
        let w = state.pipe_w;
        let byte = sig as u8;
        let action = move || {
            // Async-signal-safe: one write(2) to a non-blocking pipe that is never closed.
            // The registry saves and restores errno around the actions.
            // SAFETY: `byte` is 1 readable byte; `w` stays open (PIPE_W).
            unsafe { libc::write(w, (&byte as *const u8).cast(), 1) };
        };
        // SAFETY: `sig` is not in the registry's FORBIDDEN list (checked above, and
        // `all_signals` leaves them out); the action only calls write(2), which is
        // async-signal-safe, and touches no lock or allocation.
        let id = unsafe { signal_hook_registry::register(sig, action) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("signal::notify: cannot install a handler for signal {sig}: {e}"),
            )
        });
        match id {
            Ok(id) => {
                state.installed.insert(sig, id);
            }
            // With an empty list, skip what the OS refuses; a named signal is an error.
            Err(_) if relay_all => {}
            Err(e) => return Err(e),
        }
    }
    let (tx, rx) = chan::bounded(CHANNEL_CAP);
    state.subscribers.push(Subscriber {
        signals,
        tx,
        rx: rx.clone(),
    });
    Ok(rx)
}

/// Stops relaying signals to the channel of `rx` (Go's `signal.Stop`): when it returns, no
/// further signal is sent to it (ones already in the channel stay there). A receiver that
/// [`notify`] did not return, or one already stopped, is ignored.
///
/// ```
/// use gmp_runtime::signal;
///
/// let rx = signal::notify(&[libc::SIGWINCH])?;
/// signal::stop(&rx);
/// // SAFETY: sending a signal to ourselves; its handler is still installed (ignored).
/// unsafe { libc::kill(libc::getpid(), libc::SIGWINCH) };
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// assert!(rx.try_recv().is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stop(rx: &Receiver<i32>) {
    let mut guard = STATE.lock();
    if let Some(state) = guard.as_mut() {
        state.subscribers.retain(|s| !s.rx.same_channel(rx));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bad_signals_are_named() {
        let e = validate(libc::SIGKILL).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("SIGKILL"), "{e}");
        assert!(validate(0).is_err());
        assert!(validate(1000).is_err());
        assert!(validate(libc::SIGUSR1).is_ok());
        assert!(!all_signals().contains(&libc::SIGKILL));
        assert!(all_signals().contains(&libc::SIGTERM));
    }
}
