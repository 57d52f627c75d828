//! gmp-queue (skeleton; filled by its issue).
