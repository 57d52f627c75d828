//! gmp-runtime (skeleton; filled by its issue).
