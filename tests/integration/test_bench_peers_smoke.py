"""python -m tools.bench.peers end to end with tiny counts: it runs, exits 0 and prints its tables.

The tool runs in a subprocess from the repository root (so the in-tree ``msgr`` is measured),
bounded at 20 s; its peer processes die with it (PR_SET_PDEATHSIG). The optional peers (pyzmq,
uvloop) get their own run, skipped when they are not installed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tools.bench.peers"
TINY = ["--quick", "--scale", "0.05", "--limit", "1"]


def _bench(tmp_path: Path, peers: str) -> tuple:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", MODULE, *TINY, "--peers", peers, "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _row(stdout: str, label: str) -> str:
    rows = [line for line in stdout.splitlines() if line.startswith(label)]
    assert rows, f"no row {label!r} in:\n{stdout}"
    return rows[0]


def test_msgr_and_blocking_print_the_table(tmp_path):
    stdout, data = _bench(tmp_path, "msgr,blocking")
    assert "Absolute" in stdout and "Each peer / msgr" in stdout and "Targets" in stdout and "msgr backend:" in stdout
    for label in ("msgr (io 1, inline dispatch)", "msgr (io 1, 1 dispatch thread)",
                  "blocking, batched sendmsg", "blocking, sendall per msg"):
        assert "FAIL" not in _row(stdout, label)
    assert "1.00x" in _row(stdout.split("Each peer / msgr")[1], "msgr (io 1, inline dispatch)")
    assert "MiB >= 0.8x blocking batched" in stdout
    assert any(v in _row(stdout, "one-way 1 MiB >= 0.8x") for v in ("PASS", "MISS"))
    cells = {(s["variant"], s["workload"]): s for s in data["summary"]}
    for w in ("ow64", "ow4k", "ow1m", "ow16", "rt"):
        assert cells[("msgr", w)]["ok"] == 1 and cells[("msgr", w)]["lost"] == 0, cells[("msgr", w)]
    assert cells[("msgr", "rt")]["value"] > 0


def test_optional_peers_when_installed(tmp_path):
    pytest.importorskip("zmq")
    pytest.importorskip("uvloop")
    stdout, data = _bench(tmp_path, "pyzmq,uvloop")
    for label in ("pyzmq PUSH/PULL", "uvloop streams", "uvloop BufferedProtocol"):
        assert "FAIL" not in _row(stdout, label)
    assert "SKIP" in _row(stdout, "RT 64 B <= 1.5x uvloop")       # msgr was not run
    assert not data["skipped"]


def test_bench_rx_runs_and_prints_its_ratio():
    """python -m tools.bench.rx (no sockets): one round; both lines, a positive ratio."""
    proc = subprocess.run([sys.executable, "-m", "tools.bench.rx", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decode, large = proc.stdout.splitlines()
    assert decode.startswith("64 B messages: decode") and "ns per message" in decode
    assert float(large.rsplit(": ", 1)[1].split("x")[0]) > 0
