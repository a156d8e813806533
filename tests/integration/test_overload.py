"""Memory under overload: a receiver slower than its sender stays within its throttles.

The server (its own process, so its RSS is its own) blocks its dispatcher; the
client offers 10x ``ms_dispatch_throttle_bytes``. The server must stop reading
(its RSS grows by about the throttle, not by the offer), the client must feel
it through TCP (its messages stay queued), and once the dispatcher is released
every message arrives.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

from msgr import EntityAddr, EntityType, Message, Policy
from tests.helpers import Recorder

PEER = Path(__file__).with_name("slow_peer.py")
ROOT = Path(__file__).resolve().parents[2]
THROTTLE = 8 << 20
MSG = 64 << 10


def ask(p: subprocess.Popen, cmd: str) -> str:
    p.stdin.write(cmd + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()


def test_ten_times_the_throttle_stays_bounded(messengers):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(PEER), str(THROTTLE)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    try:
        addr = EntityAddr.parse(p.stdout.readline().split()[1])
        base = int(ask(p, "rss"))
        c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
        conn = c.connect_to(EntityType.OSD, addr)
        n = 10 * THROTTLE // MSG
        payload = bytes(MSG)
        for i in range(n):
            conn.send_message(Message(1, data=payload, tid=i))
        time.sleep(2.0)                                     # let it push as far as it can
        grown = int(ask(p, "rss")) - base
        sent = c.perf_dump()["bytes_sent"]
        # bound: the throttle, the kernel socket buffers' worth read ahead, one
        # receive buffer and allocator slack -- far below the 10x offered
        assert grown < 3 * THROTTLE, f"server grew {grown >> 20} MiB for {THROTTLE >> 20} MiB"
        assert sent < n * MSG * 0.6, "the sender should be held back by TCP"
        p.stdin.write("go\n")
        p.stdin.flush()
        deadline = time.monotonic() + 30
        count = "0 0"
        while time.monotonic() < deadline:
            count = ask(p, "count")
            if int(count.split()[0]) == n:
                break
            time.sleep(0.2)
        assert count == f"{n} {n * MSG}"
    finally:
        p.stdin.close()
        p.wait(15)
        p.stdout.close()
