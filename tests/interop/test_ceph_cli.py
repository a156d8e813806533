"""The real ``ceph`` CLI (Pacific librados) against a msgr server posing as mon.a.

``ceph ping mon.a`` opens one msgr2 session to the mon address in its conf
(peer type MON, target nonce 0), authenticates with auth none (mon form),
sends MMonGetMap then MPing, and prints the string in the MPing reply. The
server here is a msgr Messenger of type MON, bound on ``v2:127.0.0.1:0`` with
nonce 0 and ``Policy.stateless_server()``, whose dispatcher answers like a
mon: MMonGetMap and MMonSubscribe("monmap") with an MMonMap naming itself as
mon "a" (epoch 1), MMonSubscribe("config") with an empty MConfig,
MMonGetVersion with version 1, and MPing with a JSON health reply. Runs over
msgr2.1 and msgr2.0; for rev0 the server offers only msgr2.0 and the CLI
falls back.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import struct
import subprocess
import time
import uuid
from typing import NamedTuple

import pytest

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy
from msgr import ceph_messages as cm

pytestmark = pytest.mark.interop

WAIT = 10.0
CLI_TIMEOUT = 60
PONG = {
    "health": {"status": "HEALTH_OK", "checks": {}, "mutes": []},
    "mon_status": {"name": "a", "rank": 0, "state": "leader", "quorum": [0],
                   "served_by": "msgr (python)"},
}


def _reply(msg_type: int, front: bytes, request: Message) -> Message:
    version, compat = cm.HEADER_VERSIONS.get(msg_type, (1, 0))
    return Message(msg_type, front=front, tid=request.tid, version=version,
                   compat_version=compat, priority=Message.PRIO_HIGH)


class FakeMon(Dispatcher):
    """Answers the monitor requests the ``ceph`` CLI makes; records their types."""

    def __init__(self, name: str, addr, fsid: uuid.UUID) -> None:
        super().__init__()
        self.received: queue.Queue = queue.Queue()
        self.monmap = cm.encode_monmap(fsid, 1, [(name, addr)], created=(int(time.time()), 0),
                                       persistent_features=cm.MON_FEATURES_PACIFIC,
                                       min_mon_release=cm.CEPH_RELEASE_PACIFIC)
        self._handlers = {
            cm.CEPH_MSG_MON_GET_MAP: self._get_map,
            cm.CEPH_MSG_PING: self._ping,
            cm.CEPH_MSG_MON_SUBSCRIBE: self._subscribe,
            cm.CEPH_MSG_MON_GET_VERSION: self._get_version,
        }

    def ms_dispatch(self, msg) -> bool:
        self.received.put(msg.type)
        handler = self._handlers.get(msg.type)
        if handler is None:
            return False
        for reply in handler(msg):
            msg.connection.send_message(reply)
        return True

    def received_types(self) -> list[int]:
        """The types received since the last call."""
        types = []
        while not self.received.empty():
            types.append(self.received.get_nowait())
        return types

    def wait_for(self, msg_type: int, timeout: float) -> list[int]:
        """The types received up to and including the first ``msg_type``."""
        types, deadline = [], time.monotonic() + timeout
        while not types or types[-1] != msg_type:
            try:
                types.append(self.received.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no message of type {msg_type} in {timeout}s; "
                                     f"got {types}") from None
        return types

    def _monmap_msg(self, request: Message) -> Message:
        return _reply(cm.CEPH_MSG_MON_MAP, cm.encode_mmonmap_front(self.monmap), request)

    def _get_map(self, msg: Message) -> list[Message]:
        return [self._monmap_msg(msg)]

    def _ping(self, msg: Message) -> list[Message]:
        return [_reply(cm.CEPH_MSG_PING, cm.encode_ping_reply_front(PONG), msg)]

    def _subscribe(self, msg: Message) -> list[Message]:
        what = cm.decode_mon_subscribe_front(msg.front, msg.version).what
        replies = []
        if "monmap" in what and what["monmap"][0] <= 1:
            replies.append(self._monmap_msg(msg))
        if "config" in what:
            replies.append(_reply(cm.MSG_CONFIG, cm.encode_config_front({}), msg))
        return replies

    def _get_version(self, msg: Message) -> list[Message]:
        handle = cm.decode_mon_get_version_front(msg.front).handle
        front = cm.encode_mon_get_version_reply_front(handle, 1, 1)
        return [_reply(cm.CEPH_MSG_MON_GET_VERSION_REPLY, front, msg)]


class Server(NamedTuple):
    messenger: Messenger
    mon: FakeMon
    rev1: bool


@pytest.fixture(params=[pytest.param(True, id="msgr2.1"), pytest.param(False, id="msgr2.0")])
def fake_mon(request):
    """A started msgr server posing as mon.a; the rev0 variant offers only msgr2.0."""
    messenger = Messenger(EntityName(EntityType.MON, 0), nonce=0,
                          config=Config(ms_msgr2_rev1=request.param))
    messenger.set_default_policy(Policy.stateless_server())
    addr = messenger.bind("v2:127.0.0.1:0")
    assert addr.nonce == 0 and addr.port != 0
    mon = FakeMon("a", addr, uuid.uuid4())
    messenger.add_dispatcher_tail(mon)
    messenger.start()
    try:
        yield Server(messenger, mon, request.param)
    finally:
        messenger.shutdown()
        assert messenger.wait(timeout=WAIT), "server messenger did not stop"


def _run_cli(ceph: str, conf, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CEPH_ARGS", "CEPH_CONF")}
    return subprocess.run([ceph, "-c", str(conf), "--connect-timeout", "20", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          stdin=subprocess.DEVNULL, env=env)


def _server_banner(addr) -> tuple[int, int]:
    """``(supported, required)`` msgr2 feature bits from the server's banner.

    The banner is ``"ceph v2\\n"``, le16 16, le64 supported, le64 required; the
    server sends it on accept without waiting for ours. Bit 0 is REVISION_1.
    """
    with socket.create_connection((addr.host, addr.port), timeout=WAIT) as sock:
        data = b""
        while len(data) < 26:
            chunk = sock.recv(26 - len(data))
            assert chunk, f"server closed after {len(data)} banner bytes"
            data += chunk
    assert data[:10] == b"ceph v2\n\x10\x00", data
    return struct.unpack_from("<QQ", data, 10)


def test_ceph_ping_against_msgr_server(ceph_cli, fake_mon, fake_conf):
    supported, required = _server_banner(fake_mon.messenger.addr)
    assert (supported & 1, required) == (int(fake_mon.rev1), 0)
    conf = fake_conf(fake_mon.messenger.addr)
    proc = _run_cli(ceph_cli, conf, "ping", "mon.a")
    received = fake_mon.mon.received_types()
    assert proc.returncode == 0, (
        f"ceph ping exited {proc.returncode}; server received types {received}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert json.loads(proc.stdout) == PONG
    assert cm.CEPH_MSG_PING in received
    assert received.index(cm.CEPH_MSG_MON_GET_MAP) < received.index(cm.CEPH_MSG_PING)


def test_ceph_status_bootstraps_from_msgr_server(ceph_cli, fake_mon, fake_conf, tmp_path):
    """librados' ``get_monmap_and_config`` accepts our MonMap v9 and empty MConfig.

    The bootstrap session (MMonGetMap, MMonSubscribe{config, monmap}) must end
    at once; the CLI then opens its real session, authenticates, subscribes and
    sends its first MMonCommand (get_command_descriptions). This fake mon does
    not answer commands, so the CLI is stopped (by PID) once that arrives.
    A long hunt interval makes a rejected map or config (the client waits one
    interval, then retries) miss the deadline instead of passing late.
    """
    conf = fake_conf(fake_mon.messenger.addr, mon_client_hunt_interval=120)
    with open(tmp_path / "ceph-status.out", "wb") as out:
        proc = subprocess.Popen([ceph_cli, "-c", str(conf), "--connect-timeout", "20", "status"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        types = fake_mon.mon.wait_for(cm.MSG_MON_COMMAND, timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
    assert types[:2] == [cm.CEPH_MSG_MON_GET_MAP, cm.CEPH_MSG_MON_SUBSCRIBE]
    assert types.count(cm.CEPH_MSG_MON_GET_MAP) == 2, types
