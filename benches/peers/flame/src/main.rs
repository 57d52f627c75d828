//! `flame`: turns `perf script` output into a flame graph and a flat profile.
//!
//! ```text
//! perf script -i perf.data | flame --title "gmp spawn" --svg out.svg > out.txt
//! ```
//!
//! The SVG is inferno's flame graph of the collapsed stacks. Standard output gets the
//! frames with the most *self* samples (the leaf of each stack: where the CPU was) and
//! the most *total* samples (anywhere on the stack), as percentages of all samples:
//! the lines a fix names when it says which profile line it removed.
//! `cargo xtask profile` runs it; it lives in the peers workspace so that the gmp
//! workspace (and its CI) never compiles inferno.

use inferno::collapse::perf::{Folder, Options as CollapseOptions};
use inferno::collapse::Collapse;
use inferno::flamegraph::{self, Options};
use std::collections::HashMap;
use std::io::{self, BufReader, Write};

const USAGE: &str = "usage: perf script | flame [--title T] [--svg FILE] [--top N]";

fn main() {
    if let Err(e) = run() {
        eprintln!("flame: {e}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let mut title = String::from("profile");
    let mut svg = None;
    let mut top = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| io::Error::other(format!("{a} needs a value\n{USAGE}")))
        };
        match a.as_str() {
            "--title" => title = value()?,
            "--svg" => svg = Some(value()?),
            "--top" => {
                top = value()?
                    .parse()
                    .map_err(|_| io::Error::other(format!("--top takes a number\n{USAGE}")))?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(io::Error::other(format!("unknown argument {other}\n{USAGE}"))),
        }
    }

    let mut collapsed = Vec::new();
    Folder::from(CollapseOptions::default())
        .collapse(BufReader::new(io::stdin().lock()), &mut collapsed)?;
    let collapsed = String::from_utf8(collapsed).map_err(io::Error::other)?;
    if collapsed.trim().is_empty() {
        return Err(io::Error::other("no samples in the perf script input"));
    }

    if let Some(path) = svg {
        let mut opts = Options::default();
        opts.title = title.clone();
        opts.count_name = "samples".into();
        let out = std::fs::File::create(&path)?;
        flamegraph::from_lines(&mut opts, collapsed.lines(), io::BufWriter::new(out))
            .map_err(io::Error::other)?;
    }

    let (total, self_n, incl) = tally(&collapsed);
    let mut out = io::stdout().lock();
    writeln!(out, "# {title}: {total} samples")?;
    for (name, map) in [("self", &self_n), ("total", &incl)] {
        writeln!(out, "\n## top {top} by {name} samples\n")?;
        let mut v: Vec<_> = map.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (frame, n) in v.into_iter().take(top) {
            writeln!(out, "{:6.2}%  {}", 100.0 * *n as f64 / total as f64, frame)?;
        }
    }
    Ok(())
}

/// From collapsed lines (`a;b;c 12`): the sample total, the samples whose leaf is each
/// frame, and the samples with each frame anywhere on the stack (counted once a stack).
fn tally(collapsed: &str) -> (u64, HashMap<&str, u64>, HashMap<&str, u64>) {
    let (mut total, mut self_n, mut incl) = (0u64, HashMap::new(), HashMap::new());
    for line in collapsed.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        total += n;
        let frames: Vec<&str> = stack.split(';').collect();
        if let Some(leaf) = frames.last() {
            *self_n.entry(*leaf).or_insert(0) += n;
        }
        let mut seen: Vec<&str> = Vec::with_capacity(frames.len());
        for f in frames {
            if !seen.contains(&f) {
                seen.push(f);
                *incl.entry(f).or_insert(0) += n;
            }
        }
    }
    (total, self_n, incl)
}

#[cfg(test)]
mod tests {
    use super::tally;

    #[test]
    fn tally_counts_leaves_and_each_frame_once_per_stack() {
        let (total, s, i) = tally("main;a;b 3\nmain;a;a 2\nmain;c 5\n");
        assert_eq!(total, 10);
        assert_eq!((s["b"], s["a"], s["c"]), (3, 2, 5));
        assert_eq!((i["main"], i["a"], i["b"]), (10, 5, 3));
    }
}
