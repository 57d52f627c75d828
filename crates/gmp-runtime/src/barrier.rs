//! Asymmetric memory barriers: a cheap side, run on every goroutine switch, and an
//! expensive side, run by sysmon when it takes a P (p.rs, "Taking a P from goroutine
//! code").
//!
//! The two sides order a store before a load on each side (Dekker's pattern: each
//! thread writes its own flag, then reads the other's). That needs a full fence on
//! *both* sides — a `lock`ed instruction or `mfence` on x86, some 5 ns on the switch
//! path (a fifth of a `yield_now`). Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! moves the whole cost to the rare side: it makes every other running thread of the
//! process execute a full barrier (by an interrupt) before it returns, so the frequent
//! side needs only a compiler fence — its store and load stay in program order in the
//! instruction stream, and the interrupt's barrier lands either before the store (the
//! load then sees the rare side's write) or after it (the rare side then sees the
//! store). Linux's RCU and folly's `asymmetricLightBarrier` use the same pair.
//!
//! [`init`] registers the process once (the kernel requires it, Linux 4.14+). Where
//! that fails — another OS, an old kernel, a seccomp filter — both sides fall back to
//! `fence(SeqCst)`, which is always correct. A thread that read the mode before
//! registration finished used a full fence: stronger than needed, never weaker (the
//! mode only ever goes from fences to membarrier).
//!
//! Under loom both sides are `SeqCst` fences: that is the guarantee `membarrier` gives
//! the pair, and loom models it.

use gmp_core::sync::atomic::{fence, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{compiler_fence, AtomicU8};

#[cfg(not(loom))]
const UNKNOWN: u8 = 0;
#[cfg(not(loom))]
const FENCES: u8 = 1;
#[cfg(not(loom))]
const MEMBARRIER: u8 = 2;

/// How the pair is made in this process (`UNKNOWN` until [`init`]).
#[cfg(not(loom))]
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cfg(all(target_os = "linux", not(loom)))]
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
#[cfg(all(target_os = "linux", not(loom)))]
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for expedited membarriers (once; every runtime calls it
/// before starting its Ms).
pub(crate) fn init() {
    #[cfg(not(loom))]
    if MODE.load(Ordering::Relaxed) == UNKNOWN {
        let mode = if register() { MEMBARRIER } else { FENCES };
        // Relaxed: the mode only moves from "fences" (stronger) to "membarrier", so a
        // thread that reads a stale value is still correct (module docs).
        MODE.store(mode, Ordering::Relaxed);
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
fn register() -> bool {
    // `GMP_MEMBARRIER=off` forces the fence fallback (to measure it, or to test it).
    if std::env::var_os("GMP_MEMBARRIER").is_some_and(|v| v == "off") {
        return false;
    }
    // SAFETY: membarrier takes no pointers; an unknown command fails with EINVAL.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        )
    };
    r == 0
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
fn register() -> bool {
    false
}

/// The frequent side: orders the caller's earlier stores before its later loads
/// against a thread that runs [`heavy`].
#[inline(always)]
pub(crate) fn light() {
    #[cfg(not(loom))]
    {
        if MODE.load(Ordering::Relaxed) == MEMBARRIER {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The rare side: after it returns, every thread that ran [`light`] either had its
/// stores before that call visible to the caller, or will see the caller's stores
/// from before this call in its loads after it. False if the system call failed
/// (then nothing is guaranteed about the other side: the caller must act as if the
/// other thread's flag were set).
#[must_use]
pub(crate) fn heavy() -> bool {
    fence(Ordering::SeqCst);
    #[cfg(all(target_os = "linux", not(loom)))]
    if MODE.load(Ordering::Relaxed) == MEMBARRIER {
        // SAFETY: membarrier takes no pointers; the process registered in `init`.
        let r =
            unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
        fence(Ordering::SeqCst);
        return r == 0;
    }
    true
}
