"""Writes RESULTS.md and one SVG bar chart per workload from the suite's RESULT lines.

usage: report.py --raw RAW_TXT --machine MACHINE_MD --plan PLAN --out DIR

PLAN is run.sh's table (bench procs runs timeout per line); it fixes the row order.
Each table cell is the median over the runs with the min-max spread; the second table
gives gmp's standing against each peer. The charts are plain SVG written by hand
(no plotting dependency): one bar per peer at its median, a whisker from min to max,
the value printed beside it, and a log axis where the values span more than 30x.
Standard library only.
"""
import argparse
import math
import statistics
from collections import defaultdict
from html import escape
from pathlib import Path

PEER_ORDER = ["gmp", "go", "tokio", "may", "threads"]
HIGHER_IS_BETTER = {"rt/s", "req/s"}
# Figures that depend on the size of the run (a total, or a lateness that grows with
# the number of sleepers): a peer run at a smaller N cannot be compared on them at all.
# Per-item figures (ns/task, B/task) of such a peer are shown, marked.
SIZE_BOUND = {"skynet", "timers-wall", "timers-late", "park1m-time"}
WHAT = {
    "spawn": "start 1,000,000 tasks, each an atomic add, and wait for all",
    "skynet": "skynet: 1,111,111 tasks summing 1,000,000 leaves through channels",
    "pingpong": "1,000,000 round trips over two unbuffered channels",
    "yield": "two tasks each yield 5,000,000 times",
    "mpmc": "4 producers, 4 consumers, 10,000,000 messages, channel capacity 1024",
    "mpmc0": "4 producers, 4 consumers, 10,000,000 messages, unbuffered channel",
    "timers-wall": "100,000 tasks each sleep 1 ms ten times: wall time",
    "timers-late": "100,000 tasks each sleep 1 ms ten times: mean lateness of a sleep",
    "idlemem": "RSS growth per blocked task, 100,000 tasks",
    "park1m-time": "1,000,000 tasks each block on their own channel: time until all started",
    "park1m-mem": "1,000,000 tasks each block on their own channel: RSS growth per task",
    "starve": "worst lateness of a 10 ms sleep while a tight loop hogs the only proc",
    "mutex": "1,000 tasks each lock one mutex 1,000 times around an increment",
    "semaphore": "1,000 tasks share 4 permits, each acquires and releases 1,000 times",
    "waitgroup": "10,000 rounds: start 100 tasks that each call done once, then wait",
    "echo": "TCP echo, 100 connections x 10,000 round trips of 64 bytes",
    "http": "HTTP/1.1 keep-alive hello, wrk -t2 -c100 -d5s",
    "conns-time": "10,000 idle keep-alive connections, each served by its own task: time to open and serve them all",
    "conns-mem": "10,000 idle keep-alive connections, each served by its own task: server RSS growth per connection",
}
COLOURS = {"gmp": "#d9480f", "go": "#1c7ed6", "tokio": "#7048e8", "may": "#2b8a3e",
           "threads": "#868e96"}


def parse(raw):
    """(row bench, procs, peer) -> values, unit per (bench, procs), notes per key."""
    values = defaultdict(list)
    units, notes = {}, defaultdict(list)
    for line in Path(raw).read_text().splitlines():
        if not line.startswith("RESULT "):
            continue
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        key = (f["bench"], int(f["procs"]), f["peer"])
        values[key].append(f["value"])
        if f["unit"] != "-":
            units[key[:2]] = f["unit"]
        if "note" in f and f["note"] not in notes[key]:
            notes[key].append(f["note"])
    return values, units, notes


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


class Row:
    """One line of the table: a bench (or a sub-result such as timers-wall) at a procs."""

    def __init__(self, name, bench, procs, unit):
        self.name, self.bench, self.procs, self.unit = name, bench, procs, unit
        self.cells = {}  # peer -> dict(nums, fails, na, notes)

    @property
    def label(self):
        return self.name if self.name not in ("pingpong",) else f"{self.name} ({self.procs}p)"

    @property
    def file(self):
        return self.name if self.name != "pingpong" else f"pingpong-{self.procs}p"

    @property
    def higher_better(self):
        return self.unit in HIGHER_IS_BETTER

    def median(self, peer):
        c = self.cells.get(peer)
        return statistics.median(c["nums"]) if c and c["nums"] else None

    def resized(self, peer):
        """Whether the peer ran this row at another size than the full one (its note says N=)."""
        c = self.cells.get(peer)
        return bool(c) and any(("N=" in n or "leaves=" in n) for n in c["notes"])


def build_rows(values, units, notes, plan):
    peers_present = {p for (_, _, p) in values}
    peers = [p for p in PEER_ORDER if p in peers_present] + sorted(peers_present - set(PEER_ORDER))
    rows = []
    for line in plan.strip().splitlines():
        bench, procs = line.split()[0], int(line.split()[1])
        subs = sorted({b for (b, pr, _) in values if pr == procs and b.startswith(bench + "-")},
                      reverse=True)  # timers-wall before timers-late
        for name in subs or [bench]:
            row = Row(name, bench, procs, units.get((name, procs), ""))
            for peer in peers:
                vals = values.get((name, procs, peer), [])
                if name != bench:  # a run that failed as a whole is a FAIL of each sub-result
                    vals = vals + values.get((bench, procs, peer), [])
                if not vals:
                    continue
                ns = notes.get((name, procs, peer), []) + (
                    notes.get((bench, procs, peer), []) if name != bench else [])
                row.cells[peer] = {
                    "nums": [float(v) for v in vals if v not in ("NA", "FAIL")],
                    "fails": sum(v == "FAIL" for v in vals),
                    "na": "NA" in vals,
                    "notes": ns,
                    "runs": len(vals),
                }
            rows.append(row)
    return rows, peers


def standing(row, peer):
    """gmp against `peer` on this row: ('2.30x better', resized?) or None."""
    g, p = row.median("gmp"), row.median(peer)
    if g is None or p is None or g <= 0 or p <= 0:
        return None
    if row.resized(peer) and row.name in SIZE_BOUND:
        return "not comparable (other N)"
    factor = p / g if not row.higher_better else g / p
    if abs(factor - 1) < 0.005:
        text = "equal"
    elif factor >= 1:
        text = f"{factor:.2f}x better"
    else:
        text = f"{1 / factor:.2f}x worse"
    return text + (" †" if row.resized(peer) else "")


def markdown(rows, peers, machine, chart_dir_note):
    footnotes = []

    def mark(text):
        if text not in footnotes:
            footnotes.append(text)
        return f"[{footnotes.index(text) + 1}]"

    out = ["# gmp and its peers", "",
           "Generated by `benches/peers/run.sh` (see `benches/peers/README.md`); every RESULT "
           "line is in `raw.txt`.", "", machine.rstrip(), "",
           "Each cell: median (min–max) over the runs. Lower is better, except for rt/s and "
           "req/s. A note marks every deviation from the identical work. Compare the load "
           "averages with the number of CPUs: above it, the runs shared the CPUs with other "
           "work and their times are inflated (idlemem, a memory figure, is not).", ""]
    out.append("| bench | procs | unit | runs | " + " | ".join(peers) + " |")
    out.append("|---|---|---|---|" + "---|" * len(peers))
    for row in rows:
        cells, runs = [], 0
        for peer in peers:
            c = row.cells.get(peer)
            if not c:
                cells.append("–")
                continue
            runs = max(runs, c["runs"])
            if c["nums"]:
                cell = f"{fmt(statistics.median(c['nums']))} ({fmt(min(c['nums']))}–{fmt(max(c['nums']))})"
                if c["fails"]:
                    cell += f", {c['fails']} FAIL"
            else:
                cell = "n/a" if c["na"] else "FAIL"
            for n in c["notes"]:
                cell += " " + mark(n)
            cells.append(f"**{cell}**" if peer == "gmp" and c["nums"] else cell)
        out.append(f"| {row.label} | {row.procs} | {row.unit} | {runs} | " + " | ".join(cells) + " |")

    others = [p for p in peers if p != "gmp"]
    if "gmp" in peers and others:
        out += ["", "## gmp against each peer", "",
                "The ratio of the medians, said from gmp's side: `2.00x better` means gmp took half "
                "the time (or memory, or lateness) or served twice the rate. † marks a peer that "
                "ran a smaller N (see its note): its per-item figure is shown, but it did less "
                "work. On a 2-core machine, treat differences under ~15% as noise.", ""]
        out.append("| bench | procs | " + " | ".join(f"vs {p}" for p in others) + " |")
        out.append("|---|---|" + "---|" * len(others))
        for row in rows:
            cells = [standing(row, p) or "–" for p in others]
            out.append(f"| {row.label} | {row.procs} | " + " | ".join(cells) + " |")
    if footnotes:
        out += ["", "Notes:", ""] + [f"{i + 1}. `{t}`" for i, t in enumerate(footnotes)]
    out += ["", "## Charts", "", chart_dir_note, ""]
    for row in rows:
        if any(c["nums"] for c in row.cells.values()):
            out.append(f"![{row.label}]({row.file}.svg)")
    return "\n".join(out) + "\n"


def nice_step(span):
    raw = span / 5
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def svg(row, peers):
    """One horizontal bar per peer: median bar, min–max whisker, labelled value."""
    shown = [p for p in peers if p in row.cells]
    nums = [v for p in shown for v in row.cells[p]["nums"]]
    W, left, right, top, bar, gap = 760, 90, 250, 62, 26, 10
    plot_w = W - left - right
    H = top + len(shown) * (bar + gap) + 56
    vmax = max(nums)
    vmin = min(v for v in nums if v > 0) if any(v > 0 for v in nums) else 1
    log = vmax / vmin > 30
    if log:
        lo = 10 ** math.floor(math.log10(vmin))
        hi = 10 ** math.ceil(math.log10(vmax))
        if hi == lo:
            hi = lo * 10

        def x(v):
            return left + plot_w * (math.log10(max(v, lo)) - math.log10(lo)) / (
                math.log10(hi) - math.log10(lo))

        ticks = [lo * 10 ** k for k in range(round(math.log10(hi / lo)) + 1)]
    else:
        step = nice_step(vmax)
        hi = step * math.ceil(vmax / step)

        def x(v):
            return left + plot_w * v / hi

        ticks = [step * k for k in range(int(round(hi / step)) + 1)]
    better = "higher is better" if row.higher_better else "lower is better"
    title = f"{row.label} — {row.unit}, {better}"
    sub = WHAT.get(row.name, "") + (f"; procs={row.procs}" if row.procs else "")
    scale = "log scale" if log else "linear scale"
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="12" y="22" font-size="16" font-weight="bold">{escape(title)}</text>',
         f'<text x="12" y="42" fill="#495057">{escape(sub)}</text>']
    axis_y = top + len(shown) * (bar + gap)
    for t in ticks:
        tx = x(t)
        s.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e9ecef"/>')
        s.append(f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#868e96" '
                 f'font-size="11">{escape(fmt(t))}</text>')
    marked = []
    for i, p in enumerate(shown):
        c = row.cells[p]
        y = top + i * (bar + gap)
        name = p + ("*" if c["notes"] else "")
        if c["notes"]:
            marked.append(f"{p}: {'; '.join(c['notes'])}")
        weight = "bold" if p == "gmp" else "normal"
        s.append(f'<text x="{left - 8}" y="{y + bar / 2 + 5}" text-anchor="end" '
                 f'font-weight="{weight}">{escape(name)}</text>')
        if not c["nums"]:
            label = "n/a" if c["na"] else "FAIL"
            s.append(f'<text x="{left + 4}" y="{y + bar / 2 + 5}" fill="#868e96">{label}</text>')
            continue
        med, mn, mx = statistics.median(c["nums"]), min(c["nums"]), max(c["nums"])
        colour = COLOURS.get(p, "#495057")
        s.append(f'<rect x="{left}" y="{y}" width="{max(x(med) - left, 2):.1f}" height="{bar}" '
                 f'fill="{colour}" fill-opacity="0.85"/>')
        cy = y + bar / 2
        s.append(f'<line x1="{x(mn):.1f}" y1="{cy}" x2="{x(mx):.1f}" y2="{cy}" stroke="black"/>')
        for v in (mn, mx):
            s.append(f'<line x1="{x(v):.1f}" y1="{cy - 5}" x2="{x(v):.1f}" y2="{cy + 5}" stroke="black"/>')
        label = fmt(med)
        g = row.median("gmp")
        if p != "gmp" and g:
            st = standing(row, p)
            if st:
                label += f"  (gmp: {st})"
        s.append(f'<text x="{max(x(mx), x(med)) + 6:.1f}" y="{cy + 5}">{escape(label)}</text>')
    foot = f"bar: median of the runs; whisker: min–max; {scale}"
    s.append(f'<text x="12" y="{axis_y + 36}" fill="#495057" font-size="11">{escape(foot)}</text>')
    if marked:
        s.append(f'<text x="12" y="{axis_y + 50}" fill="#495057" font-size="11">'
                 f'{escape("* " + " | ".join(marked))}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    values, units, notes = parse(a.raw)
    rows, peers = build_rows(values, units, notes, a.plan)
    machine = Path(a.machine).read_text() if Path(a.machine).exists() else "- machine: unknown"
    for old in out.glob("*.svg"):
        old.unlink()
    for row in rows:
        if any(c["nums"] for c in row.cells.values()):
            (out / f"{row.file}.svg").write_text(svg(row, peers))
    note = "One chart per workload (bar: median; whisker: min–max; gmp in orange)."
    (out / "RESULTS.md").write_text(markdown(rows, peers, machine, note))


if __name__ == "__main__":
    main()
