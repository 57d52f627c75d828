// The macro's hidden helper is no safe way round the `unsafe`: it needs a permit that
// only an `unsafe` call makes.
fn main() {
    let permit = gmp_runtime::__GoPermit::accept_spawn_contract();
    let h = gmp_runtime::__go_unchecked(permit, || 6 * 7);
    assert_eq!(h.join().unwrap(), 42);
}
