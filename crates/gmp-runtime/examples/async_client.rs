//! Calling an async crate from goroutines: 100 goroutines, each a plain blocking-style
//! loop, make HTTP requests with hyper's (async) client through
//! `gmp_runtime::future::block_on`, and hand the results to a tokio task over a gmp
//! channel. A hyper server on 127.0.0.1 answers, so the example is self-contained.
//!
//! Run: `cargo run --release -p gmp-runtime --example async_client`

use bytes::Bytes;
use gmp_runtime::chan;
use gmp_runtime::future::{block_on, in_context};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

fn main() {
    // The async side: a tokio runtime, serving HTTP on 127.0.0.1.
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = tokio_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio_rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(|req: Request<_>| async move {
                    let body = format!("hello from {}", req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                }),
            ));
        }
    });

    // A tokio task collects what the goroutines found, from a gmp channel.
    let (tx, rx) = chan::bounded::<(usize, String)>(16);
    let collector = tokio_rt.spawn(async move {
        let mut n = 0;
        while let Ok((_id, body)) = rx.recv_async().await {
            assert!(body.starts_with("hello from /"));
            n += 1;
        }
        n
    });

    // The goroutine side.
    let handle = tokio_rt.handle().clone();
    let rt = gmp_runtime::Runtime::builder()
        .procs(2)
        .build()
        .expect("gmp runtime");
    // SAFETY: no goroutine holds thread-local state across a suspension point: tokio's
    // context is entered for each poll only (`in_context`), never across a park.
    unsafe {
        rt.block_on(move || {
            let goroutines: Vec<_> = (0..100)
                .map(|id| {
                    let (handle, tx) = (handle.clone(), tx.clone());
                    gmp_runtime::go!(move || {
                        // Blocking-style code: each call parks this goroutine, not its
                        // thread, until the response is in.
                        let body = block_on(in_context(|| handle.enter(), async move {
                            let stream = tokio::net::TcpStream::connect(addr).await?;
                            let (mut sender, conn) =
                                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                            tokio::spawn(conn);
                            let req = Request::get(format!("/goroutine/{id}"))
                                .header("host", "127.0.0.1")
                                .body(Empty::<Bytes>::new())?;
                            let resp = sender.send_request(req).await?;
                            let bytes = resp.into_body().collect().await?.to_bytes();
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                                String::from_utf8_lossy(&bytes).into_owned(),
                            )
                        }))
                        .expect("request");
                        tx.send((id, body)).expect("collector is gone");
                    })
                })
                .collect();
            drop(tx);
            for g in goroutines {
                g.join().expect("goroutine panicked");
            }
        })
    };

    // The async side awaits the tokio task as usual (it could await goroutines'
    // JoinHandles the same way).
    let n = tokio_rt.block_on(collector).expect("collector");
    println!("{n} responses");
    assert_eq!(n, 100);
}
