//! gmp-chan inside goroutines: blocking parks the goroutine, a channel can be shared by
//! goroutines and plain threads at once, timers are scheduler timers, select works.

use gmp_runtime::chan::{self, after, bounded, select, tick, unbounded, RecvTimeoutError};
use gmp_runtime::{go, Runtime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn on<T: Send>(procs: usize, f: impl FnOnce() -> T + Send) -> T {
    let rt = Runtime::builder().procs(procs).build().unwrap();
    // SAFETY: no thread-local state is held across suspension points.
    unsafe { rt.block_on(f) }
}

#[test]
fn goroutines_and_plain_threads_share_channels() {
    on(2, || {
        let (tx, rx) = bounded::<u64>(0);
        let (back_tx, back_rx) = unbounded::<u64>();
        // Plain threads send and receive on the same channels as goroutines.
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        tx.send(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        let gs: Vec<_> = (0..2)
            .map(|t| {
                let tx = tx.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        for i in 0..500 {
                            tx.send(10_000 + t * 1000 + i).unwrap();
                        }
                    })
                }
            })
            .collect();
        drop(tx);
        // Two goroutine receivers and one plain-thread receiver.
        let recv_g: Vec<_> = (0..2)
            .map(|_| {
                let (rx, back) = (rx.clone(), back_tx.clone());
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        for v in rx.iter() {
                            back.send(v).unwrap();
                        }
                    })
                }
            })
            .collect();
        let recv_t = {
            let (rx, back) = (rx.clone(), back_tx.clone());
            std::thread::spawn(move || {
                for v in rx.iter() {
                    back.send(v).unwrap();
                }
            })
        };
        drop((rx, back_tx));
        let mut got: Vec<u64> = back_rx.iter().collect();
        for t in threads {
            t.join().unwrap();
        }
        for g in gs.into_iter().chain(recv_g) {
            g.join().unwrap();
        }
        recv_t.join().unwrap();
        got.sort_unstable();
        let mut want: Vec<u64> = (0..2)
            .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
            .collect();
        want.extend((0..2).flat_map(|t| (0..500).map(move |i| 10_000 + t * 1000 + i)));
        want.sort_unstable();
        assert_eq!(got, want, "every value received exactly once");
    });
}

#[test]
fn a_blocked_receiver_does_not_block_its_thread() {
    // One P: if recv blocked the M, the sender could never run.
    on(1, || {
        let (tx, rx) = bounded::<&str>(0);
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let h = unsafe { go!(move || rx.recv().unwrap()) };
        gmp_runtime::yield_now();
        tx.send("hello").unwrap();
        assert_eq!(h.join().unwrap(), "hello");
    });
}

#[test]
fn timeouts_and_tickers_are_scheduler_timers() {
    on(1, || {
        let (_tx, rx) = bounded::<()>(0);
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        let ticker = tick(Duration::from_millis(5));
        let timeout = after(Duration::from_millis(200));
        let mut ticks = 0;
        loop {
            select! {
                recv(ticker) -> _ => ticks += 1,
                recv(timeout) -> _ => panic!("ticker did not tick"),
            }
            if ticks == 5 {
                break;
            }
        }
        // Many goroutines waiting on timeouts at once, all on one P.
        let done = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..500)
            .map(|_| {
                let done = done.clone();
                // SAFETY: the goroutine holds no thread-local state across a suspension point.
                unsafe {
                    go!(move || {
                        let (_t, r) = bounded::<()>(1);
                        assert!(r.recv_timeout(Duration::from_millis(10)).is_err());
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                }
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 500);
    });
}

#[test]
fn select_between_goroutines() {
    on(2, || {
        let (a_tx, a_rx) = bounded::<u32>(0);
        let (b_tx, b_rx) = bounded::<u32>(0);
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe {
            go!(move || {
                for i in 0..100 {
                    a_tx.send(i).unwrap();
                }
            })
        };
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        unsafe {
            go!(move || {
                for i in 0..100 {
                    b_tx.send(1000 + i).unwrap();
                }
            })
        };
        let (mut a, mut b) = (0, 0);
        while a + b < 200 {
            select! {
                recv(a_rx) -> v => { if v.is_ok() { a += 1 } },
                recv(b_rx) -> v => { if v.is_ok() { b += 1 } },
            }
        }
        assert_eq!((a, b), (100, 100));
    });
}

#[test]
fn unbuffered_is_a_rendezvous_between_goroutines() {
    on(2, || {
        let (tx, rx) = chan::bounded::<u32>(0);
        let sent = Arc::new(AtomicUsize::new(0));
        let s2 = sent.clone();
        // SAFETY: the goroutine holds no thread-local state across a suspension point.
        let h = unsafe {
            go!(move || {
                tx.send(1).unwrap();
                s2.store(1, Ordering::SeqCst);
            })
        };
        gmp_runtime::sleep(Duration::from_millis(20));
        // Nobody received yet: the send cannot have completed.
        assert_eq!(sent.load(Ordering::SeqCst), 0);
        assert_eq!(rx.recv().unwrap(), 1);
        h.join().unwrap();
        assert_eq!(sent.load(Ordering::SeqCst), 1);
    });
}
