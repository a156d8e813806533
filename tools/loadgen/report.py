"""Reporting for ``msgr-loadgen``: the latency histogram, summary, table, JSON, plots.

Theory of operation. Each client job records op latencies (ns) in its own
:class:`LatencyHistogram`, log-linear like HdrHistogram's: one bucket per value below
128 ns, then 64 equal buckets per power of two, so a bucket's midpoint is within 0.8%
of any value in it (up to 100 s; the exact min and max are kept aside). Jobs send
sparse bucket counts to the parent, which merges them and takes every percentile from
the merged histogram: exact up to the bucket error, never averaged across jobs.
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import time

from msgr import MsgrError

__all__ = ["LatencyHistogram", "bucket_index", "bucket_bounds", "summarize", "format_table",
           "format_progress", "write_json", "write_plot", "check_plot_available",
           "PERCENTILES", "sparse_delta", "ProgressLine", "finish", "serve_metrics"]

SUB_BITS = 6
SUB_COUNT = 1 << SUB_BITS
MAX_TRACKED_NS = 100 * 10**9
_LINEAR = 2 * SUB_COUNT
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def bucket_index(ns: int) -> int:
    """Returns the bucket of a value in nanoseconds (clamped to 0 .. 100 s)."""
    if ns < _LINEAR:                # below 2 * SUB_COUNT: one bucket per value
        return ns if ns > 0 else 0
    if ns > MAX_TRACKED_NS:
        ns = MAX_TRACKED_NS
    shift = ns.bit_length() - (SUB_BITS + 1)
    return (shift << SUB_BITS) + (ns >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Returns the inclusive ``(low, high)`` nanosecond range of a bucket."""
    shift = max(0, (index >> SUB_BITS) - 1)
    m = index - (shift << SUB_BITS)
    return m << shift, ((m + 1) << shift) - 1


N_BUCKETS = bucket_index(MAX_TRACKED_NS) + 1


class LatencyHistogram:
    """A log-linear latency histogram in nanoseconds; see the module docstring.

    ``record`` is safe to call from one thread while another takes
    ``snapshot()`` (each list item update is atomic under the GIL).
    """

    __slots__ = ("counts", "total", "min", "max", "sum")

    def __init__(self) -> None:
        self.counts, self.total, self.min, self.max, self.sum = [0] * N_BUCKETS, 0, 0, 0, 0

    def record(self, ns: int) -> None:
        """Adds one value (nanoseconds)."""
        self.counts[bucket_index(ns)] += 1
        if self.total == 0 or ns < self.min:
            self.min = ns
        if ns > self.max:
            self.max = ns
        self.total += 1
        self.sum += ns

    def merge(self, other: "LatencyHistogram") -> "LatencyHistogram":
        """Adds ``other``'s counts into this histogram; returns self."""
        if other.total == 0:
            return self
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum
        return self

    def percentile(self, p: float) -> float:
        """Returns the value (ns) at percentile ``p`` (0..100), nearest-rank; 0.0 when empty.

        The bucket's midpoint, clamped to the exact min and max, so it is within
        0.8% of the exact nearest-rank value, and p100 is the exact maximum.
        """
        if self.total == 0:
            return 0.0
        if p >= 100.0:
            return float(self.max)
        rank = max(1, math.ceil(p / 100.0 * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                low, high = bucket_bounds(i)
                return float(min(max((low + high) / 2.0, self.min), self.max))
        return float(self.max)

    def snapshot(self) -> list:
        """A copy of the bucket counts (for :func:`sparse_delta`)."""
        return self.counts[:]

    def to_dict(self) -> dict:
        """A JSON-friendly form with sparse counts; :meth:`from_dict` reverses it."""
        return {"unit": "ns", "sub_bits": SUB_BITS, "total": self.total, "min": self.min,
                "max": self.max, "sum": self.sum,
                "counts": [[i, c] for i, c in enumerate(self.counts) if c]}

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyHistogram":
        h = cls.from_sparse(d["counts"])
        h.min, h.max, h.sum = d["min"], d["max"], d["sum"]
        return h

    @classmethod
    def from_sparse(cls, pairs) -> "LatencyHistogram":
        """Builds a histogram from ``[[index, count], ...]``; min and max from the bucket bounds."""
        h = cls()
        for i, c in pairs:
            h.counts[i] += c
            h.total += c
        nonzero = [i for i, _ in pairs]
        if nonzero:
            h.min, h.max = bucket_bounds(min(nonzero))[0], bucket_bounds(max(nonzero))[1]
        return h

    def latency_us(self) -> dict:
        """Percentiles, min, mean and max in microseconds."""
        out = {f"p{p:g}": self.percentile(p) / 1000.0 for p in PERCENTILES}
        out.update(min=self.min / 1e3, mean=self.sum / max(1, self.total) / 1e3, max=self.max / 1e3)
        return out


def sparse_delta(after: list, before: list) -> list:
    """``[[index, count], ...]`` recorded between two :meth:`LatencyHistogram.snapshot` lists."""
    return [[i, a - b] for i, (a, b) in enumerate(zip(after, before)) if a != b]


# ---------------------------------------------------------------- summary
_SUMMED = ("done", "sent", "lost", "unexpected", "cpu_s")
_PERF_KEYS = ("connection_faults", "reconnects", "session_resets", "messages_dropped")


def summarize(config: dict, jobs: list, server: dict | None, timeline: list) -> dict:
    """Merges the per-job results into one summary (every figure the JSON carries).

    Args:
        config: the run's options (``msg_size`` gives MB/s).
        jobs: per job ``job, done, sent, lost, unexpected, start, end`` (monotonic s), ``hist``
            (``LatencyHistogram.to_dict()``), ``perf``, ``error``; a failed one may have only
            ``job`` and ``error``.
        server: the server's ``perf_dump()`` (None when the server is not ours).
        timeline: ``[[seconds_since_start, ops_per_s], ...]`` (all jobs).
    """
    size = config.get("msg_size", 0)
    out, hist = _figures(jobs, size)
    rates = [[round(t, 3), r, r * size / 1e6] for t, r in timeline]
    ops = out["done"]
    out.update(client_cpu_us_per_op=_rate(out["cpu_s"] * 1e6, ops),
               server_cpu_us_per_op=_rate((server or {}).get("cpu_s", 0.0) * 1e6, ops))
    out.update(config=config, histogram=hist.to_dict(), server=server, timeline=rates,
               errors=[f"job {j['job']}: {j['error']}" for j in jobs if j.get("error")],
               jobs=[dict(_figures([j], size)[0], job=j["job"], error=j.get("error")) for j in jobs])
    return out


def _figures(jobs: list, size: int) -> tuple[dict, LatencyHistogram]:
    """Counts, client counters, rates and latency of some jobs, merged."""
    hist = LatencyHistogram()
    for j in jobs:
        hist.merge(LatencyHistogram.from_dict(j["hist"]) if "hist" in j else LatencyHistogram())
    starts, ends = [j["start"] for j in jobs if j.get("start")], [j["end"] for j in jobs if j.get("end")]
    elapsed = max(ends) - min(starts) if starts and ends else 0.0
    out = {k: sum(j.get(k, 0) for j in jobs) for k in _SUMMED}
    out.update({k: sum(j.get("perf", {}).get(k, 0) for j in jobs) for k in _PERF_KEYS})
    out.update(elapsed_s=elapsed, ops=out["done"], ops_per_sec=_rate(out["done"], elapsed),
               mb_per_sec=_rate(out["done"] * size, elapsed) / 1e6, latency_us=hist.latency_us())
    return out, hist


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


# ---------------------------------------------------------------- text output
_COLS = ("job", "ops", "ops/s", "MB/s", "p50", "p90", "p99", "p99.9", "max", "lost",
         "faults", "reconn")


def _row_cells(name: str, r: dict) -> list:
    lat = r["latency_us"]
    return [name, f"{r['ops']:,}", f"{r['ops_per_sec']:,.0f}", f"{r['mb_per_sec']:,.1f}",
            *(f"{lat[k]:,.1f}" for k in ("p50", "p90", "p99", "p99.9", "max")),
            f"{r['lost']:,}", str(r["connection_faults"] + r["session_resets"]), str(r["reconnects"])]


def backend() -> str:
    """``native`` (the compiled pieces) or what runs as the pure-Python twins."""
    from msgr import _native
    if _native.NATIVE:
        return "native"
    return f"kernels {_native.BACKEND}, message core {_native.CORE}"


def format_table(summary: dict) -> str:
    """The end-of-run table: one row per job, and a total row when there are several."""
    c = summary["config"]
    flight = c.get("window") if c.get("mode") == "oneway" else c.get("concurrency")
    head = (f"msgr-loadgen {c.get('mode')}: {len(summary['jobs'])} job(s) x {flight}"
            f" in flight, {c.get('msg_size')} B, {c.get('policy')}, {summary['elapsed_s']:.2f} s;"
            f" latency in us; msgr {backend()}")
    rows = [_row_cells(str(j["job"]), j) for j in summary["jobs"]]
    if len(rows) != 1:
        rows.append(_row_cells("total", summary))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_COLS)]
    lines = [head, "  ".join(h.rjust(w) for h, w in zip(_COLS, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in rows]
    srv = summary.get("server")
    if srv:
        lines.append(f"server: received {srv.get('messages_received', 0):,} messages, faults "
                     f"{srv.get('connection_faults', 0)}, resets {srv.get('session_resets', 0)}")
    if summary.get("ops"):
        cpu = f"CPU per op (process time / ops): clients {summary['client_cpu_us_per_op']:.1f} us"
        if srv and "cpu_s" in srv:
            cpu += f", server {summary['server_cpu_us_per_op']:.1f} us"
        lines.append(cpu + " (steadier than ops/s on a busy machine)")
    lines += [f"error: {e}" for e in summary.get("errors", [])]
    return "\n".join(lines)


def format_progress(elapsed: float, ops_s: float, mb_s: float, p50_us: float, p99_us: float,
                    faults: int) -> str:
    """One live progress line (no newline)."""
    return (f"[{elapsed:6.1f}s] {ops_s:>10,.0f} ops/s {mb_s:>9,.1f} MB/s  "
            f"p50 {p50_us:>8,.1f} us  p99 {p99_us:>8,.1f} us  faults {faults}")


def write_json(path: str, summary: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(summary, indent=1, sort_keys=True) + "\n")


def serve_metrics(port: int | None, addr: str) -> None:
    """Starts ``msgr.metrics.serve(port, addr)`` when ``port`` is set and the module exists.

    If the exporter cannot start (the port is taken, say), says why on stderr and the run
    goes on without it.
    """
    if port is None:
        return
    try:
        from msgr.metrics import serve
    except ImportError:
        return print("msgr-loadgen: metrics are unavailable (no msgr.metrics.serve)", file=sys.stderr)
    try:
        bound = serve(port, addr)
    except (MsgrError, ValueError, TypeError) as e:
        return print(f"msgr-loadgen: running without metrics: {e}", file=sys.stderr, flush=True)
    print(f"metrics on http://{addr}:{bound}/metrics", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- plots
def check_plot_available() -> str | None:
    """None when matplotlib imports, else the message to show the user."""
    if importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib, the optional extra 'plot': pip install 'msgr[plot]'"
    return None


def write_plot(path: str, summary: dict) -> None:
    """Writes throughput over time and the merged latency histogram to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    tl = summary["timeline"]
    top.plot([t for t, _, _ in tl], [r for _, r, _ in tl], marker=".")
    top.set(xlabel="time (s)", ylabel="ops/s", title="throughput")
    top.set_ylim(bottom=0)
    top.grid(True, alpha=0.3)
    counts = summary["histogram"]["counts"]       # buckets widen with the value: plot density
    mids = [sum(bucket_bounds(i)) / 2000.0 for i, _ in counts]
    widths = [(bucket_bounds(i)[1] - bucket_bounds(i)[0] + 1) / 1000.0 for i, _ in counts]
    bottom.bar(mids, [c / w for (_, c), w in zip(counts, widths)], width=widths)
    bottom.set_xscale("log")
    bottom.set(xlabel="latency (us)", ylabel="ops per us", title="latency histogram (all jobs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class ProgressLine:
    """The live progress line on stderr and the throughput timeline.

    On a TTY the line is rewritten with ``\\r`` every ``tick`` s; otherwise a
    line is printed every 2 s; nothing with ``quiet``.
    """

    def __init__(self, msg_size: int, quiet: bool, tick: float = 0.5) -> None:
        self.size, self.quiet, self.tick_s, self.tty = msg_size, quiet, tick, sys.stderr.isatty()
        self.done, self.rates, self.faults, self.t0 = {}, {}, {}, None
        self.interval, self.timeline = LatencyHistogram(), []
        self.last_tick = self.last_line = self.p50 = self.p99 = 0.0

    def update(self, job: int, d: dict) -> None:
        """Takes a job's report: ``start, t`` (monotonic s), ``done, faults, hist`` (sparse delta).

        The job's rate is measured on its own clock (from report to report), so the sum of
        the jobs' rates does not depend on when the reports reach the parent.
        """
        self.t0 = d["start"] if self.t0 is None else min(self.t0, d["start"])
        t_prev, n_prev = self.done.get(job, (d["start"], 0))
        self.rates[job] = _rate(d["done"] - n_prev, d["t"] - t_prev)
        self.done[job], self.faults[job] = (d["t"], d["done"]), d["faults"]
        self.interval.merge(LatencyHistogram.from_sparse(d["hist"]))

    def tick(self) -> None:
        """Appends to the timeline and shows the line, at most every ``tick`` s."""
        now = time.monotonic()
        if self.t0 is None or now - self.last_tick < self.tick_s:
            return
        self.last_tick, t, rate = now, now - self.t0, sum(self.rates.values())
        self.timeline.append([t, rate])
        if self.interval.total:
            self.p50, self.p99 = self.interval.percentile(50) / 1e3, self.interval.percentile(99) / 1e3
            self.interval = LatencyHistogram()
        line = format_progress(t, rate, rate * self.size / 1e6, self.p50, self.p99,
                               sum(self.faults.values()))
        if self.quiet or not (self.tty or now - self.last_line >= 2.0):
            return
        sys.stderr.write("\r" + line + "\033[K" if self.tty else line + "\n")
        sys.stderr.flush()
        self.last_line = now

    def close(self) -> None:
        if self.tty and not self.quiet and self.last_line:
            sys.stderr.write("\n")


def finish(summary: dict, *, lossless: bool, injected: bool, json_path=None, plot_path=None) -> int:
    """Judges the run, prints the table, writes JSON/plot; returns the exit status.

    Lost or unexpected replies are an error unless the run was lossy with injected faults.
    """
    problems = []
    if summary["lost"] + summary["unexpected"] and (lossless or not injected):
        problems.append(f"{summary['lost']} lost and {summary['unexpected']} unexpected replies")
    if summary["server"] and not summary["server"].get("stopped_cleanly", True):
        problems.append("the server messenger did not stop within 10 s")
    summary["errors"] += problems
    summary["ok"] = not summary["errors"]
    print(format_table(summary), flush=True)
    if json_path:
        write_json(json_path, summary)
    if plot_path:
        write_plot(plot_path, summary)
    return 0 if summary["ok"] else 1
