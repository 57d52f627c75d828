//! A minimal HTTP/1.1 keep-alive "hello" server on raw TCP, in plain blocking code: one
//! goroutine per connection. Every request (read up to its blank line; no bodies) gets
//! `200 OK` with the body `hello`.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example http [PORT | ADDR]   # default 127.0.0.1:8080
//! wrk -t2 -c100 -d5s http://127.0.0.1:8080/
//! cargo run --release -p gmp-runtime --example http -- --smoke      # self-check, then exit
//! ```

use gmp_runtime::go;
use gmp_runtime::net::{SocketAddr, TcpListener, TcpStream};
use std::io::{Read, Write};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";

/// Removes the complete requests (header blocks ended by an empty line) from the front
/// of `buf`; returns how many.
fn take_requests(buf: &mut Vec<u8>) -> usize {
    let (mut end, mut n) = (0, 0);
    while let Some(i) = buf[end..].windows(4).position(|w| w == b"\r\n\r\n") {
        end += i + 4;
        n += 1;
    }
    buf.drain(..end);
    n
}

fn serve(mut conn: TcpStream) {
    let (mut pending, mut out, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
    loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
        // Pipelined requests are answered together, in order.
        let k = take_requests(&mut pending);
        if k > 0 {
            out.clear();
            (0..k).for_each(|_| out.extend_from_slice(RESPONSE));
            if conn.write_all(&out).is_err() {
                return;
            }
        }
    }
}

fn smoke(addr: SocketAddr) {
    let clients: Vec<_> = (0..8)
        .map(|_| {
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe {
                go!(move || {
                    let mut c = TcpStream::connect(addr).expect("connect");
                    let req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
                    // Three requests on one keep-alive connection, the last two pipelined.
                    c.write_all(req).expect("write");
                    let mut resp = vec![0u8; RESPONSE.len()];
                    c.read_exact(&mut resp).expect("read");
                    assert_eq!(resp, RESPONSE);
                    c.write_all(&[&req[..], &req[..]].concat()).expect("write");
                    let mut two = vec![0u8; 2 * RESPONSE.len()];
                    c.read_exact(&mut two).expect("read");
                    assert_eq!(two, [RESPONSE, RESPONSE].concat());
                })
            }
        })
        .collect();
    for c in clients {
        c.join().expect("a smoke client failed");
    }
    println!("http: smoke test passed (8 keep-alive clients x 3 requests)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke_mode = args.iter().any(|a| a == "--smoke") || std::env::var_os("GMP_SMOKE").is_some();
    let addr = match args.iter().find(|a| !a.starts_with("--")) {
        Some(a) if a.parse::<u16>().is_ok() => format!("127.0.0.1:{a}"),
        Some(a) => a.clone(),
        None if smoke_mode => "127.0.0.1:0".to_string(),
        None => "127.0.0.1:8080".to_string(),
    };
    // SAFETY: the connection goroutines hold no thread-local state across I/O.
    unsafe {
        gmp_runtime::run(move || {
            let listener = TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            let local = listener.local_addr().expect("local_addr");
            let server = go!(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(c) => {
                            let _ = c.set_nodelay(true);
                            go!(move || serve(c));
                        }
                        Err(e) => eprintln!("http: accept: {e}"),
                    }
                }
            });
            if smoke_mode {
                smoke(local);
            } else {
                eprintln!("http: listening on {local}");
                server.join().expect("the accept loop panicked");
            }
        })
    }
}
