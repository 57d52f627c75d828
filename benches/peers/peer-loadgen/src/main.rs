//! `peer-loadgen`: the echo bench's load client in Rust, for machines without Go (the
//! Go client `go/echoclient` is the default where `go` is installed; both do the same
//! work). It opens `--conns` TCP connections to the echo server, then each connection
//! makes `--n` sequential round trips of a `--size`-byte request whose echo is checked
//! byte for byte, and it prints the server peer's RESULT line: round trips per second.
//!
//! The client shares the machine's CPUs with the server, so it must be cheap: the
//! connections are spread over `--threads` event loops (mio, edge-triggered), each
//! driving its connections as small state machines (write the request, read the echo,
//! compare, start the next), rather than one OS thread per connection, whose context
//! switches would eat the server's CPU time.
//!
//! With `--mode conns` it is the client of the `conns` bench instead: it opens `--conns`
//! connections (at most 64 not yet answered, well under every peer's listen backlog),
//! each sends one byte and waits for its echo, and it prints `conns-time`, the time from
//! the first connect until the last connection's echo. Then it holds them all open until
//! the server, which reports its memory once it has served all of them, exits.
//!
//! ```text
//! peer-loadgen --addr 127.0.0.1:7000 [--conns 100] [--n 10000] [--size 64]
//!              [--threads 2] [--peer NAME] [--procs N] [--mode echo|conns]
//! ```

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::exit;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

struct Opts {
    addr: SocketAddr,
    conns: usize,
    n: u64,
    size: usize,
    threads: usize,
    peer: String,
    procs: usize,
    /// `echo` (round trips per second) or `conns` (open and hold idle connections).
    conns_mode: bool,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "peer-loadgen: {why}\nusage: peer-loadgen --addr HOST:PORT [--conns 100] [--n 10000] \
         [--size 64] [--threads 2] [--peer NAME] [--procs N] [--mode echo|conns]"
    );
    exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        addr: "127.0.0.1:7000".parse().unwrap(),
        conns: 100,
        n: 10_000,
        size: 64,
        threads: 2,
        peer: "?".into(),
        procs: 2,
        conns_mode: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
            v.parse().unwrap_or_else(|_| usage(&format!("{flag} {v:?} is not a number")))
        }
        match flag.trim_start_matches('-') {
            "addr" => o.addr = v.parse().unwrap_or_else(|_| usage(&format!("bad --addr {v:?}"))),
            "conns" => o.conns = num(&flag, &v),
            "n" => o.n = num(&flag, &v),
            "size" => o.size = num(&flag, &v),
            "threads" => o.threads = num(&flag, &v),
            "peer" => o.peer = v,
            "procs" => o.procs = num(&flag, &v),
            "mode" => match v.as_str() {
                "echo" => o.conns_mode = false,
                "conns" => o.conns_mode = true,
                _ => usage(&format!("unknown --mode {v:?} (echo or conns)")),
            },
            _ => usage(&format!("unknown flag {flag:?}")),
        }
    }
    if o.conns == 0 || o.n == 0 || o.size == 0 || o.threads == 0 {
        usage("--conns, --n, --size and --threads must be positive");
    }
    o
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("peer-loadgen: {what}: {e}");
    exit(1)
}

/// Connects, retrying for a few seconds while the server starts.
fn dial(addr: SocketAddr) -> std::net::TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => fail(&format!("connect {addr}"), e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One connection's round trips. A round trip writes `req` (its first byte is the
/// round number, so a stale or misordered echo is caught), then reads `size` bytes back.
struct Conn {
    s: TcpStream,
    req: Vec<u8>,
    resp: Vec<u8>,
    written: usize,
    read: usize,
    done: u64,
}

impl Conn {
    /// Makes progress until the socket would block; true once all `n` round trips are done.
    fn drive(&mut self, n: u64) -> io::Result<bool> {
        while self.done < n {
            if self.written < self.req.len() {
                match self.s.write(&self.req[self.written..]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(k) => self.written += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            match self.s.read(&mut self.resp[self.read..]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(k) => self.read += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if self.read == self.resp.len() {
                if self.resp != self.req {
                    return Err(io::Error::new(ErrorKind::InvalidData, "echo mismatch"));
                }
                self.done += 1;
                self.req[0] = self.done as u8;
                self.written = 0;
                self.read = 0;
            }
        }
        Ok(true)
    }
}

/// One event loop: drives its connections until every one has done `n` round trips.
fn event_loop(conns: Vec<std::net::TcpStream>, o: &Opts, start: &Barrier) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail("epoll", e));
    let mut cs: Vec<Conn> = conns
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.set_nonblocking(true).unwrap_or_else(|e| fail("set_nonblocking", e));
            let mut s = TcpStream::from_std(s);
            let rw = Interest::READABLE | Interest::WRITABLE;
            poll.registry().register(&mut s, Token(i), rw).unwrap_or_else(|e| fail("register", e));
            let mut req = vec![b'x'; o.size];
            req[0] = 0; // the round number
            Conn { s, req, resp: vec![0; o.size], written: 0, read: 0, done: 0 }
        })
        .collect();
    let mut left = cs.len();
    let mut finished = vec![false; cs.len()];
    let mut events = Events::with_capacity(1024);
    start.wait();
    // Edge-triggered: start every connection now; afterwards each is driven when it
    // reports readiness, until it would block again.
    for (i, c) in cs.iter_mut().enumerate() {
        if c.drive(o.n).unwrap_or_else(|e| fail("round trip", e)) {
            finished[i] = true;
            left -= 1;
        }
    }
    while left > 0 {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => fail("epoll_wait", e),
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if finished[i] {
                continue;
            }
            if cs[i].drive(o.n).unwrap_or_else(|e| fail("round trip", e)) {
                finished[i] = true;
                left -= 1;
            }
        }
    }
}

/// The conns client: opens `o.conns` connections, at most [`CONNS_WINDOW`] of them not
/// yet answered; each sends one byte and reads its echo. Prints the time that took,
/// then holds every connection until the server exits (it closes them all).
fn conns(o: &Opts) {
    /// Unanswered connections at most: below the smallest listen backlog of the peers
    /// (std's 128), so that no peer is slowed by the kernel dropping SYNs.
    const CONNS_WINDOW: usize = 64;
    let (addr, n) = (o.addr, o.conns);
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::net::TcpStream>(CONNS_WINDOW - 2);
    let dialer = std::thread::spawn(move || {
        for _ in 0..n {
            let mut s = dial(addr);
            s.set_nodelay(true).unwrap_or_else(|e| fail("TCP_NODELAY", e));
            s.write_all(&[7]).unwrap_or_else(|e| fail("write", e));
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    let mut held = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for mut s in rx {
        match s.read(&mut b) {
            Ok(1) if b[0] == 7 => held.push(s),
            Ok(_) => fail("conns", format!("connection {}: bad or no echo", held.len())),
            Err(e) => fail(&format!("conns: read the echo of connection {}", held.len()), e),
        }
    }
    let el = t.elapsed();
    if dialer.join().is_err() {
        fail("conns", "the dialing thread panicked");
    }
    println!(
        "RESULT bench=conns-time peer={} procs={} value={:.2} unit=ms",
        o.peer,
        o.procs,
        el.as_secs_f64() * 1e3
    );
    // The server exits once it has served them all: wait for that (the first
    // connection's end of file, or a reset), so that it is never measured half-closed.
    let first = &mut held[0];
    first.set_read_timeout(Some(Duration::from_secs(30))).unwrap_or_else(|e| fail("timeout", e));
    match first.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(_) => fail("conns", "unexpected data after the echo"),
        Err(e) => fail("conns: waiting for the server to exit", e),
    }
}

fn main() {
    let o = Arc::new(parse());
    if o.conns_mode {
        conns(&o);
        return;
    }
    let mut groups: Vec<Vec<std::net::TcpStream>> = (0..o.threads).map(|_| Vec::new()).collect();
    for i in 0..o.conns {
        let s = dial(o.addr);
        s.set_nodelay(true).unwrap_or_else(|e| fail("TCP_NODELAY", e));
        groups[i % o.threads].push(s);
    }
    // Every connection is open before the clock starts, as in the Go client.
    let start = Arc::new(Barrier::new(o.threads + 1));
    let workers: Vec<_> = groups
        .into_iter()
        .map(|g| {
            let (o, start) = (o.clone(), start.clone());
            std::thread::spawn(move || event_loop(g, &o, &start))
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for w in workers {
        if w.join().is_err() {
            fail("event loop", "panicked");
        }
    }
    let rate = (o.conns as u64 * o.n) as f64 / t.elapsed().as_secs_f64();
    println!("RESULT bench=echo peer={} procs={} value={rate:.2} unit=rt/s", o.peer, o.procs);
}
