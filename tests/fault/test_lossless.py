"""Lossless sessions: Ceph's StatefulTest, ClientStandbyTest, ReconnectTest, races.

Ported from src/test/msgr/test_msgr.cc (reference/ceph_api.md section 5) with
stricter oracles: no loss, no duplicates, order kept, exact event counts.
"""

import threading

import pytest

from msgr import EntityType, Message, Policy
from msgr.protocol.frames import Tag
from msgr.testing.interceptor import Interceptor, tag_bp
from tests.helpers import Recorder, wait_for

FAST = dict(ms_initial_backoff=0.01, ms_max_backoff=0.2)


def pair(messengers, server_policy, client_policy, *, client_bind=False, **cfg):
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=server_policy, bind=True, dispatcher=sd, **FAST, **cfg)
    c = messengers("client.-1" if not client_bind else "osd.1", policy=client_policy,
                   bind=client_bind, dispatcher=cd, **FAST, **cfg)
    return s, sd, c, cd


def round_trip(conn, rec, tid):
    conn.send_message(Message(1, tid=tid))
    m = rec.get()
    assert m.tid == tid
    return m


def server_conn(sd):
    conns = [c for n, c in sd.events if n == "accept"]
    return conns[-1]


def test_stateful_server_keeps_session_and_detects_client_restart(messengers):
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_client())
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    sconn = server_conn(sd)
    assert not sconn.is_lossy and not conn.is_lossy
    conn.mark_down()
    # the server keeps the session: connect_to the client's address finds it
    assert s.connect_to(EntityType.CLIENT, sconn.peer_addr) is sconn
    conn2 = c.connect_to(EntityType.OSD, s.bound)
    assert conn2 is not conn
    round_trip(conn2, cd, 2)
    assert wait_for(lambda: sd.count("remote_reset", sconn) == 1)
    assert server_conn(sd) is sconn           # the same server-side handle, a new session
    assert cd.count("remote_reset") == 0


def test_server_mark_down_makes_client_see_remote_reset(messengers):
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_client())
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    server_conn(sd).mark_down()
    assert wait_for(lambda: cd.count("remote_reset", conn) == 1)
    assert wait_for(lambda: cd.count("connect", conn) == 2)
    round_trip(conn, cd, 2)
    assert conn.is_connected() and cd.count("reset") == 0


def test_client_standby_then_send_reconnects(messengers):
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_peer())
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    server_conn(sd).mark_down()
    assert wait_for(lambda: not conn.is_connected())
    assert wait_for(lambda: "STANDBY" in repr(conn))
    assert cd.count("connect", conn) == 1       # standby: no reconnect while idle
    conn.send_message(Message(1, tid=2))       # wakes it; the server lost the session, so
    assert wait_for(lambda: cd.count("connect", conn) == 2)   # reset_session drops this one
    assert cd.count("remote_reset", conn) == 1
    round_trip(conn, cd, 3)


@pytest.mark.parametrize("policies", [
    (Policy.stateful_server(), Policy.lossless_client()),
    (Policy.stateful_server(), Policy.lossless_peer()),
])
def test_reconnect_after_fault_resumes_session(messengers, policies):
    s, sd, c, cd = pair(messengers, *policies)
    ic = Interceptor()
    c.interceptor = ic
    ic.make_fault(tag_bp(Tag.MESSAGE, "read"), round=2)      # fault on reading the 2nd reply
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    conn.send_message(Message(1, tid=2))
    assert wait_for(lambda: ic.total(tag_bp(Tag.MESSAGE, "read")) >= 2)
    conn.send_message(Message(1, tid=3))        # a standby client reconnects on its next send
    assert [cd.get().tid for _ in range(2)] == [2, 3]
    assert cd.q.empty()
    assert ic.count(conn, tag_bp(Tag.SESSION_RECONNECT, "write")) == 1
    assert ic.count(conn, tag_bp(Tag.SESSION_RECONNECT_OK, "read")) == 1
    assert [m.tid for m in sd.msgs] == [1, 2, 3]              # each exactly once
    assert cd.count("connect", conn) == 2 and cd.count("remote_reset") == 0
    assert sd.count("remote_reset") == 0 and sd.count("reset") == 0


@pytest.mark.parametrize("bp", [
    tag_bp(Tag.CLIENT_IDENT, "write"), tag_bp(Tag.SERVER_IDENT, "read"),
    tag_bp(Tag.MESSAGE, "write"), tag_bp(Tag.ACK, "read"), tag_bp(Tag.HELLO, "read"),
])
def test_lossless_fault_anywhere_loses_nothing(messengers, bp):
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_client())
    ic = Interceptor()
    c.interceptor = ic
    ic.make_fault(bp, round=1)
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(20):
        conn.send_message(Message(1, tid=i))
    got = [cd.get().tid for _ in range(20)]
    assert got == list(range(20))
    assert [m.tid for m in sd.msgs] == list(range(20))
    assert ic.total(bp) >= 1
    assert cd.count("reset") == 0 and cd.count("remote_reset") == 0


def test_connection_race_resolves_to_one_stream(messengers):
    ra, rb = Recorder(), Recorder()
    a = messengers("osd.1", policy=Policy.lossless_peer_reuse(), bind=True, dispatcher=ra, **FAST)
    b = messengers("osd.2", policy=Policy.lossless_peer_reuse(), bind=True, dispatcher=rb, **FAST)
    ia, ib = Interceptor(), Interceptor()
    a.interceptor, b.interceptor = ia, ib
    bp = tag_bp(Tag.CLIENT_IDENT, "write")
    ia.make_block(bp)
    ib.make_block(bp)
    a2b = a.connect_to(EntityType.OSD, b.bound)
    b2a = b.connect_to(EntityType.OSD, a.bound)
    a2b.send_message(Message(1, tid=1))
    b2a.send_message(Message(1, tid=2))
    assert ia.wait_blocked(bp) is a2b and ib.wait_blocked(bp) is b2a
    ia.unblock()
    ib.unblock()
    assert rb.get().tid == 1 and ra.get().tid == 2
    assert wait_for(lambda: a2b.is_connected() and b2a.is_connected())
    assert a.connect_to(EntityType.OSD, b.bound) is a2b
    assert b.connect_to(EntityType.OSD, a.bound) is b2a
    # one ordered stream each way afterwards
    for i in range(10):
        a2b.send_message(Message(1, tid=100 + i))
    assert [rb.get().tid for _ in range(10)] == list(range(100, 110))
    assert ra.count("reset") == rb.count("reset") == 0
    assert ra.count("remote_reset") == rb.count("remote_reset") == 0


def test_mark_disposable_makes_a_lossless_connection_lossy(messengers):
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_client())
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    assert not conn.is_lossy
    conn.mark_disposable()
    assert wait_for(lambda: conn.is_lossy)
    server_conn(sd).mark_down()
    assert wait_for(lambda: cd.count("reset", conn) == 1)      # no reconnect: it is lossy now
    assert not conn.is_connected() and cd.count("connect", conn) == 1


def test_reconnect_while_throttled_keeps_the_parked_messages(messengers):
    """The server's dispatch is stuck, so its throttle is full and the messages it
    has decoded after that wait, parked, with the reading stopped. The client's
    socket breaks and it reconnects; the server moves the new socket into the
    existing connection. The parked messages were already counted as received,
    so the client will not resend them: they must still be dispatched, once and
    in order, before what comes over the new socket."""
    gate = threading.Event()

    class Stuck(Recorder):
        def ms_dispatch(self, msg):
            gate.wait(20)
            return super().ms_dispatch(msg)

    sd, cd = Stuck(), Recorder()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd,
                   dispatch_threads=1, ms_dispatch_throttle_bytes=32 * 1024, **FAST)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, **FAST)
    ic = Interceptor()
    c.interceptor = ic
    write = tag_bp(Tag.MESSAGE, "write")
    ic.make_fault(write, round=31)                   # the 31st message write breaks the socket
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(30):
        conn.send_message(Message(1, data=bytes(4096), tid=i))
    assert wait_for(lambda: s.perf_dump()["throttle_waits"] >= 1, 10)    # messages parked
    for i in range(30, 40):
        conn.send_message(Message(1, data=bytes(4096), tid=i))
    assert wait_for(lambda: ic.count(conn, tag_bp(Tag.SESSION_RECONNECT_OK, "read")) >= 1, 10)
    gate.set()
    assert wait_for(lambda: len(sd.msgs) >= 40, 20), [m.tid for m in sd.msgs]
    assert [m.tid for m in sd.msgs] == list(range(40))
    assert sd.count("reset") == 0 and cd.count("reset") == 0


@pytest.mark.parametrize("after", ["redial", "standby"])
def test_a_fault_while_throttled_keeps_the_parked_messages(messengers, after):
    """The client's dispatch is stuck, so its throttle is full and the messages it
    decoded after that wait, parked (and were acknowledged: they count in in_seq,
    so the server will not resend them). Its socket then breaks. Whether it
    redials at once (lossless_client) or waits in STANDBY (lossless_peer with
    nothing to send), the fault is handled at once, and the parked messages are
    still dispatched, once and in order, as soon as the throttle has room."""
    import socket
    gate = threading.Event()

    class Stuck(Recorder):
        def ms_dispatch(self, msg):
            gate.wait(20)
            return super().ms_dispatch(msg)

    class Burst(Recorder):
        def ms_dispatch(self, msg):
            if msg.tid == 100:
                for i in range(40):
                    msg.connection.send_message(Message(2, data=bytes(4096), tid=i))
            return super().ms_dispatch(msg)

    sd, cd = Burst(), Stuck()
    policy = Policy.lossless_client() if after == "redial" else Policy.lossless_peer()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd, **FAST)
    c = messengers(policy=policy, dispatcher=cd, dispatch_threads=1,
                   ms_dispatch_throttle_bytes=32 * 1024, **FAST)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=100))
    stream = conn._life.session.stream      # read off the reactor: a test's peek
    assert wait_for(lambda: c.perf_dump()["throttle_waits"] >= 1
                    and stream.in_seq > c.perf_dump()["messages_received"], 10)   # parked
    conn._io.transport._sock.shutdown(socket.SHUT_RDWR)    # the socket breaks under the client
    conn.send_keepalive()                                  # a write finds it broken
    if after == "redial":
        assert wait_for(lambda: c.perf_dump()["reconnects"] >= 1, 10)
    else:
        assert wait_for(lambda: conn.state.name == "STANDBY", 10), conn
        received = stream.in_seq            # what it decoded before the fault (seq = tid + 1)
    gate.set()
    if after == "standby":                  # the parked ones go even without a transport,
        assert wait_for(lambda: len(cd.msgs) == received, 20), ([m.tid for m in cd.msgs], received)
        assert conn.state.name == "STANDBY"
        conn.send_message(Message(1, tid=101))          # and the session goes on with a send
    assert wait_for(lambda: len(cd.msgs) >= 40, 20), [m.tid for m in cd.msgs]
    assert [m.tid for m in cd.msgs] == list(range(40))
    assert cd.count("reset") == 0 and cd.count("remote_reset") == 0


def test_mark_disposable_holds_for_a_fault_its_reactor_sees_first(messengers):
    """mark_disposable() returns with the connection lossy: a fault the reactor
    handles before the submitted switch (its fd events run before submitted calls)
    must not reconnect the lossless session. The reactor is held while the switch
    is submitted and the server drops the session, so the fault comes first."""
    import time
    s, sd, c, cd = pair(messengers, Policy.stateful_server(), Policy.lossless_client())
    conn = c.connect_to(EntityType.OSD, s.bound)
    round_trip(conn, cd, 1)
    held, release = threading.Event(), threading.Event()

    def hold():
        held.set()
        release.wait(10)
    conn._reactor.submit(hold)
    assert held.wait(10)
    conn.mark_disposable()                      # its switch waits behind hold()
    assert conn.is_lossy
    server_conn(sd).mark_down()
    time.sleep(0.2)                             # the FIN is there before the reactor runs on
    release.set()
    assert wait_for(lambda: cd.count("reset", conn) == 1)      # no reconnect: it is lossy now
    assert not conn.is_connected() and cd.count("connect", conn) == 1
    assert c.perf_dump()["reconnects"] == 0
