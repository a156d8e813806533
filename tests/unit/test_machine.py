"""Two ProtocolMachines through a byte pump: handshake, messages, faults, time.

No sockets, threads or sleeps; every conversation runs in chunk sizes 1, 7
and whole, with a MockClock.
"""
import pytest

from msgr import EntityAddr, EntityType, Message, Policy, RemoteProtocolError, TransportError
from msgr.protocol.events import NEED_DATA, Established, Faulted, KeepaliveAck
from msgr.protocol.frames import Tag, control_frame
from msgr.protocol.intercept import WRITE_BPS, Action
from msgr.bufpool import BufferPool
from msgr.counters import Histogram
from msgr.protocol.machine import ProtocolMachine
from msgr.protocol.states import ConnState
from msgr.testing.pair import MachinePair, make_params

CHUNKS = [1, 7, None]


def established(events):
    return [e for e in events if isinstance(e, Established)]


def faults(events):
    return [e for e in events if isinstance(e, Faulted)]


def messages(events):
    return [e for e in events if isinstance(e, Message)]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("rev1c,rev1s", [(True, True), (True, False), (False, True), (False, False)])
def test_handshake_and_messages(chunk, rev1c, rev1s):
    p = MachinePair.create({"rev1_allowed": rev1c}, {"rev1_allowed": rev1s})
    p.start()
    for i in range(3):
        p.client.send_message(Message(42, front=b"f%d" % i, data=b"d" * i, tid=i))
    p.pump(chunk)
    assert p.client.state is ConnState.READY and p.server.state is ConnState.READY
    assert p.client.rev1 == p.server.rev1 == (rev1c and rev1s)
    (ce,), (se,) = established(p.client_events), established(p.server_events)
    assert not ce.accepted and se.accepted
    assert str(ce.peer_name) == "osd.0" and str(se.peer_name) == "client.-1"
    got = messages(p.server_events)
    assert [(m.seq, m.tid, m.front, m.data) for m in got] == [
        (1, 0, b"f0", b""), (2, 1, b"f1", b"d"), (3, 2, b"f2", b"dd")]
    assert all(str(m.source) == "client.-1" for m in got)


def test_server_lossy_flag_wins():
    p = MachinePair.create({"policy": Policy.lossless_client()}, {"policy": Policy.stateless_server()})
    p.start()
    p.pump()
    assert established(p.client_events)[0].lossy
    assert p.client.session.ident.client_cookie != 0     # it asked for a lossless session
    assert p.client.session.ident.server_cookie == 0


def test_lossless_session_gets_cookies_and_acks():
    p = MachinePair.create({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()})
    p.start()
    p.client.send_message(Message(1, front=b"x"))
    p.pump()
    assert p.client.session.ident.server_cookie != 0
    assert not p.client.session.stream.sent      # the server's ACK frame trimmed it
    assert p.server.session.stream.in_seq == 1


def _three_queued_at_one_second(**client_kw):
    """A READY lossless pair whose client has 3 messages queued, stamped at t=1.0."""
    p = MachinePair.create({"policy": Policy.lossless_client(), **client_kw},
                           {"policy": Policy.stateful_server()})
    p.start()
    p.pump()
    msgs = [Message(1, tid=i) for i in range(3)]
    for m in msgs:
        m._queued_at = 1.0
    p.client.session.stream.out.push_all(msgs)
    return p, p.client.session.stream, Histogram()


def test_send_queue_latency_observes_each_message_once_not_its_replay():
    p, s, hist = _three_queued_at_one_second()
    assert p.client.data_to_send(1.5, 1 << 20, hist)
    assert hist.count == 3 and hist.sum == 1.5
    s.requeue_sent()                      # a fault before the ACK: the three go again
    assert p.client.data_to_send(2.0, 1 << 20, hist)
    assert [seq for seq, _ in s.sent] == [1, 2, 3] and hist.count == 3


class _BlockFirstMessageWrite:
    """Interceptor: BLOCK at the first MESSAGE write once armed, CONTINUE otherwise."""

    def __init__(self):
        self.armed, self.hits = False, 0

    def intercept(self, owner, bp):
        if self.armed and bp == WRITE_BPS[Tag.MESSAGE.value]:
            self.hits += 1
            if self.hits == 1:
                return Action.BLOCK
        return Action.CONTINUE


def test_send_queue_latency_observes_once_across_an_interceptor_halt():
    ic = _BlockFirstMessageWrite()
    p, s, hist = _three_queued_at_one_second(interceptor=ic)
    ic.armed = True
    p.client.data_to_send(1.5, 1 << 20, hist)        # halts after framing the first
    p.client.resume()
    p.client.data_to_send(2.0, 1 << 20, hist)        # the other two go now
    assert [seq for seq, _ in s.sent] == [1, 2, 3] and hist.count == 3


def test_priority_order():
    p = MachinePair.create()
    p.start()
    p.pump()
    for prio, tid in [(64, 1), (255, 2), (127, 3), (255, 4), (196, 5)]:
        p.client.send_message(Message(1, priority=prio, tid=tid))
    p.pump()
    assert [m.tid for m in messages(p.server_events)] == [2, 4, 5, 3, 1]


def test_keepalive_round_trip():
    p = MachinePair.create()
    p.start()
    p.pump()
    p.client.send_keepalive((1700000000, 5))
    p.pump()
    assert [e for e in p.client_events if isinstance(e, KeepaliveAck)] == [KeepaliveAck((1700000000, 5))]


def test_missing_features_refused():
    p = MachinePair.create({"features_supported": 1}, {})
    p.start()
    p.pump()
    (f,) = faults(p.client_events)
    assert f.error.reason == "features" and not f.was_ready
    assert p.server.state is ConnState.SESSION_ACCEPTING


def test_target_address_must_be_the_servers():
    p = MachinePair.create({"server_addr": EntityAddr("v2", "127.0.0.1", 6800, 1)},
                           {"server_addr": EntityAddr("v2", "127.0.0.1", 6800, 2)})
    p.start()
    p.pump()
    assert faults(p.server_events) and p.server.state is ConnState.CLOSED


def test_peer_type_mismatch_faults_client():
    p = MachinePair.create({"peer_type": EntityType.MON}, {})
    p.start()
    p.pump()
    (f,) = faults(p.client_events)
    assert isinstance(f.error, RemoteProtocolError) and f.error.reason == "peer_type"


def accepting_machine():
    m = ProtocolMachine(make_params(False), connecting=False)
    m.start(0.0)
    m.data_to_send()
    return m


def feed(m, data, chunk=None):
    step = chunk or len(data) or 1
    events = []
    for i in range(0, len(data), step):
        m.receive_data(data[i:i + step])
        events += drain(m)
    return events + drain(m)


def drain(m):
    events = []
    while (ev := m.next_event()) is not NEED_DATA:
        events.append(ev)
    return events


BANNER = b"ceph v2\n" + (16).to_bytes(2, "little") + (1).to_bytes(8, "little") + bytes(8)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("garbage,reason", [
    (b"GET / HTTP/1.1\r\n\r\n", "bad_banner"),
    (b"ceph v027\x00\x00\x00\x00", "bad_banner"),
    (b"ceph v2\n\xff\xff" + bytes(16), "bad_banner"),
    (BANNER + control_frame(Tag.HELLO, b"\x08", True)[:-1] + b"\x00", "bad_crc"),
    (BANNER + b"\x01\x01" + bytes(30), "bad_crc"),
    (BANNER + control_frame(99, b"", True), "bad_tag"),
    (BANNER + control_frame(Tag.MESSAGE, b"", True), "bad_tag"),
    (BANNER + control_frame(Tag.HELLO, b"\x08\x01", True), "decode"),
    (BANNER + control_frame(Tag.HELLO, b"\x77" + bytes(40), True), "decode"),
])
def test_bad_input_faults_cleanly(chunk, garbage, reason):
    m = accepting_machine()
    events = feed(m, garbage, chunk)
    (f,) = faults(events)
    assert isinstance(f.error, RemoteProtocolError) and f.error.reason == reason
    assert m.state is ConnState.CLOSED and not f.was_ready
    assert feed(m, b"more bytes after the fault") == []


def test_oversized_segment_faults_before_it_arrives():
    m = ProtocolMachine(make_params(False, max_segment_bytes=1000), connecting=False)
    m.start(0.0)
    frame = control_frame(Tag.HELLO, bytes(5000), True)
    (f,) = faults(feed(m, BANNER + frame[:40]))
    assert f.error.reason == "too_large"


def test_truncated_frame_waits_then_ready_timeout():
    p = MachinePair.create()
    p.start()
    m = accepting_machine()
    assert feed(m, BANNER + control_frame(Tag.HELLO, bytes(20), True)[:30]) == []
    assert m.next_deadline() == pytest.approx(10.0)
    m.on_tick(9.9)
    assert m.state is not ConnState.CLOSED
    m.on_tick(10.0)
    (f,) = faults(feed(m, b""))
    assert isinstance(f.error, TransportError) and "ready" in str(f.error)


def test_idle_timeout_after_ready():
    p = MachinePair.create({"idle_timeout": 5.0}, {"idle_timeout": 5.0})
    p.start()
    p.pump()
    p.client.on_tick(p.clock.advance(4.0))
    assert p.client.is_ready
    p.client.on_tick(p.clock.advance(1.0))
    assert p.client.done and faults([p.client.next_event()])[0].was_ready


def test_duplicate_seq_is_dropped():
    p = MachinePair.create()
    p.start()
    p.pump()
    p.client.send_message(Message(1, tid=1))
    frames = p.client.data_to_send()
    wire = b"".join(bytes(b) for b in frames)
    assert len(messages(feed(p.server, wire))) == 1
    assert messages(feed(p.server, wire)) == []          # same seq again: old, dropped
    assert p.server.state is ConnState.READY


def test_donated_buffers_reused_only_when_every_view_is_gone():
    """Large segments are views of the receive buffer; a later large message may
    reuse a given-away buffer only once nothing refers to it any more."""
    p = MachinePair.create(server_kw={"buffer_pool": BufferPool()})
    p.start()
    p.pump()
    payloads = [bytes([i]) * (1 << 20) for i in range(6)]
    held, bases = [], []
    for i, data in enumerate(payloads):
        p.client.send_message(Message(7, data=data, tid=i))
        p.pump(chunk=300_000)
        (m,) = messages(p.server_events)
        p.server_events.clear()
        assert isinstance(m.data, memoryview) and m.data == data
        bases.append(id(m.data.obj))
        if i < 3:
            held.append(m)                    # the first three stay referenced
    for i, m in enumerate(held):              # ... and intact: none was reused under them
        assert m.data == payloads[i]
    assert len(set(bases[:4])) == 4
    assert bases[5] == bases[3]               # dropped at once: buffer 3 came back for 5
    del held, m
    p.client.send_message(Message(7, data=payloads[0], tid=9))
    p.pump(chunk=300_000)
    (m,) = messages(p.server_events)
    assert m.data == payloads[0]


def test_large_messages_leave_no_large_buffer_behind():
    """After large messages (dropped), small traffic runs in a buffer of at most
    recv_buffer_bytes; the pool keeps at most its own bound."""
    pool = BufferPool()
    p = MachinePair.create(server_kw={"buffer_pool": pool})
    p.start()
    p.pump()
    for i in range(3):
        p.client.send_message(Message(7, data=bytes(3 << 20), tid=i))
        p.pump(chunk=1 << 20)
    p.server_events.clear()
    for i in range(300):
        p.client.send_message(Message(8, front=bytes(2000), tid=i))
        p.pump()
    assert len(messages(p.server_events)) == 300
    assert p.server.rx.buffer_size <= p.server.p.recv_buffer_bytes
    assert pool.held() <= pool.max_buffers


def test_large_segment_arrives_as_view_without_copy_and_intact():
    p = MachinePair.create()
    p.start()
    p.pump()
    data = bytes(range(256)) * 32768          # 8 MiB
    p.client.send_message(Message(7, data=data))
    p.pump(chunk=1 << 20)
    (m,) = messages(p.server_events)
    assert isinstance(m.data, memoryview) and m.data == data
