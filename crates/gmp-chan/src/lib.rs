//! gmp-chan (skeleton; filled by its issue).
