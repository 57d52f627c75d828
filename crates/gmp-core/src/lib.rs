#![doc = include_str!("../README.md")]

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "gmp-core supports only x86_64 Linux (System V ABI): its context switch is x86-64 assembly \
     and its stacks and overflow handler use Linux system calls"
);

mod arch;
pub mod coroutine;
mod overflow;
pub mod park;
mod sanitizer;
pub mod stack;
pub mod sync;
mod uffd;

pub use coroutine::{is_forced_unwind, Coroutine, Resume, Suspender};
pub use stack::{Stack, StackPool, StackProtection, DEFAULT_STACK_SIZE};
