"""msgr-loadgen: the latency histogram (unit tests) and short real runs on 127.0.0.1.

The runs start ``python -m tools.loadgen`` from the repository root, so the in-tree ``msgr``
is the one under test.
"""
from __future__ import annotations

import json
import math
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools import loadgen
from tools.loadgen import report

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tools.loadgen"

LatencyHistogram = report.LatencyHistogram


def exact_percentile(values: list, p: float) -> int:
    """Nearest-rank percentile, the definition the histogram approximates."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100.0 * len(ordered))) - 1]


def filled(values) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


# ---------------------------------------------------------------- histogram
def test_buckets_cover_values_within_relative_error():
    rng = random.Random(1)
    values = list(range(0, 300)) + [rng.randrange(1, 100 * 10**9) for _ in range(5000)]
    for v in values:
        i = report.bucket_index(v)
        low, high = report.bucket_bounds(i)
        assert low <= v <= high, (v, i, low, high)
        assert (high - low + 1) <= max(1, low / 64), (v, low, high)
    assert report.bucket_index(10**15) == report.bucket_index(100 * 10**9)
    assert report.bucket_index(-5) == 0


def test_bucket_indexes_are_contiguous_and_monotonic():
    prev_high = -1
    for i in range(report.bucket_index(100 * 10**9) + 1):
        low, high = report.bucket_bounds(i)
        assert low == prev_high + 1 and high >= low
        assert report.bucket_index(low) == i and report.bucket_index(high) == i
        prev_high = high


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_match_exact_within_one_percent(seed):
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(11, 1.2)) for _ in range(20_000)]   # ~60 us median, long tail
    h = filled(values)
    for p in (1, 25, 50, 90, 99, 99.9):
        exact = exact_percentile(values, p)
        assert abs(h.percentile(p) - exact) <= 0.008 * exact + 0.5, (p, h.percentile(p), exact)
    assert h.percentile(100) == max(values)
    assert h.min == min(values) and h.max == max(values) and h.total == len(values)
    assert h.sum == sum(values)


def test_small_values_are_exact():
    h = filled([5, 1, 3, 2, 4])
    assert [h.percentile(p) for p in (20, 40, 60, 80, 100)] == [1, 2, 3, 4, 5]


def test_empty_histogram():
    h = LatencyHistogram()
    assert h.percentile(50) == 0.0 and h.total == 0
    assert h.latency_us()["p99"] == 0.0


def test_values_beyond_range_keep_exact_max():
    h = filled([1000, 500 * 10**9])
    assert h.percentile(100) == 500 * 10**9
    assert h.percentile(99) <= h.max


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(7)
    a = [rng.randrange(1_000, 5_000_000) for _ in range(3000)]
    b = [rng.randrange(50_000, 90_000_000) for _ in range(1000)]
    merged = filled(a).merge(filled(b))
    single = filled(a + b)
    assert merged.counts == single.counts
    assert (merged.total, merged.min, merged.max, merged.sum) == (single.total, single.min,
                                                                  single.max, single.sum)
    for p in (50, 90, 99, 99.9):
        assert merged.percentile(p) == single.percentile(p)
        exact = exact_percentile(a + b, p)
        assert abs(merged.percentile(p) - exact) <= 0.008 * exact


def test_merge_into_empty_and_of_empty():
    h = filled([10_000, 20_000])
    assert LatencyHistogram().merge(h).min == 10_000
    assert h.merge(LatencyHistogram()).total == 2


def test_dict_round_trip_is_json_safe():
    h = filled([1234, 5678, 5678, 10**9])
    back = LatencyHistogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.counts == h.counts
    assert (back.total, back.min, back.max, back.sum) == (h.total, h.min, h.max, h.sum)


def test_sparse_delta_carries_only_new_records():
    h = filled([1000, 2000])
    before = h.snapshot()
    for v in (2000, 3000, 3000):
        h.record(v)
    delta = LatencyHistogram.from_sparse(report.sparse_delta(h.snapshot(), before))
    assert delta.total == 3
    assert delta.percentile(100) >= 3000 and delta.percentile(1) <= 2000 * 1.01


def test_summarize_merges_jobs_and_rates():
    jobs = []
    for job, values in enumerate(([100_000] * 900 + [1_000_000] * 100, [200_000] * 1000)):
        jobs.append({"job": job, "done": len(values), "sent": len(values), "lost": 0,
                     "unexpected": 0, "start": 10.0 + job, "end": 12.0 + job,
                     "hist": filled(values).to_dict(), "perf": {"connection_faults": job},
                     "cpu_s": 0.01 * (job + 1), "error": None})
    s = report.summarize({"msg_size": 1000, "mode": "reqreply"}, jobs, {"cpu_s": 0.05},
                         [[0.5, 900.0]])
    assert s["client_cpu_us_per_op"] == pytest.approx(0.03e6 / 2000)
    assert s["server_cpu_us_per_op"] == pytest.approx(0.05e6 / 2000)
    assert s["ops"] == 2000 and s["elapsed_s"] == pytest.approx(3.0)
    assert s["ops_per_sec"] == pytest.approx(2000 / 3.0)
    assert s["mb_per_sec"] == pytest.approx(2000 * 1000 / 3.0 / 1e6)
    assert s["latency_us"]["p50"] == pytest.approx(200.0, rel=0.01)
    assert s["latency_us"]["p99"] == pytest.approx(1000.0, rel=0.01)
    assert s["latency_us"]["max"] == 1000.0
    assert s["connection_faults"] == 1 and s["jobs"][1]["connection_faults"] == 1
    assert s["jobs"][0]["ops_per_sec"] == pytest.approx(500.0)
    assert s["timeline"] == [[0.5, 900.0, 0.9]]
    table = report.format_table(s)
    assert "total" in table and "p99.9" in table and "2,000" in table
    assert "clients 15.0 us, server 25.0 us" in table


def test_summarize_tolerates_a_failed_job():
    s = report.summarize({"msg_size": 1}, [{"job": 0, "error": "exited, no result"}], None, [])
    assert s["ops"] == 0 and s["errors"] == ["job 0: exited, no result"]


def test_progress_line_format():
    line = report.format_progress(1.5, 12345.6, 50.5, 120.0, 480.25, 2)
    assert "12,346 ops/s" in line and "p99" in line and "faults 2" in line and "\n" not in line


def test_default_options():
    opts = loadgen.parse_args([])
    assert (opts.command, opts.jobs, opts.concurrency, opts.msg_size) == ("local", 1, 16, 4096)
    assert opts.duration == 5.0 and opts.ops > 0 and opts.mode == "reqreply"
    opts = loadgen.parse_args(["--ops", "100"])
    assert opts.ops == 100 and opts.duration > 0
    assert loadgen.parse_args(["server"]).duration is None
    with pytest.raises(SystemExit):
        loadgen.parse_args(["client"])                      # needs --addr
    assert loadgen.parse_args([]).busy_poll_us is None      # Config's own default (0: off)
    assert loadgen.workload._config(loadgen.parse_args(["--busy-poll-us", "200"])).ms_busy_poll_us == 200
    with pytest.raises(SystemExit):
        loadgen.parse_args(["--busy-poll-us", "-1"])


# ---------------------------------------------------------------- real runs
def run_loadgen(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", MODULE, *args], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True)


def check_result(path: Path, mode: str) -> dict:
    result = json.loads(path.read_text())
    assert result["ok"], result["errors"]
    assert result["config"]["mode"] == mode
    assert result["ops"] > 0 and result["ops_per_sec"] > 0
    assert result["lost"] == 0 and result["unexpected"] == 0
    assert result["client_cpu_us_per_op"] > 0
    lat = result["latency_us"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert sum(c for _, c in result["histogram"]["counts"]) == result["histogram"]["total"] > 0
    return result


@pytest.mark.parametrize("mode", ["reqreply", "oneway"])
def test_local_run(tmp_path, mode):
    out = tmp_path / "result.json"
    proc = run_loadgen("local", "--duration", "2", "--jobs", "1", "--mode", mode,
                       "--json", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "p99.9" in proc.stdout
    result = check_result(out, mode)
    assert result["server"]["messages_received"] >= result["ops"]
    if mode == "reqreply":
        assert result["sent"] == result["ops"]


def test_a_taken_metrics_port_is_reported_and_the_run_goes_on(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        out = tmp_path / "result.json"
        proc = run_loadgen("--duration", "1", "--metrics-port", str(taken.getsockname()[1]),
                           "--json", str(out), "--quiet")
    finally:
        taken.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running without metrics" in proc.stderr and "Address already in use" in proc.stderr
    check_result(out, "reqreply")


def test_server_and_client_apart(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", MODULE, "server", "--duration", "60"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on v2:127.0.0.1:"), line
        addr = line.split()[-1]
        assert "/" in addr                                   # the nonce is part of it
        out = tmp_path / "client.json"
        proc = run_loadgen("client", "--addr", addr, "--duration", "1", "--json", str(out),
                           "--quiet", "--msg-size", "100")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert check_result(out, "reqreply")["server"] is None
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        assert "stopped cleanly: True" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_no_session_is_reported_not_hung(tmp_path):
    # a port nobody listens on: the job must report and exit non-zero, within the stall timeout
    proc = run_loadgen("client", "--addr", "v2:127.0.0.1:9/1", "--duration", "1",
                       "--stall-timeout", "2", "--quiet")
    assert proc.returncode != 0
    assert "error" in proc.stdout
