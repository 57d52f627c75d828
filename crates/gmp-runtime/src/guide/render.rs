//! Draws the guide's state diagrams from the transition tables the debug-build checks
//! use (`g::TRANSITIONS`, `p::TRANSITIONS`), and fails if a committed picture differs
//! from a fresh drawing, so that the pictures cannot drift from the code.
//!
//! Regenerate after changing a table (or this drawing code):
//!
//! ```text
//! GMP_BLESS=1 cargo test -p gmp-runtime --lib guide::render
//! ```
//!
//! which rewrites `src/guide/{g,p}-status.svg` and their copies in `README.md`.
//!
//! Only the placement of each state is chosen here (a state missing from the layout
//! fails the test, naming it); the states, the arrows and their labels all come from
//! the tables. Arrows are straight, bent only as far as needed to miss other states.

use crate::g::{self, Status};
use crate::p::{self, OWN_IDLE, OWN_RETAKE, OWN_RUNTIME, OWN_SYSCALL, OWN_USER};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Half the width and height of a state's box.
const HALF_W: f64 = 78.0;
const HALF_H: f64 = 24.0;
/// Distance between the two arrows of a pair of opposite transitions.
const PAIR_GAP: f64 = 14.0;
/// Clearance an arrow keeps from the boxes of the states it does not join.
const CLEARANCE: f64 = 10.0;

/// A state: its name in our code, its name in Go's runtime, and where it is drawn.
struct Node {
    name: String,
    go: &'static str,
    x: f64,
    y: f64,
}

/// A diagram: states and the transitions between them (indices into `nodes`).
struct Diagram {
    /// Prefix of the SVG element ids, unique per picture (both share the README page).
    id: &'static str,
    title: &'static str,
    width: f64,
    height: f64,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize, &'static str)>,
}

impl Diagram {
    /// Builds the diagram of a transition table: `place` gives each state's name, Go
    /// name and position, or `None` for a state the layout does not know.
    #[allow(clippy::type_complexity)]
    fn from_table<S: Copy + PartialEq + std::fmt::Debug>(
        id: &'static str,
        title: &'static str,
        (width, height): (f64, f64),
        table: &[(S, S, &'static str)],
        place: impl Fn(S) -> Option<(String, &'static str, f64, f64)>,
    ) -> Diagram {
        let mut states: Vec<S> = Vec::new();
        for &(from, to, _) in table {
            for s in [from, to] {
                if !states.contains(&s) {
                    states.push(s);
                }
            }
        }
        let nodes = states
            .iter()
            .map(|&s| {
                let (name, go, x, y) = place(s).unwrap_or_else(|| {
                    panic!("guide/render.rs: state {s:?} has no place in the {id} layout; add one")
                });
                Node { name, go, x, y }
            })
            .collect();
        let index = |s: S| {
            states
                .iter()
                .position(|&t| t == s)
                .expect("collected above")
        };
        let edges = table
            .iter()
            .map(|&(from, to, label)| (index(from), index(to), label))
            .collect();
        Diagram {
            id,
            title,
            width,
            height,
            nodes,
            edges,
        }
    }

    fn svg(&self) -> String {
        let (w, h, id) = (self.width, self.height, self.id);
        let mut out = String::new();
        // One line per element and no blank line: Markdown (rustdoc, README) keeps the
        // whole picture as one raw HTML block.
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="{id}-title" font-family="sans-serif">"#
        );
        let _ = writeln!(out, r#"<title id="{id}-title">{}</title>"#, self.title);
        let _ = writeln!(
            out,
            r##"<defs><marker id="{id}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>"##
        );
        let _ = writeln!(
            out,
            r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold" fill="#111">{}</text>"##,
            w / 2.0,
            self.title
        );
        let routes: Vec<Route> = (0..self.edges.len()).map(|i| self.route(i)).collect();
        let mut labels = String::new();
        let mut placed: Vec<[f64; 4]> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let _ = writeln!(
                out,
                r##"<path d="{}" fill="none" stroke="#333" stroke-width="1.5" marker-end="url(#{id}-arrow)"/>"##,
                r.path
            );
            let label = self.edges[i].2;
            let (lx, ly, anchor, bbox) = self.place_label(i, &routes, &placed);
            placed.push(bbox);
            let _ = writeln!(
                labels,
                r##"<text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" font-size="12" fill="#1a4d8f" stroke="#ffffff" stroke-width="4" paint-order="stroke">{}</text>"##,
                escape(label)
            );
        }
        for n in &self.nodes {
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="10" fill="#eef3fb" stroke="#1a4d8f" stroke-width="1.5"/>"##,
                n.x - HALF_W,
                n.y - HALF_H,
                2.0 * HALF_W,
                2.0 * HALF_H
            );
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" font-weight="bold" fill="#111">{}</text>"##,
                n.x,
                n.y - 3.0,
                escape(&n.name)
            );
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" font-family="monospace" fill="#555">{}</text>"##,
                n.x,
                n.y + 13.0,
                escape(n.go)
            );
        }
        // Labels last, so that no arrow or box is drawn over one.
        out.push_str(&labels);
        out.push_str("</svg>\n");
        out
    }

    /// The path of edge `i`. A pair of opposite transitions is drawn as two parallel
    /// arrows; an arrow that would cross another state's box is bent around it.
    fn route(&self, i: usize) -> Route {
        let (from, to, _) = self.edges[i];
        let paired = self.edges.iter().any(|&(f, t, _)| (f, t) == (to, from));
        let (a, b) = (&self.nodes[from], &self.nodes[to]);
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let len = (dx * dx + dy * dy).sqrt();
        // The unit normal on the left of the direction of travel (SVG's y points down).
        let normal = (dy / len, -dx / len);
        let shift = if paired { PAIR_GAP / 2.0 } else { 0.0 };
        let start = (a.x + normal.0 * shift, a.y + normal.1 * shift);
        let end = (b.x + normal.0 * shift, b.y + normal.1 * shift);
        let control = |k: f64| {
            (
                (start.0 + end.0) / 2.0 + normal.0 * k,
                (start.1 + end.1) / 2.0 + normal.1 * k,
            )
        };
        // Bend: the control point moves out along the normal until the curve is clear.
        let bend = [0.0, 40.0, -40.0, 80.0, -80.0, 120.0, -120.0, 160.0, -160.0]
            .into_iter()
            .find(|&k| {
                (0..=40).all(|s| {
                    let (x, y) = quad(start, control(k), end, s as f64 / 40.0);
                    self.nodes.iter().enumerate().all(|(j, n)| {
                        j == from
                            || j == to
                            || (x - n.x).abs() > HALF_W + CLEARANCE
                            || (y - n.y).abs() > HALF_H + CLEARANCE
                    })
                })
            })
            .unwrap_or_else(|| {
                panic!("guide/render.rs: no clear route for edge {i}; move a state")
            });
        let c = control(bend);
        // Start and end where the curve leaves and enters the boxes.
        let t0 = exit_t(|t| quad(start, c, end, t), a);
        let t1 = 1.0 - exit_t(|t| quad(end, c, start, t), b);
        let (p0, p1) = (quad(start, c, end, t0), quad(start, c, end, t1));
        let path = if bend == 0.0 {
            format!("M{:.1},{:.1} L{:.1},{:.1}", p0.0, p0.1, p1.0, p1.1)
        } else {
            // The control point of the sub-curve from t0 to t1 (de Casteljau).
            let lerp = |p: (f64, f64), q: (f64, f64), t: f64| {
                (p.0 + (q.0 - p.0) * t, p.1 + (q.1 - p.1) * t)
            };
            let c01 = lerp(lerp(start, c, t0), lerp(c, end, t0), (t1 - t0) / (1.0 - t0));
            format!(
                "M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}",
                p0.0, p0.1, c01.0, c01.1, p1.0, p1.1
            )
        };
        let points = (0..=40)
            .map(|s| quad(start, c, end, t0 + (t1 - t0) * s as f64 / 40.0))
            .collect();
        Route {
            path,
            curve: (start, c, end),
            normal,
            paired,
            points,
        }
    }

    /// Where edge `i`'s label goes: beside the arrow — on its left for a pair, so that
    /// the two labels fall on opposite sides, else on the side away from the middle of
    /// the picture — at the first point along it (from the middle outwards) where the
    /// label touches no other arrow, state or label. Returns x, y, the text anchor and
    /// the label's box.
    fn place_label(
        &self,
        i: usize,
        routes: &[Route],
        placed: &[[f64; 4]],
    ) -> (f64, f64, &'static str, [f64; 4]) {
        let r = &routes[i];
        let count = self.nodes.len() as f64;
        let cx = self.nodes.iter().map(|n| n.x).sum::<f64>() / count;
        let cy = self.nodes.iter().map(|n| n.y).sum::<f64>() / count;
        // Label width at 12 px sans-serif: about 6.2 px a character.
        let width = self.edges[i].2.chars().count() as f64 * 6.2;
        let candidate = |t: f64| {
            let (mx, my) = quad(r.curve.0, r.curve.1, r.curve.2, t);
            let (mut nx, mut ny) = r.normal;
            if !r.paired && (cx - mx) * nx + (cy - my) * ny > 1.0 {
                (nx, ny) = (-nx, -ny);
            }
            let (lx, mut ly) = (mx + nx * 10.0, my + ny * 10.0 + 4.0);
            let anchor = if nx.abs() < 0.3 {
                ly += if ny < 0.0 { -4.0 } else { 6.0 };
                "middle"
            } else if nx > 0.0 {
                "start"
            } else {
                "end"
            };
            let x0 = match anchor {
                "start" => lx,
                "end" => lx - width,
                _ => lx - width / 2.0,
            };
            (
                lx,
                ly,
                anchor,
                [x0 - 1.0, ly - 12.0, x0 + width + 1.0, ly + 4.0],
            )
        };
        let hits = |b: &[f64; 4]| {
            let inside = |&(x, y): &(f64, f64)| x > b[0] && x < b[2] && y > b[1] && y < b[3];
            let arrows = routes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, o)| o.points.iter().filter(|p| inside(p)).count())
                .sum::<usize>();
            let boxes = self
                .nodes
                .iter()
                .filter(|n| {
                    b[0] < n.x + HALF_W
                        && b[2] > n.x - HALF_W
                        && b[1] < n.y + HALF_H
                        && b[3] > n.y - HALF_H
                })
                .count();
            let labels = placed
                .iter()
                .filter(|o| b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1])
                .count();
            arrows + 100 * (boxes + labels)
        };
        [0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74]
            .into_iter()
            .map(candidate)
            .min_by_key(|c| hits(&c.3))
            .expect("candidates")
    }
}

/// An arrow: its SVG path, the curve it follows (start, control, end), the unit normal
/// on its left, whether it is one of a pair, and points along its visible part.
struct Route {
    path: String,
    curve: ((f64, f64), (f64, f64), (f64, f64)),
    normal: (f64, f64),
    paired: bool,
    points: Vec<(f64, f64)>,
}

/// A point of the quadratic Bézier curve `p0 c p1` at `t`.
fn quad(p0: (f64, f64), c: (f64, f64), p1: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    (
        u * u * p0.0 + 2.0 * u * t * c.0 + t * t * p1.0,
        u * u * p0.1 + 2.0 * u * t * c.1 + t * t * p1.1,
    )
}

/// The parameter at which `curve`, starting inside `n`'s box, leaves it (bisection).
fn exit_t(curve: impl Fn(f64) -> (f64, f64), n: &Node) -> f64 {
    let inside = |t: f64| {
        let (x, y) = curve(t);
        (x - n.x).abs() <= HALF_W && (y - n.y).abs() <= HALF_H
    };
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..30 {
        let mid = (lo + hi) / 2.0;
        if inside(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The G state machine, from `g::TRANSITIONS`.
fn g_diagram() -> Diagram {
    Diagram::from_table(
        "gmp-g",
        "G status transitions (gmp-runtime g.rs: TRANSITIONS)",
        (900.0, 400.0),
        g::TRANSITIONS,
        |s| {
            let (go, x, y) = match s {
                Status::Idle => ("_Gidle", 100.0, 210.0),
                Status::Runnable => ("_Grunnable", 310.0, 210.0),
                Status::Running => ("_Grunning", 590.0, 210.0),
                Status::Dead => ("_Gdead", 800.0, 210.0),
                Status::Waiting => ("_Gwaiting", 450.0, 80.0),
                Status::Syscall => ("_Gsyscall", 450.0, 340.0),
            };
            Some((format!("{s:?}"), go, x, y))
        },
    )
}

/// The P state machine, from `p::TRANSITIONS`.
fn p_diagram() -> Diagram {
    Diagram::from_table(
        "gmp-p",
        "P states (gmp-runtime p.rs: TRANSITIONS)",
        (860.0, 470.0),
        p::TRANSITIONS,
        |s| {
            let (name, go, x, y) = match s {
                OWN_IDLE => ("IDLE", "_Pidle", 110.0, 240.0),
                OWN_RUNTIME => ("RUNTIME", "_Prunning (sched)", 420.0, 240.0),
                OWN_USER => ("USER", "_Prunning (user)", 720.0, 80.0),
                OWN_SYSCALL => ("SYSCALL", "_Psyscall", 720.0, 400.0),
                OWN_RETAKE => ("RETAKE", "(sysmon deciding)", 260.0, 80.0),
                _ => return None,
            };
            Some((name.to_string(), go, x, y))
        },
    )
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares (or, with `GMP_BLESS` set, rewrites) `src/guide/<file>` and its copy in
/// README.md between `<!-- <file> -->` and `<!-- end <file> -->`.
fn check(file: &str, fresh: &str) {
    // Both tests rewrite README.md when blessing: one at a time.
    static README: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = README.lock().unwrap_or_else(|e| e.into_inner());
    let bless = std::env::var_os("GMP_BLESS").is_some();
    let how = "regenerate with `GMP_BLESS=1 cargo test -p gmp-runtime --lib guide::render`";
    let svg_path = crate_dir().join("src/guide").join(file);
    let readme_path = crate_dir().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("read README.md");
    let (begin, end) = (format!("<!-- {file} -->\n"), format!("<!-- end {file} -->"));
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README.md has no `{}` marker", begin.trim_end()))
        + begin.len();
    let stop = start
        + readme[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("README.md has no `{end}` marker"));
    if bless {
        std::fs::write(&svg_path, fresh).expect("write the SVG");
        let updated = format!("{}{fresh}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&readme_path, updated).expect("write README.md");
        return;
    }
    let committed = std::fs::read_to_string(&svg_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} differs from a fresh drawing of its transition table: {how}",
        show(&svg_path)
    );
    assert!(
        readme[start..stop] == *fresh,
        "README.md's copy of {file} differs from a fresh drawing: {how}"
    );
}

fn show(p: &Path) -> String {
    p.strip_prefix(crate_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[test]
fn g_status_svg_is_current() {
    check("g-status.svg", &g_diagram().svg());
}

#[test]
fn p_status_svg_is_current() {
    check("p-status.svg", &p_diagram().svg());
}

/// The drawing shows every row of the tables, once each (the tests above only compare
/// pictures; this checks what the picture is made of).
#[test]
fn diagrams_draw_every_transition() {
    for (d, rows) in [
        (g_diagram(), g::TRANSITIONS.len()),
        (p_diagram(), p::TRANSITIONS.len()),
    ] {
        let svg = d.svg();
        assert_eq!(d.edges.len(), rows);
        assert_eq!(svg.matches("marker-end=").count(), rows, "{}", d.title);
        for (_, _, label) in &d.edges {
            assert!(
                svg.contains(&format!(">{}</text>", escape(label))),
                "{label}"
            );
        }
        for n in &d.nodes {
            assert!(svg.contains(&format!(">{}</text>", n.name)), "{}", n.name);
        }
        assert!(
            !svg.contains("\n\n"),
            "a blank line would end the HTML block"
        );
    }
}

/// The numbers the guide states are the ones in the code. (Not under loom, whose run
/// queue has 4 slots instead of 256 to keep the models small.)
#[test]
#[cfg(not(loom))]
fn guide_states_the_code_constants() {
    let guide = include_str!("../guide.rs");
    assert_eq!(
        crate::sysmon::FORCE_PREEMPT,
        std::time::Duration::from_millis(10)
    );
    assert!(guide.contains("10 ms"));
    assert_eq!(
        crate::sysmon::DEADLOCK_GRACE,
        std::time::Duration::from_millis(250)
    );
    assert!(guide.contains("250 ms"));
    assert_eq!(gmp_queue::LOCAL_CAPACITY, 256);
    assert!(guide.contains("256"));
}
