//! Goroutine dumps: [`dump`] writes every goroutine of every runtime in the process in
//! Go's traceback format, with the backtrace of each parked goroutine's own stack.
//!
//! # How a parked goroutine's stack is read
//!
//! Two ways were possible: walk the goroutine's saved frame from outside with an
//! unwinder started at its saved registers, or let the goroutine take its own
//! backtrace on its own stack. We do the second: std's unwinder already walks a stack
//! from the inside (our switch code carries CFI, so the walk stops cleanly at the
//! bottom of a goroutine stack), no unwinder of ours has to start from a foreign
//! register set, and symbolisation is std's. The dumper borrows the parked goroutine
//! — `ParkState::begin_capture` moves it from `PARKED` to `CAPTURING`, so no waker can
//! ready it meanwhile (an unpark or a timeout during the capture leaves a permit, and
//! the dumper readies the goroutine itself afterwards) — sets its capture flag and
//! resumes it once: the goroutine's `suspend` sees the flag, takes the backtrace, and
//! switches straight back. Goroutines that are running are never touched: they are
//! listed with their state (and the caller's own stack, if it is one of them).
//!
//! Goroutines that have never parked and sit in a run queue are not in the registry
//! (registering every spawn would cost the hot path a lock); the dump counts them.
//!
//! # `GMP_TRACEBACK=all`
//!
//! With `GMP_TRACEBACK=all` in the environment when a runtime is built, SIGQUIT makes
//! the process print a dump to stderr and exit with status 2, as a Go program does. A
//! thread of ours waits for the signal (the handler only writes a byte to a pipe), so
//! the dump never runs in a signal handler.

use crate::g::{Status, G};
use crate::sched::Sched;
use gmp_core::sync::atomic::Ordering;
use std::backtrace::Backtrace;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, Weak};

/// Held for the whole of a dump (see [`dump`]).
static DUMPING: Mutex<()> = Mutex::new(());

/// Every runtime of the process, for process-wide dumps.
static RUNTIMES: Mutex<Vec<Weak<Sched>>> = Mutex::new(Vec::new());

/// Records a new runtime (runtime.rs).
pub(crate) fn register_runtime(sched: &Arc<Sched>) {
    let mut r = RUNTIMES.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(sched));
}

fn runtimes() -> Vec<Arc<Sched>> {
    let r = RUNTIMES.lock().unwrap_or_else(|e| e.into_inner());
    r.iter().filter_map(Weak::upgrade).collect()
}

/// Writes every goroutine of every runtime in the process, in Go's traceback format:
///
/// ```text
/// goroutine 18 [chan receive, 2 minutes]:
/// my_crate::worker
///         src/worker.rs:41
/// ...
/// created by src/main.rs:12
/// ```
///
/// Each parked goroutine's backtrace is taken on its own stack (module docs); running
/// goroutines are listed with their state, and the caller's own stack is shown under
/// its entry when it is a goroutine (else first, as the calling thread). Runnable
/// goroutines waiting in run queues are listed as `[runnable]`: the dump takes them out
/// of the queues while it reads them and puts them back on the global queue (Go stops
/// the world instead), so they run a moment later, perhaps on another P. Safe to call
/// from a goroutine, a plain thread, or the `GMP_TRACEBACK=all` SIGQUIT path; it never
/// disturbs a running goroutine.
///
/// ```
/// let mut out = Vec::new();
/// gmp_runtime::debug::dump(&mut out).unwrap();
/// assert!(String::from_utf8(out).unwrap().starts_with("goroutine"));
/// ```
pub fn dump<W: Write>(w: &mut W) -> io::Result<()> {
    // One dump at a time: a goroutine lent to one dumper cannot be borrowed by another.
    let _one = DUMPING.lock().unwrap_or_else(|e| e.into_inner());
    let me = crate::proc::running_g().map(|g| g.id);
    if me.is_none() {
        writeln!(w, "goroutine 0 [running (calling thread)]:")?;
        write_backtrace(w, &Backtrace::force_capture(), false)?;
        writeln!(w)?;
    }
    for sched in runtimes() {
        dump_runtime(w, &sched, me)?;
    }
    Ok(())
}

/// One runtime's goroutines, for the deadlock report (one dump at a time, as [`dump`]).
pub(crate) fn dump_one_runtime<W: Write>(w: &mut W, sched: &Arc<Sched>) -> io::Result<()> {
    let _one = DUMPING.lock().unwrap_or_else(|e| e.into_inner());
    dump_runtime(w, sched, None)
}

/// One runtime's goroutines; the caller holds `DUMPING`.
fn dump_runtime<W: Write>(w: &mut W, sched: &Arc<Sched>, me: Option<u64>) -> io::Result<()> {
    let now = crate::timers::coarse_nanos();
    let mut listed = 0usize;
    // Running goroutines: from the Ms, by id only (they are not ours to touch).
    let mut running: Vec<u64> = sched
        .allm
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .map(|m| m.curg_id.load(Ordering::Relaxed))
        .filter(|&id| id != 0)
        .collect();
    running.sort_unstable();
    running.dedup();
    let mut gs = sched.registry.all();
    // Runnable goroutines that never parked are in no registry: take them out of the
    // run queues for the listing (put back below).
    let queued = take_queued(sched);
    for g in &queued {
        if !gs.iter().any(|r| Arc::ptr_eq(r, g)) {
            gs.push(g.clone());
        }
    }
    gs.sort_by_key(|g| g.id);
    for id in &running {
        if gs.iter().any(|g| g.id == *id) {
            continue; // listed below, with its name
        }
        writeln!(w, "goroutine {id} [running]:")?;
        if Some(*id) == me {
            write_backtrace(w, &Backtrace::force_capture(), false)?;
        }
        writeln!(w)?;
        listed += 1;
    }
    for g in &gs {
        if g.status() == Status::Dead {
            continue;
        }
        listed += 1;
        write_goroutine(w, sched, g, me, now)?;
    }
    drop(gs);
    if !queued.is_empty() {
        sched.global.push_batch(queued);
        sched.wakep();
    }
    let unlisted = sched.num_goroutine().saturating_sub(listed);
    if unlisted > 0 {
        // Goroutines between a queue and an M while we looked (a thief's hands, or
        // just spawned): Go stops the world for a dump; we do not.
        writeln!(
            w,
            "({unlisted} goroutine(s) in transit between run queues were not listed)\n"
        )?;
    }
    Ok(())
}

/// The runnable goroutines that have never parked are in no registry (spawning one
/// takes no lock). Go stops the world to list them; we take them out of every P's run
/// queue with the thieves' own protocol (`runnext` included) and out of the global
/// queue, so that the dump owns them while it reads them. The caller puts them back on
/// the global queue: they run a moment later, perhaps on another P. A P that keeps
/// refilling its queue is visited a bounded number of times.
fn take_queued(sched: &Sched) -> Vec<crate::g::GRef> {
    let (scratch, _) = gmp_queue::local::<crate::g::GRef>();
    let mut out = Vec::new();
    for pp in sched.allp.iter() {
        for _ in 0..16 {
            match pp.stealer.steal_into(&scratch, true) {
                Some(g) => {
                    out.push(g);
                    out.extend(scratch.drain());
                }
                None => break,
            }
        }
    }
    out.extend(sched.global.drain());
    out
}

fn write_goroutine<W: Write>(
    w: &mut W,
    sched: &Arc<Sched>,
    g: &Arc<G>,
    me: Option<u64>,
    now: u64,
) -> io::Result<()> {
    let status = g.status();
    let mut state = match status {
        Status::Waiting => g
            .wait_reason()
            .map_or("waiting", |r| r.as_str())
            .to_string(),
        Status::Running => "running".into(),
        Status::Syscall => "syscall".into(),
        Status::Runnable => "runnable".into(),
        Status::Idle => "idle".into(),
        Status::Dead => "dead".into(),
    };
    if status == Status::Waiting {
        let waited = now.saturating_sub(g.parked_at.load(Ordering::Relaxed)) / 1_000_000_000;
        if waited >= 60 {
            state.push_str(&format!(", {} minutes", waited / 60));
        }
    }
    write!(w, "goroutine {} [{state}]", g.id)?;
    if let Some(n) = g.name() {
        write!(w, " ('{n}')")?;
    }
    writeln!(w, ":")?;
    if Some(g.id) == me {
        write_backtrace(w, &Backtrace::force_capture(), false)?;
    } else if status == Status::Waiting {
        match capture_parked(sched, g) {
            Some(bt) => write_backtrace(w, &bt, true)?,
            None => writeln!(w, "\t(woken just now: no stack)")?,
        }
    }
    if let Some(l) = g.created_by() {
        writeln!(w, "created by {}:{}", l.file(), l.line())?;
    }
    writeln!(w)
}

/// Borrows a parked goroutine and has it take its own backtrace (module docs).
fn capture_parked(sched: &Arc<Sched>, g: &Arc<G>) -> Option<Backtrace> {
    if !g.park.begin_capture() {
        return None;
    }
    // We own the G now: it is parked (its registers saved, its M gone) and no waker
    // can ready it until `end_capture`.
    g.capture.set(true);
    // SAFETY: `begin_capture` made us the G's unique owner (g.rs module docs): nobody
    // else resumes or touches its coroutine until we give it back.
    let co = unsafe { g.co() };
    let bt = match co.as_mut() {
        Some(co) if co.is_suspended() => {
            // The goroutine runs `capture_backtrace` on its own stack, on this thread,
            // and switches straight back (proc.rs `suspend`).
            let _ = co.resume();
            take_captured()
        }
        _ => None,
    };
    g.capture.set(false);
    if !g.park.end_capture() {
        // Woken while lent to us: wake it as its waker would have.
        if !g.abandoned.load(Ordering::Acquire) {
            // SAFETY: `end_capture` failed: we hold the G's wake-up, as a waker that
            // had found it `PARKED`; `g` keeps it alive.
            sched.ready(unsafe { g.take_park_ref() });
        }
    }
    bt
}

/// Called on a borrowed goroutine's own stack (proc.rs `suspend`).
///
/// The goroutine runs on the dumper's thread (the dumper resumed it), so a
/// thread-local carries the backtrace back: no field in every G for the rare dump.
pub(crate) fn capture_backtrace() {
    put_captured(Backtrace::force_capture());
}

std::thread_local! {
    /// The backtrace a borrowed goroutine took, for the dumper on the same thread.
    static CAPTURED: std::cell::Cell<Option<Backtrace>> = const { std::cell::Cell::new(None) };
}

// Never inlined: the goroutine side runs on a coroutine stack that may move between
// threads between suspensions (rust#33368: a thread-local's address must not be
// reused across a switch).
#[inline(never)]
fn put_captured(bt: Backtrace) {
    CAPTURED.with(|c| c.set(Some(bt)));
}

#[inline(never)]
fn take_captured() -> Option<Backtrace> {
    CAPTURED.with(|c| c.take())
}

/// Writes a backtrace in Go's layout (`function` then a tab-indented `file:line`),
/// without the frames of the capture itself and of the runtime below the body.
fn write_backtrace<W: Write>(w: &mut W, bt: &Backtrace, parked: bool) -> io::Result<()> {
    let text = bt.to_string();
    let mut frames: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(loc.to_string());
                }
            }
        } else if let Some((n, sym)) = t.split_once(": ") {
            if n.chars().all(|c| c.is_ascii_digit()) {
                frames.push((sym.to_string(), None));
            }
        }
    }
    // Parked: start at the frame that parked (below our capture machinery).
    let start = if parked {
        frames
            .iter()
            .position(|(s, _)| s.contains("gmp_runtime::proc::suspend"))
            .map_or(0, |i| i + 1)
    } else {
        frames
            .iter()
            .position(|(s, _)| s.contains("gmp_runtime::debug::"))
            .map(|i| {
                // Skip dump's own frames.
                frames[i..]
                    .iter()
                    .position(|(s, _)| {
                        !s.contains("gmp_runtime::debug::") && !s.contains("std::backtrace")
                    })
                    .map_or(i, |j| i + j)
            })
            .unwrap_or(0)
    };
    let mut end = frames
        .iter()
        .position(|(s, _)| {
            s.contains("gmp_runtime::spawn::")
                || s.contains("gmp_core::coroutine::coroutine_main")
                || s.starts_with("std::rt::lang_start")
                || s.contains("__rust_begin_short_backtrace")
        })
        .unwrap_or(frames.len());
    // The catch_unwind and closure-call glue between the runtime and the body.
    while end > start {
        let s = &frames[end - 1].0;
        let glue = s.starts_with("std::panic")
            || s.starts_with("core::ops::function::FnOnce::call_once")
            || s.starts_with("<core::panic::unwind_safe::AssertUnwindSafe")
            || s == "__rust_try";
        if !glue {
            break;
        }
        end -= 1;
    }
    for (sym, loc) in frames.iter().take(end).skip(start) {
        writeln!(w, "{sym}")?;
        if let Some(loc) = loc {
            writeln!(w, "\t{loc}")?;
        }
    }
    Ok(())
}

/// `GMP_TRACEBACK=all`: installs the SIGQUIT dump, once per process.
pub(crate) fn install_sigquit_dump_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if !std::env::var("GMP_TRACEBACK").is_ok_and(|v| v.trim() == "all") {
        return;
    }
    ONCE.call_once(|| {
        if let Err(e) = install_sigquit_dump() {
            eprintln!("gmp: GMP_TRACEBACK=all: cannot install the SIGQUIT handler: {e}");
        }
    });
}

/// The write end of the pipe the SIGQUIT handler writes to.
static SIGQUIT_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigquit(_: libc::c_int) {
    let fd = SIGQUIT_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: `write` is async-signal-safe; `b` outlives the call.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

fn install_sigquit_dump() -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe2` to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (rd, wr) = (fds[0], fds[1]);
    SIGQUIT_PIPE.store(wr, std::sync::atomic::Ordering::Relaxed);
    // The waiting thread is one of the runtime's own: the deadlock detector knows it.
    crate::sysmon::ALL_SERVICE_THREADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name("gmp-sigquit".into())
        .spawn(move || {
            let mut b = 0u8;
            loop {
                // SAFETY: `rd` is the pipe's read end, owned by this thread; `b` is a
                // valid one-byte buffer.
                let n = unsafe { libc::read(rd, (&mut b as *mut u8).cast(), 1) };
                if n == 1 {
                    break;
                }
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            let stderr = io::stderr();
            let mut e = stderr.lock();
            let _ = writeln!(e, "SIGQUIT: quit\n");
            let _ = dump(&mut e);
            let _ = e.flush();
            std::process::exit(2);
        });
    if let Err(e) = spawned {
        crate::sysmon::ALL_SERVICE_THREADS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        return Err(e);
    }
    // SAFETY: a zeroed `sigaction` is a valid starting point; we set the handler and
    // an empty mask, and `on_sigquit` only calls an async-signal-safe function.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigquit as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
