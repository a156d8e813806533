"""A peer process killed with SIGKILL and restarted on the same address and nonce."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from msgr import EntityAddr, EntityType, Message, Policy
from tests.helpers import Recorder, wait_for

PEER = Path(__file__).with_name("echo_peer.py")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_peer(port: int, nonce: int, policy: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(PEER), str(port), str(nonce), policy],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    assert line.startswith("ready"), line
    return p


@pytest.mark.parametrize("client_policy", [Policy.lossless_client(), Policy.lossless_peer()])
def test_sigkill_and_restart_gives_one_remote_reset(messengers, client_policy):
    port, nonce = free_port(), 4242
    addr = EntityAddr("v2", "127.0.0.1", port, nonce)
    peer = start_peer(port, nonce, "stateful_server")
    try:
        cd = Recorder()
        c = messengers(policy=client_policy, dispatcher=cd, ms_initial_backoff=0.05,
                       ms_max_backoff=0.2)
        conn = c.connect_to(EntityType.OSD, addr)
        conn.send_message(Message(1, tid=1))
        assert cd.get().tid == 1
        peer.send_signal(signal.SIGKILL)
        peer.wait(10)
        assert wait_for(lambda: not conn.is_connected(), 10)
        conn.send_message(Message(1, tid=2))         # queued while the peer is down
        peer = start_peer(port, nonce, "stateful_server")
        assert wait_for(lambda: cd.count("remote_reset", conn) == 1, 15)
        assert wait_for(lambda: conn.is_connected(), 10)
        conn.send_message(Message(1, tid=3))
        assert cd.get().tid == 3
        assert cd.count("remote_reset", conn) == 1 and cd.count("reset") == 0
        assert conn is c.connect_to(EntityType.OSD, addr)
    finally:
        peer.kill()
        peer.wait(10)
        peer.stdout.close()
        peer.stdin.close()
