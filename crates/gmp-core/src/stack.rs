//! Coroutine stacks: lazily committed mappings, a guard page below every stack — on Linux
//! 6.13 and later a *guard region* in a shared chunk; on older kernels its own `PROT_NONE`
//! page while the kernel's mapping budget lasts, a never-populated page watched by
//! userfaultfd beyond it — and a pool that reuses stacks without system calls.
//!
//! # Guard regions (Linux 6.13+)
//!
//! `madvise(MADV_GUARD_INSTALL)` makes a range fault on every access, as `PROT_NONE` does,
//! without splitting the mapping. So where the kernel has it, every stack is a slot of a
//! 64 MiB chunk (one mapping, about 250 default stacks) whose lowest page is a guard
//! region: an overflow faults at once and is reported like a guarded stack's
//! ([`StackProtection::GuardPage`] is what these stacks report), a fresh stack costs one
//! `madvise` when its chunk is made instead of an `mmap` and an `mprotect` (and an
//! `munmap` when freed), a million stacks need four thousand memory maps instead of
//! thirty-six thousand, and page faults are the kernel's own zero-fill, not a round trip
//! through the userfaultfd handler. Guard regions survive `MADV_DONTNEED` (a pool giving
//! a stack's memory back) and `fork`. The first refusal (`EINVAL`: an older kernel) turns
//! them off for the process; [`set_guard_regions`] turns them off on purpose. Measured
//! with `examples/switch_cost.rs` on the development machine (a 2-vCPU VM, Linux 6.18):
//! create + run + finish on a fresh stack 3.3 µs with a guard region against 3.6 µs with
//! an own mapping and 3.9 µs on a userfaultfd chunk; the first touch of a page 1.8 µs
//! against 14 µs through the userfaultfd handler in the same run. Everything below
//! describes the other kinds, which older kernels (and `set_guard_regions(false)`) use.
//!
//! # Layout of one stack
//!
//! Every stack, whatever its protection, is a *slot* of `size + PAGE` bytes:
//!
//! ```text
//!   top()    = base + PAGE + size    (16-byte aligned, exclusive)   highest address
//!   |   usable stack, grows down; pages are committed on first touch
//!   |   (a parked coroutine typically touches only the top page)
//!   bottom() = base + PAGE
//!   |   guard page: PROT_NONE                  (StackProtection::GuardPage)
//!   |               never populated, watched   (StackProtection::Userfault)
//!   |               red zone, checked           (StackProtection::Canary, unsafe opt-in)
//!   base                                                            lowest address
//! ```
//!
//! Memory is reserved with `MAP_NORESERVE`: nothing is committed (or counted against
//! overcommit) until touched, so a parked coroutine costs its touched pages only, and the
//! reservation size is a question of address space, of which x86-64 has 128 TiB.
//!
//! # The guarantee
//!
//! **No stack overflow writes outside its own stack unnoticed**: the first access below a
//! stack's usable range — whatever the frame size, from user code or from a system call —
//! is reported as `goroutine <id> ('<name>') has overflowed its stack (<size> bytes)` and
//! the process aborts (SIGABRT) before the access completes. Rust emits stack probes for
//! every frame larger than a page, so the first page any Rust overflow touches is the one
//! right below the stack. C code compiled without `-fstack-clash-protection` can allocate
//! a frame that jumps that page: running such code on a coroutine stack is the caller's
//! responsibility (as it is on thread stacks). The only exception is the `unsafe` opt-in
//! [`allow_canary_stacks`].
//!
//! # Why two kinds of guard page
//!
//! A `PROT_NONE` guard page needs its own kernel memory map entry (VMA): the usable part and
//! the guard are two VMAs with different permissions, and two neighbouring guarded stacks
//! cannot merge. Linux allows `vm.max_map_count` = 65,530 VMAs per process by default, so
//! at most ~32,000 guarded stacks could exist, and then the process could not map anything
//! else (this is how `may` fails at ~30k coroutines). gmp therefore hands out guarded
//! stacks while a *budget* lasts — by default a quarter of `vm.max_map_count`, i.e. 16,382
//! stacks (32,764 VMAs) on a default kernel; see [`set_guarded_stack_limit`] — and beyond
//! it carves stacks out of 64 MiB-aligned *chunks* (about 250 default stacks each), each
//! chunk one mapping registered as a whole with a process-wide `userfaultfd` in `MISSING`
//! mode (one registration per chunk: registering page by page would split the mapping into
//! VMAs again, the very limit chunks avoid). Every first touch of a page in a chunk then
//! reaches gmp's handler thread, which looks the address up (a lock-free table from the
//! chunk's address to its slots, never a lock or an allocation: the faulting thread may
//! hold any lock, `malloc`'s included) and
//!
//! - inside a stack's usable range: fills the page with zeros (`UFFDIO_COPY`) and wakes the
//!   faulting thread;
//! - on the page below a stack: reports the overflow with the owning coroutine's label and
//!   aborts. These pages are never populated, so every touch of one, however late, reaches
//!   the handler;
//! - anywhere else (a slot that is free, the unused tail of a chunk): reports
//!   `gmp: access to the memory of a freed coroutine stack at 0x…` (or the like) and aborts.
//!
//! The allocating thread populates a stack's top page itself (`UFFDIO_COPY` from the
//! thread calling [`Stack::new`], or [`StackPool::get`] for a pooled stack whose pages were
//! given back), so creating and starting a coroutine whose frames fit a page never waits on
//! the handler. Stacks given back with `MADV_DONTNEED` (by the pool, or when freed) have
//! missing pages again, which go back through the handler; guard pages are never
//! populated. Chunks are `MADV_NOHUGEPAGE` (and the kernel's huge-page collapse skips
//! registered ranges), so no huge page ever fills a guard page behind the handler's back.
//!
//! A million default stacks thus need 16,382 × 2 VMAs plus one per chunk: 36,706 memory
//! maps in the `million` example (40,602 with the former canary chunks; measured, below).
//!
//! ## System calls, privileges, fork
//!
//! gmp opens the userfaultfd in full mode, so *kernel-mode* accesses are handled like user
//! ones: a system call writing into an untouched page of a chunk stack (`read` into a
//! stack buffer) waits for the handler and succeeds; one writing into a guard page is
//! reported as an overflow. Full mode needs root, `CAP_SYS_PTRACE`, or
//! `vm.unprivileged_userfaultfd = 1`. gmp does **not** fall back to `UFFD_USER_MODE_ONLY`
//! (what unprivileged processes get by default since Linux 5.11): there a system call
//! touching an untouched stack page fails with `EFAULT`, which can lose data (a datagram
//! whose copy-out fails is dropped), and pre-faulting whole stacks would cost their whole
//! size in memory. Where full mode is refused (EPERM, or ENOSYS on kernels without
//! userfaultfd), or after [`set_userfaultfd`]`(false)`, a stack beyond the guarded budget
//! is an error: [`Stack::new`] (and so a spawn) fails with an `io::Error` that names
//! `vm.max_map_count`, the sysctls that help, and the opt-in. The opt-in is the `unsafe`
//! [`allow_canary_stacks`]: chunk stacks with only a checked red zone (see its `# Safety`).
//!
//! A `fork`ed child does not inherit the registration (the kernel drops it) nor the handler
//! thread; the inherited file descriptor belongs to the parent's address space and is never
//! used in the child. The child opens its own userfaultfd and registers every inherited
//! chunk again on its first chunk-stack allocation ([`Stack::new`] or a cold
//! [`StackPool::get`]); until then, pages first touched on the inherited chunk stacks are
//! plain zero-fill memory, unwatched. (Children that `exec` — `std::process::Command` —
//! never run coroutines.) A child spawned with `CLONE_VM` (vfork, `posix_spawn`) shares the
//! parent's memory and handler.
//!
//! ## Costs (measured on the shared 2-core development machine, Linux 6.18, root)
//!
//! Before: chunk stacks with a 256-byte canary (commit 279f8b8); after: userfaultfd chunks.
//! Ranges are repeated runs on a machine loaded by other builds (load average 6–8).
//!
//! | | before | after |
//! |---|---|---|
//! | first touch of a stack page, guarded stack (kernel zero-fill) | 1.73 µs | 1.5–1.8 µs |
//! | first touch of a stack page, chunk stack | 1.7 µs (unwatched) | 2.7–2.8 µs per page (one run of three: 12.8 µs) |
//! | create + run + finish, fresh guarded stack | 9.5 µs | 8.3 µs |
//! | create + run + finish, fresh chunk stack | 3.8 µs | 3.1 µs |
//! | create + run + finish, pooled (hot) stack | 37.6 ns | 38.1 ns |
//! | create + run + finish, pooled cold chunk stack | 2.8 µs | 2.9 µs |
//! | switch round trip (resume + suspend) | 10.8 ns | 11.4 ns |
//! | `million`: create 1,000,000 suspended coroutines | 3.7–6.3 s | 2.7–4.0 s |
//! | `million`: RSS per coroutine / peak RSS | 4,160 B / 4.07 GB | 4,176 B / 4.08 GB |
//! | `million`: memory maps (of 65,530) | 40,602 | 36,706 |
//!
//! (`examples/switch_cost.rs`, best of many windows, and `examples/million.rs`.) A fault
//! resolved by the handler costs two thread switches more than the kernel's own zero-fill
//! (8.5 µs per page when the handler filled one page per fault, on the same loaded
//! machine); it therefore fills four pages at once when the fault lies three or more pages
//! below the stack's top (a stack growing deep), which brings a deep first touch to
//! 2.7–2.8 µs per page, while a stack that uses one or two pages commits exactly those. The
//! handler is one thread: on a saturated machine its wake-up waits for a CPU (the 12.8 µs
//! run). A pooled hot stack never faults, and the fresh-stack paths got cheaper (the top
//! page is filled by one `ioctl` instead of a page fault). The round trip is 0.5 ns slower:
//! the per-thread bookkeeping after a switch is now an out-of-line call (see `overflow.rs`,
//! `leave`).

//! # Pooling
//!
//! Creating a stack costs an `mmap` and an `mprotect` (a guarded stack) or a slot and an
//! `ioctl` (a chunk stack); [`StackPool`] keeps finished stacks of one size in a vector
//! behind a mutex, so `get` and `put` cost a lock and a push/pop. A pool keeps at most
//! `max_cached` stacks; the first [`HOT_CACHED`] keep their committed pages (the hot set,
//! reused at full speed), stacks cached beyond that are given back to the kernel with
//! `madvise(MADV_DONTNEED)` when put (one system call on `put`; on `get` a chunk stack's
//! top page is populated again). Stacks beyond `max_cached` are unmapped (or their chunk
//! slot freed).
//!
//! Chunk slots are never unmapped: a freed slot's memory is returned with
//! `madvise(MADV_DONTNEED)` and the slot is reused by the next chunk stack of the same
//! size. Only address space stays reserved.

use std::fmt;
use std::io;
use std::ptr::NonNull;
// Process-wide counters of mappings. Not std-vs-loom shimmed on purpose: stacks are
// mmap'd memory that no loom model can run on, and these statics must be `const`
// initialised, which loom's atomics are not.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

// parking_lot directly, not the `sync` shim: the chunk free lists are a `static` (loom's
// mutex is not const-constructible) and no loom model can run on mmap'd stacks.
use parking_lot::Mutex;

/// The default usable size of a coroutine stack: 256 KiB.
///
/// Why this value: the reservation is only address space (pages are committed on first
/// touch), so a generous size costs nothing per parked coroutine — one touched page is
/// ~4 KiB however big the reservation. 256 KiB runs ordinary Rust code comfortably
/// (formatting, panics with backtraces, `std::io`, moderate recursion) while a million
/// coroutines reserve 256 GiB of the 128 TiB x86-64 address space and their page tables
/// stay small (eight stacks share one 2 MiB page-table page). Go starts goroutines at
/// 2 KiB and grows them by copying, which Rust cannot do (no stack maps); the fixed size
/// is the trade-off. Code that recurses deeply should ask for a bigger stack.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest stack [`Stack::new`] accepts: 16 KiB. Smaller stacks cannot reliably run
/// the panic machinery that every coroutine's root relies on.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The largest stack [`Stack::new`] accepts: 1 GiB (Go's own limit on 64-bit).
pub const MAX_STACK_SIZE: usize = 1 << 30;
// `Stack::size` is 32 bits.
const _: () = assert!(MAX_STACK_SIZE <= u32::MAX as usize);

/// How many bytes at the top of a canary stack's red zone are checked at every switch.
pub const CANARY_BYTES: usize = 256;

/// How many stacks a [`StackPool`] keeps with their memory committed; further cached
/// stacks are `madvise(MADV_DONTNEED)`'d when put.
pub const HOT_CACHED: usize = 64;

/// The default `max_cached` of [`StackPool::new`].
pub const DEFAULT_MAX_CACHED: usize = 1024;

/// Virtual size of one chunk of canary stacks.
const CHUNK_BYTES: usize = 64 << 20;

/// How a stack is protected against overflow. See the module docs for exact guarantees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackProtection {
    /// A `PROT_NONE` page below the stack: every overflow faults and is reported at once.
    GuardPage,
    /// A slot of a chunk watched by userfaultfd: the page below the stack is never
    /// populated, and its first touch — every overflow's first touch — is reported at once
    /// by the handler thread.
    Userfault,
    /// A red-zone page below the stack, checked at every switch: overflows that write
    /// into it are reported at the coroutine's next switch (best effort). Only after the
    /// `unsafe` opt-in [`allow_canary_stacks`].
    Canary,
}

/// Whether chunk stacks may be watched by userfaultfd (see [`set_userfaultfd`]).
static USERFAULTFD: AtomicBool = AtomicBool::new(true);
/// Whether the caller opted into canary stacks (see [`allow_canary_stacks`]).
static CANARY_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Enables (the default) or disables userfaultfd for stacks created from now on beyond the
/// guarded budget ([`set_guarded_stack_limit`]). Disabled, such stacks are
/// [`StackProtection::Canary`] stacks if [`allow_canary_stacks`] was called, and otherwise
/// [`Stack::new`] fails with an error that says how to raise the budget. Stacks alive keep
/// their protection.
///
/// ```
/// gmp_core::stack::set_userfaultfd(true);
/// ```
pub fn set_userfaultfd(enabled: bool) {
    // Relaxed: a policy flag read by `Stack::new`; it orders no other memory.
    USERFAULTFD.store(enabled, Ordering::Relaxed);
}

/// Opts into [`StackProtection::Canary`] stacks beyond the guarded budget when userfaultfd
/// is unavailable (or disabled with [`set_userfaultfd`]), instead of failing [`Stack::new`].
///
/// ```no_run
/// // SAFETY: no coroutine of this program overflows its stack (all recursion is
/// // bounded and checked against the stack size).
/// unsafe { gmp_core::stack::allow_canary_stacks() };
/// ```
///
/// # Safety
///
/// A canary stack only *detects*, at the coroutine's next switch, an overflow that writes
/// non-zero bytes into the top [`CANARY_BYTES`] of the page below the stack. A single frame
/// larger than that page (any Rust frame over 4 KiB, or C code), or recursion that writes
/// zeros or skips those bytes, silently writes into the neighbouring stack of its chunk,
/// i.e. into another suspended coroutine's locals: undefined behaviour. The caller
/// promises that no coroutine running on a stack created from now on overflows it.
pub unsafe fn allow_canary_stacks() {
    // Relaxed: see `set_userfaultfd`.
    CANARY_ALLOWED.store(true, Ordering::Relaxed);
}

/// The page size (4096 on x86-64 Linux; asked of the kernel once).
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: an idempotent cache of a constant; racing initialisers store the same value.
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, Ordering::Relaxed);
    p
}

// ---------------------------------------------------------------------------------------
// The guarded-stack budget.

/// Guarded stacks alive now (each holds two VMAs).
static GUARDED_LIVE: AtomicUsize = AtomicUsize::new(0);
/// The limit; `usize::MAX` until computed from `vm.max_map_count` or set by the user.
static GUARDED_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets how many guarded stacks may be alive at once, process-wide; stacks created beyond
/// it are chunk stacks ([`StackProtection::Userfault`], see the module docs). Stacks
/// already alive keep their protection.
///
/// The default is a quarter of `/proc/sys/vm/max_map_count` (16,382 on a default kernel),
/// leaving three quarters of the process's memory maps to everything else. `0` makes every
/// new stack a chunk stack (tests use it to reach that code path without 16,382 stacks).
///
/// ```
/// let limit = gmp_core::stack::guarded_stack_limit();
/// gmp_core::stack::set_guarded_stack_limit(limit);
/// ```
pub fn set_guarded_stack_limit(limit: usize) {
    // Relaxed: an advisory limit read by `take_guard_budget`; no other data depends on it.
    GUARDED_LIMIT.store(limit.min(usize::MAX - 1), Ordering::Relaxed);
}

/// The current limit on guarded stacks alive at once (see [`set_guarded_stack_limit`]).
pub fn guarded_stack_limit() -> usize {
    // Relaxed: see `set_guarded_stack_limit`.
    let l = GUARDED_LIMIT.load(Ordering::Relaxed);
    if l != usize::MAX {
        return l;
    }
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    let l = max_maps / 4;
    // Relaxed: racing first callers compute the same value; a concurrent explicit
    // `set_guarded_stack_limit` wins by overwriting, or is the value we lose to.
    let _ = GUARDED_LIMIT.compare_exchange(usize::MAX, l, Ordering::Relaxed, Ordering::Relaxed);
    GUARDED_LIMIT.load(Ordering::Relaxed)
}

/// How many guarded stacks are alive now (process-wide).
pub fn guarded_stacks_alive() -> usize {
    // Relaxed: a statistic.
    GUARDED_LIVE.load(Ordering::Relaxed)
}

fn take_guard_budget() -> bool {
    let limit = guarded_stack_limit();
    // Relaxed: the counter only rations a resource; it orders no other memory.
    GUARDED_LIVE
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

fn release_guard_budget() {
    // Relaxed: see `take_guard_budget`.
    GUARDED_LIVE.fetch_sub(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Raw mappings.

fn map_anon(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing has no
    // preconditions and aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// # Safety
///
/// `[p, p + len)` must be a whole mapping made by [`map_anon`] that nothing uses any more.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller. A failure would leak address space only.
    unsafe { libc::munmap(p.cast(), len) };
}

/// # Safety
///
/// `[p, p + len)` must be page-aligned memory of one of our mappings whose contents nobody
/// needs (it reads as zeros afterwards).
unsafe fn discard(p: *mut u8, len: usize) {
    // SAFETY: guaranteed by the caller; MADV_DONTNEED on private anonymous memory only
    // drops its pages.
    unsafe { libc::madvise(p.cast(), len, libc::MADV_DONTNEED) };
}

// ---------------------------------------------------------------------------------------
// Chunks: userfaultfd-watched ones (see `uffd.rs`) and canary ones (the unsafe opt-in).

/// Free slots of one slot length and kind. The `Vec` of classes is tiny (one per stack
/// size and kind in use).
struct SizeClass {
    slot_len: usize,
    kind: ChunkKind,
    free: Vec<usize>,
}

/// What protects the slots of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkKind {
    /// Each slot's lowest page is a guard region (`MADV_GUARD_INSTALL`).
    GuardRegion,
    /// Watched by the process's userfaultfd (`uffd.rs`).
    Userfault,
    /// A red zone checked at switches (the unsafe opt-in).
    Canary,
}

/// Free chunk slots, by size and kind. A plain mutex: this is the slow path (the pool is in
/// front), held only to pop or push slots — never while a chunk is made (see
/// [`take_slot`]). The userfaultfd handler never takes it.
static CHUNKS: Mutex<Vec<SizeClass>> = Mutex::new(Vec::new());

/// A free slot of `slot_len` bytes and `kind` (its base), or the highest slot of a chunk
/// that `make_chunk` makes (returning its first slot's base and its slot count); `None`
/// when `make_chunk` says that no chunk of this kind can be made.
///
/// The chunk is made without the lock: making one is system calls for tens of
/// microseconds (a guard-region chunk: an `mmap`, a `madvise` and about 250 guards in one
/// `process_madvise`, ~60 µs here, page tables allocated), and every other thread that
/// needed a stack meanwhile slept on the lock and had to be woken. In park1m (a million
/// goroutines started on 2 Ps, a chunk every ~0.4 ms) the two Ms took turns: one made a
/// chunk, the other slept on the lock, then the reverse (`perf sched timehist`: each CPU
/// idle 14-15% of the spawn phase; the wake-ups came from `Stack::new`). Two threads that
/// find no free slot at once each make a chunk; both chunks' slots are kept.
fn take_slot(
    slot_len: usize,
    kind: ChunkKind,
    make_chunk: impl FnOnce() -> io::Result<Option<(usize, usize)>>,
) -> io::Result<Option<usize>> {
    {
        let mut classes = CHUNKS.lock();
        if let Some(slot) = class_of(&mut classes, slot_len, kind).free.pop() {
            return Ok(Some(slot));
        }
    }
    let Some((first, n)) = make_chunk()? else {
        return Ok(None);
    };
    let mut classes = CHUNKS.lock();
    let class = class_of(&mut classes, slot_len, kind);
    // Lowest first, so that `pop` hands out the highest slot first (in a canary chunk,
    // its neighbour below is then another slot, not the chunk's guard page).
    class.free.extend((0..n).map(|i| first + i * slot_len));
    Ok(class.free.pop())
}

fn class_of(classes: &mut Vec<SizeClass>, slot_len: usize, kind: ChunkKind) -> &mut SizeClass {
    let idx = match classes
        .iter()
        .position(|c| c.slot_len == slot_len && c.kind == kind)
    {
        Some(i) => i,
        None => {
            classes.push(SizeClass {
                slot_len,
                kind,
                free: Vec::new(),
            });
            classes.len() - 1
        }
    };
    &mut classes[idx]
}

/// A slot of a userfaultfd chunk, marked taken, its top page populated. Returns the slot's
/// base (its guard page) and its state cell.
fn userfault_slot(slot_len: usize) -> io::Result<(NonNull<u8>, &'static AtomicUsize)> {
    let base = take_slot(slot_len, ChunkKind::Userfault, || {
        let chunk = crate::uffd::new_chunk(slot_len)?;
        Ok(Some((chunk.start, chunk.nslots)))
    })?
    .expect("a chunk has at least one slot");
    let chunk = crate::uffd::chunk_of(base).expect("a userfaultfd slot lies in a chunk");
    let state = &chunk.slots[(base - chunk.start) / slot_len];
    // Release: the handler reads the state (Acquire) when this slot's pages first fault.
    state.store(crate::uffd::SLOT_TAKEN, Ordering::Release);
    crate::uffd::prefill_top(base + slot_len);
    Ok((
        NonNull::new(base as *mut u8).expect("mmap never returns address 0"),
        state,
    ))
}

fn free_userfault_slot(base: *mut u8, slot_len: usize, state: &AtomicUsize) {
    let page = page_size();
    // SAFETY: the slot's usable range is ours alone (its Stack is being dropped); its
    // contents are dead. Its pages go missing again: their next first touch reaches the
    // handler. The guard page below was never populated and stays so.
    unsafe { discard(base.wrapping_add(page), slot_len - page) };
    // Release: orders the discard before a later taker's state store (via the lock too).
    state.store(crate::uffd::SLOT_FREE, Ordering::Release);
    let mut classes = CHUNKS.lock();
    class_of(&mut classes, slot_len, ChunkKind::Userfault)
        .free
        .push(base as usize);
}

/// Linux 6.13's `madvise` advice that turns a range into guard regions: every access
/// faults (SIGSEGV; `EFAULT` from a system call) as on a `PROT_NONE` page, but the range
/// stays part of its mapping — no VMA of its own. It survives `MADV_DONTNEED`. (The
/// constant is not in the libc crate yet.)
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Whether chunk stacks with guard regions may be used (see [`set_guard_regions`]).
static GUARD_REGIONS: AtomicBool = AtomicBool::new(true);
/// Set once the kernel refused `MADV_GUARD_INSTALL` (older than 6.13): never tried again.
static GUARD_REGIONS_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Enables (the default) or disables guard-region stacks for stacks created from now on.
///
/// On Linux 6.13 and later every stack is a slot of a shared 64 MiB chunk whose lowest
/// page is a *guard region* (`madvise(MADV_GUARD_INSTALL)`): an overflow faults at once,
/// exactly as on a guarded stack's own `PROT_NONE` page ([`StackProtection::GuardPage`]
/// is what such a stack reports), but without a memory map per stack, without the
/// `mmap`/`mprotect`/`munmap` of each, and without the userfaultfd handler that chunk
/// stacks need on older kernels. Disabled (or on an older kernel), stacks are made as
/// described in the module docs: own mappings up to [`guarded_stack_limit`], then
/// userfaultfd chunks. Tests use this to reach those paths. Stacks alive keep theirs.
///
/// ```
/// gmp_core::stack::set_guard_regions(true);
/// ```
pub fn set_guard_regions(enabled: bool) {
    // Relaxed: a policy flag read by `Stack::new`; it orders no other memory.
    GUARD_REGIONS.store(enabled, Ordering::Relaxed);
}

/// A slot of a guard-region chunk, or `None` if the kernel has no guard regions.
fn guard_region_slot(slot_len: usize) -> io::Result<Option<NonNull<u8>>> {
    let slot = take_slot(slot_len, ChunkKind::GuardRegion, || {
        new_guard_region_chunk(slot_len)
    })?;
    Ok(slot.map(|s| NonNull::new(s as *mut u8).expect("mmap never returns address 0")))
}

/// A fresh guard-region chunk for slots of `slot_len` bytes: its first slot's base and
/// its slot count, or `None` if the kernel has no guard regions.
fn new_guard_region_chunk(slot_len: usize) -> io::Result<Option<(usize, usize)>> {
    let page = page_size();
    let n = (CHUNK_BYTES / slot_len).max(1);
    let len = n
        .checked_mul(slot_len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stack chunk too large"))?;
    let chunk = map_anon(len)?;
    // SAFETY: `chunk` is a fresh mapping of `len` bytes that nothing else uses.
    // MADV_NOHUGEPAGE: a transparent huge page would commit 2 MiB — eight stacks'
    // worth of reservation — for one touched 4 KiB page (and could not hold guards).
    unsafe { libc::madvise(chunk.cast(), len, libc::MADV_NOHUGEPAGE) };
    // SAFETY: `chunk` is a fresh mapping of `n * slot_len` bytes that nothing else
    // uses yet, and `page < slot_len`.
    let first = unsafe { install_guards_batched(chunk, n, slot_len, page) };
    for i in first..n {
        // SAFETY: the lowest page of slot `i`, inside the fresh mapping.
        let r = unsafe { libc::madvise(chunk.add(i * slot_len).cast(), page, MADV_GUARD_INSTALL) };
        if r != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: the mapping was just made and no slot of it was handed out.
            unsafe { unmap(chunk, len) };
            if e.raw_os_error() == Some(libc::EINVAL) {
                // Relaxed: a sticky capability flag, like `GUARD_REGIONS`.
                GUARD_REGIONS_UNSUPPORTED.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            return Err(e);
        }
    }
    Ok(Some((chunk as usize, n)))
}

/// `PIDFD_SELF_THREAD_GROUP` (Linux 6.15): "the calling process" for pidfd system calls,
/// resolved at each call (so a `fork`ed child advises its own memory, not its parent's).
const PIDFD_SELF: libc::c_int = -10001;
/// The most ranges one `process_madvise` takes (`UIO_MAXIOV`).
const IOV_MAX: usize = 1024;
/// Set once the kernel refused `process_madvise(MADV_GUARD_INSTALL)` on ourselves (before
/// 6.15): guards then go in with one `madvise` each. Never tried again.
static BATCHED_GUARDS_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Installs the guard regions of the first slots of a fresh chunk with `process_madvise`
/// (one system call per [`IOV_MAX`] slots) and returns how many slots it guarded, in
/// order from slot 0; the caller installs the rest one `madvise` each (all of them where
/// the kernel refuses the batch).
///
/// Why: one `madvise` per slot was 248 system calls per 64 MiB chunk, each taking the
/// memory-map lock against the page faults of the running goroutines: a fifth of the
/// samples of park1m's spawn phase (a million fresh stacks) were in `madvise`.
///
/// # Safety
///
/// `chunk` starts a mapping of at least `n * slot_len` bytes that nothing uses yet, and
/// `page < slot_len`.
unsafe fn install_guards_batched(chunk: *mut u8, n: usize, slot_len: usize, page: usize) -> usize {
    // Relaxed: a sticky capability flag, like `GUARD_REGIONS_UNSUPPORTED`.
    if BATCHED_GUARDS_UNSUPPORTED.load(Ordering::Relaxed) {
        return 0;
    }
    let ranges: Vec<libc::iovec> = (0..n)
        .map(|i| libc::iovec {
            iov_base: chunk.wrapping_add(i * slot_len).cast(),
            iov_len: page,
        })
        .collect();
    let mut guarded = 0;
    for batch in ranges.chunks(IOV_MAX) {
        // SAFETY: every range is the lowest page of a slot inside the caller's fresh
        // mapping; the kernel reads `batch` only during the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                PIDFD_SELF,
                batch.as_ptr(),
                batch.len(),
                MADV_GUARD_INSTALL,
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error().raw_os_error();
            // EBADF: no PIDFD_SELF (before 6.15); EINVAL: the advice not allowed here;
            // ENOSYS/EPERM: no process_madvise for us. Other errors (ENOMEM) are the
            // one-by-one path's to report.
            if matches!(
                e,
                Some(libc::EBADF | libc::EINVAL | libc::ENOSYS | libc::EPERM)
            ) {
                // Relaxed: as above.
                BATCHED_GUARDS_UNSUPPORTED.store(true, Ordering::Relaxed);
            }
            return guarded;
        }
        // The ranges are advised in order, each one page: a short count means the
        // first `r / page` were guarded.
        let done = r as usize / page;
        guarded += done;
        if done < batch.len() {
            return guarded;
        }
    }
    guarded
}

fn free_guard_region_slot(base: *mut u8, slot_len: usize) {
    let page = page_size();
    // SAFETY: the slot's usable range is ours alone (its Stack is being dropped); its
    // contents are dead. The guard region below it stays (MADV_DONTNEED keeps guards).
    unsafe { discard(base.wrapping_add(page), slot_len - page) };
    let mut classes = CHUNKS.lock();
    class_of(&mut classes, slot_len, ChunkKind::GuardRegion)
        .free
        .push(base as usize);
}

fn canary_slot(slot_len: usize) -> io::Result<NonNull<u8>> {
    let slot = take_slot(slot_len, ChunkKind::Canary, || {
        let page = page_size();
        let n = (CHUNK_BYTES / slot_len).max(1);
        let len = n
            .checked_mul(slot_len)
            .and_then(|l| l.checked_add(page))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stack chunk too large"))?;
        let chunk = map_anon(len)?;
        // SAFETY: `chunk` is a fresh mapping of `len` bytes. The guard page protects the
        // lowest slot; if the kernel refuses (out of VMAs) the chunk simply has none.
        // MADV_NOHUGEPAGE: a transparent huge page would commit 2 MiB — eight stacks'
        // worth of reservation — for one touched 4 KiB page.
        unsafe {
            libc::mprotect(chunk.cast(), page, libc::PROT_NONE);
            libc::madvise(chunk.add(page).cast(), len - page, libc::MADV_NOHUGEPAGE);
        }
        Ok(Some((chunk as usize + page, n)))
    })?
    .expect("a chunk has at least one slot");
    Ok(NonNull::new(slot as *mut u8).expect("mmap never returns address 0"))
}

fn free_canary_slot(base: *mut u8, slot_len: usize) {
    // SAFETY: the slot is ours alone (its Stack is being dropped); its contents are dead.
    unsafe { discard(base, slot_len) };
    let mut classes = CHUNKS.lock();
    class_of(&mut classes, slot_len, ChunkKind::Canary)
        .free
        .push(base as usize);
}

// ---------------------------------------------------------------------------------------
// Stack.

/// A coroutine stack: a lazily committed mapping (or a slot of a chunk) with a protection
/// page below it. Dropping it unmaps it (or frees its slot).
///
/// `Send` and `Sync`: it is only an owned range of memory.
pub struct Stack {
    /// Lowest address of the slot: the protection page.
    base: NonNull<u8>,
    /// Usable bytes (a multiple of the page size; at most [`MAX_STACK_SIZE`], so 32 bits
    /// hold it: the `Stack`, and so a `Coroutine` and a goroutine's G, is 8 bytes
    /// smaller).
    size: u32,
    protection: StackProtection,
    /// A userfaultfd slot's state cell (see `uffd::SLOT_FREE`), else `None`.
    slot_state: Option<&'static AtomicUsize>,
    /// A `GuardPage` stack in a guard-region chunk (not a mapping of its own).
    in_chunk: bool,
    /// True when the pool gave the stack's pages back: its top page must be populated
    /// again before use (userfaultfd stacks, see [`StackPool::get`]).
    cold: bool,
}

// SAFETY: a Stack owns its memory range exclusively and has no thread affinity.
unsafe impl Send for Stack {}
// SAFETY: `&Stack` only exposes addresses and sizes.
unsafe impl Sync for Stack {}

/// The error of [`Stack::new`] when the guarded budget is spent and no other sound
/// protection is available.
fn no_guarded_stack(why: String) -> io::Error {
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    io::Error::other(format!(
        "cannot create a guarded coroutine stack: {} stacks with guard pages are alive, the \
         limit (a quarter of vm.max_map_count = {max_maps}; each uses 2 memory maps), and {why}. \
         Raise the limit (`sysctl -w vm.max_map_count=4194304`; the default limit follows it), \
         allow userfaultfd (run as root or with CAP_SYS_PTRACE, or `sysctl -w \
         vm.unprivileged_userfaultfd=1`), or opt into unguarded stacks with the unsafe \
         gmp_core::stack::allow_canary_stacks",
        guarded_stacks_alive()
    ))
}

fn check_size(size: usize) -> io::Result<usize> {
    if size < MIN_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack size {size} is below the minimum of {MIN_STACK_SIZE} bytes"),
        ));
    }
    if size > MAX_STACK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack size {size} is above the maximum of {MAX_STACK_SIZE} bytes"),
        ));
    }
    let page = page_size();
    Ok(size.div_ceil(page) * page)
}

impl Stack {
    /// Reserves a stack with at least `size` usable bytes (rounded up to whole pages).
    ///
    /// It gets a `PROT_NONE` guard page while the process-wide budget of guarded stacks
    /// lasts (see [`set_guarded_stack_limit`]), else a slot of a userfaultfd-watched chunk
    /// (see the module docs). Errors: `InvalidInput` for a size outside
    /// [`MIN_STACK_SIZE`]`..=`[`MAX_STACK_SIZE`]; the OS error (e.g. `ENOMEM`) when no
    /// memory or no mapping can be had; beyond the budget without userfaultfd (and without
    /// [`allow_canary_stacks`]), an error naming `vm.max_map_count` and the sysctls that
    /// help.
    ///
    /// ```
    /// let s = gmp_core::Stack::new(64 * 1024)?;
    /// assert_eq!(s.size(), 64 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(size: usize) -> io::Result<Stack> {
        let size = check_size(size)?;
        let page = page_size();
        let slot_len = size + page;
        // Relaxed: policy and capability flags (see `set_guard_regions`).
        if GUARD_REGIONS.load(Ordering::Relaxed)
            && !GUARD_REGIONS_UNSUPPORTED.load(Ordering::Relaxed)
        {
            if let Some(base) = guard_region_slot(slot_len)? {
                return Ok(Stack {
                    base,
                    size: size as u32,
                    protection: StackProtection::GuardPage,
                    slot_state: None,
                    in_chunk: true,
                    cold: false,
                });
            }
        }
        if take_guard_budget() {
            match Self::new_guarded(slot_len) {
                Ok(base) => {
                    return Ok(Stack {
                        base,
                        size: size as u32,
                        protection: StackProtection::GuardPage,
                        slot_state: None,
                        in_chunk: false,
                        cold: false,
                    })
                }
                Err(e) => {
                    release_guard_budget();
                    // Out of memory maps (ENOMEM from mmap or mprotect): fall back to a
                    // chunk, which needs no new VMA while it has free slots.
                    if e.raw_os_error() != Some(libc::ENOMEM) {
                        return Err(e);
                    }
                }
            }
        }
        // Relaxed: policy flags (see `set_userfaultfd`).
        let refusal = if USERFAULTFD.load(Ordering::Relaxed) {
            match userfault_slot(slot_len) {
                Ok((base, state)) => {
                    return Ok(Stack {
                        base,
                        size: size as u32,
                        protection: StackProtection::Userfault,
                        slot_state: Some(state),
                        in_chunk: false,
                        cold: false,
                    })
                }
                Err(e) => {
                    // Only a userfaultfd that cannot be had falls back; other errors (out
                    // of memory) are the caller's.
                    if crate::uffd::available().is_ok() {
                        return Err(e);
                    }
                    format!(
                        "userfaultfd, which guards the stacks beyond them, is unavailable ({e})"
                    )
                }
            }
        } else {
            "userfaultfd, which guards the stacks beyond them, is disabled \
             (gmp_core::stack::set_userfaultfd)"
                .to_string()
        };
        // Relaxed: see `allow_canary_stacks`.
        if CANARY_ALLOWED.load(Ordering::Relaxed) {
            let base = canary_slot(slot_len)?;
            return Ok(Stack {
                base,
                size: size as u32,
                protection: StackProtection::Canary,
                slot_state: None,
                in_chunk: false,
                cold: false,
            });
        }
        Err(no_guarded_stack(refusal))
    }

    /// Records the running coroutine's overflow label for the userfaultfd handler (null:
    /// none). The info must stay valid, at the top of this stack, until replaced.
    #[inline(always)]
    pub(crate) fn set_owner(&self, info: *const crate::overflow::StackInfo) {
        if let Some(state) = self.slot_state {
            let v = if info.is_null() {
                crate::uffd::SLOT_TAKEN
            } else {
                info as usize
            };
            // Release: the handler reads the label through this address (Acquire).
            state.store(v, Ordering::Release);
        }
    }

    fn new_guarded(slot_len: usize) -> io::Result<NonNull<u8>> {
        let p = map_anon(slot_len)?;
        // SAFETY: `p` starts a fresh mapping of `slot_len` > page bytes.
        if unsafe { libc::mprotect(p.cast(), page_size(), libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: the mapping was just made and is not used.
            unsafe { unmap(p, slot_len) };
            return Err(e);
        }
        Ok(NonNull::new(p).expect("mmap never returns address 0"))
    }

    /// Usable bytes: from [`bottom`](Self::bottom) to [`top`](Self::top).
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The highest address (exclusive) of the stack, 16-byte aligned: where a coroutine's
    /// stack pointer starts.
    pub fn top(&self) -> *mut u8 {
        // SAFETY (pointer arithmetic within the slot): base + page + size is the slot's end.
        self.base
            .as_ptr()
            .wrapping_add(page_size() + self.size as usize)
    }

    /// The lowest usable address. The page below it is the guard page or the red zone.
    pub fn bottom(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_add(page_size())
    }

    /// How this stack is protected against overflow.
    pub fn protection(&self) -> StackProtection {
        self.protection
    }

    /// Gives the stack's committed pages back to the kernel (they read as zeros after).
    fn release_memory(&mut self) {
        // SAFETY: the usable range is ours and, the stack not being in use (it is being
        // cached), its contents are dead.
        unsafe { discard(self.bottom(), self.size as usize) };
        self.cold = true;
    }

    /// Makes a stack taken from the pool ready: a userfaultfd stack whose pages were given
    /// back gets its top page populated by this thread, not by the handler on first touch.
    fn warm_up(&mut self) {
        if self.cold {
            self.cold = false;
            if self.protection == StackProtection::Userfault {
                crate::uffd::prefill_top(self.top() as usize);
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let slot_len = self.size as usize + page_size();
        match self.protection {
            StackProtection::GuardPage if self.in_chunk => {
                free_guard_region_slot(self.base.as_ptr(), slot_len)
            }
            StackProtection::GuardPage => {
                // SAFETY: a guarded stack is a whole mapping of `slot_len` bytes that
                // this Stack owned alone.
                unsafe { unmap(self.base.as_ptr(), slot_len) };
                release_guard_budget();
            }
            StackProtection::Userfault => {
                let state = self
                    .slot_state
                    .expect("a userfaultfd stack has a slot state");
                free_userfault_slot(self.base.as_ptr(), slot_len, state);
            }
            StackProtection::Canary => free_canary_slot(self.base.as_ptr(), slot_len),
        }
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("bottom", &self.bottom())
            .field("top", &self.top())
            .field("size", &self.size)
            .field("protection", &self.protection)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// StackPool.

/// A cache of stacks of one size. `Send + Sync`; `get` never makes a system call when the
/// pool has a stack, `put` makes one only for stacks cached beyond [`HOT_CACHED`] (see the
/// module docs).
///
/// ```
/// use gmp_core::stack::StackPool;
///
/// let pool = StackPool::new(64 * 1024);
/// let s = pool.get()?;            // mmap: the pool is empty
/// let top = s.top();
/// pool.put(s);
/// assert_eq!(pool.get()?.top(), top); // reused, no system call
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct StackPool {
    stack_size: usize,
    max_cached: usize,
    hot_cached: usize,
    /// Put stacks keep their pages until [`scavenge`](Self::scavenge) (the runtime's
    /// mode); otherwise `put` gives them back at once beyond the hot set.
    deferred: bool,
    cache: Mutex<Cache>,
    /// `hot.len() - hot_cached` (or 0), for [`excess`](Self::excess) without the lock.
    /// Relaxed: a hint; `scavenge` rechecks under the lock.
    excess: AtomicUsize,
}

/// The pool's stacks: `hot` ones still have their committed pages (taken first, most
/// recently put first), `cold` ones gave them back.
#[derive(Default)]
struct Cache {
    /// A deque: `get` and `put` work at the back, `scavenge` takes from the front.
    hot: std::collections::VecDeque<Stack>,
    cold: Vec<Stack>,
}

impl Cache {
    fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

impl StackPool {
    /// A pool of stacks with at least `stack_size` usable bytes, keeping at most
    /// [`DEFAULT_MAX_CACHED`] of them. An invalid size makes every `get` fail with
    /// `InvalidInput` (see [`Stack::new`]).
    pub fn new(stack_size: usize) -> StackPool {
        Self::with_max_cached(stack_size, DEFAULT_MAX_CACHED)
    }

    /// A pool keeping at most `max_cached` stacks.
    pub fn with_max_cached(stack_size: usize, max_cached: usize) -> StackPool {
        Self::with_limits(stack_size, max_cached, HOT_CACHED)
    }

    /// A pool keeping at most `max_cached` stacks, of which the first `hot_cached` keep
    /// their committed pages; the others give their memory back (`madvise`) when put.
    ///
    /// A runtime that creates and ends goroutines in bursts wants a large hot set:
    /// each `madvise` is a system call that also flushes TLBs on every CPU, and each
    /// stack freed beyond `max_cached` is an `munmap` (the same, plus the mmap lock).
    /// Or it wants [`deferred`](Self::deferred): the memory is given back later, in the
    /// background, and not at all for stacks reused before then.
    pub fn with_limits(stack_size: usize, max_cached: usize, hot_cached: usize) -> StackPool {
        let rounded = check_size(stack_size).unwrap_or(stack_size);
        StackPool {
            stack_size: rounded,
            max_cached,
            hot_cached: hot_cached.min(max_cached),
            deferred: false,
            cache: Mutex::new(Cache::default()),
            excess: AtomicUsize::new(0),
        }
    }

    /// As [`with_limits`](Self::with_limits), except that `put` never makes a system
    /// call for a cached stack: stacks beyond the hot set keep their pages until
    /// [`scavenge`](Self::scavenge) gives them back (Go's background scavenger, in
    /// spirit). A burst of goroutines that ends then costs no `madvise` (and no TLB
    /// flush on every CPU) on the threads that ran them, and a stack reused before it
    /// is scavenged costs none at all. Whoever owns the pool calls `scavenge`.
    ///
    /// ```
    /// use gmp_core::stack::StackPool;
    ///
    /// let pool = StackPool::deferred(64 * 1024, 100, 1);
    /// let (a, b) = (pool.get()?, pool.get()?);
    /// pool.put(a);
    /// pool.put(b);
    /// assert_eq!(pool.excess(), 1); // two committed stacks, a hot set of one
    /// assert_eq!(pool.scavenge(usize::MAX), 1); // one `madvise`
    /// assert_eq!((pool.excess(), pool.cached()), (0, 2));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn deferred(stack_size: usize, max_cached: usize, hot_cached: usize) -> StackPool {
        StackPool {
            deferred: true,
            ..Self::with_limits(stack_size, max_cached, hot_cached)
        }
    }

    /// A stack from the cache, or a new one ([`Stack::new`]) if the cache is empty.
    // Go: runtime.stackalloc (from the P's stackcache, else from the OS).
    #[inline]
    pub fn get(&self) -> io::Result<Stack> {
        let mut cache = self.cache.lock();
        if let Some(s) = cache.hot.pop_back() {
            self.note_excess(&cache);
            return Ok(s);
        }
        if let Some(mut s) = cache.cold.pop() {
            drop(cache);
            s.warm_up();
            return Ok(s);
        }
        drop(cache);
        Stack::new(self.stack_size)
    }

    fn note_excess(&self, cache: &Cache) {
        let excess = cache.hot.len().saturating_sub(self.hot_cached);
        self.excess.store(excess, Ordering::Relaxed);
    }

    /// Returns a stack to the pool (or frees it if the pool is full).
    ///
    /// # Panics
    ///
    /// If the stack's size is not the pool's [`stack_size`](Self::stack_size).
    // Go: runtime.stackfree (into the cache; beyond it, back to the OS).
    pub fn put(&self, mut stack: Stack) {
        // The coroutine that ran on it is finished: its overflow label is dead.
        stack.set_owner(std::ptr::null());
        assert_eq!(
            stack.size(),
            self.stack_size,
            "StackPool::put: a stack of {} bytes was put into a pool of {}-byte stacks",
            stack.size(),
            self.stack_size
        );
        let mut cache = self.cache.lock();
        if cache.len() >= self.max_cached {
            drop(cache);
            drop(stack);
            return;
        }
        if self.deferred || cache.hot.len() < self.hot_cached {
            cache.hot.push_back(stack);
            self.note_excess(&cache);
            return;
        }
        drop(cache);
        stack.release_memory();
        let mut cache = self.cache.lock();
        if cache.len() < self.max_cached {
            cache.cold.push(stack);
        }
    }

    /// How many cached stacks beyond the hot set still hold their pages (what
    /// [`scavenge`](Self::scavenge) would give back). Lock-free; a hint.
    pub fn excess(&self) -> usize {
        self.excess.load(Ordering::Relaxed)
    }

    /// Gives back the memory of up to `budget` cached stacks beyond the hot set, the
    /// least recently put first (one `madvise` each, made outside the pool's lock).
    /// Returns how many it released. For a [`deferred`](Self::deferred) pool; on
    /// another it finds nothing to do.
    pub fn scavenge(&self, budget: usize) -> usize {
        let mut cache = self.cache.lock();
        let n = cache.hot.len().saturating_sub(self.hot_cached).min(budget);
        if n == 0 {
            return 0;
        }
        // The oldest first: the most recently put are the likeliest to be cache-warm.
        let mut batch: Vec<Stack> = cache.hot.drain(..n).collect();
        self.note_excess(&cache);
        drop(cache);
        for s in &mut batch {
            s.release_memory();
        }
        let mut cache = self.cache.lock();
        let room = self.max_cached.saturating_sub(cache.len());
        let extra = batch.len().saturating_sub(room);
        let over: Vec<Stack> = batch.drain(batch.len() - extra..).collect();
        cache.cold.extend(batch);
        drop(cache);
        drop(over);
        n
    }

    /// The usable size of this pool's stacks (the requested size rounded up to pages).
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// How many stacks are cached now.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.stack_size)
            .field("max_cached", &self.max_cached)
            .field("cached", &self.cached())
            .finish()
    }
}
