//! gmp-core: stackful coroutines, their stacks, and the park/unpark hook.
//!
//! ```
//! use gmp_core::{Coroutine, Resume, StackPool};
//!
//! let pool = StackPool::new(gmp_core::DEFAULT_STACK_SIZE);
//! let mut co = Coroutine::new(pool.get()?, |s| {
//!     let mut total = 0;
//!     for i in 1..=3 {
//!         total += i;
//!         s.suspend(); // back to `resume`'s caller
//!     }
//!     total
//! });
//! assert!(matches!(co.resume(), Resume::Suspended));
//! assert!(matches!(co.resume(), Resume::Suspended));
//! assert!(matches!(co.resume(), Resume::Suspended));
//! assert!(matches!(co.resume(), Resume::Returned(6)));
//! pool.put(co.into_stack().unwrap()); // the next coroutine reuses it, no system call
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The layers, bottom up:
//!
//! - `arch` (private): the context switch, in our own x86-64 assembly, and the entry
//!   trampoline whose CFI ends backtraces cleanly at the bottom of a coroutine stack.
//! - [`stack`]: lazily committed stacks with a guard page below every one — `PROT_NONE`
//!   while the kernel's memory-map budget lasts, a never-populated page of a
//!   userfaultfd-watched chunk beyond it — so a million guarded coroutines fit a default
//!   kernel; [`StackPool`] reuses them without system calls.
//! - `uffd` (private): the userfaultfd handler thread behind the chunk stacks.
//! - [`coroutine`]: [`Coroutine`] / [`Suspender`]: resume, suspend, results, panics
//!   caught at the root, suspended coroutines unwound on drop.
//! - stack-overflow reports (private `overflow` module): a guard-page hit (or, for opted-in
//!   canary stacks, a damaged canary) prints `goroutine <id> ('<name>') has overflowed its stack (<size> bytes)` and aborts.
//! - [`park`]: the park/unpark hook channels and the poller block through.
//! - [`sync`]: the loom shim of the workspace.
//!
//! Only x86-64 Linux (System V ABI) is supported.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "gmp-core supports only x86_64 Linux (System V ABI): its context switch is x86-64 assembly \
     and its stacks and overflow handler use Linux system calls"
);

mod arch;
pub mod coroutine;
mod overflow;
pub mod park;
pub mod stack;
pub mod sync;
mod uffd;

pub use coroutine::{is_forced_unwind, Coroutine, Resume, Suspender};
pub use stack::{Stack, StackPool, StackProtection, DEFAULT_STACK_SIZE};
