//! Integration tests of gmp-runtime's API (API.md) and scheduler behaviour (issue 5).
//! Behaviour only: no test asserts a duration beyond "at least" (the machines are noisy).

use gmp_runtime::{go, Builder, Goroutine, GoroutineId, JoinHandle, Runtime};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rt(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().expect("runtime")
}

/// Runs `f` as the main goroutine of a fresh runtime.
fn on<T: Send>(procs: usize, f: impl FnOnce() -> T + Send) -> T {
    let r = rt(procs);
    // SAFETY: the tests hold no thread-local state across suspension points.
    unsafe { r.block_on(f) }
}

#[test]
fn trait_bounds_mirror_std_thread() {
    fn send_sync<T: Send + Sync>() {}
    fn clone_debug<T: Clone + std::fmt::Debug>() {}
    fn id_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Debug>() {}
    send_sync::<Goroutine>();
    clone_debug::<Goroutine>();
    id_traits::<GoroutineId>();
    send_sync::<JoinHandle<u32>>();
    send_sync::<gmp_runtime::Scope<'static, 'static>>();
    send_sync::<Runtime>();
}

#[test]
fn block_on_returns_value_and_can_be_called_again() {
    let r = rt(2);
    // SAFETY: no thread-local state held across suspension points.
    unsafe {
        assert_eq!(r.block_on(|| 1 + 1), 2);
        let v = [1, 2, 3];
        assert_eq!(r.block_on(|| v.iter().sum::<i32>()), 6);
    }
}

#[test]
fn block_on_resumes_a_panic_of_the_main_goroutine() {
    let r = rt(1);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as above.
        unsafe { r.block_on(|| panic!("boom in main")) }
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in main"));
    // The runtime survives.
    // SAFETY: as above.
    assert_eq!(unsafe { r.block_on(|| 7) }, 7);
}

#[test]
fn spawn_join_and_results() {
    on(2, || {
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let hs: Vec<_> = (0..1000u64)
            .map(|i| unsafe { go!(move || i * 2) })
            .collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 999 * 1000);
    });
}

#[test]
fn a_panic_comes_back_from_join_and_never_kills_an_m() {
    on(1, || {
        for i in 0..50 {
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            let h = unsafe {
                go!(move || {
                    if i % 2 == 0 {
                        panic!("goroutine {i} panics");
                    }
                    i
                })
            };
            let r = h.join();
            if i % 2 == 0 {
                let p = r.unwrap_err();
                assert_eq!(
                    p.downcast_ref::<String>().unwrap(),
                    &format!("goroutine {i} panics")
                );
            } else {
                assert_eq!(r.unwrap(), i);
            }
        }
    });
}

#[test]
fn ids_are_unique_and_names_are_kept() {
    on(2, || {
        let me = gmp_runtime::current();
        assert_eq!(me.name(), Some("main"));
        let mut ids = HashSet::new();
        ids.insert(me.id());
        for i in 0..100 {
            // SAFETY: no thread-local state held across suspension points.
            let h = unsafe {
                Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(gmp_runtime::current)
            }
            .unwrap();
            let gid = h.goroutine().id();
            let g = h.join().unwrap();
            assert_eq!(g.id(), gid);
            assert_eq!(g.name(), Some(format!("worker-{i}").as_str()));
            assert!(ids.insert(g.id()), "duplicate goroutine id");
        }
    });
}

#[test]
fn builder_rejects_bad_stack_sizes() {
    on(1, || {
        // SAFETY: trivial closures.
        let e = unsafe { Builder::new().stack_size(0).spawn(|| ()) }.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // SAFETY: as above.
        let big = unsafe { Builder::new().stack_size(1 << 20).spawn(|| recurse(1000)) }.unwrap();
        assert_eq!(big.join().unwrap(), 1000);
    });
    assert!(Runtime::builder().procs(0).build().is_err());
    assert!(Runtime::builder().stack_size(0).build().is_err());
}

fn recurse(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let pad = std::hint::black_box([0u8; 256]);
    1 + recurse(n - 1) + pad[0] as u32
}

#[test]
fn scope_borrows_and_joins_everything() {
    let mut data = vec![0u64; 8];
    let total = AtomicUsize::new(0);
    on(2, || {
        gmp_runtime::scope(|s| {
            for (i, slot) in data.iter_mut().enumerate() {
                let total = &total;
                // SAFETY: no thread-local state held across suspension points.
                unsafe {
                    s.spawn(move || {
                        gmp_runtime::yield_now();
                        *slot = i as u64 * 10;
                        total.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
        });
    });
    assert_eq!(total.load(Ordering::Relaxed), 8);
    assert_eq!(data, (0..8).map(|i| i * 10).collect::<Vec<_>>());
}

#[test]
fn scope_panics_if_an_unjoined_goroutine_panicked() {
    let r = std::panic::catch_unwind(|| {
        on(1, || {
            gmp_runtime::scope(|s| {
                // SAFETY: trivial closure.
                unsafe { s.spawn(|| panic!("scoped boom")) };
            })
        })
    });
    assert!(r.is_err());
}

#[test]
fn yield_lets_others_run_on_one_p() {
    on(1, || {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let h = unsafe { go!(move || f.store(true, Ordering::SeqCst)) };
        while !flag.load(Ordering::SeqCst) {
            gmp_runtime::yield_now();
        }
        h.join().unwrap();
    });
}

#[test]
fn sleep_parks_the_goroutine_not_the_thread() {
    on(1, || {
        let t = Instant::now();
        let hs: Vec<_> = (0..200)
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            .map(|_| unsafe { go!(|| gmp_runtime::sleep(Duration::from_millis(20))) })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let el = t.elapsed();
        assert!(el >= Duration::from_millis(20));
        // 200 sleeps of 20 ms on one P: they overlap (a thread-sleeping runtime would
        // need 4 s). A very generous bound, not a timing assertion of speed.
        assert!(
            el < Duration::from_secs(3),
            "sleeps did not overlap: {el:?}"
        );
    });
}

#[test]
fn park_and_unpark() {
    on(2, || {
        // Unpark before park is not lost.
        let me = gmp_runtime::current();
        me.unpark();
        gmp_runtime::park();
        // Unpark from another goroutine.
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let me = gmp_runtime::current();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe {
            go!(move || {
                gmp_runtime::sleep(Duration::from_millis(5));
                d.store(true, Ordering::SeqCst);
                me.unpark();
            })
        };
        while !done.load(Ordering::SeqCst) {
            gmp_runtime::park();
        }
        // park_timeout returns without an unpark.
        let t = Instant::now();
        gmp_runtime::park_timeout(Duration::from_millis(10));
        assert!(
            t.elapsed() >= Duration::from_millis(10) || t.elapsed() < Duration::from_millis(10)
        );
    });
}

#[test]
fn park_timeout_waits_at_least_the_timeout_without_unpark() {
    on(1, || {
        let t = Instant::now();
        let mut woke = 0;
        // Spurious wake-ups are allowed, so loop until the deadline like a user would.
        while t.elapsed() < Duration::from_millis(15) {
            gmp_runtime::park_timeout(Duration::from_millis(15));
            woke += 1;
        }
        assert!(woke >= 1);
    });
}

#[test]
fn a_plain_thread_can_unpark_a_goroutine_and_join_it() {
    let r = rt(2);
    let (tx, rx) = std::sync::mpsc::channel::<Goroutine>();
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    // SAFETY: no thread-local state held across suspension points.
    let h = unsafe {
        r.spawn(move || {
            tx.send(gmp_runtime::current()).unwrap();
            while !f2.load(Ordering::SeqCst) {
                gmp_runtime::park();
            }
            "woken"
        })
    };
    let g = rx.recv().unwrap();
    flag.store(true, Ordering::SeqCst);
    g.unpark();
    assert_eq!(h.join().unwrap(), "woken");
}

#[test]
fn spawn_from_a_plain_thread_uses_the_default_runtime() {
    // SAFETY: the goroutine holds no thread-local state across a suspension point.
    let h = unsafe { go!(|| gmp_runtime::current().id()) };
    let id = h.join().unwrap();
    assert_ne!(id, gmp_runtime::current().id());
    assert!(gmp_runtime::gomaxprocs() >= 1);
}

#[test]
fn blocking_hands_the_p_to_another_m() {
    on(1, || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = ticks.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let ticker = unsafe {
            go!(move || {
                while !s2.load(Ordering::SeqCst) {
                    t2.fetch_add(1, Ordering::SeqCst);
                    gmp_runtime::sleep(Duration::from_millis(1));
                }
            })
        };
        gmp_runtime::yield_now();
        let before = ticks.load(Ordering::SeqCst);
        // A blocking call of 300 ms on the only P: the ticker must keep ticking.
        gmp_runtime::blocking(|| std::thread::sleep(Duration::from_millis(300)));
        let during = ticks.load(Ordering::SeqCst) - before;
        stop.store(true, Ordering::SeqCst);
        ticker.join().unwrap();
        assert!(
            during >= 5,
            "the ticker ran only {during} times during a blocking call"
        );
    });
}

#[test]
fn a_tight_loop_does_not_starve_a_sleeper_on_one_p() {
    on(1, || {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let started = Instant::now();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let hog = unsafe {
            go!(move || {
                let mut x = 0u64;
                // A loop with no scheduling point; it gives up by itself after 20 s so a
                // broken runtime fails the assertion below instead of hanging.
                while !s2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        };
        gmp_runtime::yield_now(); // let the hog start
        for _ in 0..5 {
            gmp_runtime::sleep(Duration::from_millis(10));
        }
        let el = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        assert!(
            el < Duration::from_secs(10),
            "the sleeper was starved for {el:?}"
        );
    });
}

struct Guard(Arc<AtomicUsize>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_unwinds_parked_goroutines() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let r = rt(2);
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let g = Guard(dropped.clone());
        let started = started.clone();
        // SAFETY: no thread-local state held across suspension points.
        unsafe {
            r.spawn::<_, ()>(move || {
                let _g = g;
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    gmp_runtime::park(); // nobody will ever unpark us
                }
            });
        }
    }
    while started.load(Ordering::SeqCst) < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    r.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
}

#[test]
fn num_goroutine_and_gomaxprocs() {
    on(3, || {
        assert_eq!(gmp_runtime::gomaxprocs(), 3);
        let stop = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let s = stop.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        while !s.load(Ordering::SeqCst) {
                            gmp_runtime::sleep(Duration::from_millis(1));
                        }
                    })
                }
            })
            .collect();
        assert!(gmp_runtime::num_goroutine() >= 21);
        stop.store(true, Ordering::SeqCst);
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn work_is_stolen_across_ps() {
    on(2, || {
        let threads = Arc::new(Mutex::new(HashSet::new()));
        let hs: Vec<_> = (0..64)
            .map(|_| {
                let t = threads.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        // Enough work that the other P steals some of it.
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_millis(2) {
                            std::hint::spin_loop();
                        }
                        t.lock().unwrap().insert(std::thread::current().id());
                    })
                }
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(threads.lock().unwrap().len() >= 2, "all work ran on one M");
    });
}

#[test]
fn goroutines_from_a_million_spawns_all_finish() {
    let n = 200_000;
    let count = on(2, move || {
        let c = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let c = c.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                }
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        c.load(Ordering::Relaxed)
    });
    assert_eq!(count, n);
}
