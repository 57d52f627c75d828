//! Callee-saved registers and the FP control state survive switches in both directions.
//!
//! `check_callee_saved` (assembly below) loads distinctive values into rbx, rbp, r12-r15,
//! MXCSR (round-toward-zero + flush-to-zero) and the x87 control word (truncate), calls a
//! function that switches away and back, then reports which of them changed. The coroutine
//! and the resumer each run it with different values, interleaved, so each side's values
//! must survive the other side's.

use gmp_core::{Coroutine, Resume, Stack, Suspender};
use std::arch::global_asm;
use std::ffi::c_void;

global_asm!(
    ".text",
    ".globl gmp_test_check_callee_saved",
    ".p2align 4",
    "gmp_test_check_callee_saved:",
    // rdi = function to call, rsi = its argument, edx = MXCSR to use, ecx = x87 CW to use,
    // r8 = seed for the integer registers. Returns 0 if everything survived, else a
    // non-zero mask of the differences.
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 40", // 8 (entry) + 48 + 40 = 96: 16-byte aligned for the call
    "stmxcsr [rsp]",
    "fnstcw [rsp + 4]",
    "mov [rsp + 8], edx",
    "mov [rsp + 12], cx",
    "mov [rsp + 16], r8",
    "ldmxcsr [rsp + 8]",
    "fldcw [rsp + 12]",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rbx, r8",
    "lea rbp, [r8 + 1]",
    "lea r12, [r8 + 2]",
    "lea r13, [r8 + 3]",
    "lea r14, [r8 + 4]",
    "lea r15, [r8 + 5]",
    "call rax",
    "mov rcx, [rsp + 16]",
    "xor rax, rax",
    "xor rbx, rcx",
    "or rax, rbx",
    "lea rdx, [rcx + 1]",
    "xor rbp, rdx",
    "or rax, rbp",
    "lea rdx, [rcx + 2]",
    "xor r12, rdx",
    "or rax, r12",
    "lea rdx, [rcx + 3]",
    "xor r13, rdx",
    "or rax, r13",
    "lea rdx, [rcx + 4]",
    "xor r14, rdx",
    "or rax, r14",
    "lea rdx, [rcx + 5]",
    "xor r15, rdx",
    "or rax, r15",
    "stmxcsr [rsp + 24]",
    "mov edx, [rsp + 24]",
    "xor edx, [rsp + 8]",
    "and edx, 0xffc0", // control bits only; bits 0-5 are sticky status flags
    "shl rdx, 32",
    "or rax, rdx",
    "fnstcw [rsp + 28]",
    "movzx edx, word ptr [rsp + 28]",
    "xor dx, word ptr [rsp + 12]",
    "shl rdx, 48",
    "or rax, rdx",
    "ldmxcsr [rsp]",
    "fldcw [rsp + 4]",
    "add rsp, 40",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

extern "C" {
    fn gmp_test_check_callee_saved(
        f: extern "C" fn(*mut c_void),
        arg: *mut c_void,
        mxcsr: u32,
        x87_cw: u32,
        seed: u64,
    ) -> u64;
}

extern "C" fn suspend_thunk(arg: *mut c_void) {
    // SAFETY: `arg` is the running coroutine's `&Suspender` (see the test).
    unsafe { (*(arg as *const Suspender)).suspend() }
}

extern "C" fn resume_thunk(arg: *mut c_void) {
    // SAFETY: `arg` is a `&mut Coroutine<u64>` owned by the test, not otherwise in use.
    let co = unsafe { &mut *(arg as *mut Coroutine<u64>) };
    assert!(matches!(co.resume(), Resume::Suspended));
}

extern "C" fn resume_initial_fp_thunk(arg: *mut c_void) {
    // SAFETY: `arg` is a `&mut Coroutine<u64>` owned by the test, not otherwise in use.
    let co = unsafe { &mut *(arg as *mut Coroutine<u64>) };
    assert!(matches!(co.resume_with_initial_fp(), Resume::Suspended));
}

const MXCSR_A: u32 = 0x1F80 | (3 << 13) | (1 << 15); // round toward zero, FTZ
const X87_A: u32 = 0x0F7F; // truncate
const MXCSR_B: u32 = 0x1F80 | (1 << 13) | (1 << 6); // round down, DAZ
const X87_B: u32 = 0x077F; // round down

fn read_mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stores MXCSR into a local.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
    v
}

/// A coroutine that, four times, runs the checker with state A and suspends inside it
/// (so the resumer's switches happen while A must be preserved), then suspends plainly;
/// it returns how many of its checks found a change.
fn checking_coroutine() -> Coroutine<u64> {
    Coroutine::new(Stack::new(64 * 1024).unwrap(), |s| {
        let mut failures = 0u64;
        for round in 0..4u64 {
            // SAFETY: the thunk suspends through `s`, which outlives the call.
            let diff = unsafe {
                gmp_test_check_callee_saved(
                    suspend_thunk,
                    s as *const Suspender as *mut c_void,
                    MXCSR_A,
                    X87_A,
                    0xC0C0_0000_0000_0000 + round * 16,
                )
            };
            if diff != 0 {
                failures += 1;
            }
            s.suspend();
        }
        failures
    })
}

#[test]
fn callee_saved_state_survives_switches_both_ways() {
    let mut co = checking_coroutine();
    // First resume: the coroutine sets state A and suspends inside the checker.
    assert!(matches!(co.resume(), Resume::Suspended));
    for round in 0..4u64 {
        // The resumer sets state B around the resume that lets the coroutine's checker
        // finish; the coroutine then suspends (plain), ending our checker's call.
        // SAFETY: `co` is ours and not otherwise borrowed during the call.
        let diff = unsafe {
            gmp_test_check_callee_saved(
                resume_thunk,
                &mut co as *mut Coroutine<u64> as *mut c_void,
                MXCSR_B,
                X87_B,
                0x5EED_0000_0000_0000 + round * 16,
            )
        };
        assert_eq!(
            diff, 0,
            "resumer's callee-saved state changed across resume: {diff:#x}"
        );
        if round < 3 {
            // Let the coroutine start its next checker (sets A, suspends inside).
            assert!(matches!(co.resume(), Resume::Suspended));
        }
    }
    match co.resume() {
        Resume::Returned(failures) => {
            assert_eq!(
                failures, 0,
                "coroutine's callee-saved state changed across suspend"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    // And our own FP control is the default again.
    assert_eq!(read_mxcsr() & 0xffc0, 0x1F80);
}

#[test]
fn coroutine_changes_to_mxcsr_do_not_leak_to_resumer() {
    let before = read_mxcsr() & 0xffc0;
    let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), |s| {
        // SAFETY: set round-toward-zero + FTZ on this coroutine only.
        unsafe {
            let v: u32 = MXCSR_A;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack));
        }
        s.suspend();
        read_mxcsr() & 0xffc0
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    assert_eq!(
        read_mxcsr() & 0xffc0,
        before,
        "the coroutine's MXCSR leaked into the resumer"
    );
    match co.resume() {
        Resume::Returned(v) => assert_eq!(v, MXCSR_A & 0xffc0, "the coroutine lost its MXCSR"),
        other => panic!("unexpected {other:?}"),
    }
}

/// MXCSR's status flags (the low six bits) are never *loaded* by a switch: loading a
/// saved MXCSR with a flag set made every switch 15x slower on an Intel Xeon (see
/// `arch/x86_64.rs`). A switch loads MXCSR only when the control bits differ, and then
/// without the flags; when they are equal it loads nothing, and the side switched to
/// sees whatever flags are set, as a function sees its caller's (the ABI makes the
/// status bits caller-saved). The control bits always travel.
#[test]
fn mxcsr_status_flags_are_never_loaded_and_control_bits_travel() {
    const PRECISION: u32 = 1 << 5;
    let set_flag = |v: u32| {
        // SAFETY: loads a valid MXCSR (a status flag set, control bits as given).
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack)) };
    };
    let before = read_mxcsr();
    set_flag((before & 0xffc0) | PRECISION);
    let mut co = Coroutine::new(Stack::new(64 * 1024).unwrap(), move |s| {
        let first = read_mxcsr();
        set_flag(MXCSR_A | PRECISION);
        s.suspend();
        (first, read_mxcsr())
    });
    assert!(matches!(co.resume(), Resume::Suspended));
    let back = read_mxcsr();
    let r = co.resume();
    set_flag(before & 0xffc0);
    // The coroutine's control bits (MXCSR_A) differ from ours, so the switch back
    // loaded our MXCSR, and loaded it without the flag.
    assert_eq!(
        back & 0x3f,
        0,
        "the resumer got a status flag back: {back:#x}"
    );
    assert_eq!(
        back & 0xffc0,
        before & 0xffc0,
        "the resumer's control bits changed"
    );
    match r {
        Resume::Returned((first, resumed)) => {
            // The resumer's PRECISION flag may be seen here: the control bits were
            // equal, so the first switch loaded nothing.
            assert_eq!(
                first & 0xffc0,
                0x1F80,
                "a coroutine starts with the ABI's initial control bits"
            );
            assert_eq!(resumed & 0x3f, 0, "the coroutine got its status flag back");
            assert_eq!(
                resumed & 0xffc0,
                MXCSR_A,
                "the coroutine lost its control bits"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// `resume_with_initial_fp`: the resumer's integer callee-saved registers survive, its
/// FP control state comes back as the ABI's initial one (by design: it is not saved),
/// and the coroutine's own FP control state survives every switch, as with `resume`.
#[test]
fn resume_with_initial_fp_keeps_registers_and_the_coroutines_fp_state() {
    let mut co = checking_coroutine();
    // What the checker reports when only the FP control state changed from B to the
    // initial values (control bits of MXCSR at bit 32, the x87 control word at bit 48).
    let expected =
        (u64::from((MXCSR_B ^ 0x1F80) & 0xffc0) << 32) | (u64::from(X87_B ^ 0x037F) << 48);
    assert!(matches!(co.resume_with_initial_fp(), Resume::Suspended));
    for round in 0..4u64 {
        // SAFETY: `co` is ours and not otherwise borrowed during the call.
        let diff = unsafe {
            gmp_test_check_callee_saved(
                resume_initial_fp_thunk,
                &mut co as *mut Coroutine<u64> as *mut c_void,
                MXCSR_B,
                X87_B,
                0x5EED_0000_0000_0000 + round * 16,
            )
        };
        assert_eq!(
            diff, expected,
            "resume_with_initial_fp: {diff:#x}, expected only the FP control state to \
             change to the initial one ({expected:#x})"
        );
        if round < 3 {
            assert!(matches!(co.resume_with_initial_fp(), Resume::Suspended));
        }
    }
    match co.resume_with_initial_fp() {
        Resume::Returned(failures) => assert_eq!(
            failures, 0,
            "coroutine's callee-saved state changed across suspend"
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn set_initial_fp_control_resets_both_control_words() {
    let v: u32 = MXCSR_B;
    let cw: u16 = X87_B as u16;
    // SAFETY: sets a non-default FP control state on this test thread only; it is reset
    // below before any floating-point work.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", "fldcw [{}]", in(reg) &v, in(reg) &cw, options(nostack));
    }
    gmp_core::coroutine::set_initial_fp_control();
    let mut x87: u16 = 0;
    // SAFETY: stores the x87 control word into a local.
    unsafe { std::arch::asm!("fnstcw [{}]", in(reg) &mut x87, options(nostack)) };
    assert_eq!((read_mxcsr() & 0xffc0, x87), (0x1F80, 0x037F));
}
