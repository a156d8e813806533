"""More of Ceph's test_msgr.cc scenarios (reference/ceph_api.md section 5)."""
import threading

from msgr import Dispatcher, EntityType, Message, Policy
from msgr.protocol.frames import Tag
from msgr.testing.interceptor import Interceptor, tag_bp
from tests.helpers import Recorder, wait_for

FAST = dict(ms_initial_backoff=0.01, ms_max_backoff=0.2)


def accepted(rec):
    return [c for n, c in rec.events if n == "accept"]


def test_stateless_server_forgets(messengers):
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=sd)
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    cd.get()
    conn.mark_down()
    conn2 = c.connect_to(EntityType.OSD, s.bound)
    conn2.send_message(Message(1, tid=2))
    assert cd.get().tid == 2
    assert wait_for(lambda: len(accepted(sd)) == 2)
    first, second = accepted(sd)
    assert first is not second                     # state lost: a new server-side connection
    second.mark_down()
    conn2.send_keepalive()
    assert wait_for(lambda: not conn2.is_connected() and cd.count("reset", conn2) == 1)
    conn3 = c.connect_to(EntityType.OSD, s.bound)
    assert conn3 is not conn2
    conn3.send_message(Message(1, tid=3))
    assert cd.get().tid == 3


def test_feature_required_but_missing_never_connects(messengers):
    cd = Recorder()
    s = messengers("osd.0", policy=Policy.stateless_server(features_required=1 << 62), bind=True,
                   dispatcher=Recorder(reply=True))
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd, **FAST)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1))
    assert wait_for(lambda: c.perf_dump()["connection_faults"] >= 2, 5)
    assert not conn.is_connected() and cd.count("connect") == 0
    conn.mark_down()
    s2 = messengers("osd.1", policy=Policy.stateless_server(), bind=True,
                    dispatcher=Recorder(reply=True))
    c.connect_to(EntityType.OSD, s2.bound).send_message(Message(1, tid=5))
    assert cd.get().tid == 5


def test_large_front_and_data_segments_lossless(messengers):
    sd, cd = Recorder(), Recorder()

    class Big(Recorder):
        def ms_dispatch(self, msg):
            msg.connection.send_message(Message(2, front=bytes(msg.front), data=bytes(msg.data),
                                                tid=msg.tid))
            return super().ms_dispatch(msg)
    sd = Big()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd)
    c = messengers("osd.1", policy=Policy.lossless_peer(), bind=True, dispatcher=cd)
    conn = c.connect_to(EntityType.OSD, s.bound)
    front, data = bytes(range(256)) * 3200, bytes(reversed(range(256))) * 3200   # ~800 KB each
    conn.send_message(Message(1, front=front, tid=1))
    conn.send_message(Message(1, data=data, tid=2))
    r1, r2 = cd.get(), cd.get()
    assert (r1.tid, bytes(r1.front)) == (1, front) and (r2.tid, bytes(r2.data)) == (2, data)


def test_mark_down_from_inside_ms_dispatch(messengers):
    count = [0]
    lock = threading.Lock()
    last = {}

    class Markdown(Dispatcher):
        def ms_dispatch(self, msg):
            with lock:
                count[0] += 1
                prev = last.get(msg.connection.messenger)
                last[msg.connection.messenger] = msg.connection
            if prev is not None and prev is not msg.connection:
                prev.mark_down()
            return True
    d = Markdown()
    s1 = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=d)
    s2 = messengers("osd.1", policy=Policy.stateless_server(), bind=True, dispatcher=d)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    for i in range(100):
        for s in (s1, s2):
            conn = c.connect_to(EntityType.OSD, s.bound, anon=True)
            conn.send_message(Message(1, tid=i))
        assert wait_for(lambda: count[0] >= 2 * (i + 1), 5), (i, count[0])
        c.mark_down_all()


def test_missing_server_ident_then_client_retries(messengers):
    sd, cd = Recorder(), Recorder()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd, **FAST)
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd, **FAST)
    ic = Interceptor()
    s.interceptor = ic
    ic.make_fault(tag_bp(Tag.SERVER_IDENT, "write"), round=1)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    assert wait_for(lambda: len(accepted(sd)) >= 1)
    accepter = accepted(sd)[0]
    accepter.send_message(Message(2, tid=2))        # queued on the half-open server side
    assert sd.get().tid == 1
    assert cd.get().tid == 2
    assert conn.is_connected() and wait_for(accepter.is_connected)
    assert cd.count("connect", conn) == 1 and cd.count("reset") == 0


def test_missing_server_ident_peer_reconnects_to_client(messengers):
    sd, cd = Recorder(), Recorder()
    s = messengers("osd.0", policy=Policy.lossless_peer(), bind=True, dispatcher=sd, **FAST)
    c = messengers("osd.1", policy=Policy.lossless_peer(), bind=True, dispatcher=cd, **FAST)
    ic = Interceptor()
    s.interceptor = ic
    ic.make_fault(tag_bp(Tag.SERVER_IDENT, "write"), round=1)
    conn = c.connect_to(EntityType.OSD, s.bound)
    assert wait_for(lambda: len(accepted(sd)) >= 1)
    accepter = accepted(sd)[0]
    accepter.send_message(Message(2, tid=2))
    assert cd.get().tid == 2                         # directions unify into one session
    assert wait_for(conn.is_connected)
    assert cd.count("reset") == 0 and sd.count("reset") == 0


def test_reconnect_race_both_sides_reconnect(messengers):
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=Policy.lossless_peer(), bind=True, dispatcher=sd, **FAST)
    c = messengers("osd.1", policy=Policy.lossless_peer(), bind=True, dispatcher=cd, **FAST)
    ic, isv = Interceptor(), Interceptor()
    c.interceptor, s.interceptor = ic, isv
    ic.make_fault(tag_bp(Tag.MESSAGE, "read"), round=2)
    rbp = tag_bp(Tag.SESSION_RECONNECT, "write")
    ic.make_block(rbp)
    isv.make_block(rbp)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    assert cd.get().tid == 1
    conn.send_message(Message(1, tid=2))
    blocked_server = isv.wait_blocked(rbp)         # the server redials to replay reply 2
    assert blocked_server is not None
    conn.send_message(Message(1, tid=3))          # the client leaves standby and redials too
    assert ic.wait_blocked(rbp) is conn
    ic.unblock()
    isv.unblock()
    assert [cd.get().tid for _ in range(2)] == [2, 3]
    assert [m.tid for m in sd.msgs] == [1, 2, 3]
    assert cd.q.empty() and cd.count("remote_reset") == 0 and sd.count("remote_reset") == 0
    assert ic.count(conn, rbp) >= 1 and isv.count(blocked_server, rbp) >= 1
