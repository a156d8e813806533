"""msgr as a lossless MON-type peer of a real Pacific ceph-mon: fault, then SESSION_RECONNECT.

Scenario (reference/msgr2.md s.10, the verified transcript, now driven by msgr
itself): a Messenger named ``mon.1`` dials the session's ``ceph_mon`` with
``Policy.lossless_peer_reuse()``, the policy ``ceph_mon.cc`` uses for MON
peers, so both ends keep a lossless session (cookies, seqs, ``sent`` lists).
It sends MPing (seq 1) and the connection faults before the mon's reply is
processed (nothing of it is delivered or acked). msgr must redial by itself
with SESSION_RECONNECT, honour the SESSION_RETRY the mon answers (the mon has
bumped connect_seq by redialling us, see below), get SESSION_RECONNECT_OK and
then receive the mon's replayed reply exactly once, with its original seq 1.
A second MPing then gets its reply with seq 2: one session, no reset.

Why the messenger is not bound: a lossless_peer_reuse peer is not a
``server``, so on the fault the mon redials *us* at our advertised address.
Bound, it reaches us first and the session resumes through the mon's own
SESSION_RECONNECT (msgr writes the RECONNECT_OK; so it went in each run
tried), which is not the path under test. Unbound we advertise port 0, the
mon's redial is refused and it bumps connect_seq twice (s.10 phase 2), so our
SESSION_RECONNECT meets SESSION_RETRY first.

Why the fault rule is :class:`FaultBeforeReply` and not only
``make_fault(tag_bp(Tag.MESSAGE, "read"), 1)``: the mon's writer sends a
stand-alone ``ACK(1)`` when it runs before its dispatch thread has queued the
reply (measured here: 20 of 50 runs in one series, 8 of 10 in another). Then
our MPing is acked before the reply is read, and on the fault msgr (like
Ceph's ``_fault``: standby policy, nothing queued, "going to standby") waits
in STANDBY for the next send instead of redialling, and the mon cannot reach
port 0: nothing would reconnect "by itself". So the fault goes at the first
frame read after our MPing, the reply or that ACK, whichever the mon wrote
first; in both orders the reply is dropped with the socket, unread and unacked.
"""
from __future__ import annotations

import re
import time

import pytest

from msgr import Config, EntityName, EntityType, Message, Messenger, Policy
from msgr import ceph_messages as cm
from msgr.protocol.frames import Tag
from msgr.testing.interceptor import Action, Interceptor, tag_bp
from tests.helpers import Recorder, wait_for

pytestmark = pytest.mark.interop

WAIT = 10.0
MESSAGE_READ = tag_bp(Tag.MESSAGE, "read")
ACK_READ = tag_bp(Tag.ACK, "read")
RECONNECT_WRITE = tag_bp(Tag.SESSION_RECONNECT, "write")
RECONNECT_OK_READ = tag_bp(Tag.SESSION_RECONNECT_OK, "read")
CLIENT_IDENT_WRITE = tag_bp(Tag.CLIENT_IDENT, "write")
RETRY_READ = tag_bp(Tag.SESSION_RETRY, "read")
RETRY_GLOBAL_READ = tag_bp(Tag.SESSION_RETRY_GLOBAL, "read")


class FaultBeforeReply(Interceptor):
    """``make_fault(MESSAGE read, 1)``, or a fault at an ``ACK`` read that comes first.

    ``first`` records which of the two the mon wrote first ("reply" or "ack").
    In the "ack" order the MESSAGE rule is lifted, so the replayed reply on the
    next socket is delivered, not faulted again. One connection only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.first: str | None = None
        self.make_fault(MESSAGE_READ, round=1)

    def intercept(self, conn, bp) -> Action:
        if self.first is None and bp == ACK_READ:
            self.first = "ack"
            self.make(MESSAGE_READ, Action.CONTINUE, round=1)
            super().intercept(conn, bp)
            return Action.FAULT
        if self.first is None and bp == MESSAGE_READ:
            self.first = "reply"
        return super().intercept(conn, bp)


def _ping() -> Message:
    version, compat = cm.HEADER_VERSIONS[cm.CEPH_MSG_PING]
    return Message(cm.CEPH_MSG_PING, version=version, compat_version=compat)


@pytest.fixture(params=[pytest.param(True, id="msgr2.1"), pytest.param(False, id="msgr2.0")])
def mon_peer(request):
    """An unbound, started ``mon.1`` Messenger (lossless_peer_reuse to MONs), its
    Recorder and its FaultBeforeReply interceptor."""
    rec, ic = Recorder(), FaultBeforeReply()
    messenger = Messenger(EntityName(EntityType.MON, 1),
                          config=Config(ms_msgr2_rev1=request.param))
    messenger.set_policy(EntityType.MON, Policy.lossless_peer_reuse())
    messenger.add_dispatcher_tail(rec)
    messenger.interceptor = ic
    messenger.start()
    try:
        yield messenger, rec, ic
    finally:
        messenger.shutdown()
        assert messenger.wait(timeout=WAIT), "mon.1 messenger did not stop"


def _steps(ic: Interceptor, conn) -> dict:
    bps = {"ident": CLIENT_IDENT_WRITE, "reconnect": RECONNECT_WRITE, "retry": RETRY_READ,
           "retry_global": RETRY_GLOBAL_READ, "reconnect_ok": RECONNECT_OK_READ,
           "message_read": MESSAGE_READ, "ack_read": ACK_READ}
    return {name: ic.count(conn, bp) for name, bp in bps.items()} | {"first": ic.first}


def _mon_lines(ceph_mon, nonce: int, pattern: str, want, timeout: float = WAIT) -> list:
    """The mon log's lines about our nonce matching ``pattern``, once ``want(lines)``
    holds (the mon's log thread writes asynchronously) or at the timeout."""
    rx = re.compile(pattern)
    lines: list = []
    deadline = time.monotonic() + timeout
    while True:
        text = ceph_mon.log_path.read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if f"/{nonce} " in ln and rx.search(ln)]
        if want(lines) or time.monotonic() >= deadline:
            return lines
        time.sleep(0.1)


def test_fault_on_reply_reconnects_and_replays_it_once(ceph_mon, mon_peer):
    messenger, rec, ic = mon_peer
    conn = messenger.connect_to(EntityType.MON, ceph_mon.addr)
    conn.send_message(_ping())

    # the fault, then the reconnect and the replayed reply, all without another send
    assert wait_for(lambda: ic.first is not None, WAIT), _steps(ic, conn)
    assert wait_for(lambda: ic.count(conn, RECONNECT_OK_READ) >= 1, WAIT), (
        f"no SESSION_RECONNECT_OK; {conn!r} {_steps(ic, conn)}")
    replay = rec.get(timeout=WAIT)
    assert (replay.type, replay.seq) == (cm.CEPH_MSG_PING, 1), replay
    assert replay.connection is conn and replay.source.type == EntityType.MON

    conn.send_message(_ping())
    second = rec.get(timeout=WAIT)
    assert (second.type, second.seq) == (cm.CEPH_MSG_PING, 2), second
    assert cm.decode_ping_reply_front(second.front)["mon_status"]["name"] == ceph_mon.name
    assert [m.seq for m in rec.msgs] == [1, 2]          # the replay came exactly once
    assert rec.q.empty()

    steps = _steps(ic, conn)
    print(f"frame steps on {conn!r}: {steps}")
    assert steps["ident"] == 1 and steps["reconnect"] >= 1, steps   # one session throughout
    assert rec.count("reset") == 0 and rec.count("remote_reset") == 0, rec.events
    assert rec.count("connect", conn) == 2, rec.events              # first connect + reconnect
    assert messenger.connect_to(EntityType.MON, ceph_mon.addr) is conn
    assert not conn.is_lossy and conn.is_connected()
    assert messenger.perf_dump()["connection_faults"] == 1, messenger.perf_dump()
    _check_mon_log(ceph_mon, messenger.nonce)
    _check_replay_front(ceph_mon, messenger.nonce, replay, ic.first)


def _check_mon_log(ceph_mon, nonce: int) -> None:
    """The mon resumed our session (reuse_connection) and dispatched each MPing once."""
    reuse = _mon_lines(ceph_mon, nonce, r"reconnect to existing|reuse_connection existing=|"
                       r"sending reconnect_ok", lambda ls: len(ls) >= 3)
    assert any("handle_reconnect reconnect to existing=" in ln for ln in reuse), reuse
    assert any("reuse_connection existing=" in ln for ln in reuse), reuse
    assert any("sending reconnect_ok: msg_seq=1" in ln for ln in reuse), reuse
    pings = _mon_lines(ceph_mon, nonce, r"<== mon\.1 \S+ \d+ ==== ping", lambda ls: len(ls) >= 2)
    seqs = [int(re.search(r"<== mon\.1 \S+ (\d+) ====", ln).group(1)) for ln in pings]
    assert seqs == [1, 2], pings                        # our requeued MPing was not re-delivered


def _check_replay_front(ceph_mon, nonce: int, replay: Message, first: str) -> None:
    """msgr delivered the mon's last transmission of its reply (seq 1).

    If the mon had written the reply before the fault (always so when we
    faulted on reading it; sometimes when its ACK came first), its ``_fault``
    requeued it, and Ceph's ``ProtocolV2::requeue_sent`` calls
    ``m->clear_payload()`` so the replay is re-encoded; ``MPing::encode_payload``
    encodes nothing (``Monitor::handle_ping`` had set the JSON with
    ``set_payload``), so the replayed reply has an empty front. Otherwise the
    reply went out for the first time on the new socket, JSON and all. The
    requeue line precedes ``sending reconnect_ok`` in the log, which
    :func:`_check_mon_log` has already waited for.
    """
    requeued = _mon_lines(ceph_mon, nonce, r"requeue_sent requeueing message .* seq=1 type=2 ",
                          bool, timeout=0)
    assert requeued or first == "ack", "faulted on reading the reply, yet the mon never requeued it"
    if requeued:
        assert len(replay.front) == 0, bytes(replay.front[:64])
    else:
        assert cm.decode_ping_reply_front(replay.front)["mon_status"]["name"] == ceph_mon.name
