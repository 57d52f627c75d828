//! `go!` needs an `unsafe` context (API.md: it expands to a call of the unsafe
//! `spawn`): outside `unsafe`, in a `#![forbid(unsafe_code)]` crate, or through its
//! hidden helper (with a real or a forged permit) it does not compile; inside `unsafe` it does. One test function, so
//! trybuild builds its scratch crate once.
//!
//! The expected compiler output is in `tests/ui/*.stderr`; after a rustc upgrade that
//! rewords a message, regenerate them with `TRYBUILD=overwrite` and check the diff
//! still shows the same error (E0133, or the `forbid(unsafe_code)` lint).

#[test]
fn go_requires_an_unsafe_context() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/go_outside_unsafe.rs");
    t.compile_fail("tests/ui/go_forbid_unsafe_code.rs");
    t.compile_fail("tests/ui/go_hidden_helper.rs");
    t.compile_fail("tests/ui/go_forged_permit.rs");
    t.pass("tests/ui/go_in_unsafe.rs");
}
