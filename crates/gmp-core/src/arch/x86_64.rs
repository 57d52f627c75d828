//! The x86-64 System V context switch and the coroutine entry trampoline.
//!
//! # What a switch saves
//!
//! The System V ABI makes `rbx`, `rbp`, `r12`–`r15`, `rsp`, the MXCSR control bits and the
//! x87 control word callee-saved; everything else (the other integer registers, all of
//! `xmm0`–`xmm15`, the flags, the MXCSR/x87 *status* bits) may be destroyed by any call. A
//! switch is written as one inline `asm!` block that looks, to the compiler, like an
//! ordinary call that clobbers every caller-saved register *and* `r12`–`r15`. The compiler
//! then saves only the registers that are actually live across the switch, in the frame of
//! the function that contains the block (usually nothing, in a tight loop). The block itself
//! saves what cannot be declared clobbered: `rbp` (the frame pointer), `rbx` (reserved by
//! LLVM), the MXCSR and the x87 control word, plus the address to continue at.
//!
//! # The saved context: one stack pointer
//!
//! A suspended side (the coroutine, or the resumer while the coroutine runs) is described
//! by a single word, its saved stack pointer, under which the switch pushed:
//!
//! ```text
//!              higher addresses
//!   ...        caller's frame (compiler-saved r12-r15 and live values, if any)
//!   sp + 24    continuation address (label `2:` in the asm block that switched away)
//!   sp + 16    saved rbp
//!   sp +  8    saved rbx
//!   sp +  0    MXCSR (low 4 bytes) | x87 control word (bytes 4-5)     <- saved sp
//!              lower addresses
//! ```
//!
//! Switching *to* a side is the mirror image: load its stack pointer, reload MXCSR and the
//! control word (the control word only when it differs from the current one, see below),
//! pop `rbx` and `rbp`, pop the continuation and `jmp` to it.
//!
//! # Why `jmp` and not `ret`
//!
//! Returning through `ret` to an address that no `call` pushed desynchronises the CPU's
//! return-stack predictor, so every switch mispredicts. An indirect `jmp` is predicted by
//! the branch-target buffer instead, which learns the ping-pong pattern of a resume/suspend
//! loop. Measured on the development machine (AMD EPYC, 2 vCPUs; best of 300 windows of
//! 100,000 round trips): 21.9 ns per round trip with `ret`, 11.1 ns with `jmp`.
//!
//! # What the FP control state costs
//!
//! Saving and restoring MXCSR is most of a switch's cost on that CPU: `stmxcsr` alone has a
//! throughput of ~4 ns there and `ldmxcsr` adds ~3 ns. Same measurement as above: 11.1 ns
//! per round trip as written, 5.1 ns without the two MXCSR instructions (x87 control word
//! only), 4.1 ns with no FP control state at all. Reloading only when the control bits
//! differ was *slower* (13.8 ns): reading back the value `stmxcsr` just stored stalls
//! there. (Not on the Intel Xeon measured later, where the switches now do just that:
//! see "Loading MXCSR only when the control bits differ" below.)
//! The ABI makes the MXCSR control bits callee-saved and code that changes them (`FTZ`/`DAZ`
//! for denormal-heavy numerics, rounding-mode changes) exists, so a switch preserves them;
//! a coroutine starts with the ABI's initial values, not its resumer's.
//!
//! A scheduler loop knows its own FP control state: it set the initial one once
//! (`set_initial_fp_control`) and nothing in it changes it. Its resume
//! ([`resume_switch_initial_fp`]) therefore saves constants instead of `stmxcsr`/`fnstcw`,
//! and reloads the coroutine's MXCSR and control word only when they differ from the
//! initial ones — comparing a value the coroutine saved long ago does not stall as a
//! read-back of a fresh `stmxcsr` does. The coroutine's side is unchanged (it must read
//! its state: the coroutine may have changed it). Same measurement (2026-12-04, the same
//! CPU): 11.4 ns per round trip with `resume`, 7.3–7.7 ns with the scheduler's resume; a
//! compare-and-skip of MXCSR on the suspend side as well made it slower again (8.9 ns).
//! The x87 control word is different: reading back what `fnstcw` stored does not stall,
//! so every switch compares the two control words and skips `fldcw` when they are equal
//! (the usual case): 11.1 → 10.6 ns with `resume`, 7.3 → 7.0 ns with the scheduler's.
//!
//! # MXCSR status flags
//!
//! MXCSR's low six bits are *status* flags (invalid, denormal, divide-by-zero, overflow,
//! underflow, precision), set by floating-point operations and never cleared by them;
//! the ABI makes them caller-saved (a function may find any flags set on entry and
//! leave any set on return). A switch never *loads* them: loading a value with status
//! flags set was the slowest thing a switch could do on the Intel Xeon a later session
//! ran on (2026-12-04 pm, criterion `switch/round_trip`): 106 ns per round trip against
//! 6.8 ns without, because any float operation of the resumer's (the precision flag:
//! 1.0 / 3.0 sets it) made every later switch load the flag again.
//!
//! # Loading MXCSR only when the control bits differ
//!
//! [`resume_switch`] and [`suspend_switch`] compare the control bits of the MXCSR they
//! just stored (read back from the stack) with those of the side they switch to, and
//! run `ldmxcsr` only when they differ — after clearing the saved value's status flags
//! in memory. When they are equal (the usual case) the side switched to keeps the
//! current flags, as a function keeps its caller's. The read-back that stalled on the
//! AMD EPYC of the first measurements (above) does not on the Intel Xeon of 2026-12-04 evening
//! (criterion, 3-second windows, interleaved with the previous code): `resume`'s round
//! trip 6.9-7.1 → 5.3-5.5 ns, the scheduler's (`resume_switch_initial_fp` + this
//! suspend) 4.9-5.3 → 4.9-5.2 ns; the yield bench (two goroutines on one P) 22.5-23.0 →
//! 21.5-22.1 ns per yield.
//!
//! # The two slots
//!
//! Both stack pointers live in [`SwitchSlots`], which the coroutine code places at the very
//! top of the coroutine's own stack (so it never moves while the `Coroutine` value does):
//! `parent_sp` is written by the resumer as it switches in, `coroutine_sp` by the coroutine
//! as it suspends.
//!
//! # The first frame
//!
//! A fresh coroutine's `coroutine_sp` points at a hand-built context ([`init_frame`]) whose
//! continuation is the trampoline `gmp_core_coroutine_trampoline`, whose saved `rbx` is
//! the argument for the Rust entry function and whose saved `rbp` is 0 (so frame-pointer
//! walkers such as `perf` stop there):
//!
//! ```text
//!   base          (16-byte aligned; the closure and the coroutine header lie above)
//!   base -  8     0 (padding)
//!   base - 16     entry: extern "C" fn(usize) -> !          <- rsp when the trampoline runs
//!   base - 24     continuation = trampoline
//!   base - 32     rbp = 0
//!   base - 40     rbx = argument (the coroutine header)
//!   base - 48     MXCSR 0x1F80 | x87 CW 0x037F (the ABI's initial values)  <- coroutine_sp
//! ```
//!
//! The trampoline moves `rbx` into `rdi` and does `call [rsp]`: `rsp` is 16-byte aligned
//! at the call, as the ABI requires, and the entry function never returns (it switches
//! away for the last time). Its CFI marks the return-address column undefined
//! (`.cfi_undefined rip`), which is how DWARF says "outermost frame": `std::backtrace`,
//! the panic machinery, gdb and perf's DWARF unwinder all stop cleanly at the trampoline
//! instead of walking into whatever the stack holds above it. Panics never need to unwind
//! through it: the entry function catches them (see `coroutine.rs`).

use core::arch::{asm, global_asm};

/// The two saved stack pointers of a coroutine/resumer pair. `#[repr(C)]`: the asm below
/// addresses `parent_sp` at offset 0 and `coroutine_sp` at offset 8.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SwitchSlots {
    /// The resumer's saved stack pointer while the coroutine runs.
    pub(crate) parent_sp: usize,
    /// The coroutine's saved stack pointer while it is suspended (or not yet started).
    pub(crate) coroutine_sp: usize,
}

/// MXCSR with all exceptions masked, round-to-nearest: the value the ABI specifies at
/// process start and what Rust code expects.
const INITIAL_MXCSR: u64 = 0x1F80;
/// x87 control word: all exceptions masked, 64-bit precision, round-to-nearest.
const INITIAL_X87_CW: u64 = 0x037F;

global_asm!(
    ".text",
    ".p2align 4",
    ".globl gmp_core_coroutine_trampoline",
    ".hidden gmp_core_coroutine_trampoline",
    ".type gmp_core_coroutine_trampoline, @function",
    "gmp_core_coroutine_trampoline:",
    ".cfi_startproc",
    // The return-address column is undefined: this is the outermost frame of the
    // coroutine's stack. Unwinders and debuggers stop here.
    ".cfi_undefined rip",
    // The first switch popped rbx = the argument prepared by `init_frame`.
    "mov rdi, rbx",
    // rsp is 16-byte aligned here and [rsp] holds the entry function.
    "call qword ptr [rsp]",
    // The entry function never returns. `ud2` also keeps the return address pushed by
    // the call inside this function's FDE, so an unwinder looking up `ra - 1` finds
    // the CFI above.
    "ud2",
    ".cfi_endproc",
    ".size gmp_core_coroutine_trampoline, . - gmp_core_coroutine_trampoline",
);

extern "C" {
    /// The coroutine's first "continuation"; see the module docs. Never called from Rust.
    fn gmp_core_coroutine_trampoline();
}

/// Builds the initial context of a coroutine below `base` (see the module docs) and
/// returns the value for [`SwitchSlots::coroutine_sp`].
///
/// # Safety
///
/// `base` must be 16-byte aligned and the 48 bytes below it must be writable memory of the
/// coroutine's stack that nothing else uses. `entry` must never return.
pub(crate) unsafe fn init_frame(
    base: *mut u8,
    arg: usize,
    entry: unsafe extern "C" fn(usize) -> !,
) -> usize {
    debug_assert_eq!(base as usize % 16, 0);
    let words = base.cast::<u64>();
    // SAFETY: the caller guarantees the 48 bytes (6 words) below `base` are ours and
    // writable; `base` is 16-byte aligned, so every word is 8-byte aligned.
    unsafe {
        words.sub(1).write(0);
        words.sub(2).write(entry as usize as u64);
        words
            .sub(3)
            .write(gmp_core_coroutine_trampoline as *const () as usize as u64);
        words.sub(4).write(0); // rbp: ends frame-pointer chains
        words.sub(5).write(arg as u64); // rbx: the trampoline's argument
        words.sub(6).write(INITIAL_MXCSR | (INITIAL_X87_CW << 32));
    }
    base as usize - 48
}

/// Switches from the resumer into the coroutine whose slots are `slots`, and returns the
/// value the coroutine passes back when it next switches out ([`suspend_switch`] or
/// [`final_switch`]).
///
/// # Safety
///
/// `slots.coroutine_sp` must hold a context saved by [`suspend_switch`] or built by
/// [`init_frame`] that has not been resumed since, on a stack that stays mapped until the
/// coroutine switches back; no other thread may touch `slots` meanwhile.
// Go: runtime.gogo (switch to a g's saved context).
#[inline(always)]
pub(crate) unsafe fn resume_switch(slots: *mut SwitchSlots) -> usize {
    let value: usize;
    // SAFETY: see the module docs for the protocol. Every register the asm does not save
    // itself is declared clobbered (clobber_abi + r12-r15), so the compiler preserves the
    // live ones; the stack pointer is back to its value at entry when control reaches
    // label 2 (the coroutine reloads `parent_sp`, which we saved). No `nostack`: the
    // block pushes below rsp, so the compiler keeps nothing in the red zone across it.
    unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "push rbp",
            "push rbx",
            "sub rsp, 8",
            "stmxcsr [rsp]",
            "fnstcw [rsp + 4]",
            "mov [rdi], rsp",     // slots.parent_sp
            // Our MXCSR, read back: `ldmxcsr` only if the control bits differ
            // (module docs, "Loading MXCSR only when the control bits differ").
            "mov eax, [rsp]",
            // Our x87 control word, read back from where `fnstcw` just put it (unlike
            // `stmxcsr`'s, that read does not stall): `fldcw` only if it differs.
            "movzx edx, word ptr [rsp + 4]",
            "mov rsp, [rdi + 8]", // slots.coroutine_sp
            "xor eax, [rsp]",
            "test eax, 0xffc0",
            "jnz 5f",
            "6:",
            "cmp dx, word ptr [rsp + 4]",
            "je 4f",
            "fldcw [rsp + 4]",
            "4:",
            "add rsp, 8",
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            "5:",
            // Never load status flags (module docs): clear them in the saved value.
            "and dword ptr [rsp], 0xffffffc0",
            "ldmxcsr [rsp]",
            "jmp 6b",
            "2:",
            inout("rdi") slots => _,
            out("rsi") value,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
    value
}

/// As [`resume_switch`], for a resumer whose FP control state is the ABI's initial
/// one: instead of saving the resumer's MXCSR and x87 control word (`stmxcsr` is the
/// slowest instruction of a switch, see the module docs), it saves the constants
/// [`INITIAL_MXCSR`] and [`INITIAL_X87_CW`] in their place, so the switch back sets
/// those. The coroutine side is unchanged: [`suspend_switch`] and [`final_switch`]
/// reload whatever the resumer's context holds.
///
/// # Safety
///
/// As [`resume_switch`]. (A resumer whose FP control state was not the initial one
/// gets the initial one back: not undefined behaviour, a documented change of state.)
// Go: runtime.gogo; Go's scheduler never saves the FP control state at all.
#[inline(always)]
pub(crate) unsafe fn resume_switch_initial_fp(slots: *mut SwitchSlots) -> usize {
    let value: usize;
    // SAFETY: as `resume_switch`; the context pushed has the same layout, with the
    // initial FP control values written as immediates instead of read with
    // `stmxcsr`/`fnstcw`.
    unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "push rbp",
            "push rbx",
            "sub rsp, 8",
            "mov dword ptr [rsp], {mxcsr}",
            "mov dword ptr [rsp + 4], {x87}",
            "mov [rdi], rsp",     // slots.parent_sp
            "mov rsp, [rdi + 8]", // slots.coroutine_sp
            // Our state is the initial one (the caller's contract): reload only what
            // differs. MXCSR's low six bits are status flags, which no call preserves.
            "mov eax, [rsp]",
            "and eax, 0xffc0",
            "cmp eax, {mxcsr}",
            "jne 3f",
            "cmp word ptr [rsp + 4], {x87}",
            "jne 3f",
            "4:",
            "add rsp, 8",
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            "3:",
            // The coroutine changed its FP control state: load it, without the status
            // flags it may also have saved (module docs).
            "and dword ptr [rsp], 0xffffffc0",
            "ldmxcsr [rsp]",
            "fldcw [rsp + 4]",
            "jmp 4b",
            "2:",
            mxcsr = const INITIAL_MXCSR,
            x87 = const INITIAL_X87_CW,
            inout("rdi") slots => _,
            out("rsi") value,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
    value
}

/// Sets this thread's MXCSR and x87 control word to the ABI's initial values
/// ([`INITIAL_MXCSR`], [`INITIAL_X87_CW`]). The MXCSR status flags are cleared too
/// (they are not preserved across calls anyway).
#[inline]
pub(crate) fn set_initial_fp_control() {
    let mxcsr = INITIAL_MXCSR as u32;
    let x87 = INITIAL_X87_CW as u16;
    // SAFETY: reads two locals; loading the ABI's initial control values is what every
    // Rust function may assume on entry, so no code observes a change it did not expect.
    unsafe {
        asm!(
            "ldmxcsr [{m}]",
            "fldcw [{c}]",
            m = in(reg) &mxcsr,
            c = in(reg) &x87,
            options(nostack, readonly, preserves_flags),
        );
    }
}

/// Switches from the running coroutine back to its resumer, handing it `value`, and
/// returns when the coroutine is next resumed (possibly on another thread).
///
/// # Safety
///
/// Must be called on the coroutine's own stack while it runs, with the `slots` its
/// current resumer switched in through ([`resume_switch`]).
// Go: runtime.mcall (save the g's context, continue on the scheduler's stack).
#[inline(always)]
pub(crate) unsafe fn suspend_switch(slots: *mut SwitchSlots, value: usize) {
    // SAFETY: the mirror image of `resume_switch`: save our context under our stack
    // pointer, store it in `coroutine_sp`, continue the resumer from `parent_sp`.
    unsafe {
        asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "push rbp",
            "push rbx",
            "sub rsp, 8",
            "stmxcsr [rsp]",
            "fnstcw [rsp + 4]",
            "mov [rdi + 8], rsp", // slots.coroutine_sp
            // Our MXCSR, read back: `ldmxcsr` only if the control bits differ
            // (module docs, "Loading MXCSR only when the control bits differ").
            "mov eax, [rsp]",
            // As in `resume_switch`: `fldcw` only if the control words differ.
            "movzx edx, word ptr [rsp + 4]",
            "mov rsp, [rdi]",     // slots.parent_sp
            "xor eax, [rsp]",
            "test eax, 0xffc0",
            "jnz 5f",
            "6:",
            "cmp dx, word ptr [rsp + 4]",
            "je 4f",
            "fldcw [rsp + 4]",
            "4:",
            "add rsp, 8",
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            "5:",
            // Never load status flags (module docs): clear them in the saved value.
            "and dword ptr [rsp], 0xffffffc0",
            "ldmxcsr [rsp]",
            "jmp 6b",
            "2:",
            inout("rdi") slots => _,
            inout("rsi") value => _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// Switches from the running coroutine back to its resumer for the last time.
///
/// # Safety
///
/// As [`suspend_switch`]; in addition nothing on the coroutine's stack may need to run
/// again (no destructor, no borrowed value still in use by the resumer other than what
/// `value` hands over).
#[inline(always)]
pub(crate) unsafe fn final_switch(slots: *mut SwitchSlots, value: usize) -> ! {
    // SAFETY: continues the resumer exactly as `suspend_switch` does, without saving our
    // own context: this stack is never resumed again.
    unsafe {
        asm!(
            "mov rsp, [rdi]", // slots.parent_sp
            // Saved status flags dropped, as in `suspend_switch` (once per coroutine:
            // no test-and-branch).
            "and dword ptr [rsp], 0xffffffc0",
            "ldmxcsr [rsp]",
            "fldcw [rsp + 4]",
            "add rsp, 8",
            "pop rbx",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            in("rdi") slots,
            in("rsi") value,
            options(noreturn),
        );
    }
}
