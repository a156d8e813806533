"""python -m tools.bench.instructions end to end with few round trips, under a real valgrind.

Skipped with the reason when valgrind is missing, except under ``CI=true``
(``.ci/run`` installs it). The figures are only checked for sanity: a count
per round trip that is positive and, for msgr, larger than asyncio's (msgr
frames, checksums and dispatches; asyncio only echoes bytes).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_counts_instructions_per_round_trip(tmp_path):
    if shutil.which("valgrind") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("valgrind missing under CI=true (.ci/run installs it)")
        pytest.skip("valgrind not installed")
    out = tmp_path / "instr.json"
    proc = subprocess.run([sys.executable, "-m", "tools.bench.instructions",
                           "--peers", "msgr,asyncio", "--n", "40", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())["instructions_per_rt"]
    assert figures["asyncio"] > 1000 and figures["msgr"] > figures["asyncio"], figures
    assert "msgr / asyncio:" in proc.stdout
