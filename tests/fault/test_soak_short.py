"""A short run of python -m tools.soak per lossless policy (Ceph's SyntheticInjectTest, scaled).

Random sends with 32 B..256 KiB payloads, mark_downs, peer restarts on the
same address and nonce, and 1-in-30 socket failures, for about ten seconds;
the tool's oracle fails the run on any loss, duplicate, reordering or
corruption not explained by an event the messenger reported.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("policy,seed,dispatch_threads", [
    ("lossless_client", 11, 1), ("lossless_peer", 21, 1), ("lossless_peer_reuse", 13, 1),
    ("lossless_client", 12, 0),     # echoes sent on the reactor: the direct send path
])
def test_soak_oracle_holds(policy, seed, dispatch_threads, tmp_path):
    out = tmp_path / "soak.json"
    r = subprocess.run([sys.executable, "-m", "tools.soak", "--minutes", "0.12",
                        "--policy", policy, "--seed", str(seed), "--drain", "30",
                        "--dispatch-threads", str(dispatch_threads),
                        "--json", str(out)], capture_output=True, text=True, timeout=110,
                       cwd=ROOT, env=dict(os.environ, SOAK_DEBUG="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "soak: OK" in r.stdout
    assert out.exists()
