"""Messages that cannot go on the wire: refused by Message(), or dropped at framing.

Message() checks its header fields and segments; a field or segment changed
afterwards (say, to a str or to a view whose len() is not its size in bytes) is
caught when the batch is framed: that message is dropped (logged, counted in
``invalid_dropped``) and the others go out in order with consecutive seqs,
without a fault. No sockets: a MachinePair.
"""
from array import array

import pytest

from msgr import Message, Policy
from msgr.protocol.events import Faulted
from msgr.protocol.tx import COPY_LIMIT, wire_error
from msgr.testing.pair import MachinePair


@pytest.mark.parametrize("kw, error", [
    ({"type": 1 << 16}, ValueError), ({"type": -1}, ValueError), ({"type": 1.0}, TypeError),
    ({"priority": 256}, ValueError), ({"tid": 1 << 64}, ValueError), ({"tid": -1}, ValueError),
    ({"version": 1 << 16}, ValueError), ({"compat_version": -2}, ValueError),
    ({"data_off": 1 << 16}, ValueError), ({"tid": "7"}, TypeError)])
def test_message_refuses_header_fields_that_do_not_fit(kw, error):
    kw = {"type": 1, **kw}
    name = next(k for k in kw if k != "type") if len(kw) > 1 else "type"
    with pytest.raises(error, match=name):
        Message(**kw)


@pytest.mark.parametrize("name", ["front", "middle", "data"])
@pytest.mark.parametrize("seg, match", [
    ("text", "str is not bytes-like"), ("", "str is not bytes-like"), (None, "NoneType"),
    (7, "int"), ([1, 2], "list"), (array("i", [1, 2, 3]), r"cast\('B'\)"),
    (memoryview(bytes(8))[::2], "not contiguous")])
def test_message_refuses_segments_that_are_not_bytes_like(name, seg, match):
    with pytest.raises(TypeError, match=f"message {name}: .*{match}"):
        Message(1, **{name: seg})


def test_message_takes_any_contiguous_byte_buffer():
    for seg in (b"x", bytearray(b"xy"), memoryview(b"xyz"), array("B", [1, 2]),
                memoryview(array("i", [1, 2])).cast("B"), b""):
        assert wire_error(Message(1, front=seg, middle=seg, data=seg)) is None


def changed(msg: Message, **fields) -> Message:
    """``msg`` with ``fields`` set after Message() checked it (as a user may do)."""
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def test_message_takes_the_extremes():
    m = Message(0xFFFF, priority=255, tid=(1 << 64) - 1, version=0xFFFF, compat_version=0,
                data_off=0xFFFF)
    assert wire_error(m) is None


def test_wire_error_names_what_is_wrong():
    m = Message(1)
    m.version = 1 << 16
    assert "header" in wire_error(m)
    assert "front" in wire_error(changed(Message(1), front="text"))     # not bytes-like
    assert "data" in wire_error(changed(Message(1), data=array("i", [1, 2, 3])))  # len() 3, 12 B
    assert "header" in wire_error(object())
    assert wire_error(Message(1, data=memoryview(array("i", [1, 2])).cast("B"))) is None


def _bad_batch():
    """good, mutated header, good, len() != bytes, big (zero-copy path), str segment, good."""
    bad_header = Message(1, tid=101)
    bad_header.tid = -1
    msgs = [Message(1, tid=1), bad_header, Message(1, front=b"f", tid=2),
            changed(Message(1, tid=102), data=array("q", [7, 8])),
            Message(1, data=bytes(COPY_LIMIT + 1), tid=3),
            changed(Message(1, tid=103), front="str"), Message(1, data=b"d" * 10, tid=4)]
    return msgs


@pytest.mark.parametrize("lossless", [False, True])
def test_unframeable_messages_are_dropped_and_the_rest_arrive_in_order(lossless):
    pols = ({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()}) \
        if lossless else ({}, {})
    p = MachinePair.create(*pols)
    p.start()
    p.pump()
    for m in _bad_batch():
        p.client.send_message(m)
    p.pump()
    got = [e for e in p.server_events if isinstance(e, Message)]
    assert [m.tid for m in got] == [1, 2, 3, 4]
    assert [m.seq for m in got] == [1, 2, 3, 4]
    assert got[2].data == bytes(COPY_LIMIT + 1) and got[3].data == b"d" * 10
    assert p.client.invalid_dropped == 3
    assert not [e for e in p.client_events + p.server_events if isinstance(e, Faulted)]
    assert p.client.session.stream.out_seq == 4 and p.client.session.stream.out.count == 0
    if lossless:
        assert not p.client.session.stream.sent          # the 4 framed ones were acked, nothing else
    p.client.send_message(Message(1, tid=5))    # the session goes on
    p.pump()
    assert [e.tid for e in p.server_events if isinstance(e, Message)][-1] == 5


def test_a_batch_without_a_bad_message_re_raises(monkeypatch):
    """An error no message explains is not swallowed: it is the caller's fault to handle."""
    p = MachinePair.create()
    p.start()
    p.pump()
    p.client.send_message(Message(1, tid=1))

    def boom(*a):
        raise RuntimeError("not a message's fault")
    monkeypatch.setattr("msgr.protocol.tx._native.fill_message_frames", boom)
    with pytest.raises(RuntimeError):
        p.client.data_to_send(1.0)


def test_wire_error_never_raises():
    mv = memoryview(b"abc")
    m = Message(1, front=mv)
    mv.release()
    assert "front" in wire_error(m)
    assert "front" in wire_error(changed(Message(1), front=""))   # a str, even empty


def test_large_segment_whose_len_is_not_its_size_is_dropped():
    p = MachinePair.create()
    p.start()
    p.pump()
    lying = memoryview(array("i", [0]) * (COPY_LIMIT + 10))      # len() items, 4 bytes each
    for m in (Message(1, tid=1), changed(Message(1, tid=99), data=lying), Message(1, tid=2)):
        p.client.send_message(m)
    p.pump()
    assert [e.tid for e in p.server_events if isinstance(e, Message)] == [1, 2]
    assert p.client.invalid_dropped == 1
    assert not [e for e in p.server_events if isinstance(e, Faulted)]


def test_requeued_messages_go_back_to_the_queue_they_came_from():
    """Replays sit in the highest queue whatever their own priority; a drop keeps them there."""
    p = MachinePair.create()
    p.start()
    p.pump()
    bad = Message(1, tid=99)
    bad.type = -1
    a, c = Message(1, priority=127, tid=1), Message(1, priority=196, tid=2)
    p.client.session.stream.out.push_front([a, c, bad], 255)
    p.client.send_message(Message(1, priority=196, tid=3))
    p.pump()
    assert [e.tid for e in p.server_events if isinstance(e, Message)] == [1, 2, 3]


def test_batch_bytes_count_a_message_read_after_an_ack():
    """An ACK frame yields no event; the MESSAGE after it still counts in last_batch_bytes."""
    p = MachinePair.create({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()})
    p.start()
    p.pump()

    def out(m):
        return b"".join(bytes(b) for b in m.data_to_send(1.0))
    p.client.send_message(Message(1, front=b"abc", tid=2))
    wire = out(p.client)                                   # MESSAGE
    p.server.send_message(Message(1, tid=1))
    p.client.receive_data(out(p.server), 1.0)
    assert [e.tid for e in p.client.next_events()] == [1]
    wire += out(p.client)                                  # ACK (no message to carry it)
    p.client.send_message(Message(1, data=b"12345", tid=3))
    wire += out(p.client)                                  # MESSAGE
    p.server.receive_data(wire, 1.0)
    evs = p.server.next_events()
    assert [e.tid for e in evs] == [2, 3]
    assert p.server.last_batch_bytes == 8


class _Index:
    """An int-like field value (as numpy's integers are): has __index__, is not an int."""

    def __index__(self):
        return 5


def test_int_like_fields_are_taken_and_framed():
    m = Message(1, tid=_Index(), version=_Index())
    assert wire_error(m) is None
    p = MachinePair.create()
    p.start()
    p.pump()
    p.client.send_message(m)
    p.pump()
    got = [e for e in p.server_events if isinstance(e, Message)]
    assert [(g.tid, g.version) for g in got] == [(5, 5)]
