// Inside `unsafe` `go!` compiles and runs, including a closure that only panics (its
// result type comes from the never-type fallback, which must not reach an unsafe call).
fn main() {
    // SAFETY: the goroutines hold no thread-local state at all.
    let h = unsafe { gmp_runtime::go!(|| 6 * 7) };
    assert_eq!(h.join().unwrap(), 42);
    std::panic::set_hook(Box::new(|_| {})); // the panic below is expected: keep it quiet
    // SAFETY: as above.
    let p = unsafe { gmp_runtime::go!(|| panic!("boom")) };
    assert!(p.join().is_err());
}
