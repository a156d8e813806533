"""The tables of ``tools.bench.peers``: absolute figures, ratios against msgr, and the targets (PASS/MISS).

A cell is the median over the repeats of that (peer, workload) run; "-" = not measured for that
peer, "FAIL" = every repeat failed (the reasons are listed under the tables).
"""
from __future__ import annotations

import statistics

from .plan import TARGETS, VARIANTS, WORKLOADS


def figure(wkey: str, r: dict) -> float:
    """The headline number of one run: msg/s, MB/s (1 MiB) or the median round trip in us."""
    if wkey.startswith("rt"):
        return r["median_us"]
    return r["mb_per_s"] if wkey == "ow1m" else r["msgs_per_s"]


def summarize(runs: dict) -> dict:
    """``runs[(variant, workload)]`` lists of figures (or ``{"error": ...}``) -> medians."""
    out = {}
    for (vkey, wkey), rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        s = {"runs": len(rs), "ok": len(ok), "errors": [r["error"] for r in rs if "error" in r],
             "lost": sum(r.get("lost", 0) for r in ok)}
        if ok:
            s["value"] = statistics.median(figure(wkey, r) for r in ok)
            if wkey.startswith("rt"):
                s["p99_us"] = statistics.median(r["p99_us"] for r in ok)
            else:
                s["client_cpu_us"] = statistics.median(r["client_cpu_us"] for r in ok)
                s["server_cpu_us"] = statistics.median(r["server_cpu_us"] for r in ok)
        out[(vkey, wkey)] = s
    return out


def _num(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _cell(wkey: str, s: dict | None) -> str:
    if s is None:
        return "-"
    if "value" not in s:
        return "FAIL"
    if wkey.startswith("rt"):
        return f"{s['value']:.1f} / {s['p99_us']:.0f}"
    return f"{s['value']:,.0f}" if wkey == "ow1m" else _num(s["value"])


def _ratio_cell(wkey: str, s: dict | None, ref: dict | None) -> str:
    if s is None:
        return "-"
    if "value" not in s or not ref or "value" not in ref:
        return "n/a"
    return f"{s['value'] / ref['value']:.2f}x"


def _grid(rows: list) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tables(summary: dict, variants: list, workloads: list) -> str:
    """Absolute figures, then each peer's figure over msgr's in the same column."""
    head = ["peer"] + [w.label for w in workloads]
    absolute, ratios = [head], [head]
    for v in variants:
        absolute.append([v.label] + [_cell(w.key, summary.get((v.key, w.key))) for w in workloads])
        ratios.append([v.label] + [_ratio_cell(w.key, summary.get((v.key, w.key)),
                                               summary.get(("msgr", w.key))) for w in workloads])
    return ("Absolute (median of the repeats; one-way: one connection unless noted;"
            " RT: 64 B, one in flight, median / p99 in us)\n" + _grid(absolute)
            + "\n\nEach peer / msgr (throughput: >1 = peer faster; RT: >1 = peer slower)\n"
            + _grid(ratios))


def targets(summary: dict) -> tuple:
    """The issue-4 targets: (text, list of dicts with ratio and verdict)."""
    rows, out = [("target", "msgr variant", "msgr", "peer", "msgr/peer", "verdict")], []
    labels = {v.key: v.label for v in VARIANTS}
    for t in TARGETS:
        m, p = summary.get((t.msgr, t.workload)), summary.get((t.peer, t.workload))
        if not m or not p or "value" not in m or "value" not in p:
            rows.append((t.label, labels[t.msgr], "-", "-", "-",
                         f"SKIP ({labels[t.peer] if not p else labels[t.msgr]} not measured)"))
            out.append({"target": t.label, "msgr": t.msgr, "verdict": "SKIP"})
            continue
        ratio = m["value"] / p["value"]
        ok = ratio <= t.bound if t.lower_is_better else ratio >= t.bound
        verdict = "PASS" if ok else "MISS"
        unit = " us" if t.lower_is_better else ""
        rows.append((t.label, labels[t.msgr], f"{_cell(t.workload, m).split(' /')[0]}{unit}",
                     f"{_cell(t.workload, p).split(' /')[0]}{unit}", f"{ratio:.2f}x",
                     f"{verdict} (need {'<=' if t.lower_is_better else '>='} {t.bound:.1f}x)"))
        out.append({"target": t.label, "msgr": t.msgr, "peer": t.peer, "ratio": ratio,
                    "bound": t.bound, "verdict": verdict})
    return "Targets\n" + _grid(rows), out


def notes(summary: dict) -> list:
    """Failures and lost messages, one line each."""
    labels = {v.key: v.label for v in VARIANTS}
    wl = {w.key: w.label for w in WORKLOADS}
    lines = []
    for (vkey, wkey), s in sorted(summary.items()):
        if s["lost"]:
            lines.append(f"LOST: {labels[vkey]}, {wl[wkey]}: {s['lost']} messages sent but not received")
        for e in s["errors"]:
            lines.append(f"FAILED: {labels[vkey]}, {wl[wkey]}: {e.strip().splitlines()[0]}")
    return lines
