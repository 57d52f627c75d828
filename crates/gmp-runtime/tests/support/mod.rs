//! Helpers shared by several test binaries of gmp-runtime (`mod support;`).

/// Whether this binary can name its own functions in a backtrace. A stripped binary
/// (the release test binaries carried to another machine) cannot: the checks of
/// function names in stacks are then skipped, with a line saying so, and every other
/// check still runs.
#[inline(never)]
pub fn symbols_in_backtraces() -> bool {
    let named = std::backtrace::Backtrace::force_capture()
        .to_string()
        .contains("symbols_in_backtraces");
    if !named {
        eprintln!("note: this binary has no symbols (stripped?): function names in stacks are not checked");
    }
    named
}
