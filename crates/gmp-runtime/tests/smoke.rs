use gmp_runtime::{go, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn block_on_returns() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let v = unsafe { rt.block_on(|| 42) };
    assert_eq!(v, 42);
}

#[test]
fn spawn_join_many() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let n = unsafe {
        rt.block_on(|| {
            let c = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..10_000)
                .map(|i| {
                    let c = c.clone();
                    go!(move || {
                        c.fetch_add(1, Ordering::Relaxed);
                        i
                    })
                })
                .collect();
            let s: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(s, (0..10_000usize).sum::<usize>());
            c.load(Ordering::Relaxed)
        })
    };
    assert_eq!(n, 10_000);
}

#[test]
fn sleep_and_yield() {
    let rt = Runtime::builder().procs(1).build().unwrap();
    unsafe {
        rt.block_on(|| {
            let t = Instant::now();
            let hs: Vec<_> = (0..100).map(|_| go!(|| gmp_runtime::sleep(Duration::from_millis(5)))).collect();
            for _ in 0..100 {
                gmp_runtime::yield_now();
            }
            for h in hs {
                h.join().unwrap();
            }
            assert!(t.elapsed() >= Duration::from_millis(5));
        })
    };
}

