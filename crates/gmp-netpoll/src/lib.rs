//! gmp-netpoll (skeleton; filled by its issue).
