//! The userfaultfd watch over chunk stacks: every first touch of a page of a chunk reaches
//! our handler thread, which zero-fills pages of a stack's usable range and reports an
//! overflow on a touch of the never-populated guard page below each stack.
//!
//! See the module docs of [`crate::stack`] for the design and its numbers. This module
//! holds the mechanism:
//!
//! - one userfaultfd per process (per `fork`ed child: see [`fd_locked`]), opened in full mode
//!   (kernel-mode accesses, i.e. system calls writing into a stack, are resolved too), in
//!   `MISSING` mode, registered on whole chunks (one registration per chunk: registering
//!   page by page would split the memory maps, the very limit chunks avoid);
//! - a lock-free table from a chunk's 64 MiB-aligned address to its [`ChunkMeta`], so the
//!   handler finds the stack (and its owner's overflow label) of a faulting address without
//!   a lock and without allocating: any thread holding a lock or inside `malloc` may be the
//!   one blocked on a fault;
//! - the handler thread: `read` a fault, look up, `UFFDIO_COPY` a zero page or report.
//!
//! The handler thread never touches chunk memory except the overflowing stack's header
//! (its top page, populated since the stack was handed out), so it can never wait on
//! itself.

use std::io;
use std::ptr;
// Not shimmed: process-wide state of mmap'd memory and a kernel object; no loom model can
// run on it, and these statics must be `const` initialised.
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::overflow::{self, StackInfo};
use crate::stack::page_size;

// ---------------------------------------------------------------------------------------
// The kernel interface (linux/userfaultfd.h), x86-64 ioctl numbers.

const UFFD_API: u64 = 0xAA;
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_AA02;
const UFFDIO_COPY: libc::c_ulong = 0xC028_AA03;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// `struct uffd_msg` for a page fault: event, padding, then `pagefault.flags`,
/// `pagefault.address` and the thread-id union.
#[repr(C)]
#[derive(Clone, Copy)]
struct UffdMsg {
    event: u8,
    _reserved1: u8,
    _reserved2: u16,
    _reserved3: u32,
    flags: u64,
    address: u64,
    _feat: u64,
}

// ---------------------------------------------------------------------------------------
// Chunks and their table.

/// Alignment and table granule of userfaultfd chunks: 64 MiB.
pub(crate) const GRANULE_SHIFT: u32 = 26;
/// Table entries: the 47-bit user address space in 64 MiB granules.
const TABLE_LEN: usize = 1 << (47 - GRANULE_SHIFT);

/// Slot states in [`ChunkMeta::slots`]: free, handed out without an overflow label, or
/// the address of the owning coroutine's [`StackInfo`].
pub(crate) const SLOT_FREE: usize = 0;
pub(crate) const SLOT_TAKEN: usize = 1;

/// One registered chunk. Leaked: chunks are never unmapped, so the handler may read a
/// `ChunkMeta` at any time without coordination.
pub(crate) struct ChunkMeta {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) slot_len: usize,
    pub(crate) nslots: usize,
    /// One state per slot (see [`SLOT_FREE`]).
    pub(crate) slots: Box<[AtomicUsize]>,
}

/// The table: `TABLE_LEN` pointers, mmap'd on first use (16 MiB of address space, one
/// page committed per 512 granules in use). Written under [`STATE`], read lock-free.
static TABLE: AtomicPtr<AtomicPtr<ChunkMeta>> = AtomicPtr::new(ptr::null_mut());

fn table() -> io::Result<*const AtomicPtr<ChunkMeta>> {
    // Acquire: pairs with the Release store below; the mapping is initialised (zeroed)
    // before its address is published.
    let t = TABLE.load(Ordering::Acquire);
    if !t.is_null() {
        return Ok(t);
    }
    // SAFETY: a fresh anonymous mapping; zero-filled memory is a valid array of null
    // `AtomicPtr`s.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            TABLE_LEN * std::mem::size_of::<AtomicPtr<ChunkMeta>>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Only called under STATE's lock: no racing initialiser. Release: see above.
    TABLE.store(p.cast(), Ordering::Release);
    Ok(p.cast())
}

/// The chunk containing `addr`, if it is a userfaultfd chunk. Lock-free, allocation-free.
pub(crate) fn chunk_of(addr: usize) -> Option<&'static ChunkMeta> {
    // Acquire: see `table`.
    let t = TABLE.load(Ordering::Acquire);
    let idx = addr >> GRANULE_SHIFT;
    if t.is_null() || idx >= TABLE_LEN {
        return None;
    }
    // SAFETY: `t` is the table mapping of TABLE_LEN entries; idx is in bounds.
    let m = unsafe { (*t.add(idx)).load(Ordering::Acquire) };
    // SAFETY: entries point to leaked ChunkMetas (never freed); Acquire pairs with the
    // Release store in `register_chunk`, so the meta's fields are visible.
    (!m.is_null()).then(|| unsafe { &*m })
}

// ---------------------------------------------------------------------------------------
// The userfaultfd and its handler thread.

struct State {
    /// The process that opened `fd` (a `fork`ed child must open its own).
    pid: u32,
    fd: i32,
    /// Every chunk registered so far (to re-register them in a forked child).
    chunks: Vec<&'static ChunkMeta>,
}

/// Allocation-side state. The handler never takes this lock.
static STATE: Mutex<Option<State>> = Mutex::new(None);
/// The fd and its pid, for the allocation fast path ([`prefill_top`]) without the lock or
/// a `getpid`: `FD_PID` is 0 until the fd is opened and again in a `fork`ed child (set by
/// [`after_fork_child`]), which sends the child through [`fd_locked`].
static FD: AtomicI32 = AtomicI32::new(-1);
static FD_PID: AtomicU32 = AtomicU32::new(0);

/// `pthread_atfork` child handler: the inherited fd is the parent's. Async-signal-safe.
extern "C" fn after_fork_child() {
    // Relaxed: the child has one thread now.
    FD_PID.store(0, Ordering::Relaxed);
}
/// The errno with which opening failed in process `REFUSED_PID` (the kernel's answer does
/// not change: ask once per process).
static REFUSED: AtomicI32 = AtomicI32::new(0);
static REFUSED_PID: AtomicU32 = AtomicU32::new(0);

fn getpid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Opens a userfaultfd in full mode (kernel-mode faults included) and starts its handler
/// thread. Errors when the kernel refuses (EPERM unprivileged with
/// `vm.unprivileged_userfaultfd = 0`, ENOSYS on kernels without it).
fn open() -> io::Result<i32> {
    // SAFETY: the syscall takes only flags. No UFFD_USER_MODE_ONLY: see the stack module
    // docs (a system call writing into an untouched stack page must work, not EFAULT).
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) } as i32;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut api = UffdioApi {
        api: UFFD_API,
        features: 0,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_API with a valid struct on a userfaultfd.
    if unsafe { libc::ioctl(fd, UFFDIO_API, &mut api) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    static ATFORK: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers an async-signal-safe handler (one atomic store).
    ATFORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_child));
    });
    let spawned = std::thread::Builder::new()
        .name("gmp-userfaultfd".into())
        .stack_size(64 * 1024)
        .spawn(move || handler_loop(fd));
    if let Err(e) = spawned {
        // SAFETY: our fd, not yet used by anyone.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

/// The userfaultfd of this process, opened (and, in a `fork`ed child, re-opened with every
/// inherited chunk registered again) if needed. The caller holds `STATE`'s lock.
fn fd_locked(state: &mut Option<State>) -> io::Result<i32> {
    let pid = getpid();
    if let Some(s) = state.as_ref() {
        if s.pid == pid {
            return Ok(s.fd);
        }
    }
    // First use, or a forked child: the inherited fd belongs to the parent's address space
    // (using it would fill pages of the parent!), and the kernel dropped the child's
    // registrations at fork. Open our own and register the inherited chunks again.
    // Relaxed: both are written and read under STATE's lock.
    if REFUSED_PID.load(Ordering::Relaxed) == pid {
        return Err(io::Error::from_raw_os_error(
            REFUSED.load(Ordering::Relaxed),
        ));
    }
    let fd = match open() {
        Ok(fd) => fd,
        Err(e) => {
            // Relaxed: as above.
            REFUSED.store(e.raw_os_error().unwrap_or(libc::ENOSYS), Ordering::Relaxed);
            REFUSED_PID.store(pid, Ordering::Relaxed);
            return Err(e);
        }
    };
    let chunks = match state.take() {
        Some(old) => {
            // SAFETY: the parent's fd, a copy we own in this process.
            unsafe { libc::close(old.fd) };
            old.chunks
        }
        None => Vec::new(),
    };
    for c in &chunks {
        // A chunk that cannot be registered again stays unwatched in this child: abort
        // rather than run stacks without overflow detection.
        if let Err(e) = register_range(fd, c.start, c.len) {
            panic!("gmp: cannot watch the inherited stack chunks in a forked child: {e}");
        }
    }
    // Relaxed: published with the pid below; `prefill` checks both and falls back to the
    // locked path on any mismatch.
    FD.store(fd, Ordering::Relaxed);
    FD_PID.store(pid, Ordering::Release);
    *state = Some(State { pid, fd, chunks });
    Ok(fd)
}

/// Checks that userfaultfd works here (opening it and the handler on first use).
pub(crate) fn available() -> io::Result<()> {
    fd_locked(&mut STATE.lock()).map(|_| ())
}

fn register_range(fd: i32, start: usize, len: usize) -> io::Result<()> {
    let mut reg = UffdioRegister {
        range: UffdioRange {
            start: start as u64,
            len: len as u64,
        },
        mode: UFFDIO_REGISTER_MODE_MISSING,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_REGISTER on a range of our own mapping.
    if unsafe { libc::ioctl(fd, UFFDIO_REGISTER, &mut reg) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps a new chunk of `nslots` slots of `slot_len` bytes, 64 MiB aligned, registered with
/// the userfaultfd and entered in the table.
pub(crate) fn new_chunk(slot_len: usize) -> io::Result<&'static ChunkMeta> {
    let granule = 1usize << GRANULE_SHIFT;
    let len = slot_len
        .checked_next_multiple_of(granule)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stack chunk too large"))?;
    let nslots = len / slot_len;
    let mut state = STATE.lock();
    let fd = fd_locked(&mut state)?;
    let table = table()?;
    // Over-map by one granule and trim, for alignment (no extra memory map remains).
    let over = len + granule;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let raw = raw as usize;
    let start = raw.next_multiple_of(granule);
    // SAFETY: both ranges are parts of the mapping just made, outside [start, start+len).
    unsafe {
        if start > raw {
            libc::munmap(raw as *mut libc::c_void, start - raw);
        }
        let end = raw + over;
        if end > start + len {
            libc::munmap((start + len) as *mut libc::c_void, end - (start + len));
        }
    }
    let fail = |e: io::Error| {
        // SAFETY: our mapping, not handed out.
        unsafe { libc::munmap(start as *mut libc::c_void, len) };
        Err(e)
    };
    if (start + len - 1) >> GRANULE_SHIFT >= TABLE_LEN {
        return fail(io::Error::other(
            "stack chunk mapped above the 47-bit address space",
        ));
    }
    // MADV_NOHUGEPAGE: never a 2 MiB page for one touched stack page (and no huge-page
    // fill that would populate guard pages behind the handler's back). Whole chunk: a
    // sub-range would split the mapping.
    // SAFETY: our mapping.
    if unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE) } != 0 {
        return fail(io::Error::last_os_error());
    }
    if let Err(e) = register_range(fd, start, len) {
        return fail(e);
    }
    let meta: &'static ChunkMeta = Box::leak(Box::new(ChunkMeta {
        start,
        len,
        slot_len,
        nslots,
        slots: (0..nslots).map(|_| AtomicUsize::new(SLOT_FREE)).collect(),
    }));
    for g in (start >> GRANULE_SHIFT)..((start + len) >> GRANULE_SHIFT) {
        // SAFETY: `table` has TABLE_LEN entries and g < TABLE_LEN (checked above).
        // Release: publishes the meta's fields to the handler (see `chunk_of`).
        unsafe { (*table.add(g)).store(ptr::from_ref(meta).cast_mut(), Ordering::Release) };
    }
    if let Some(s) = state.as_mut() {
        s.chunks.push(meta);
    }
    Ok(meta)
}

/// How many pages the handler fills at once for a fault deep in a stack (see `resolve`).
const BATCH_PAGES: usize = 4;

/// Zeros, the source of every fill.
#[repr(C, align(4096))]
struct ZeroPages([u8; 4096 * BATCH_PAGES]);
static ZERO: ZeroPages = ZeroPages([0; 4096 * BATCH_PAGES]);

/// Fills the missing page at `page_addr` with zeros. `Ok(true)` if filled, `Ok(false)` if
/// it was present already. Kernel errors other than EEXIST/EAGAIN are returned.
fn copy_zero(fd: i32, page_addr: usize) -> io::Result<bool> {
    copy_zeros(fd, page_addr, 1)
}

/// Fills `pages` missing pages from `addr` up with zeros (`Ok(false)`: the kernel found one
/// present and stopped there; the pages below it are filled).
fn copy_zeros(fd: i32, addr: usize, pages: usize) -> io::Result<bool> {
    debug_assert!(pages <= BATCH_PAGES && page_size() == 4096);
    loop {
        let mut c = UffdioCopy {
            dst: addr as u64,
            src: ZERO.0.as_ptr() as u64,
            len: (pages * page_size()) as u64,
            mode: 0,
            copy: 0,
        };
        // SAFETY: UFFDIO_COPY of one page from a static zero page into a registered page
        // of our own chunk.
        if unsafe { libc::ioctl(fd, UFFDIO_COPY, &mut c) } == 0 {
            return Ok(true);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EEXIST) => return Ok(false),
            Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// Populates the page below `top` (a slot's top page, about to receive a coroutine's
/// header) from the calling thread, so that creating a coroutine never waits on the
/// handler thread. Best effort: if it fails, the first touch goes through the handler.
pub(crate) fn prefill_top(top: usize) {
    let page = page_size();
    // Acquire: pairs with the Release store of FD_PID in `fd_locked`.
    let fd = if FD_PID.load(Ordering::Acquire) != 0 {
        FD.load(Ordering::Relaxed)
    } else {
        match fd_locked(&mut STATE.lock()) {
            Ok(fd) => fd,
            Err(_) => return,
        }
    };
    let _ = copy_zero(fd, top - page);
}

fn wake(fd: i32, page_addr: usize) {
    let mut r = UffdioRange {
        start: page_addr as u64,
        len: page_size() as u64,
    };
    // SAFETY: UFFDIO_WAKE on a range of a registered chunk.
    unsafe { libc::ioctl(fd, UFFDIO_WAKE, &mut r) };
}

/// The handler thread: resolves or reports every first touch of a chunk page.
// Go: runtime.morestack's overflow check ("stack overflow") has the same role; Go
// detects the overflow in the function prologue, we when the page below is first touched.
fn handler_loop(fd: i32) {
    let page = page_size();
    loop {
        let mut msg = std::mem::MaybeUninit::<UffdMsg>::uninit();
        // SAFETY: reading whole messages into a buffer of one message.
        let n = unsafe { libc::read(fd, msg.as_mut_ptr().cast(), std::mem::size_of::<UffdMsg>()) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
                // The fd was closed (a forked child replaced it): this thread is the
                // parent's and does not exist in the child; nothing to do.
                _ => return,
            }
        }
        if n as usize != std::mem::size_of::<UffdMsg>() {
            continue;
        }
        // SAFETY: the kernel wrote a whole message.
        let msg = unsafe { msg.assume_init() };
        if msg.event != UFFD_EVENT_PAGEFAULT {
            continue;
        }
        let addr = msg.address as usize;
        let page_addr = addr & !(page - 1);
        resolve(fd, addr, page_addr);
    }
}

fn resolve(fd: i32, addr: usize, page_addr: usize) {
    let page = page_size();
    let Some(chunk) = chunk_of(addr) else {
        // SAFETY: only this handler reports; it aborts.
        unsafe { overflow::report_fatal(b"userfault outside every stack chunk", addr) };
    };
    let off = addr - chunk.start;
    let slot = off / chunk.slot_len;
    if slot >= chunk.nslots {
        // SAFETY: as above.
        unsafe { overflow::report_fatal(b"access to the unused tail of a stack chunk", addr) };
    }
    // Acquire: the state was stored (Release) by the thread that took the slot or set its
    // owner, which happened before the faulting access.
    let state = chunk.slots[slot].load(Ordering::Acquire);
    if state == SLOT_FREE {
        // SAFETY: as above.
        unsafe { overflow::report_fatal(b"access to the memory of a freed coroutine stack", addr) };
    }
    if off % chunk.slot_len < page {
        // The guard page below the slot's stack.
        if state == SLOT_TAKEN {
            // SAFETY: as above.
            unsafe {
                overflow::report_fatal(
                    b"a coroutine stack without a running coroutine overflowed",
                    addr,
                )
            };
        }
        // SAFETY: the owner's StackInfo lives in its header at the top of this stack (a
        // populated page) for as long as the state holds its address: the coroutine
        // clears it before its stack is reused or freed.
        unsafe { overflow::report_overflow(state as *const StackInfo) };
    }
    // A stack growing deep (the fault three or more pages below its top) likely touches the
    // next pages down soon: fill up to BATCH_PAGES at once (never the guard page), one
    // handler round trip instead of four. A stack that uses one or two pages commits
    // exactly those.
    let slot_base = chunk.start + slot * chunk.slot_len;
    let depth = (slot_base + chunk.slot_len - page_addr) / page;
    let usable_below = (page_addr - (slot_base + page)) / page;
    if depth >= 3 && usable_below > 0 && page == 4096 {
        let extra = usable_below.min(BATCH_PAGES - 1);
        if let Ok(true) = copy_zeros(fd, page_addr - extra * page, extra + 1) {
            return;
        }
        // A page of the batch was present: the kernel stopped there. Fill (or wake) the
        // faulting page alone below.
    }
    match copy_zero(fd, page_addr) {
        Ok(true) => {}
        // Present already (filled by a racing `prefill_top`): wake the faulting thread.
        Ok(false) => wake(fd, page_addr),
        Err(_) => {
            // SAFETY: as above.
            unsafe { overflow::report_fatal(b"cannot fill a coroutine stack page", addr) };
        }
    }
}
