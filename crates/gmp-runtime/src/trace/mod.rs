//! Execution traces: what every P ran, when, and why (Go: `runtime/trace`, shown the
//! way `go tool trace` shows it, in a viewer everyone already has).
//!
//! [`start`] begins recording; [`stop`] writes the trace as Chrome trace-event JSON,
//! which [ui.perfetto.dev](https://ui.perfetto.dev) and `chrome://tracing` open.
//! `GMP_TRACE=path` does the same for a whole program: recording starts when the
//! first runtime is built and the file is written **at process exit** (when `main`
//! returns or [`std::process::exit`] is called; not on an abort or a fatal signal).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use gmp_runtime::trace;
//! trace::start("/tmp/gmp-trace.json")?;
//! let rt = gmp_runtime::Runtime::builder().procs(2).build()?;
//! // SAFETY: the goroutines keep no thread-local state across a suspension point.
//! unsafe {
//!     rt.block_on(|| {
//!         let hs: Vec<_> = (0..8).map(|i| gmp_runtime::go!(move || i * i)).collect();
//!         hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
//!     })
//! };
//! trace::stop()?;
//! trace::render_svg("/tmp/gmp-trace.json", "/tmp/gmp-trace.svg")?;
//! # Ok(())
//! # }
//! ```
//!
//! # What the trace shows
//!
//! Each runtime is a process (`pid` = the runtime's id) with these tracks (threads):
//!
//! - **`P0`, `P1`, …**: one per P, with a slice `G<id>` for each stretch a goroutine
//!   ran on that P — from when an M resumed it to when it switched back, entered a
//!   blocking call, or lost the P to sysmon. Instants on the P: `spawn G<id>`,
//!   `unpark G<id>`, `park` (with the wait reason), `steal` (which P, how many),
//!   `retake` (sysmon took the P: from a blocking call, from a goroutine that ran
//!   10 ms without a scheduling point, or because the P's timers were overdue while
//!   its M held it).
//! - **`M1`, `M2`, …**: one per M (OS thread), with its states: `spinning` (looking
//!   for work to steal), `idle` (asleep without a P), `blocking call` (in
//!   [`blocking`](crate::blocking)), `netpoll` (blocked in the network poller).
//! - **plain threads** (the `block_on` caller, sysmon's network polls): the spawns
//!   and unparks they make.
//!
//! Arrows (flows) lead from each `spawn` and `unpark` to the run it caused: the arrow
//! of a goroutine spawned on `P0` that ends on `P1` is a steal, seen.
//!
//! Timestamps are microseconds since the process's epoch (the runtime's timer clock).
//!
//! # Cost
//!
//! Off: every event site is one relaxed load of a static and a branch. On: a
//! thread-local lookup, a clock read and a 48-byte append to the calling thread's own
//! buffer — no lock per event (see `buffer.rs`). A session records at most about four
//! million events; beyond that recording stops and the trace says it was truncated.

mod buffer;
mod json;
mod svg;

use crate::g::G;
use crate::m::MCtx;
use crate::sched::Sched;
use buffer::{Event, Kind, Session, ENABLED, NO_P};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

pub use svg::render_svg;

/// Starts recording an execution trace, to be written to `path` by [`stop`].
///
/// The file is created now (so a bad path is reported here). Errors: a trace is
/// already being recorded (by an earlier `start` or by `GMP_TRACE`), or the file
/// cannot be created.
///
/// ```
/// let path = std::env::temp_dir().join("gmp-doc-start.json");
/// gmp_runtime::trace::start(&path).unwrap();
/// assert!(gmp_runtime::trace::start(&path).is_err()); // one at a time
/// gmp_runtime::trace::stop().unwrap();
/// ```
pub fn start(path: impl AsRef<Path>) -> io::Result<()> {
    start_session(path.as_ref(), false)
}

/// Stops recording and writes the trace (Chrome trace-event JSON) to the path given
/// to [`start`]. Every thread's events are written, including those of threads that
/// are asleep or have exited.
///
/// Called from a goroutine, the writing runs as a [`blocking`](crate::blocking) call.
/// Errors: no trace is being recorded, or writing the file failed.
///
/// ```
/// assert!(gmp_runtime::trace::stop().is_err()); // nothing recording
/// ```
pub fn stop() -> io::Result<()> {
    let session = buffer::end(&mut buffer::registry()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "gmp: trace::stop: no trace is being recorded",
        )
    })?;
    crate::proc::blocking_call(|| write_session(session))
}

fn start_session(path: &Path, from_env: bool) -> io::Result<()> {
    let mut reg = buffer::registry();
    if let Some(s) = reg.as_ref() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "gmp: trace::start({}): a trace is already being recorded (to {})",
                path.display(),
                s.path.display()
            ),
        ));
    }
    let file = std::fs::File::create(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("gmp: trace::start: cannot create {}: {e}", path.display()),
        )
    })?;
    buffer::begin(
        &mut reg,
        Session {
            id: 0,
            path: path.to_path_buf(),
            file,
            threads: Vec::new(),
            from_env,
        },
    );
    Ok(())
}

fn write_session(session: Session) -> io::Result<()> {
    let end = crate::timers::nanos(std::time::Instant::now());
    let threads: Vec<_> = session
        .threads
        .iter()
        .map(|b| (b.clone(), b.drain()))
        .collect();
    let truncated = buffer::TRUNCATED.load(Ordering::Relaxed);
    let mut out = io::BufWriter::with_capacity(1 << 16, session.file);
    json::write(&mut out, &threads, end, truncated).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("gmp: trace: cannot write {}: {e}", session.path.display()),
        )
    })?;
    io::Write::flush(&mut out)?;
    if truncated {
        eprintln!(
            "gmp: trace {}: truncated after {} events",
            session.path.display(),
            buffer::MAX_EVENTS
        );
    }
    Ok(())
}

/// `GMP_TRACE=path`: called whenever a runtime is built; starts recording once per
/// process and writes the trace at process exit.
pub(crate) fn start_from_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(path) = std::env::var_os("GMP_TRACE").filter(|p| !p.is_empty()) else {
            return;
        };
        match start_session(Path::new(&path), true) {
            // SAFETY: `at_exit` is a plain `extern "C" fn` that never unwinds.
            Ok(()) => unsafe {
                libc::atexit(at_exit);
            },
            Err(e) => eprintln!("gmp: GMP_TRACE={}: {e}", Path::new(&path).display()),
        }
    });
}

/// Writes the `GMP_TRACE` session at process exit (unless it was stopped already).
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let session = {
            let mut reg = buffer::registry();
            if !reg.as_ref().is_some_and(|s| s.from_env) {
                return;
            }
            buffer::end(&mut reg)
        };
        if let Some(s) = session {
            if let Err(e) = write_session(s) {
                eprintln!("gmp: GMP_TRACE: {e}");
            }
        }
    });
}

// ---------------------------------------------------------------------------------
// Event sites: each is one relaxed load when tracing is off.
// ---------------------------------------------------------------------------------

/// The M state names (M tracks).
pub(crate) const SPINNING: Option<&str> = Some("spinning");
/// An M asleep without a P.
pub(crate) const IDLE: Option<&str> = Some("idle");
/// An M blocked in the network poller.
pub(crate) const NETPOLL: Option<&str> = Some("netpoll");
const BLOCKING: Option<&str> = Some("blocking call");

#[inline(always)]
fn on() -> bool {
    // Relaxed: a hint; an event recorded just after `stop` is dropped harmlessly.
    ENABLED.load(Ordering::Relaxed)
}

fn p32(p: Option<usize>) -> u32 {
    p.map_or(NO_P, |p| p as u32)
}

/// Go: `traceGoStart`. `c` is about to resume `g` on P `p`.
#[inline(always)]
pub(crate) fn go_start(c: &MCtx, p: usize, g: &G) {
    if on() {
        let mut e = Event::new(Kind::RunBegin, c.sched.id, p as u32, g.id);
        e.arg = c.m.id as u32;
        buffer::record(e);
    }
}

/// The goroutine `c` ran has switched back to the scheduler.
#[inline(always)]
pub(crate) fn go_stop(c: &MCtx) {
    if on() {
        buffer::record(Event::new(Kind::RunEnd, c.sched.id, NO_P, 0));
    }
}

/// Go: `traceGoSysCall`. The running goroutine enters a blocking call: its run ends
/// and its M is in the call.
#[inline(always)]
pub(crate) fn syscall_enter(c: &MCtx) {
    if on() {
        buffer::record(Event::new(Kind::RunEnd, c.sched.id, NO_P, 0));
        m_state(c, BLOCKING);
    }
}

/// Go: `traceGoSysExit`. The blocking call has returned, perhaps on another M (if the
/// goroutine had to wait for a P): the goroutine runs on, on whatever P its M holds.
#[inline(always)]
pub(crate) fn syscall_exit() {
    if on() {
        syscall_exit_slow();
    }
}

#[inline(never)]
fn syscall_exit_slow() {
    let Some(c) = crate::m::ctx() else { return };
    m_state(c, None);
    if let (Some(p), Some(g)) = (c.p.get(), c.curg()) {
        let mut e = Event::new(Kind::RunBegin, c.sched.id, p as u32, g.id);
        e.arg = c.m.id as u32;
        // Only if no run is open: after waiting for a P, the goroutine was resumed by
        // `execute`, which opened one.
        e.arg2 = buffer::RESUME;
        buffer::record(e);
    }
}

/// The M `c` is now in state `s` (one of the names above, or `None`: running or in
/// scheduler code). Repeats of the current state are not recorded.
#[inline(always)]
pub(crate) fn m_state(c: &MCtx, s: Option<&'static str>) {
    if on() {
        let mut e = Event::new(Kind::MState, c.sched.id, NO_P, 0);
        e.arg = c.m.id as u32;
        e.s = s;
        buffer::record(e);
    }
}

/// Go: `traceGoCreate`. `g` was created by the caller, on P `p` if it holds one.
#[inline(always)]
pub(crate) fn go_create(sched: &Sched, p: Option<usize>, g: &G) {
    if on() {
        buffer::record(Event::new(Kind::Spawn, sched.id, p32(p), g.id));
    }
}

/// Go: `traceGoPark`. `g`, just switched out on `c`, parks (its wait reason is set).
#[inline(always)]
pub(crate) fn go_park(c: &MCtx, g: &G) {
    if on() {
        let mut e = Event::new(Kind::Park, c.sched.id, p32(c.p.get()), g.id);
        e.s = g.wait_reason().map(|r| r.as_str());
        buffer::record(e);
    }
}

/// Go: `traceGoUnpark`. `g` of runtime `sched` becomes runnable.
#[inline(always)]
pub(crate) fn go_unpark(sched: &Sched, g: &G) {
    if on() {
        go_unpark_slow(sched, g);
    }
}

#[inline(never)]
fn go_unpark_slow(sched: &Sched, g: &G) {
    let p = crate::m::ctx()
        .filter(|c| std::ptr::eq(&*c.sched, sched))
        .and_then(|c| c.p.get());
    buffer::record(Event::new(Kind::Unpark, sched.id, p32(p), g.id));
}

/// P `thief` (of `c`) stole from P `victim`: `g` to run now, and `queued` more into
/// its local queue.
#[inline(always)]
pub(crate) fn steal(c: &MCtx, thief: usize, victim: usize, g: &G, queued: usize) {
    if on() {
        let mut e = Event::new(Kind::Steal, c.sched.id, thief as u32, g.id);
        e.arg = queued as u32 + 1;
        e.arg2 = victim as u32;
        buffer::record(e);
    }
}

/// Why sysmon took a P (the `why` of a `retake` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetakeWhy {
    /// Its M was inside `blocking`.
    Blocking,
    /// Its goroutine held it 10 ms without a scheduling point (running, or in a loop
    /// of short blocking calls while other work waited).
    Hog,
    /// Its timers were overdue while its M was in goroutine code or a blocking call
    /// (sysmon.rs `retake_held`).
    TimersOverdue,
}

/// sysmon took P `p` (whose ownership word was `own`) from its M, for `why`. Every
/// path that takes a P from a running M must record this: the JSON writer cuts the
/// M's run at it (json.rs), or the trace shows two goroutines on one P.
#[inline(always)]
pub(crate) fn retake(sched: &Sched, p: usize, own: u64, why: RetakeWhy) {
    if on() {
        let mut e = Event::new(Kind::Retake, sched.id, p as u32, 0);
        e.arg = (own >> 8) as u32;
        e.s = Some(match why {
            RetakeWhy::Blocking => "blocking call",
            RetakeWhy::Hog => "ran 10 ms without a scheduling point",
            RetakeWhy::TimersOverdue => "timers overdue",
        });
        buffer::record(e);
    }
}
