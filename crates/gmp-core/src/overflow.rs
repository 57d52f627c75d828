//! Stack-overflow reporting: a SIGSEGV/SIGBUS handler for guard-page hits, and the red-zone
//! check for canary stacks.
//!
//! # How an overflow is recognised
//!
//! Every thread that resumes coroutines keeps, in a thread-local, a pointer to the
//! [`StackInfo`] of the coroutine it is running (set by `resume` before switching in,
//! restored after it switches back; nested coroutines restore their parent's). The info
//! lives in the coroutine's header at the top of its own stack and holds its label (id and
//! name), its usable size and its bottom address.
//!
//! When SIGSEGV or SIGBUS arrives, the handler reads that pointer. If the faulting address
//! lies in the protection page(s) right below the running coroutine's stack — the guard
//! page of a guarded stack; for a canary stack, its red zone or the guard page of its chunk
//! below it — it writes
//!
//! ```text
//! goroutine <id> ('<name>') has overflowed its stack (<size> bytes)
//! ```
//!
//! to stderr and aborts. Anything else is not ours: the handler passes the signal on to the
//! handler that was installed before it (Rust's own, which reports overflows of thread
//! stacks with its "thread '…' has overflowed its stack" message), or, if that was the
//! default action, restores the default action and returns so the fault recurs and kills
//! the process as it would have without us.
//!
//! Canary stacks mostly cannot fault (their neighbour below is another stack). For them the
//! resumer checks the red zone each time the coroutine switches out ([`check_canary`]), and
//! reports with the same message.
//!
//! # Async-signal safety
//!
//! The handler runs on an alternate signal stack (the faulting stack is unusable) and only
//! reads the thread-local pointer, formats integers into a buffer on its own stack, calls
//! `write(2)` and `abort(3)`, or chains. No allocation, no locks, no `std::io`.
//!
//! # Installation
//!
//! Lazily, on the first `resume` in the process (the handlers, once) and on each thread (an
//! alternate signal stack, unless the thread has one already — Rust gives one to the main
//! thread and to every `std::thread`; threads made otherwise get one of ours, freed when
//! the thread exits).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

use crate::stack::page_size;

/// What the overflow report needs to know about a coroutine. Lives in the coroutine's
/// header, at the top of its stack; written only while the coroutine is not running.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct StackInfo {
    pub(crate) id: u64,
    /// The name's UTF-8 bytes (a `Box<str>` that `Coroutine::set_label` leaked and the
    /// coroutine frees), or null for `<unnamed>`.
    pub(crate) name_ptr: *const u8,
    pub(crate) name_len: usize,
    /// Usable bytes of the stack.
    pub(crate) size: usize,
    /// Lowest usable address of the stack.
    pub(crate) bottom: usize,
    /// True for a canary stack (red zone below `bottom`, chunk guard possibly below that).
    pub(crate) canary: bool,
}

struct ThreadState {
    /// The running coroutine's info, or null.
    current: Cell<*const StackInfo>,
    /// True once this thread has an alternate signal stack and the handlers are installed.
    ready: Cell<bool>,
}

std::thread_local! {
    // `const` and without a destructor: accessing it is a plain TLS load, safe in a
    // signal handler.
    static THREAD: ThreadState = const {
        ThreadState { current: Cell::new(ptr::null()), ready: Cell::new(false) }
    };
}

/// Marks `info` as the coroutine running on this thread; returns the previous one, to be
/// handed to [`leave`]. Installs the handlers and this thread's alternate stack on first
/// use.
///
/// Called by the resumer, on its own stack: the resumer does not change threads across the
/// switch, so it may keep using the thread-local.
#[inline]
pub(crate) fn enter(info: *const StackInfo) -> *const StackInfo {
    THREAD.with(|t| {
        if !t.ready.get() {
            setup_thread();
            t.ready.set(true);
        }
        t.current.replace(info)
    })
}

/// Restores the running coroutine recorded before [`enter`].
///
/// Never inlined: it runs right after the switch back from a coroutine, and the resumer may
/// itself be a coroutine (a `Coroutine` nested in a goroutine) that was suspended meanwhile
/// — the nested coroutine parked the goroutine — and resumed on another thread. Inlined,
/// the compiler may reuse the thread-local's address computed by [`enter`] on the first
/// thread (it assumes a function never changes threads; under the general-dynamic TLS model
/// of a `dylib` that address is a plain pointer), and write the first thread's state from
/// the second. Out of line, the address is computed afresh on the thread that runs it.
#[inline(never)]
pub(crate) fn leave(prev: *const StackInfo) {
    THREAD.with(|t| t.current.set(prev));
}

#[cold]
#[inline(never)]
fn setup_thread() {
    static HANDLERS: Once = Once::new();
    HANDLERS.call_once(install_handlers);
    install_altstack();
}

// ---------------------------------------------------------------------------------------
// The red-zone check.

/// Aborts with the overflow message if the red zone of `info`'s canary stack has been
/// written. Called by the resumer after every switch out of a coroutine.
///
/// # Safety
///
/// `info` must describe a live canary stack (its red zone mapped and readable).
#[inline]
pub(crate) unsafe fn check_canary(info: *const StackInfo) {
    // SAFETY: the caller guarantees `info` is valid.
    let bottom = unsafe { (*info).bottom };
    let words = (bottom - crate::stack::CANARY_BYTES) as *const u64;
    let mut acc = 0u64;
    for i in 0..crate::stack::CANARY_BYTES / 8 {
        // SAFETY: the red zone is the mapped page right below `bottom`; CANARY_BYTES is
        // less than a page. Volatile: the compiler must not assume the values it last
        // saw (none: nothing in Rust writes there).
        acc |= unsafe { ptr::read_volatile(words.add(i)) };
    }
    if acc != 0 {
        // SAFETY: `info` is valid (caller).
        unsafe { report_overflow(info) };
    }
}

// ---------------------------------------------------------------------------------------
// The report.

/// Writes the overflow message for `info` to stderr and aborts. Async-signal-safe.
// Go: runtime.newstack's "goroutine stack exceeds limit" / "stack overflow" fatal error.
///
/// # Safety
///
/// `info` must be valid, its name (if any) readable.
pub(crate) unsafe fn report_overflow(info: *const StackInfo) -> ! {
    let mut buf = [0u8; 512];
    let mut w = Writer {
        buf: &mut buf,
        len: 0,
    };
    // SAFETY: guaranteed by the caller.
    let info = unsafe { &*info };
    w.put(b"goroutine ");
    w.put_u64(info.id);
    w.put(b" ('");
    if info.name_ptr.is_null() {
        w.put(b"<unnamed>");
    } else {
        // SAFETY: the name is owned by the coroutine, which cannot be dropped while it
        // runs (or while the resumer checks its canary).
        w.put(unsafe { std::slice::from_raw_parts(info.name_ptr, info.name_len) });
    }
    w.put(b"') has overflowed its stack (");
    w.put_u64(info.size as u64);
    w.put(b" bytes)\n");
    let len = w.len;
    write_stderr(&buf[..len]);
    // SAFETY: abort is async-signal-safe and has no preconditions.
    unsafe { libc::abort() }
}

/// Writes `gmp: <what> at 0x<addr>` to stderr and aborts: a fault in a stack chunk that
/// is no overflow of a running coroutine (see `uffd.rs`). Async-signal-safe.
///
/// # Safety
///
/// None beyond aborting the process; `unsafe` only to mark it as a last resort.
pub(crate) unsafe fn report_fatal(what: &[u8], addr: usize) -> ! {
    let mut buf = [0u8; 256];
    let mut w = Writer {
        buf: &mut buf,
        len: 0,
    };
    w.put(b"gmp: ");
    w.put(what);
    w.put(b" at 0x");
    w.put_hex(addr as u64);
    w.put(b"\n");
    let len = w.len;
    write_stderr(&buf[..len]);
    // SAFETY: abort is async-signal-safe and has no preconditions.
    unsafe { libc::abort() }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Keep room for the end of the message: truncate long names.
        let room = self.buf.len().saturating_sub(self.len + 64);
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn put_hex(&mut self, v: u64) {
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * i)) & 0xF;
            *d = b"0123456789abcdef"[nibble as usize];
        }
        let first = digits.iter().position(|d| *d != b'0').unwrap_or(15);
        let n = 16 - first;
        self.buf[self.len..self.len + n].copy_from_slice(&digits[first..]);
        self.len += n;
    }

    fn put_u64(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let n = digits.len() - i;
        self.buf[self.len..self.len + n].copy_from_slice(&digits[i..]);
        self.len += n;
    }
}

fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing a valid buffer to fd 2; write(2) is async-signal-safe.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            // SAFETY: reading errno is async-signal-safe.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

// ---------------------------------------------------------------------------------------
// The signal handler.

/// The handlers that were installed before ours, for chaining. Written once, before our
/// handler is installed (inside the `Once`), read only by the handler afterwards.
struct PrevActions([std::cell::UnsafeCell<MaybeUninit<libc::sigaction>>; 2]);
// SAFETY: see the type's docs: a single write strictly before any read.
unsafe impl Sync for PrevActions {}

static PREV: PrevActions = PrevActions([
    std::cell::UnsafeCell::new(MaybeUninit::zeroed()),
    std::cell::UnsafeCell::new(MaybeUninit::zeroed()),
]);

fn prev_slot(sig: libc::c_int) -> *mut libc::sigaction {
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    PREV.0[i].get().cast()
}

fn install_handlers() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: `sigaction` is plain data for which all-zeroes is valid; the previous
        // action is stored before ours is installed (see `PrevActions`); our handler is
        // an `extern "C"` function with the SA_SIGINFO signature.
        unsafe {
            if libc::sigaction(sig, ptr::null(), prev_slot(sig)) != 0 {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, ptr::null_mut());
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    // `try_with`: never panic in a signal handler (it cannot fail for this const TLS).
    let current = THREAD.try_with(|t| t.current.get()).unwrap_or(ptr::null());
    if !current.is_null() {
        // SAFETY: `current` is the running coroutine's header, valid while it runs.
        let (bottom, canary) = unsafe { ((*current).bottom, (*current).canary) };
        let page = page_size();
        // A guarded stack: the guard page. A canary stack: its red zone, and the chunk's
        // guard page below it when it is the lowest stack of its chunk.
        let span = if canary { 2 * page } else { page };
        if addr < bottom && addr >= bottom.saturating_sub(span) {
            // SAFETY: as above.
            unsafe { report_overflow(current) };
        }
    }
    // SAFETY: `sig` is SIGSEGV or SIGBUS, whose previous action was saved before this
    // handler could run; `info` and `ctx` are the kernel's.
    unsafe { chain(sig, info, ctx) };
}

/// Passes a fault that is not a coroutine overflow to whoever handled it before us.
///
/// # Safety
///
/// Only from [`handler`], with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: written once before our handler was installed.
    let prev = unsafe { &*prev_slot(sig) };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs again and
        // the kernel kills the process with the original signal, as without us. (An
        // ignored SIGSEGV would loop forever on the same instruction.)
        // SAFETY: installing SIG_DFL has no preconditions; sigaction is async-signal-safe.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO, sa_sigaction holds a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO, sa_sigaction holds a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

// ---------------------------------------------------------------------------------------
// Alternate signal stacks.

/// An alternate signal stack we mapped for this thread; unmapped at thread exit.
struct AltStack {
    map: Cell<(usize, usize)>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let (base, len) = self.map.get();
        if base == 0 {
            return;
        }
        // SAFETY: plain syscalls on our own mapping. The alternate stack is disabled
        // first (if it is still ours), so no signal can land on unmapped memory.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(ptr::null(), &mut cur);
            if cur.ss_sp as usize == base + page_size() {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&disable, ptr::null_mut());
                libc::munmap(base as *mut libc::c_void, len);
            }
            // Otherwise someone replaced it and may still use it: leak the mapping.
        }
    }
}

std::thread_local! {
    static ALT_STACK: AltStack = const { AltStack { map: Cell::new((0, 0)) } };
}

fn install_altstack() {
    // SAFETY: querying the current alternate stack has no preconditions.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(ptr::null(), &mut cur) } != 0 {
        return;
    }
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return; // the thread has one (Rust's, or the embedder's): use it
    }
    let page = page_size();
    // SAFETY: getauxval has no preconditions; 0 if the kernel does not say.
    let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    let size = (min.max(libc::SIGSTKSZ) + 32 * 1024).div_ceil(page) * page;
    let len = size + page;
    // SAFETY: a fresh anonymous mapping; its lowest page becomes a guard page.
    unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return; // overflows on this thread will be a plain SIGSEGV; nothing else breaks
        }
        libc::mprotect(p, page, libc::PROT_NONE);
        let ss = libc::stack_t {
            ss_sp: p.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: size,
        };
        if libc::sigaltstack(&ss, ptr::null_mut()) != 0 {
            libc::munmap(p, len);
            return;
        }
        // If the TLS is already gone (thread exiting) the mapping leaks; harmless.
        let _ = ALT_STACK.try_with(|a| a.map.set((p as usize, len)));
    }
}
