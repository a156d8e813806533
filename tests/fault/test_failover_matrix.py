"""A failover matrix in crimson's style: every breakpoint x FAULT x policy.

Each case: the client connects and sends M1; the server echoes R1; one FAULT
is injected at the named breakpoint (on the client's or the server's side);
then M2 must round-trip. Assertions per policy:

* a fault during the handshake is transparent: one ms_handle_connect, no
  reset on the client, M1 delivered exactly once (a lossy server that had
  already announced the session reports one reset);
* after READY, lossy: exactly one ms_handle_reset on each side, nothing
  duplicated; lossless: no reset of any kind, M1 and R1 exactly once, and the
  session is re-established (connect/accept seen again).
"""
import pytest

from msgr import EntityType, Message, Policy
from msgr.protocol.frames import Tag
from msgr.testing.interceptor import (BANNER_READ, BANNER_WRITE, SOCKET_ACCEPTED,
                                      SOCKET_CONNECTING, Action, Interceptor, tag_bp)
from tests.helpers import Recorder, wait_for

FAST = dict(ms_initial_backoff=0.005, ms_max_backoff=0.05)
R, W = "read", "write"
CLIENT_BPS = [BANNER_WRITE, BANNER_READ, SOCKET_CONNECTING,
              tag_bp(Tag.HELLO, W), tag_bp(Tag.HELLO, R), tag_bp(Tag.AUTH_REQUEST, W),
              tag_bp(Tag.AUTH_DONE, R), tag_bp(Tag.AUTH_SIGNATURE, W),
              tag_bp(Tag.AUTH_SIGNATURE, R), tag_bp(Tag.CLIENT_IDENT, W),
              tag_bp(Tag.SERVER_IDENT, R), tag_bp(Tag.MESSAGE, W), tag_bp(Tag.MESSAGE, R)]
SERVER_BPS = [BANNER_WRITE, BANNER_READ, SOCKET_ACCEPTED,
              tag_bp(Tag.HELLO, W), tag_bp(Tag.HELLO, R), tag_bp(Tag.AUTH_REQUEST, R),
              tag_bp(Tag.AUTH_DONE, W), tag_bp(Tag.AUTH_SIGNATURE, W),
              tag_bp(Tag.AUTH_SIGNATURE, R), tag_bp(Tag.CLIENT_IDENT, R),
              tag_bp(Tag.SERVER_IDENT, W), tag_bp(Tag.MESSAGE, R), tag_bp(Tag.MESSAGE, W)]
POLICIES = {
    "lossy": (Policy.stateless_server(), Policy.lossy_client(), False),
    "lossless_client": (Policy.stateful_server(), Policy.lossless_client(), False),
    "lossless_peer": (Policy.lossless_peer(), Policy.lossless_peer(), True),
}
CASES = [(side, bp) for side, bps in (("client", CLIENT_BPS), ("server", SERVER_BPS))
         for bp in bps]


def server_announced_before(side, bp) -> bool:
    return (side, bp) in (("client", tag_bp(Tag.SERVER_IDENT, R)),
                          ("server", tag_bp(Tag.SERVER_IDENT, W)))


TIMEOUTS = dict(ms_connection_ready_timeout=0.3, ms_connection_idle_timeout=0.5)


@pytest.mark.parametrize("action", [Action.FAULT, Action.STALL])
@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("side,bp", CASES, ids=[f"{s}-{b}" for s, b in CASES])
def test_fault_matrix(messengers, policy, side, bp, action):
    """FAULT breaks the socket at ``bp``; STALL halts the connection there until the
    ready (handshake) or idle (after READY) timeout faults it: same outcomes."""
    spol, cpol, bind = POLICIES[policy]
    lossy = cpol.lossy
    extra = TIMEOUTS if action is Action.STALL else {}
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=spol, bind=True, dispatcher=sd, **FAST, **extra)
    c = messengers("osd.1" if bind else "client.-1", policy=cpol, bind=bind, dispatcher=cd,
                   **FAST, **extra)
    ic = Interceptor()
    (c if side == "client" else s).interceptor = ic
    ic.make(bp, action)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    post_ready = bp.tag == Tag.MESSAGE
    if post_ready and lossy:
        assert wait_for(lambda: cd.count("reset", conn) == 1)
        assert wait_for(lambda: sd.count("reset") == 1)
        conn = c.connect_to(EntityType.OSD, s.bound)
    else:
        assert cd.get().tid == 1
    conn.send_message(Message(1, tid=2))
    assert wait_for(lambda: any(m.tid == 2 for m in cd.msgs)), (cd.events, sd.events)
    assert ic.total(bp) >= 1
    server_tids = [m.tid for m in sd.msgs]
    client_tids = [m.tid for m in cd.msgs]
    assert len(server_tids) == len(set(server_tids)) and len(client_tids) == len(set(client_tids))
    if post_ready and lossy:
        assert cd.count("reset") == 1 and sd.count("reset") == 1
        return
    assert server_tids == [1, 2] and client_tids == [1, 2]
    assert cd.count("reset") == 0 and cd.count("remote_reset") == 0
    assert sd.count("remote_reset") == 0
    expected_server_resets = 1 if lossy and server_announced_before(side, bp) else 0
    assert sd.count("reset") == expected_server_resets
    sessions = cd.count("connect") + cd.count("accept")
    if post_ready:
        assert sessions >= 2                     # re-established transparently
    else:
        assert cd.count("connect") == 1          # the retry is invisible to the user


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("side,bp", [c for c in CASES if c[1].custom not in
                                     ("socket_connecting", "socket_accepted")],
                         ids=[f"{s}-{b}" for s, b in CASES if b.custom not in
                              ("socket_connecting", "socket_accepted")])
def test_block_then_unblock_is_transparent(messengers, policy, side, bp):
    """BLOCK holds the connection at ``bp`` until the test releases it: nothing is lost,
    nothing reset, and the session is set up exactly once."""
    spol, cpol, bind = POLICIES[policy]
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=spol, bind=True, dispatcher=sd, **FAST)
    c = messengers("osd.1" if bind else "client.-1", policy=cpol, bind=bind, dispatcher=cd, **FAST)
    ic = Interceptor()
    (c if side == "client" else s).interceptor = ic
    ic.make_block(bp)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    assert ic.wait_blocked(bp) is not None
    ic.unblock()
    assert cd.get().tid == 1
    conn.send_message(Message(1, tid=2))
    assert cd.get().tid == 2
    assert [m.tid for m in sd.msgs] == [1, 2]
    assert cd.count("connect") == 1 and sd.count("accept") == 1
    assert cd.count("reset") + sd.count("reset") + cd.count("remote_reset") == 0
