//! A Unix-domain socket echo server in plain blocking code: one goroutine per
//! connection, as in Go's `net.Listen("unix", path)`.
//!
//! ```text
//! cargo run --release -p gmp-runtime --example unix_echo [PATH]   # default /tmp/gmp-echo.sock
//! cargo run --release -p gmp-runtime --example unix_echo -- --smoke   # self-check, then exit
//! ```
//!
//! Try it with `socat - UNIX-CONNECT:/tmp/gmp-echo.sock`. With `--smoke` (or
//! `GMP_SMOKE=1`) it listens on a temporary path, connects a few clients from goroutines,
//! checks that every byte comes back, removes the socket and exits 0.

use gmp_runtime::go;
use gmp_runtime::net::{UnixListener, UnixStream};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn serve(mut conn: UnixStream) {
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

fn smoke(path: &Path) {
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let path = path.to_path_buf();
            // SAFETY: the goroutine holds no thread-local state across a suspension point.
            unsafe {
                go!(move || {
                    let mut c = UnixStream::connect(&path).expect("connect");
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
    println!("unix_echo: smoke test passed (8 clients x 100 round trips)");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke_mode = args.iter().any(|a| a == "--smoke") || std::env::var_os("GMP_SMOKE").is_some();
    let path: PathBuf = match args.iter().find(|a| !a.starts_with("--")) {
        Some(p) => p.into(),
        None if smoke_mode => {
            std::env::temp_dir().join(format!("gmp-unix-echo-{}.sock", std::process::id()))
        }
        None => "/tmp/gmp-echo.sock".into(),
    };
    // A socket file left by an earlier run would make bind fail.
    let _ = std::fs::remove_file(&path);
    // SAFETY: the connection goroutines hold no thread-local state across I/O.
    unsafe {
        gmp_runtime::run(|| {
            let listener = UnixListener::bind(&path)
                .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
            let server = go!(move || {
                for conn in listener.incoming() {
                    match conn {
                        Ok(c) => {
                            go!(move || serve(c));
                        }
                        Err(e) => eprintln!("unix_echo: accept: {e}"),
                    }
                }
            });
            if smoke_mode {
                smoke(&path);
            } else {
                eprintln!("unix_echo: listening on {}", path.display());
                server.join().expect("the accept loop panicked");
            }
        })
    }
    let _ = std::fs::remove_file(&path);
}
