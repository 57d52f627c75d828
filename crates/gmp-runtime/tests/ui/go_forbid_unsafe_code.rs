// A crate that forbids `unsafe` code cannot start a goroutine through `go!`.
#![forbid(unsafe_code)]

fn main() {
    // SAFETY: the goroutine holds no thread-local state at all.
    let h = unsafe { gmp_runtime::go!(|| 6 * 7) };
    assert_eq!(h.join().unwrap(), 42);
}
