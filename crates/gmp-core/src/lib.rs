//! gmp-core: stackful coroutines, their stacks, and the park/unpark hook.
#![cfg_attr(not(test), warn(missing_docs))]

pub mod park;
pub mod sync;
