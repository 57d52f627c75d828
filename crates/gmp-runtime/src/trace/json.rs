//! Turning the recorded events into Chrome trace-event JSON, and a small JSON reader
//! (for [`render_svg`](super::render_svg)).
//!
//! # From events to slices
//!
//! Each thread's events are in the order it recorded them, so one pass per thread
//! pairs them: a `RunBegin` opens a run (closed by the thread's next `RunEnd` or
//! `RunBegin`), an `MState` closes the M's previous state and opens the next. What is
//! still open when the trace stops ends at the stop.
//!
//! Two things need the whole trace:
//!
//! - **Retakes.** When sysmon takes a P from an M whose goroutine keeps running, the
//!   M learns it only at its next scheduling point; meanwhile another M may run
//!   goroutines on that P. A run is therefore cut at the first retake of its P from
//!   its M that falls inside it: sysmon stamps the retake after winning the P and
//!   before handing it on, so the cut run ends before the next owner's first run
//!   begins. An instant the M recorded on that P after the cut moves to the M's track.
//! - **Flows.** A `spawn` or `unpark` of goroutine `g` leads to `g`'s first run that
//!   begins at or after it (a goroutine is readied at most once per park, and runs
//!   only after it is readied, so this is the run it caused). Flows use the v2 form
//!   (`bind_id` with `flow_out` on the source slice, `flow_in` on the run), which
//!   Perfetto binds to the slices themselves.

use super::buffer::{Event, Kind, ThreadBuf, NO_P};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;

/// Track ids (`tid`s) within a runtime's process: P `i` is `P_BASE + i`, M `k` is
/// `M_BASE + k`, a plain thread is `THREAD_BASE + serial`. (Not 0: Perfetto keeps
/// `tid` 0 for the kernel's idle thread.)
pub(crate) const P_BASE: u64 = 1;
/// See [`P_BASE`].
pub(crate) const M_BASE: u64 = 100_000;
/// See [`M_BASE`].
pub(crate) const THREAD_BASE: u64 = 200_000;

struct Run {
    pid: u32,
    p: u32,
    m: u32,
    g: u64,
    t0: u64,
    t1: u64,
    flow_in: Option<u64>,
}

struct Instant {
    e: Event,
    /// The thread that recorded it (index into the thread list).
    thread: usize,
    /// The run open on that thread at the time.
    run: Option<usize>,
}

struct MSlice {
    pid: u32,
    m: u32,
    name: &'static str,
    t0: u64,
    t1: u64,
}

/// Writes the trace of `threads` (each thread's buffer and events), stopped at `end`.
pub(crate) fn write(
    out: &mut impl Write,
    threads: &[(Arc<ThreadBuf>, Vec<Event>)],
    end: u64,
    truncated: bool,
) -> io::Result<()> {
    let mut runs: Vec<Run> = Vec::new();
    let mut instants: Vec<Instant> = Vec::new();
    let mut mslices: Vec<MSlice> = Vec::new();
    // The M identity of each thread: (runtime, M id), if it is an M.
    let mut ident: Vec<Option<(u32, u32)>> = Vec::with_capacity(threads.len());
    for (ti, (buf, events)) in threads.iter().enumerate() {
        let mut me = buf.m;
        let mut open: Option<usize> = None;
        let mut state: Option<(u32, u32, &'static str, u64)> = None;
        let close_state = |state: &mut Option<(u32, u32, &'static str, u64)>,
                           ts: u64,
                           mslices: &mut Vec<MSlice>| {
            if let Some((pid, m, name, t0)) = state.take() {
                mslices.push(MSlice {
                    pid,
                    m,
                    name,
                    t0,
                    t1: ts,
                });
            }
        };
        for e in events {
            match e.kind {
                Kind::RunBegin => {
                    me = Some((e.pid, e.arg));
                    if let Some(r) = open.take() {
                        runs[r].t1 = e.ts;
                    }
                    close_state(&mut state, e.ts, &mut mslices);
                    open = Some(runs.len());
                    runs.push(Run {
                        pid: e.pid,
                        p: e.p,
                        m: e.arg,
                        g: e.g,
                        t0: e.ts,
                        t1: end,
                        flow_in: None,
                    });
                }
                Kind::RunEnd => {
                    if let Some(r) = open.take() {
                        runs[r].t1 = e.ts;
                    }
                    close_state(&mut state, e.ts, &mut mslices);
                }
                Kind::MState => {
                    me = Some((e.pid, e.arg));
                    close_state(&mut state, e.ts, &mut mslices);
                    if let Some(name) = e.s {
                        state = Some((e.pid, e.arg, name, e.ts));
                    }
                }
                _ => instants.push(Instant {
                    e: *e,
                    thread: ti,
                    run: open,
                }),
            }
        }
        close_state(&mut state, end, &mut mslices);
        ident.push(me);
    }

    // Cut runs at retakes (module docs).
    let mut retakes: HashMap<(u32, u32, u32), Vec<u64>> = HashMap::new();
    for i in instants.iter().filter(|i| i.e.kind == Kind::Retake) {
        retakes
            .entry((i.e.pid, i.e.p, i.e.arg))
            .or_default()
            .push(i.e.ts);
    }
    for v in retakes.values_mut() {
        v.sort_unstable();
    }
    for r in &mut runs {
        if let Some(ts) = retakes.get(&(r.pid, r.p, r.m)) {
            let k = ts.partition_point(|&t| t < r.t0);
            if let Some(&t) = ts.get(k) {
                r.t1 = r.t1.min(t);
            }
        }
    }

    // Flows: spawn/unpark of g -> g's first run at or after it.
    let mut by_g: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in runs.iter().enumerate() {
        by_g.entry(r.g).or_default().push(i);
    }
    for v in by_g.values_mut() {
        v.sort_unstable_by_key(|&i| runs[i].t0);
    }
    instants.sort_by_key(|i| i.e.ts);
    let mut flow_out: Vec<Option<u64>> = vec![None; instants.len()];
    let mut next_flow = 1u64;
    for (k, i) in instants.iter().enumerate() {
        if !matches!(i.e.kind, Kind::Spawn | Kind::Unpark) {
            continue;
        }
        let Some(list) = by_g.get(&i.e.g) else {
            continue;
        };
        let j = list.partition_point(|&r| runs[r].t0 < i.e.ts);
        if let Some(&r) = list.get(j) {
            if runs[r].flow_in.is_none() {
                runs[r].flow_in = Some(next_flow);
                flow_out[k] = Some(next_flow);
                next_flow += 1;
            }
        }
    }

    // Output.
    let mut tracks: HashMap<(u32, u64), String> = HashMap::new();
    let mut line = String::with_capacity(256);
    // `traceEvents` first: Perfetto streams the file and reads what follows the
    // array leniently. No `displayTimeUnit`: Perfetto would read `ts` in that unit.
    out.write_all(b"{\"traceEvents\":[\n")?;
    let mut first = true;
    let mut emit = |out: &mut dyn Write, line: &str| -> io::Result<()> {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        out.write_all(line.as_bytes())
    };

    for r in &runs {
        line.clear();
        tracks
            .entry((r.pid, P_BASE + r.p as u64))
            .or_insert_with(|| format!("P{}", r.p));
        let _ = write!(
            line,
            "{{\"name\":\"G{}\",\"cat\":\"run\",\"ph\":\"X\",\"pid\":{},\"tid\":{},\"ts\":{},\"dur\":{},\"args\":{{\"g\":{},\"m\":{}}}",
            r.g,
            r.pid,
            P_BASE + r.p as u64,
            Us(r.t0),
            Us(r.t1.saturating_sub(r.t0)),
            r.g,
            r.m
        );
        if let Some(f) = r.flow_in {
            let _ = write!(line, ",\"bind_id\":{f},\"flow_in\":true");
        }
        line.push('}');
        emit(out, &line)?;
    }
    for s in &mslices {
        line.clear();
        let tid = M_BASE + s.m as u64;
        tracks
            .entry((s.pid, tid))
            .or_insert_with(|| format!("M{}", s.m));
        let _ = write!(
            line,
            "{{\"name\":\"{}\",\"cat\":\"m\",\"ph\":\"X\",\"pid\":{},\"tid\":{},\"ts\":{},\"dur\":{}}}",
            Esc(s.name),
            s.pid,
            tid,
            Us(s.t0),
            Us(s.t1.saturating_sub(s.t0))
        );
        emit(out, &line)?;
    }
    for (k, i) in instants.iter().enumerate() {
        let e = &i.e;
        // Where it happened: its P, unless the recording M had lost that P by then;
        // else the M's own track, or the plain thread's.
        let lost = i
            .run
            .map(|r| &runs[r])
            .is_some_and(|r| r.p == e.p && r.t1 < e.ts && e.kind != Kind::Retake);
        let tid = match ident[i.thread] {
            _ if e.p != NO_P && !lost => P_BASE + e.p as u64,
            Some((pid, m)) if pid == e.pid => M_BASE + m as u64,
            _ => THREAD_BASE + threads[i.thread].0.serial as u64,
        };
        tracks.entry((e.pid, tid)).or_insert_with(|| {
            if tid < M_BASE {
                format!("P{}", tid - P_BASE)
            } else if tid < THREAD_BASE {
                format!("M{}", tid - M_BASE)
            } else {
                format!("thread {}", threads[i.thread].0.name)
            }
        });
        line.clear();
        let (name, cat) = match e.kind {
            Kind::Spawn => (format!("spawn G{}", e.g), "spawn"),
            Kind::Unpark => (format!("unpark G{}", e.g), "unpark"),
            Kind::Park => ("park".to_string(), "park"),
            Kind::Steal => ("steal".to_string(), "steal"),
            Kind::Retake => ("retake".to_string(), "retake"),
            Kind::RunBegin | Kind::RunEnd | Kind::MState => continue,
        };
        let _ = write!(
            line,
            "{{\"name\":\"{name}\",\"cat\":\"{cat}\",\"pid\":{},\"tid\":{tid},\"ts\":{}",
            e.pid,
            Us(e.ts)
        );
        match flow_out[k] {
            // A zero-length slice, so that the flow has a slice to start from.
            Some(f) => {
                let _ = write!(
                    line,
                    ",\"ph\":\"X\",\"dur\":0,\"bind_id\":{f},\"flow_out\":true"
                );
            }
            None => line.push_str(",\"ph\":\"i\",\"s\":\"t\""),
        }
        let _ = match e.kind {
            Kind::Spawn | Kind::Unpark => write!(line, ",\"args\":{{\"g\":{}}}}}", e.g),
            Kind::Park => write!(
                line,
                ",\"args\":{{\"g\":{},\"reason\":\"{}\"}}}}",
                e.g,
                Esc(e.s.unwrap_or(""))
            ),
            Kind::Steal => write!(
                line,
                ",\"args\":{{\"from\":\"P{}\",\"goroutines\":{},\"g\":{}}}}}",
                e.arg2, e.arg, e.g
            ),
            _ => write!(
                line,
                ",\"args\":{{\"from_m\":{},\"why\":\"{}\"}}}}",
                e.arg,
                Esc(e.s.unwrap_or(""))
            ),
        };
        emit(out, &line)?;
    }

    // Names of the runtimes and tracks, in a stable order.
    let mut names: Vec<_> = tracks.into_iter().collect();
    names.sort();
    let mut pids: Vec<u32> = names.iter().map(|((pid, _), _)| *pid).collect();
    pids.dedup();
    for pid in pids {
        line.clear();
        let _ = write!(
            line,
            "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{pid},\"args\":{{\"name\":\"gmp runtime {pid}\"}}}}"
        );
        emit(out, &line)?;
    }
    for ((pid, tid), name) in &names {
        line.clear();
        let _ = write!(
            line,
            "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"{}\"}}}},\n{{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}",
            Esc(name)
        );
        emit(out, &line)?;
    }
    out.write_all(b"\n],\"otherData\":{\"producer\":\"gmp-runtime\"")?;
    if truncated {
        out.write_all(b",\"truncated\":true")?;
    }
    out.write_all(b"}}\n")
}

/// Nanoseconds shown as microseconds with three decimals.
struct Us(u64);

impl std::fmt::Display for Us {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A string escaped for a JSON string literal.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// A small JSON reader.
// ---------------------------------------------------------------------------------

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses a JSON document; the error names the byte offset and what was expected.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("end of input"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("invalid JSON at byte {}: expected {what}", self.i)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return Err(self.err("less nesting (64 levels at most)"));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                if self.eat(b'}') {
                    return Ok(Value::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.err("':'"));
                    }
                    m.push((k, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Ok(Value::Obj(m));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("',' or '}'"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Value::Arr(a));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("',' or ']'"));
                    }
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::Null)
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Value::Num)
                    .ok_or_else(|| {
                        self.i = start;
                        self.err("a number")
                    })
            }
            _ => Err(self.err("a value")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("a string"));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err(self.err("a closing '\"'")),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| self.err("UTF-8"));
                }
                Some(b'\\') => {
                    let c = *self
                        .s
                        .get(self.i + 1)
                        .ok_or_else(|| self.err("an escape"))?;
                    self.i += 2;
                    match c {
                        b'"' | b'\\' | b'/' => out.push(c),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.err("four hex digits"))?;
                            self.i += 4;
                            let ch = char::from_u32(hex).unwrap_or('\u{fffd}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(self.err("a valid escape")),
                    }
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_we_write() {
        let v = parse(r#"{"a":[1,-2.5e1,"x\"\u0041",true,false,null],"b":{}}"#).unwrap();
        let a = match v.get("a") {
            Some(Value::Arr(a)) => a.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(a[1].as_f64(), Some(-25.0));
        assert_eq!(a[2].as_str(), Some("x\"A"));
        assert!(parse("{\"a\":}").unwrap_err().contains("byte 5"));
        assert!(parse("[1,2").is_err());
    }

    #[test]
    fn microseconds() {
        assert_eq!(Us(1_234_567).to_string(), "1234.567");
        assert_eq!(Us(5).to_string(), "0.005");
    }
}
