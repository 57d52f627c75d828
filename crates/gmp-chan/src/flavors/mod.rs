//! The channel flavours, one file each, behind the same internal interface.
//!
//! | flavour | made by | storage | blocking sides |
//! |---|---|---|---|
//! | [`array`](mod@array) | `bounded(n)`, `n > 0` | lock-free ring of stamped slots | both |
//! | [`list`] | `unbounded()` | `VecDeque` under a mutex | receivers |
//! | [`zero`] | `bounded(0)` | none: direct handoff | both |
//! | [`at`] | `after(d)`, `at(t)` | one timestamp | receivers (sleep) |
//! | [`tick`] | `tick(d)` | next timestamp | receivers (sleep) |
//! | [`never`](mod@never) | `never()` | nothing | receivers (forever) |
//!
//! Each flavour offers non-blocking `try_*`, blocking `send`/`recv` with an optional
//! deadline, and the two-phase form that `select` needs: `start_*` reserves an operation
//! (writing what it reserved into a [`Token`](crate::select::Token)), `write`/`read`
//! completes it. A reservation that finds the channel disconnected still succeeds, with an
//! empty token, so that the completion reports the disconnection.

pub(crate) mod array;
pub(crate) mod at;
pub(crate) mod list;
pub(crate) mod never;
pub(crate) mod tick;
pub(crate) mod zero;
