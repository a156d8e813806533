"""msgr as a client of a real Pacific ceph-mon, through the public API only.

Each test dials the session's ``ceph_mon`` as a lossy client (the way
librados' MonClient does), sends one request and checks the mon's reply:
MPing -> MPing with JSON health, MMonGetVersion -> MMonGetVersionReply with
the same handle, MMonGetMap -> MMonMap naming the mon. Every test runs over
msgr2.1 and msgr2.0 (``Config(ms_msgr2_rev1=False)`` forces rev0); the mon's
debug_ms=20 log confirms which revision was negotiated.
"""
from __future__ import annotations

import queue
import re
import time
from typing import NamedTuple

import pytest

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy
from msgr import ceph_messages as cm

pytestmark = pytest.mark.interop

WAIT = 10.0


class QueueDispatcher(Dispatcher):
    """Puts every received message on a queue; records resets."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: queue.Queue = queue.Queue()
        self.resets: queue.Queue = queue.Queue()
        self.skipped: list = []

    def ms_dispatch(self, msg) -> bool:
        self.messages.put(msg)
        return True

    def ms_handle_reset(self, conn) -> bool:
        self.resets.put(conn)
        return True

    def wait_for(self, msg_type: int, timeout: float = WAIT) -> Message:
        """The next received message of ``msg_type``; others are kept in ``skipped``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if msg.type == msg_type:
                return msg
            self.skipped.append(msg)
        resets = self.resets.qsize()
        raise AssertionError(f"no message of type {msg_type} within {timeout}s "
                             f"(got instead: {self.skipped}; resets: {resets})")


def _request(msg_type: int, front: bytes = b"") -> Message:
    version, compat = cm.HEADER_VERSIONS.get(msg_type, (1, 0))
    return Message(msg_type, front=front, version=version, compat_version=compat)


class Client(NamedTuple):
    messenger: Messenger
    dispatcher: QueueDispatcher
    rev1: bool


@pytest.fixture(params=[pytest.param(True, id="msgr2.1"), pytest.param(False, id="msgr2.0")])
def client(request):
    """A started CLIENT messenger (lossy_client) and its QueueDispatcher."""
    messenger = Messenger(EntityName(EntityType.CLIENT, -1),
                          config=Config(ms_msgr2_rev1=request.param))
    messenger.set_default_policy(Policy.lossy_client())
    dispatcher = QueueDispatcher()
    messenger.add_dispatcher_tail(dispatcher)
    messenger.start()
    try:
        yield Client(messenger, dispatcher, request.param)
    finally:
        messenger.shutdown()
        assert messenger.wait(timeout=WAIT), "client messenger did not stop"


def _negotiated_revs(log_path, nonce: int, timeout: float = 5.0) -> set[str]:
    """The ``rev1=`` values the mon logged for connections from our nonce."""
    pattern = re.compile(rf"/{nonce} conn\(.*? rev1=(\d)")
    deadline = time.monotonic() + timeout
    revs: set[str] = set()
    while not revs and time.monotonic() < deadline:
        revs = set(pattern.findall(log_path.read_text(errors="replace")))
        time.sleep(0.1)
    return revs


def test_ping_returns_health_json(ceph_mon, client):
    messenger, dispatcher, rev1 = client
    conn = messenger.connect_to(EntityType.MON, ceph_mon.addr)
    conn.send_message(_request(cm.CEPH_MSG_PING))
    reply = dispatcher.wait_for(cm.CEPH_MSG_PING)
    pong = cm.decode_ping_reply_front(reply.front)
    assert pong["health"]["status"].startswith("HEALTH_")
    assert pong["mon_status"]["name"] == ceph_mon.name
    assert reply.source.type == EntityType.MON
    assert conn.peer_type == EntityType.MON and conn.is_lossy
    want_rev = "1" if rev1 else "0"
    assert _negotiated_revs(ceph_mon.log_path, messenger.nonce) == {want_rev}


def test_get_version_reply_echoes_handle(ceph_mon, client):
    messenger, dispatcher, _ = client
    conn = messenger.connect_to(EntityType.MON, ceph_mon.addr)
    handle = 0x0123_4567_89AB_CDEF
    conn.send_message(_request(cm.CEPH_MSG_MON_GET_VERSION,
                               cm.encode_mon_get_version_front(handle, "osdmap")))
    msg = dispatcher.wait_for(cm.CEPH_MSG_MON_GET_VERSION_REPLY)
    assert msg.version == 2
    reply = cm.decode_mon_get_version_reply_front(msg.front, msg.version)
    assert reply.handle == handle
    assert 1 <= reply.version and reply.oldest_version <= reply.version


def test_get_map_returns_the_mons_monmap(ceph_mon, client):
    messenger, dispatcher, _ = client
    conn = messenger.connect_to(EntityType.MON, ceph_mon.addr)
    conn.send_message(_request(cm.CEPH_MSG_MON_GET_MAP))
    msg = dispatcher.wait_for(cm.CEPH_MSG_MON_MAP)
    info = cm.decode_monmap(cm.decode_mmonmap_front(msg.front))
    assert info.fsid == ceph_mon.fsid
    assert dict(info.mons) == {ceph_mon.name: (ceph_mon.addr,)}
    assert info.epoch >= 1 and info.struct_v == 9
    assert info.persistent_features & cm.MON_FEATURES_PACIFIC == cm.MON_FEATURES_PACIFIC


def test_requests_on_one_connection_in_order(ceph_mon, client):
    messenger, dispatcher, _ = client
    conn = messenger.connect_to(EntityType.MON, ceph_mon.addr)
    assert messenger.connect_to(EntityType.MON, str(ceph_mon.addr)) is conn
    for handle in range(1, 6):
        conn.send_message(_request(cm.CEPH_MSG_MON_GET_VERSION,
                                   cm.encode_mon_get_version_front(handle, "monmap")))
    handles = [cm.decode_mon_get_version_reply_front(
        dispatcher.wait_for(cm.CEPH_MSG_MON_GET_VERSION_REPLY).front).handle for _ in range(5)]
    assert handles == [1, 2, 3, 4, 5]
    assert dispatcher.resets.empty()
