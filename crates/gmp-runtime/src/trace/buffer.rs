//! Per-thread event buffers and the session registry.
//!
//! # The hot path: no lock per event
//!
//! Every thread that records an event owns a [`ThreadBuf`]: a list of [`Chunk`]s, the
//! last of which it appends to. A chunk is a fixed array of slots and a published
//! length: the owner writes slot `len` (nobody else writes slots, and nobody reads a
//! slot at or past `len`), then stores `len + 1` with `Release`. Recording an event is
//! therefore a thread-local lookup, a clock read, a 48-byte copy and one store.
//!
//! The owner takes its buffer's lock only when its chunk is full (to append a new one,
//! twice as large, up to [`MAX_CHUNK`]); a thread records its first event of a session
//! under the registry lock (to register its buffer). [`stop`](super::stop) drains every
//! registered buffer — including those of threads that are idle, asleep or gone — by
//! reading each chunk's published length with `Acquire` and copying the slots below it.
//! An event being recorded at that instant is simply not in the trace.
//!
//! The atomics here are plain `std`: the trace is an observer, never part of the
//! scheduler's synchronisation, so loom models need not (and do not) see it.

use std::cell::{RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// True while a trace is recorded: the one load every event site pays.
pub(crate) static ENABLED: AtomicBool = AtomicBool::new(false);
/// The current session's number (0: none yet). A thread whose buffer belongs to an
/// older session registers a new one.
static SESSION: AtomicU64 = AtomicU64::new(0);
/// Events handed in so far this session (counted a chunk at a time).
static RECORDED: AtomicUsize = AtomicUsize::new(0);
/// Set when the session hit [`MAX_EVENTS`] and recording stopped early.
pub(crate) static TRUNCATED: AtomicBool = AtomicBool::new(false);

/// A session records at most this many events (48 bytes each: about 200 MB, a JSON
/// file of about 600 MB, near what Perfetto's UI loads); then recording stops and
/// [`stop`](super::stop) notes the truncation.
pub(crate) const MAX_EVENTS: usize = 4 << 20;
/// The first chunk of a thread holds this many events; each next one twice as many.
const FIRST_CHUNK: usize = 256;
/// The largest chunk.
const MAX_CHUNK: usize = 16 * 1024;

/// What happened (the JSON writer turns these into slices, instants and flows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// An M resumed goroutine `g` on P `p` (`arg` = M id).
    RunBegin,
    /// The goroutine this thread was running switched back (or entered a blocking call).
    RunEnd,
    /// The M (`arg` = M id) is now in state `s` (a name such as [`SPINNING`](super::SPINNING) or [`IDLE`](super::IDLE), or `None`).
    MState,
    /// Goroutine `g` was created; `p` the spawning P, or [`NO_P`].
    Spawn,
    /// Goroutine `g` parked (`s` = wait reason).
    Park,
    /// Goroutine `g` was made runnable.
    Unpark,
    /// P `p` stole `arg` goroutines from P `arg2`, running `g` first.
    Steal,
    /// sysmon took P `p` from M `arg` (`s` = why).
    Retake,
}

/// "Not on a P".
pub(crate) const NO_P: u32 = u32::MAX;
/// In a `RunBegin`'s `arg2`: record it only if the thread has no run open.
pub(crate) const RESUME: u32 = 1;

/// One recorded event (48 bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// Nanoseconds since the process epoch (`timers::nanos`).
    pub(crate) ts: u64,
    /// A goroutine id, or 0.
    pub(crate) g: u64,
    /// A static text: a wait reason, an M state, a retake's cause.
    pub(crate) s: Option<&'static str>,
    /// The runtime (`Sched::id`).
    pub(crate) pid: u32,
    /// A P index, or [`NO_P`].
    pub(crate) p: u32,
    /// Kind-specific (an M id, a count).
    pub(crate) arg: u32,
    /// Kind-specific (a victim P).
    pub(crate) arg2: u32,
    pub(crate) kind: Kind,
}

impl Event {
    pub(crate) fn new(kind: Kind, pid: u64, p: u32, g: u64) -> Event {
        Event {
            ts: 0,
            g,
            s: None,
            pid: pid as u32,
            p,
            arg: 0,
            arg2: 0,
            kind,
        }
    }
}

/// A fixed array of event slots with a published length (module docs).
pub(crate) struct Chunk {
    len: AtomicUsize,
    slots: Box<[UnsafeCell<MaybeUninit<Event>>]>,
}

// SAFETY: slot `i` is written only by the owning thread and only while `i >= len`;
// other threads read only slots below a `len` they loaded with `Acquire`, which the
// owner stored with `Release` after writing them, and the owner never writes a slot
// below `len` again. Readers and the writer therefore never touch the same slot
// concurrently, and readers see completed writes.
unsafe impl Sync for Chunk {}
// SAFETY: `Event` is `Send`; see above for the cells.
unsafe impl Send for Chunk {}

impl Chunk {
    fn new(cap: usize) -> Arc<Chunk> {
        Arc::new(Chunk {
            len: AtomicUsize::new(0),
            slots: (0..cap)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        })
    }

    /// Owner only: appends `e`; false if the chunk is full.
    fn push(&self, e: Event) -> bool {
        // Relaxed: only the owner (the caller) ever stores `len`.
        let i = self.len.load(Ordering::Relaxed);
        if i == self.slots.len() {
            return false;
        }
        // SAFETY: we are the chunk's owner and `i >= len`: no reader looks at slot `i`
        // until we publish it below (the `Sync` impl's protocol).
        unsafe { (*self.slots[i].get()).write(e) };
        self.len.store(i + 1, Ordering::Release);
        true
    }

    /// Copies the published events.
    fn read_into(&self, out: &mut Vec<Event>) {
        let n = self.len.load(Ordering::Acquire);
        for slot in &self.slots[..n] {
            // SAFETY: slots below the published length were written before the
            // `Release` store we acquired, and are never written again.
            out.push(unsafe { (*slot.get()).assume_init() });
        }
    }
}

/// One thread's events in one session.
pub(crate) struct ThreadBuf {
    /// The thread's name when it registered (for plain threads' tracks).
    pub(crate) name: String,
    /// A number for the thread, unique in the session.
    pub(crate) serial: u32,
    /// `(runtime id, M id)` if the thread was an M when it registered.
    pub(crate) m: Option<(u32, u32)>,
    /// Its chunks, oldest first; the owner appends to the last. Locked by the owner only
    /// to add a chunk, and by `stop` to drain.
    chunks: Mutex<Vec<Arc<Chunk>>>,
}

impl ThreadBuf {
    /// Every event the thread has published, in the order it recorded them. The
    /// chunks are let go (the owner keeps only its current one, until it next records
    /// in a new session or exits), so a stopped trace does not pin its memory.
    pub(crate) fn drain(&self) -> Vec<Event> {
        let chunks = std::mem::take(&mut *self.chunks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::new();
        for c in chunks.iter() {
            c.read_into(&mut out);
        }
        out
    }
}

/// A recording session (between `start` and `stop`).
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) path: std::path::PathBuf,
    pub(crate) file: std::fs::File,
    pub(crate) threads: Vec<Arc<ThreadBuf>>,
    /// Started by `GMP_TRACE` (stopped at process exit) rather than by `start`.
    pub(crate) from_env: bool,
}

/// The session, if one is recording.
pub(crate) static REGISTRY: Mutex<Option<Session>> = Mutex::new(None);

/// Locks the registry (a panic while it was held cannot leave it inconsistent: every
/// update is a single push or take).
pub(crate) fn registry() -> std::sync::MutexGuard<'static, Option<Session>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes `session` the recording one and turns recording on. The caller holds the
/// registry lock (`slot`) and has checked that no session records.
pub(crate) fn begin(slot: &mut Option<Session>, mut session: Session) {
    let id = SESSION.load(Ordering::Relaxed) + 1;
    session.id = id;
    *slot = Some(session);
    RECORDED.store(0, Ordering::Relaxed);
    TRUNCATED.store(false, Ordering::Relaxed);
    SESSION.store(id, Ordering::SeqCst);
    ENABLED.store(true, Ordering::SeqCst);
}

/// Turns recording off and takes the session.
pub(crate) fn end(slot: &mut Option<Session>) -> Option<Session> {
    ENABLED.store(false, Ordering::SeqCst);
    slot.take()
}

/// The calling thread's buffer for the current session.
struct Local {
    session: u64,
    buf: Arc<ThreadBuf>,
    chunk: Arc<Chunk>,
    /// The M state last recorded (repeats are dropped).
    mstate: Option<&'static str>,
    /// A `RunBegin` was recorded and no `RunEnd` since.
    run_open: bool,
}

std::thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Records `e` (stamped now) in the calling thread's buffer. Never inlined: it reads
/// a thread-local, and a goroutine may move to another thread between two calls (see
/// `m.rs` on cached thread-local addresses).
#[inline(never)]
pub(crate) fn record(mut e: Event) {
    e.ts = crate::timers::nanos(Instant::now());
    // `try_with`: a thread being torn down records nothing.
    let _ = LOCAL.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return;
        };
        // Relaxed: a session change is also published by the registry lock that
        // `register` takes; a stale read costs at most one event in the old buffer.
        let session = SESSION.load(Ordering::Relaxed);
        if l.as_ref().is_none_or(|l| l.session != session) {
            *l = register(session);
        }
        let Some(local) = l.as_mut() else { return };
        match e.kind {
            Kind::MState if e.s == local.mstate => return,
            Kind::MState => local.mstate = e.s,
            Kind::RunBegin if e.arg2 == RESUME && local.run_open => return,
            Kind::RunBegin => {
                local.run_open = true;
                local.mstate = None;
            }
            Kind::RunEnd => {
                local.run_open = false;
                local.mstate = None;
            }
            _ => {}
        }
        if !local.chunk.push(e) {
            rotate(local);
            local.chunk.push(e);
        }
    });
}

/// The chunk is full: count it, and append a larger one.
#[cold]
fn rotate(local: &mut Local) {
    let full = local.chunk.slots.len();
    // Relaxed: a statistic that bounds memory; exactness does not matter.
    if RECORDED.fetch_add(full, Ordering::Relaxed) + full >= MAX_EVENTS {
        TRUNCATED.store(true, Ordering::Relaxed);
        ENABLED.store(false, Ordering::Relaxed);
    }
    let chunk = Chunk::new((full * 2).min(MAX_CHUNK));
    local
        .buf
        .chunks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(chunk.clone());
    local.chunk = chunk;
}

/// Registers a buffer for this thread in session `session`; `None` if that session
/// is no longer the recording one.
#[cold]
fn register(session: u64) -> Option<Local> {
    let mut reg = registry();
    let s = reg.as_mut().filter(|s| s.id == session)?;
    let m = crate::m::ctx().map(|c| (c.sched.id as u32, c.m.id as u32));
    let chunk = Chunk::new(FIRST_CHUNK);
    let buf = Arc::new(ThreadBuf {
        name: thread_name(),
        serial: s.threads.len() as u32,
        m,
        chunks: Mutex::new(vec![chunk.clone()]),
    });
    s.threads.push(buf.clone());
    Some(Local {
        session,
        buf,
        chunk,
        mstate: None,
        run_open: false,
    })
}

/// The OS thread's name (`prctl(PR_GET_NAME)`: safe even while the thread's
/// thread-locals are being destroyed, unlike `std::thread::current`).
fn thread_name() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes (NUL included) into the buffer.
    let r = unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr() as libc::c_ulong) };
    if r != 0 {
        return "thread".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
