//! A TCP echo server in plain blocking code: one goroutine per connection, as in Go.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example echo [PORT | ADDR]   # default 127.0.0.1:7000
//! cargo run --release -p gmp-runtime --example echo -- --smoke      # self-check, then exit
//! ```
//!
//! With `--smoke` (or `GMP_SMOKE=1`) it listens on a free port, connects a few clients
//! from goroutines, checks that every byte comes back, and exits 0.

use gmp_runtime::go;
use gmp_runtime::net::{SocketAddr, TcpListener, TcpStream};
use std::io::{Read, Write};

fn serve(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

fn smoke(addr: SocketAddr) {
    let clients: Vec<_> = (0..8)
        .map(|i| {
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe {
                go!(move || {
                    let mut c = TcpStream::connect(addr).expect("connect");
                    for round in 0..100 {
                        let msg = format!("client {i} round {round}");
                        c.write_all(msg.as_bytes()).expect("write");
                        let mut back = vec![0u8; msg.len()];
                        c.read_exact(&mut back).expect("read");
                        assert_eq!(back, msg.as_bytes());
                    }
                })
            }
        })
        .collect();
    for c in clients {
        c.join().expect("a smoke client failed");
    }
    println!("echo: smoke test passed (8 clients x 100 round trips)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke_mode = args.iter().any(|a| a == "--smoke") || std::env::var_os("GMP_SMOKE").is_some();
    let addr = match args.iter().find(|a| !a.starts_with("--")) {
        Some(a) if a.parse::<u16>().is_ok() => format!("127.0.0.1:{a}"),
        Some(a) => a.clone(),
        None if smoke_mode => "127.0.0.1:0".to_string(),
        None => "127.0.0.1:7000".to_string(),
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
                        Err(e) => eprintln!("echo: accept: {e}"),
                    }
                }
            });
            if smoke_mode {
                smoke(local);
            } else {
                eprintln!("echo: listening on {local}");
                server.join().expect("the accept loop panicked");
            }
        })
    }
}
