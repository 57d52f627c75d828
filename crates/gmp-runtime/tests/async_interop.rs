//! Async interop (issue 13): goroutines drive futures with `future::block_on`, async
//! tasks await goroutines (`JoinHandle: Future`) and share gmp channels with them.
//! tokio, hyper and friends are dev-dependencies only.

use bytes::Bytes;
use gmp_runtime::chan::{self, bounded, unbounded};
use gmp_runtime::future::{block_on, in_context};
use gmp_runtime::{JoinHandle, Runtime};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Spawns a goroutine.
fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: no goroutine here holds thread-local state across a suspension point
    // (tokio's context is entered per poll, by `in_context`, never across a park).
    unsafe { gmp_runtime::spawn(f) }
}

fn on<T: Send>(procs: usize, f: impl FnOnce() -> T + Send) -> T {
    let rt = Runtime::builder().procs(procs).build().unwrap();
    // SAFETY: no goroutine holds thread-local state across a suspension point (tokio's
    // context is entered per poll, by `in_context`).
    unsafe { rt.block_on(f) }
}

fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A future that is pending until `flag` is set, handing its waker out through `slot`.
struct Flag {
    flag: Arc<AtomicBool>,
    slot: Arc<Mutex<Option<Waker>>>,
    polls: usize,
}

impl Future for Flag {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        if self.flag.load(Ordering::Acquire) {
            Poll::Ready(self.polls)
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn waker_is_send_sync_and_block_on_parks_only_the_goroutine() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    on(1, || {
        // A ready future: one poll, no park.
        assert_eq!(block_on(async { 7 }), 7);
        let flag = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        // procs(1): if block_on blocked the M, this goroutine could never run.
        let (f, s) = (flag.clone(), slot.clone());
        let setter = go(move || {
            while s.lock().unwrap().is_none() {
                gmp_runtime::yield_now();
            }
            f.store(true, Ordering::Release);
            let w = s.lock().unwrap().clone().unwrap();
            send_sync(&w);
            w.wake();
        });
        let polls = block_on(Flag {
            flag,
            slot,
            polls: 0,
        });
        assert!(polls >= 2);
        setter.join().unwrap();
    });
}

#[test]
fn waking_after_the_goroutine_finished_or_while_it_runs_is_harmless() {
    let slot = Arc::new(Mutex::new(None::<Waker>));
    on(2, || {
        let s = slot.clone();
        let h = go(move || {
            let flag = Arc::new(AtomicBool::new(true));
            block_on(Flag {
                flag,
                slot: s,
                polls: 0,
            })
        });
        assert_eq!(h.join().unwrap(), 1);
        // The goroutine is gone: wake its waker from other threads, many times.
        let w = slot.lock().unwrap().clone().unwrap();
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.wake_by_ref();
                    }
                    w.wake();
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        // A goroutine whose block_on waker is woken from another thread, over and over,
        // while it goes on with channel work: the stray wake-ups are only spurious
        // returns from park, every receive still gets exactly its message.
        let slot2 = Arc::new(Mutex::new(None::<Waker>));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded::<u64>(0);
        let s2 = slot2.clone();
        let worker = go(move || {
            block_on(Flag {
                flag: Arc::new(AtomicBool::new(true)),
                slot: s2,
                polls: 0,
            });
            rx.iter().sum::<u64>()
        });
        let waker = loop {
            if let Some(w) = slot2.lock().unwrap().clone() {
                break w;
            }
            gmp_runtime::yield_now();
        };
        let st = stop.clone();
        let spammer = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                waker.wake_by_ref();
            }
        });
        for i in 1..=2000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(worker.join().unwrap(), 2000 * 2001 / 2);
        stop.store(true, Ordering::Relaxed);
        spammer.join().unwrap();
    });
}

#[test]
fn a_goroutine_waiting_on_a_future_is_not_a_deadlock() {
    // The deadlock detector fires after 250 ms with every goroutine parked; a goroutine
    // in block_on waits on a waker the runtime cannot see, so it must stay quiet.
    let trt = tokio_rt(1);
    let handle = trt.handle().clone();
    let waited = on(1, move || {
        let start = Instant::now();
        // The sleep is made inside the task: tokio's timer needs its context.
        block_on(handle.spawn(async {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }))
        .unwrap();
        start.elapsed()
    });
    assert!(waited >= Duration::from_millis(600));
}

#[test]
fn in_context_enters_tokio_on_each_poll_on_any_thread() {
    let trt = tokio_rt(1);
    let handle = trt.handle().clone();
    let n = on(2, move || {
        let hs: Vec<_> = (0..100)
            .map(|i| {
                let handle = handle.clone();
                go(move || {
                    block_on(in_context(|| handle.enter(), async move {
                        // Timers and spawning need the context at each poll; the
                        // goroutine may resume on either M between them.
                        for _ in 0..3 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        tokio::spawn(async move { i }).await.unwrap()
                    }))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(n, (0..100).sum());
}

#[test]
fn tokio_tasks_await_10_000_goroutines() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let trt = tokio_rt(2);
    let handles: Vec<_> = (0..10_000u64)
        .map(|i| {
            // SAFETY: the goroutines hold no thread-local state.
            unsafe {
                rt.spawn(move || {
                    if i % 3 == 0 {
                        gmp_runtime::yield_now();
                    }
                    if i == 4321 {
                        std::panic::resume_unwind(Box::new("boom"));
                    }
                    i * 2
                })
            }
        })
        .collect();
    let sum = trt.block_on(async move {
        let tasks: Vec<_> = handles.into_iter().map(|h| tokio::spawn(h)).collect();
        let mut sum = 0u64;
        let mut panics = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(v) => sum += v,
                Err(_) => panics += 1,
            }
        }
        assert_eq!(panics, 1);
        sum
    });
    assert_eq!(sum, (0..10_000u64).map(|i| i * 2).sum::<u64>() - 4321 * 2);
}

/// tokio task → gmp channel → goroutines → gmp channel → tokio task. Buffers of 1,024:
/// with 64 the run is wake-up bound (about 4 s for 1,000,000 values on a loaded 2-core
/// box, against 0.4–0.6 s), which tests nothing more.
fn pipeline(n: u64, stop_after: Option<u64>) -> (Vec<u64>, u64) {
    let trt = tokio_rt(2);
    let rt = Runtime::builder().procs(2).build().unwrap();
    let (in_tx, in_rx) = bounded::<u64>(1024);
    let (out_tx, out_rx) = bounded::<u64>(1024);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (in_rx, out_tx) = (in_rx.clone(), out_tx.clone());
            // SAFETY: no thread-local state is held.
            unsafe {
                rt.spawn(move || {
                    let mut forwarded = 0u64;
                    for v in in_rx.iter() {
                        if out_tx.send(v).is_err() {
                            break;
                        }
                        forwarded += 1;
                    }
                    forwarded
                })
            }
        })
        .collect();
    drop((in_rx, out_tx));
    let producer = trt.spawn(async move {
        let mut sent = 0u64;
        for v in 0..n {
            if in_tx.send_async(v).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let consumer = trt.spawn(async move {
        let mut got = Vec::with_capacity(n as usize);
        while let Ok(v) = out_rx.recv_async().await {
            got.push(v);
            if stop_after == Some(got.len() as u64) {
                break; // drops the receiver mid-stream
            }
        }
        got
    });
    let (sent, got) = trt.block_on(async {
        let got = consumer.await.unwrap();
        (producer.await.unwrap(), got)
    });
    let forwarded: u64 = workers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(forwarded <= sent);
    (got, sent)
}

#[test]
fn pipeline_carries_1_000_000_values_exactly_once() {
    let start = Instant::now();
    let (mut got, sent) = pipeline(1_000_000, None);
    assert_eq!(sent, 1_000_000);
    assert_eq!(got.len(), 1_000_000);
    got.sort_unstable();
    assert!(got.iter().enumerate().all(|(i, &v)| v == i as u64));
    eprintln!("pipeline of 1,000,000 values: {:?}", start.elapsed());
}

#[test]
fn pipeline_with_both_ends_dropped_midway_neither_hangs_nor_duplicates() {
    // The consumer stops after 100,000 values and drops its receiver; the goroutines
    // then fail to send and stop, dropping the first channel's receivers; the producer's
    // `send_async` fails and it stops too. Every value received was sent, once.
    let (mut got, sent) = pipeline(1_000_000, Some(100_000));
    assert_eq!(got.len(), 100_000);
    assert!(sent < 1_000_000, "the producer saw the disconnection");
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 100_000, "no value twice");
    assert!(got.iter().all(|&v| v < sent));
}

#[test]
fn goroutines_and_a_tokio_task_share_a_zero_capacity_channel_both_ways() {
    let trt = tokio_rt(1);
    on(2, || {
        let (tx, rx) = bounded::<u64>(0);
        let (back_tx, back_rx) = bounded::<u64>(0);
        let task = trt.spawn(async move {
            let mut sum = 0;
            while let Ok(v) = rx.recv_async().await {
                sum += v;
                back_tx.send_async(v + 1).await.unwrap();
            }
            sum
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
            assert_eq!(back_rx.recv().unwrap(), i + 1);
        }
        drop(tx);
        assert_eq!(block_on(task).unwrap(), 999 * 1000 / 2);
    });
}

// ---- a real HTTP server and client ----

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {}", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Starts a hyper HTTP/1 server on 127.0.0.1 in `trt`; returns its address.
fn start_server(trt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = trt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    trt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
                    .await;
            });
        }
    });
    addr
}

/// One goroutine's client: `n` requests over one keep-alive connection, each checked.
async fn client(addr: SocketAddr, id: usize, n: usize) -> usize {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut ok = 0;
    for r in 0..n {
        let path = format!("/g{id}/r{r}");
        let req = Request::get(path.as_str())
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        // HTTP/1: the connection takes the next request once it has finished the last.
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("hello {path}").as_bytes());
        ok += 1;
    }
    ok
}

fn http_load(procs: usize, goroutines: usize, requests: usize, tick: bool) -> Option<Duration> {
    let trt = tokio_rt(2);
    let addr = start_server(&trt);
    let handle = trt.handle().clone();
    let worst = on(procs, move || {
        let done = Arc::new(AtomicBool::new(false));
        let worst_gap = Arc::new(AtomicU64::new(0));
        let ticker = tick.then(|| {
            let (done, worst_gap) = (done.clone(), worst_gap.clone());
            go(move || {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    gmp_runtime::sleep(Duration::from_millis(5));
                    let now = Instant::now();
                    let gap = now.duration_since(last).as_micros() as u64;
                    worst_gap.fetch_max(gap, Ordering::Relaxed);
                    last = now;
                }
            })
        });
        let ok = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..goroutines)
            .map(|id| {
                let (handle, ok) = (handle.clone(), ok.clone());
                go(move || {
                    let n = block_on(in_context(|| handle.enter(), client(addr, id, requests)));
                    ok.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        if let Some(t) = ticker {
            t.join().unwrap();
        }
        assert_eq!(ok.load(Ordering::Relaxed), goroutines * requests);
        Duration::from_micros(worst_gap.load(Ordering::Relaxed))
    });
    tick.then_some(worst)
}

#[test]
fn a_thousand_goroutines_make_twenty_hyper_requests_each_on_procs_2() {
    let start = Instant::now();
    http_load(2, 1000, 20, false);
    eprintln!(
        "1,000 goroutines x 20 requests, procs(2): {:?}",
        start.elapsed()
    );
}

#[test]
fn block_on_never_blocks_the_m_a_ticker_keeps_ticking_on_procs_1() {
    let start = Instant::now();
    let worst = http_load(1, 1000, 20, true).unwrap();
    eprintln!(
        "1,000 goroutines x 20 requests, procs(1): {:?}; worst 5 ms tick gap {:?}",
        start.elapsed(),
        worst
    );
    // Generous: a loaded 2-core box. A blocked M would stall the ticker for the
    // whole run (seconds).
    assert!(
        worst < Duration::from_millis(500),
        "worst tick gap {worst:?}"
    );
}

#[test]
fn recv_stream_from_goroutines_into_a_tokio_task() {
    use futures_core::Stream;
    let trt = tokio_rt(1);
    on(2, || {
        let (tx, rx) = unbounded::<u64>();
        let task = trt.spawn(async move {
            let mut st = std::pin::pin!(rx.stream());
            let mut sum = 0;
            while let Some(v) = std::future::poll_fn(|cx| Stream::poll_next(st.as_mut(), cx)).await
            {
                sum += v;
            }
            sum
        });
        let hs: Vec<_> = (0..4)
            .map(|g| {
                let tx = tx.clone();
                go(move || {
                    for i in 0..1000 {
                        tx.send(g * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(block_on(task).unwrap(), (0..4000).sum::<u64>());
    });
    // The channel type is the runtime's re-export.
    let _: fn() -> (chan::Sender<u8>, chan::Receiver<u8>) = unbounded::<u8>;
}

#[test]
fn aborting_a_goroutine_parked_in_block_on_drops_its_future() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    on(1, || {
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let h = go(move || {
            block_on(async move {
                let _g = SetOnDrop(d);
                std::future::pending::<()>().await
            })
        });
        gmp_runtime::sleep(Duration::from_millis(20)); // let it park in block_on
        assert!(!h.is_finished());
        h.abort();
        let e = h.join().unwrap_err();
        assert!(e.is::<gmp_runtime::Aborted>());
        assert!(
            dropped.load(Ordering::SeqCst),
            "the pending future was dropped"
        );
    });
}

#[test]
fn recv_async_is_cancel_safe_in_tokio_select() {
    // A tokio task races recv_async against a short timer, dropping the receive future
    // every time the timer wins; goroutines send on every flavour. Nothing is lost or
    // received twice.
    let trt = tokio_rt(1);
    let mut dropped = 0;
    for cap in [None, Some(0), Some(8)] {
        let (tx, rx) = match cap {
            Some(c) => bounded::<u64>(c),
            None => unbounded::<u64>(),
        };
        let task = trt.spawn(async move {
            let mut got = Vec::new();
            let mut timeouts = 0u64;
            loop {
                tokio::select! {
                    r = rx.recv_async() => match r {
                        Ok(v) => got.push(v),
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep(Duration::from_micros(50)) => timeouts += 1,
                }
            }
            (got, timeouts)
        });
        let (mut got, timeouts) = on(2, move || {
            let hs: Vec<_> = (0..4)
                .map(|g| {
                    let tx = tx.clone();
                    go(move || {
                        for i in 0..5_000 {
                            tx.send(g * 5_000 + i).unwrap();
                            if i % 250 == 0 {
                                // A pause, so that the timer wins now and then.
                                gmp_runtime::sleep(Duration::from_millis(3));
                            }
                        }
                    })
                })
                .collect();
            drop(tx);
            for h in hs {
                h.join().unwrap();
            }
            block_on(task).unwrap()
        });
        got.sort_unstable();
        assert_eq!(got, (0..20_000).collect::<Vec<_>>(), "capacity {cap:?}");
        eprintln!("capacity {cap:?}: {timeouts} receive futures dropped by select!");
        dropped += timeouts;
    }
    assert!(dropped > 0, "the timer never won: nothing was cancelled");
}
