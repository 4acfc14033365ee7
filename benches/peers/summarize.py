#!/usr/bin/env python3
"""Medians and min–max of benches/peers' JSON lines: a markdown table and an SVG chart.

    summarize.py RESULTS.jsonl [--table table.md] [--chart chart.svg] [--systems a,b,...]

Standard library only. A cell is the median over rounds, with the range of
the rounds beside it; a row a system does not have (null values) is "–".
The chart shows, per workload, each system's distance from the raw
baseline on a log axis: value / raw where lower is better, raw / value
where higher is better, so a taller bar is always further behind.
"""
import argparse
import json
import math
import statistics
from collections import defaultdict

SYSTEMS = ["raw", "raw-batched", "tokio", "nanny", "nanny-ct", "nanny-ct-spin", "tonic",
           "nanny-node", "nanny-lpm", "nanny-python", "lpm", "piscina"]
# Floors of nanny's architecture (src/skeleton.rs): in the table, not the chart.
FLOORS = ["skeleton", "skeleton-ct", "skeleton-direct"]
NAMES = {
    "raw": "raw socketpair",
    "raw-batched": "raw, batched",
    "tokio": "bare tokio",
    "nanny": "nanny",
    "nanny-ct": "nanny, current-thread",
    "nanny-ct-spin": "nanny, current-thread, spinning 300 µs",
    "tonic": "tonic over UDS",
    "lpm": "load-process-manager 1.3.3",
    "piscina": "piscina 5.3.2 (threads)",
    "nanny-node": "nanny, Node workers",
    "nanny-lpm": "nanny, LPM worker.js",
    "nanny-python": "nanny, Python workers",
    "skeleton": "skeleton: one task, oneshots",
    "skeleton-ct": "skeleton, current-thread",
    "skeleton-direct": "skeleton: callers write, readers resolve",
}
# (key, label, unit shown, lower is better); "pinned:" rows read the -pinned systems.
ROWS = [
    ("rtt_p50", "p50 round trip, 1 outstanding, 100 B", "µs", True),
    ("rtt_p99", "p99 round trip", "µs", True),
    ("pinned:rtt_p50", "p50, whole tree on one CPU (taskset -c 0)", "µs", True),
    ("pinned:rtt_p99", "p99, whole tree on one CPU", "µs", True),
    ("rps_100B", "req/s, 256 outstanding, 100 B", "req/s", False),
    ("share_100B", "busiest worker's share of those", "%", None),
    ("mibs_64KiB", "256 outstanding, 64 KiB, one way", "MiB/s", False),
    ("start4", "start 4 workers → all answering", "ms", True),
    ("kill", "SIGKILL → replacement answering", "ms", True),
    ("cpu_per_100k", "CPU seconds per 100 k requests (all processes)", "s", True),
    ("cpu_per_100k_workers", "of which in the workers", "s", True),
    ("rss", "peak RSS of the dispatching process", "MiB", True),
]
COLORS = ["#555555", "#999999", "#2b8cbe", "#e6550d", "#fdae6b", "#31a354",
          "#a63603", "#fd8d3c", "#8c6d31", "#756bb1", "#de2d26", "#636363"]
assert len(COLORS) >= len(SYSTEMS), "one colour per system"


def load(path):
    """(system, workload) -> list of values; null values are kept out."""
    cells = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["value"] is not None:
                cells[(r["system"], r["workload"])].append(float(r["value"]))
    return cells


def values(cells, system, key):
    if key.startswith("pinned:"):
        return cells.get((system + "-pinned", key[len("pinned:"):]), [])
    return cells.get((system, key), [])


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e4:
        return f"{v / 1e3:.0f} k"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"


def table(cells, rounds, systems=SYSTEMS):
    """The markdown table of `systems`; a row none of them has is left out."""
    head = "| workload (2 workers) | " + " | ".join(NAMES[s] for s in systems) + " |"
    lines = [head, "|---|" + "---:|" * len(systems)]
    for key, label, unit, _ in ROWS:
        row = []
        for s in systems:
            v = values(cells, s, key)
            if not v:
                row.append("–")
            elif len(v) == 1:
                row.append(fmt(v[0]))
            else:
                row.append(f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})")
        if any(c != "–" for c in row):
            lines.append(f"| {label} ({unit}) | " + " | ".join(row) + " |")
    note = f"\nMedian of {rounds} rounds (min–max of the rounds in brackets); – : not measured for that system.\n"
    return "\n".join(lines) + "\n" + note


def versus_lpm(path):
    """Issue 15's ratio: req/s (256 outstanding, 100 B) of nanny with Node
    workers over load-process-manager's own (target at least 3×), taken in
    each round (the systems of a round share the machine's state), then the
    median and range of those."""
    by_round = defaultdict(dict)
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                if r["workload"] == "rps_100B" and r["value"]:
                    by_round[r["round"]][r["system"]] = float(r["value"])
    out = []
    for s in ("nanny-node", "nanny-lpm"):
        each = [got[s] / got["lpm"] for got in by_round.values() if s in got and "lpm" in got]
        if not each:
            continue
        spread = f" ({min(each):.1f}–{max(each):.1f}×)" if len(each) > 1 else ""
        out.append(f"{NAMES[s]} / {NAMES['lpm']}, req/s at 256 outstanding, 100 B, per round: "
                   f"{statistics.median(each):.1f}×{spread} over {len(each)} rounds (issue 15's target: ≥ 3×)")
    return "".join(f"\n{line}\n" for line in out)


def ratios(cells):
    """[(label, [(system, ratio or None)])] for every row with a direction."""
    out = []
    for key, label, _, lower in ROWS:
        base = values(cells, "raw", key)
        if lower is None or not base:
            continue
        b = statistics.median(base)
        row = []
        for s in SYSTEMS:
            v = values(cells, s, key)
            m = statistics.median(v) if v else None
            row.append((s, None if not m else (m / b if lower else b / m)))
        out.append((label, row))
    return out


def chart(cells):
    groups = ratios(cells)
    all_r = [r for _, row in groups for _, r in row if r]
    lo = 10 ** math.floor(math.log10(min(all_r + [1.0])))
    hi = 10 ** math.ceil(math.log10(max(all_r + [10.0])))
    bar, gap, left, top, plot_h = 13, 22, 70, 40, 300
    group_w = bar * len(SYSTEMS) + gap
    width = left + group_w * len(groups) + 20
    height = top + plot_h + 120
    y = lambda r: top + plot_h * (1 - (math.log10(r) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="20" font-size="14">Each system against the raw socketpair (log axis; taller = further behind raw; 1 = raw)</text>']
    d = lo
    while d <= hi * 1.0001:
        s.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(d):.1f}" y2="{y(d):.1f}" stroke="{"#000" if abs(d - 1) < 1e-9 else "#ddd"}"/>')
        s.append(f'<text x="{left - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{d:g}×</text>')
        d *= 10
    for g, (label, row) in enumerate(groups):
        x0 = left + g * group_w + gap / 2
        for i, (system, r) in enumerate(row):
            if not r:
                continue
            x, y1, y0 = x0 + i * bar, y(r), y(1.0)
            ytop, h = min(y0, y1), max(abs(y1 - y0), 1)
            s.append(f'<rect x="{x:.1f}" y="{ytop:.1f}" width="{bar - 2}" height="{h:.1f}" fill="{COLORS[i]}">'
                     f'<title>{NAMES[system]}: {r:.2f}× raw</title></rect>')
        words, lines, cur = label.split(), [], ""
        for w in words:
            if len(cur) + len(w) > 18:
                lines.append(cur)
                cur = w
            else:
                cur = (cur + " " + w).strip()
        lines.append(cur)
        for k, t in enumerate(lines[:4]):
            s.append(f'<text x="{x0 + bar * len(SYSTEMS) / 2:.1f}" y="{top + plot_h + 16 + 12 * k}" text-anchor="middle">{t}</text>')
    lx = left
    for i, system in enumerate(SYSTEMS):
        s.append(f'<rect x="{lx}" y="{height - 28}" width="10" height="10" fill="{COLORS[i]}"/>')
        s.append(f'<text x="{lx + 14}" y="{height - 19}">{NAMES[system]}</text>')
        lx += 14 + 6.5 * len(NAMES[system]) + 14
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--table")
    p.add_argument("--chart")
    p.add_argument("--systems", help="comma-separated columns of the table (default: all, and the floors measured; the chart has all but the floors)")
    a = p.parse_args()
    cells = load(a.results)
    rounds = max((len(v) for v in cells.values()), default=0)
    measured = {system for system, _ in cells}
    systems = a.systems.split(",") if a.systems else SYSTEMS + [f for f in FLOORS if f in measured]
    unknown = [s for s in systems if s not in NAMES]
    if unknown:
        p.error(f"no system {', '.join(unknown)}; known: {', '.join(SYSTEMS + FLOORS)}")
    md = table(cells, rounds, systems) + versus_lpm(a.results)
    print(md)
    if a.table:
        with open(a.table, "w") as f:
            f.write(md)
    if a.chart:
        with open(a.chart, "w") as f:
            f.write(chart(cells))


if __name__ == "__main__":
    main()
