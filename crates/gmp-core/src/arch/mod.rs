//! Architecture-specific code: the context switch and the coroutine entry trampoline.
//!
//! Only x86-64 with the System V ABI (Linux) is supported; `lib.rs` refuses to compile
//! anywhere else. Everything that depends on the instruction set lives below this module,
//! so a port is one new file with the same four items: [`SwitchSlots`], `init_frame`,
//! `resume_switch`, `suspend_switch` and `final_switch`.

mod x86_64;

pub(crate) use self::x86_64::*;
