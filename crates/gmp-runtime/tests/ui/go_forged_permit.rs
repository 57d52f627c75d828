// Nor can the permit be forged: its field is private.
fn main() {
    let forged = gmp_runtime::__GoPermit { _private: () };
    let h = gmp_runtime::__go_unchecked(forged, || 6 * 7);
    assert_eq!(h.join().unwrap(), 42);
}
