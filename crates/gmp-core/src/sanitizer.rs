//! Telling the sanitizers and Valgrind about stack switches.
//!
//! AddressSanitizer, ThreadSanitizer and Valgrind all track "the current stack". A
//! coroutine switch that they do not hear about looks to them like a jump into wild
//! memory: ASan reports false stack-buffer overflows (or misses real ones) and mishandles
//! its fake stacks and `__asan_handle_no_return` on unwinding; TSan mixes the coroutine's
//! accesses into the thread that happens to run it; Valgrind takes the switch for a huge
//! stack-pointer change and warns. Each has an API for user-level stacks:
//!
//! - ASan (`--cfg gmp_asan`, with `-Zsanitizer=address`):
//!   `__sanitizer_start_switch_fiber` right before a switch (naming the stack being
//!   switched to, and saving the leaving side's fake stack) and
//!   `__sanitizer_finish_switch_fiber` right after (restoring it, and learning the bounds
//!   of the stack switched from). A stack is unpoisoned when a coroutine is created on it,
//!   since a recycled stack may hold the redzones of frames that never returned.
//! - TSan (`--cfg gmp_tsan`, with `-Zsanitizer=thread`): one TSan fiber per coroutine
//!   (`__tsan_create_fiber` / `__tsan_destroy_fiber`), `__tsan_switch_to_fiber` right
//!   before every switch, in both directions.
//! - Valgrind (cargo feature `valgrind`): `VALGRIND_STACK_REGISTER` when a coroutine is
//!   created, `VALGRIND_STACK_DEREGISTER` when it is dropped (client requests, which are
//!   no-ops outside Valgrind).
//!
//! `cargo xtask sanitize` sets the cfgs together with the sanitizer flags. Without them
//! [`Fiber`] is an empty type and every call here compiles to nothing. The hooks are
//! called at the three switch sites of `coroutine.rs`: `Coroutine::switch_in` (the
//! resumer's side), `Suspender::suspend`, and the start and final switch of
//! `coroutine_main` (the coroutine's side).

#[cfg(any(gmp_asan, gmp_tsan))]
use std::ffi::c_void;

#[cfg(gmp_asan)]
extern "C" {
    fn __sanitizer_start_switch_fiber(
        fake_stack_save: *mut *mut c_void,
        bottom: *const c_void,
        size: usize,
    );
    fn __sanitizer_finish_switch_fiber(
        fake_stack_save: *mut c_void,
        bottom_old: *mut *const c_void,
        size_old: *mut usize,
    );
    fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
}

#[cfg(gmp_tsan)]
extern "C" {
    fn __tsan_get_current_fiber() -> *mut c_void;
    fn __tsan_create_fiber(flags: u32) -> *mut c_void;
    fn __tsan_destroy_fiber(fiber: *mut c_void);
    fn __tsan_switch_to_fiber(fiber: *mut c_void, flags: u32);
}

/// The sanitizer state of one coroutine, kept in its header. Empty unless a sanitizer
/// cfg or the `valgrind` feature is on.
#[derive(Debug)]
pub(crate) struct Fiber {
    /// The coroutine's usable stack: `[bottom, bottom + size)`.
    #[cfg(gmp_asan)]
    bottom: usize,
    #[cfg(gmp_asan)]
    size: usize,
    /// The stack of whoever resumed the coroutine last (learnt on arrival), to name it
    /// when switching back.
    #[cfg(gmp_asan)]
    parent_bottom: *const c_void,
    #[cfg(gmp_asan)]
    parent_size: usize,
    /// The coroutine's ASan fake stack while it is switched out.
    #[cfg(gmp_asan)]
    fake_stack: *mut c_void,
    /// The coroutine's TSan fiber, and the resumer's to switch back to.
    #[cfg(gmp_tsan)]
    fiber: *mut c_void,
    #[cfg(gmp_tsan)]
    parent: *mut c_void,
    /// Valgrind's id for the registered stack.
    #[cfg(feature = "valgrind")]
    valgrind_id: usize,
}

/// What the resumer keeps on its own stack across a switch into a coroutine.
pub(crate) struct ResumerSave {
    #[cfg(gmp_asan)]
    fake_stack: *mut c_void,
}

impl Fiber {
    /// The state of a coroutine about to be created on `[bottom, bottom + size)`.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn new(bottom: usize, size: usize) -> Fiber {
        #[cfg(gmp_asan)]
        // SAFETY: the range is the new coroutine's own stack, which nothing else uses;
        // unpoisoning only clears ASan's shadow bytes for it.
        unsafe {
            __asan_unpoison_memory_region(bottom as *const c_void, size)
        };
        Fiber {
            #[cfg(gmp_asan)]
            bottom,
            #[cfg(gmp_asan)]
            size,
            #[cfg(gmp_asan)]
            parent_bottom: std::ptr::null(),
            #[cfg(gmp_asan)]
            parent_size: 0,
            #[cfg(gmp_asan)]
            fake_stack: std::ptr::null_mut(),
            #[cfg(gmp_tsan)]
            // SAFETY: creating a fiber has no precondition.
            fiber: unsafe { __tsan_create_fiber(0) },
            #[cfg(gmp_tsan)]
            parent: std::ptr::null_mut(),
            #[cfg(feature = "valgrind")]
            valgrind_id: valgrind::stack_register(bottom, bottom + size),
        }
    }

    /// The resumer's side, right before it switches into the coroutine.
    ///
    /// # Safety
    /// `f` is the coroutine's fiber, not being used by the coroutine (it is not running);
    /// the switch follows at once and [`Fiber::after_resume`] right after it returns.
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) unsafe fn before_resume(f: *mut Fiber) -> ResumerSave {
        #[allow(unused_mut)]
        let mut save = ResumerSave {
            #[cfg(gmp_asan)]
            fake_stack: std::ptr::null_mut(),
        };
        #[cfg(gmp_asan)]
        // SAFETY: `f` is valid (caller); the bounds are the coroutine's stack.
        unsafe {
            __sanitizer_start_switch_fiber(
                &mut save.fake_stack,
                (*f).bottom as *const c_void,
                (*f).size,
            );
        }
        #[cfg(gmp_tsan)]
        // SAFETY: `f` is valid (caller); its fiber lives until `destroy`.
        unsafe {
            (*f).parent = __tsan_get_current_fiber();
            __tsan_switch_to_fiber((*f).fiber, 0);
        }
        save
    }

    /// The resumer's side, right after the coroutine switched back to it.
    ///
    /// # Safety
    /// Pairs with the [`Fiber::before_resume`] that returned `save`.
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) unsafe fn after_resume(save: ResumerSave) {
        #[cfg(gmp_asan)]
        // SAFETY: `save.fake_stack` is what the matching start call stored.
        unsafe {
            __sanitizer_finish_switch_fiber(
                save.fake_stack,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// The coroutine's side, first thing after a switch into it (its start, and every
    /// return from a suspension).
    ///
    /// # Safety
    /// `f` is the running coroutine's own fiber.
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) unsafe fn arrived(f: *mut Fiber) {
        #[cfg(gmp_asan)]
        // SAFETY: `f` is ours (caller); `fake_stack` is what our last leave saved (null
        // at the start).
        unsafe {
            __sanitizer_finish_switch_fiber(
                (*f).fake_stack,
                &mut (*f).parent_bottom,
                &mut (*f).parent_size,
            );
        }
    }

    /// The coroutine's side, right before it switches back to its resumer;
    /// `finishing` for the final switch (the coroutine's frames are dead after it).
    ///
    /// # Safety
    /// `f` is the running coroutine's own fiber; the switch follows at once.
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) unsafe fn leaving(f: *mut Fiber, finishing: bool) {
        #[cfg(gmp_asan)]
        // SAFETY: `f` is ours (caller); the parent bounds were learnt on arrival. A null
        // save slot tells ASan this stack's fake frames die now.
        unsafe {
            let save: *mut *mut c_void = if finishing {
                std::ptr::null_mut()
            } else {
                &mut (*f).fake_stack
            };
            __sanitizer_start_switch_fiber(save, (*f).parent_bottom, (*f).parent_size);
        }
        #[cfg(gmp_tsan)]
        // SAFETY: `parent` was set by the resumer that switched us in.
        unsafe {
            __tsan_switch_to_fiber((*f).parent, 0);
        }
    }

    /// Releases what [`Fiber::new`] took, once the coroutine will never run again.
    ///
    /// # Safety
    /// `f` is a coroutine's fiber; the coroutine is finished (or was never started) and
    /// not running.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) unsafe fn destroy(f: *mut Fiber) {
        #[cfg(gmp_tsan)]
        // SAFETY: the fiber is not current (the coroutine is not running) and is
        // destroyed once.
        unsafe {
            __tsan_destroy_fiber((*f).fiber);
        }
        #[cfg(feature = "valgrind")]
        // SAFETY: `f` is valid (caller).
        valgrind::stack_deregister(unsafe { (*f).valgrind_id });
    }
}

/// Valgrind client requests (`valgrind.h`'s `VALGRIND_STACK_REGISTER` and
/// `VALGRIND_STACK_DEREGISTER`): a magic instruction sequence that does nothing on a real
/// CPU (the four rotations of `rdi` add up to 128 bits, `xchg rbx, rbx` is a no-op) and
/// that Valgrind's JIT recognises; the request block is passed in `rax`, the result comes
/// back in `rdx` (the default value outside Valgrind).
#[cfg(feature = "valgrind")]
mod valgrind {
    const STACK_REGISTER: usize = 0x1501;
    const STACK_DEREGISTER: usize = 0x1502;

    #[cfg(target_arch = "x86_64")]
    fn client_request(default: usize, request: usize, a1: usize, a2: usize) -> usize {
        let args: [usize; 6] = [request, a1, a2, 0, 0, 0];
        let mut result = default;
        // SAFETY: the sequence leaves every register as it found it except `rdx` (the
        // result, declared); Valgrind reads the six words at `rax` and writes nothing
        // else of ours.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") result,
                options(nostack),
            );
        }
        result
    }

    /// Registers `[start, end)` as a stack; returns Valgrind's id for it (0 outside
    /// Valgrind).
    pub(super) fn stack_register(start: usize, end: usize) -> usize {
        client_request(0, STACK_REGISTER, start, end)
    }

    /// Forgets a stack registered by [`stack_register`].
    pub(super) fn stack_deregister(id: usize) {
        client_request(0, STACK_DEREGISTER, id, 0);
    }
}
