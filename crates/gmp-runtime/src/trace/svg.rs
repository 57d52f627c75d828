//! An SVG timeline of a trace file, drawn by our own code: one row per P, each run
//! slice a rectangle coloured by its goroutine, steals and retakes marked, a time
//! axis below — the scheduler at work, visible without installing a viewer.

use super::json::{parse, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 46.0;
const ROW: f64 = 24.0;
const GAP: f64 = 8.0;
/// Rectangles with a tooltip each, at most (beyond, the file would grow too big).
const MAX_TOOLTIPS: usize = 2000;

struct Slice {
    g: u64,
    t0: f64,
    t1: f64,
}

/// Renders the trace file `json` (written by [`stop`](super::stop)) as an SVG
/// timeline at `svg`: a row per P with its goroutine runs, each goroutine in its own
/// colour, steals (▼) and sysmon retakes (red ▼) marked, and a time axis.
///
/// Errors: the file cannot be read or written, is not JSON, or holds no run slices.
///
/// ```no_run
/// gmp_runtime::trace::render_svg("trace.json", "trace.svg").unwrap();
/// ```
pub fn render_svg(json: impl AsRef<Path>, svg: impl AsRef<Path>) -> io::Result<()> {
    let (json, svg) = (json.as_ref(), svg.as_ref());
    let text = std::fs::read_to_string(json).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("gmp: render_svg: cannot read {}: {e}", json.display()),
        )
    })?;
    let doc = parse(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("gmp: render_svg: {}: {e}", json.display()),
        )
    })?;
    let title = json
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let out = render(&doc, &title).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("gmp: render_svg: {}: {e}", json.display()),
        )
    })?;
    std::fs::write(svg, out).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("gmp: render_svg: cannot write {}: {e}", svg.display()),
        )
    })
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn render(doc: &Value, title: &str) -> Result<String, String> {
    let events = match doc.get("traceEvents") {
        Some(Value::Arr(a)) => a,
        _ => return Err("no \"traceEvents\" array (not a Chrome trace-event file)".into()),
    };
    // (pid, P) -> slices; (pid, P) -> markers (time, is_retake).
    let mut rows: BTreeMap<(u64, u64), Vec<Slice>> = BTreeMap::new();
    let mut marks: HashMap<(u64, u64), Vec<(f64, bool)>> = HashMap::new();
    let mut names: HashMap<(u64, u64), String> = HashMap::new();
    for e in events {
        if e.get("ph").and_then(Value::as_str) == Some("M")
            && e.get("name").and_then(Value::as_str) == Some("thread_name")
        {
            let name = e
                .get("args")
                .and_then(|a| a.get("name"))
                .and_then(Value::as_str);
            if let (Some(pid), Some(tid), Some(name)) = (num(e, "pid"), num(e, "tid"), name) {
                names.insert((pid as u64, tid as u64), name.to_string());
            }
            continue;
        }
        let cat = e.get("cat").and_then(Value::as_str).unwrap_or("");
        let (Some(pid), Some(tid), Some(ts)) = (num(e, "pid"), num(e, "tid"), num(e, "ts")) else {
            continue;
        };
        let key = (pid as u64, tid as u64);
        match cat {
            "run" => {
                let dur = num(e, "dur").unwrap_or(0.0);
                let g = e.get("args").and_then(|a| num(a, "g")).unwrap_or(0.0) as u64;
                rows.entry(key).or_default().push(Slice {
                    g,
                    t0: ts,
                    t1: ts + dur,
                });
            }
            "steal" | "retake" if tid < super::json::M_BASE as f64 => {
                marks.entry(key).or_default().push((ts, cat == "retake"));
            }
            _ => {}
        }
    }
    if rows.is_empty() {
        return Err("no goroutine run slices (was anything running while tracing?)".into());
    }
    let t_min = rows
        .values()
        .flatten()
        .map(|s| s.t0)
        .fold(f64::INFINITY, f64::min);
    let t_max = rows
        .values()
        .flatten()
        .map(|s| s.t1)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (t_max - t_min).max(1.0);
    let plot = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + (t - t_min) / span * plot;
    let several = rows
        .keys()
        .map(|k| k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let goroutines: std::collections::BTreeSet<u64> =
        rows.values().flatten().map(|s| s.g).collect();
    let nslices: usize = rows.values().map(Vec::len).sum();
    let height = TOP + rows.len() as f64 * (ROW + GAP) + 44.0;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">gmp execution trace{}</text>\n\
         <text x=\"{LEFT}\" y=\"35\" fill=\"#555\">{} goroutine runs of {} goroutines on {} Ps; \
         one colour per goroutine; ▼ steal, <tspan fill=\"#d00\">▼</tspan> sysmon retake</text>\n",
        if title.is_empty() {
            String::new()
        } else {
            format!(": {}", xml(title))
        },
        nslices,
        goroutines.len(),
        rows.len()
    );
    let tooltips = nslices <= MAX_TOOLTIPS;
    for (row, (key, slices)) in rows.iter_mut().enumerate() {
        let y = TOP + row as f64 * (ROW + GAP);
        let p = names
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("tid {}", key.1));
        let label = if several {
            format!("rt{} {p}", key.0)
        } else {
            p
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{plot:.1}\" height=\"{ROW}\" fill=\"#f3f3f3\"/>",
            LEFT - 8.0,
            y + ROW * 0.7,
            xml(&label)
        );
        slices.sort_by(|a, b| a.t0.total_cmp(&b.t0));
        // Merge neighbours of one goroutine closer than half a pixel: same picture,
        // smaller file.
        let mut merged: Vec<Slice> = Vec::new();
        for sl in slices.drain(..) {
            if let Some(last) = merged.last_mut() {
                if last.g == sl.g && x(sl.t0) - x(last.t1) < 0.5 {
                    last.t1 = last.t1.max(sl.t1);
                    continue;
                }
            }
            merged.push(sl);
        }
        for sl in &merged {
            let (x0, x1) = (x(sl.t0), x(sl.t1));
            let _ = write!(
                s,
                "<rect x=\"{x0:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{ROW}\" fill=\"{}\"",
                (x1 - x0).max(0.4),
                colour(sl.g)
            );
            if tooltips {
                let _ = writeln!(
                    s,
                    "><title>G{} {:.1}–{:.1} µs</title></rect>",
                    sl.g,
                    sl.t0 - t_min,
                    sl.t1 - t_min
                );
            } else {
                s.push_str("/>\n");
            }
        }
        for &(t, retake) in marks.get(key).map(Vec::as_slice).unwrap_or(&[]) {
            let mx = x(t);
            let _ = writeln!(
                s,
                "<path d=\"M{:.1} {:.1}h7l-3.5 6z\" fill=\"{}\"/>",
                mx - 3.5,
                y - 7.0,
                if retake { "#d00" } else { "#222" }
            );
        }
    }
    // The time axis.
    let y = TOP + rows.len() as f64 * (ROW + GAP) + 4.0;
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#333\"/>",
        LEFT + plot
    );
    let step = nice_step(span / 8.0);
    let mut k = 0.0;
    while k <= span + 1e-9 {
        let tx = LEFT + k / span * plot;
        let _ = writeln!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"{y:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            y + 5.0,
            y + 19.0,
            time_label(k)
        );
        k += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">time since the first run</text>\n</svg>",
        LEFT + plot,
        y + 36.0
    );
    Ok(s)
}

/// A distinct, stable colour per goroutine (golden-angle hues).
fn colour(g: u64) -> String {
    let h = (g as f64 * 137.507_764) % 360.0;
    let l = 45 + (g % 3) * 8;
    format!("hsl({h:.0},65%,{l}%)")
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-3).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

fn time_label(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{} s", trim(us / 1_000_000.0))
    } else if us >= 1000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else {
        format!("{} µs", trim(us))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_axis_and_marks() {
        let doc = parse(
            r#"{"traceEvents":[
            {"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{"name":"P0"}},
            {"name":"G1","cat":"run","ph":"X","pid":1,"tid":1,"ts":10.0,"dur":5.0,"args":{"g":1}},
            {"name":"G2","cat":"run","ph":"X","pid":1,"tid":2,"ts":12.0,"dur":8.0,"args":{"g":2}},
            {"name":"steal","cat":"steal","ph":"i","pid":1,"tid":2,"ts":12.0}]}"#,
        )
        .unwrap();
        let svg = render(&doc, "t.json").unwrap();
        assert!(svg.contains(">P0<") && svg.contains(">tid 2<"), "{svg}");
        assert_eq!(svg.matches("<title>G").count(), 2);
        assert!(svg.contains("µs"));
        assert!(svg.contains("<path"));
        assert!(render(&parse(r#"{"traceEvents":[]}"#).unwrap(), "").is_err());
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(130.0), 200.0);
    }
}
