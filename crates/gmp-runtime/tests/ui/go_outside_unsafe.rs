// `go!` is `spawn`, an `unsafe fn`: written outside an `unsafe` context it must not compile.
fn main() {
    let h = gmp_runtime::go!(|| 6 * 7);
    assert_eq!(h.join().unwrap(), 42);
}
