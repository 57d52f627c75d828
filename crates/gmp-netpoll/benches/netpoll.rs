//! Wake-up latency through the poller, against the same thing done without it.
//!
//! - `pingpong/netpoll`: two threads bounce a byte over a Unix socket pair; each waits for
//!   readability on its `PollDesc` (parking), a third thread runs `Poller::poll` and
//!   unparks them: one round trip = two readiness events through the poller.
//!   `pingpong/blocking`: the same bounce with plain blocking reads (the kernel wakes the
//!   reader directly). The difference is what the poller hop costs.
//! - `wake/netpoll`: `Poller::wake` to a thread blocked in `Poller::poll`, which unparks
//!   the waker back: the `netpollBreak` round trip. `wake/mio`: the same with a bare
//!   `mio::Poll` and `mio::Waker`.
// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use gmp_core::park;
use gmp_netpoll::{PollDesc, Poller};
use mio::net::UnixStream;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn read1(s: &UnixStream, pd: &PollDesc) {
    let mut b = [0u8; 1];
    loop {
        match (&*s).read(&mut b) {
            Ok(1) => return,
            Err(e) if e.kind() == ErrorKind::WouldBlock => pd.wait_read().unwrap(),
            r => panic!("read: {r:?}"),
        }
    }
}

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong");
    g.bench_function("netpoll", |b| {
        b.iter_custom(|iters| {
            let poller = Arc::new(Poller::new().unwrap());
            let (mut x, mut y) = UnixStream::pair().unwrap();
            let px = poller.register(&mut x).unwrap();
            let py = poller.register(&mut y).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let driver = {
                let (poller, stop) = (poller.clone(), stop.clone());
                thread::spawn(move || {
                    let mut ready = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        poller
                            .poll(Some(Duration::from_millis(50)), &mut ready)
                            .unwrap();
                        ready.drain(..).for_each(|u| u.unpark());
                    }
                })
            };
            let echo = thread::spawn(move || {
                for _ in 0..iters {
                    read1(&y, &py);
                    (&y).write_all(b"p").unwrap();
                }
                drop(py);
            });
            let t = Instant::now();
            for _ in 0..iters {
                (&x).write_all(b"p").unwrap();
                read1(&x, &px);
            }
            let d = t.elapsed();
            echo.join().unwrap();
            stop.store(true, Ordering::Release);
            poller.wake().unwrap();
            driver.join().unwrap();
            d
        })
    });
    g.bench_function("blocking", |b| {
        b.iter_custom(|iters| {
            let (mut x, mut y) = std::os::unix::net::UnixStream::pair().unwrap();
            let echo = thread::spawn(move || {
                let mut b = [0u8; 1];
                for _ in 0..iters {
                    y.read_exact(&mut b).unwrap();
                    y.write_all(&b).unwrap();
                }
            });
            let t = Instant::now();
            let mut b = [0u8; 1];
            for _ in 0..iters {
                x.write_all(b"p").unwrap();
                x.read_exact(&mut b).unwrap();
            }
            let d = t.elapsed();
            echo.join().unwrap();
            d
        })
    });
    g.finish();
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    g.bench_function("netpoll", |b| {
        b.iter_custom(|iters| {
            let poller = Arc::new(Poller::new().unwrap());
            let me = park::current();
            let done = Arc::new(AtomicBool::new(false));
            let t2 = {
                let (poller, done) = (poller.clone(), done.clone());
                thread::spawn(move || {
                    let mut ready = Vec::new();
                    while !done.load(Ordering::Acquire) {
                        poller.poll(None, &mut ready).unwrap();
                        me.unpark();
                    }
                })
            };
            let t = Instant::now();
            for _ in 0..iters {
                while !poller.is_polling() {
                    std::hint::spin_loop();
                }
                poller.wake().unwrap();
                park::park();
            }
            let d = t.elapsed();
            done.store(true, Ordering::Release);
            poller.wake().unwrap();
            t2.join().unwrap();
            d
        })
    });
    g.bench_function("mio", |b| {
        b.iter_custom(|iters| {
            let mut poll = mio::Poll::new().unwrap();
            let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
            let polling = Arc::new(AtomicBool::new(false));
            let me = park::current();
            let done = Arc::new(AtomicBool::new(false));
            let t2 = {
                let (polling, done) = (polling.clone(), done.clone());
                thread::spawn(move || {
                    let mut events = mio::Events::with_capacity(128);
                    while !done.load(Ordering::Acquire) {
                        polling.store(true, Ordering::SeqCst);
                        poll.poll(&mut events, None).unwrap();
                        polling.store(false, Ordering::SeqCst);
                        me.unpark();
                    }
                })
            };
            let t = Instant::now();
            for _ in 0..iters {
                while !polling.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                waker.wake().unwrap();
                park::park();
            }
            let d = t.elapsed();
            done.store(true, Ordering::Release);
            waker.wake().unwrap();
            t2.join().unwrap();
            d
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = pingpong, wake
}
criterion_main!(benches);
