//! loom models of gmp-chan's internals (the channels' own models are `tests/loom_*.rs`).
//! Run with `cargo xtask loom gmp-chan`.

use crate::spinlock::SpinLock;
use gmp_core::sync::{thread, Arc, UnsafeCell};

/// The spin lock excludes and orders: two threads each increment a counter that loom
/// tracks, under the lock. Both increments survive, and loom reports no data race on the
/// counter; it does report one if the release store or the taking CAS is weakened to
/// Relaxed (checked), and a lock that let both in at once would lose an increment. The
/// channels' own models (`tests/loom_*.rs`) run on the spin lock too.
#[test]
fn spin_lock_excludes_and_orders() {
    loom::model(|| {
        let lock = Arc::new(SpinLock::new(()));
        let count = Arc::new(UnsafeCell::new(0u32));
        let (l2, c2) = (lock.clone(), count.clone());
        let t = thread::spawn(move || {
            let _g = l2.lock();
            // SAFETY: under the lock.
            c2.with_mut(|p| unsafe { *p += 1 });
        });
        {
            let _g = lock.lock();
            // SAFETY: under the lock.
            count.with_mut(|p| unsafe { *p += 1 });
        }
        t.join().unwrap();
        let _g = lock.lock();
        // SAFETY: under the lock.
        assert_eq!(count.with(|p| unsafe { *p }), 2);
    });
}
