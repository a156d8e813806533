"""Hostile peers (Hypothesis): typed faults, never an exception, never a changed message.

Three kinds of input, each fed in random chunks to a server machine whose session is up:

- a valid stream of MESSAGE frames, then one byte flipped, bytes inserted or deleted, or the
  stream cut short. The CRCs catch the change, so no altered message is ever delivered (the
  few epilogue bits no CRC covers change nothing, or abort one frame);
- well-framed control frames (correct CRCs) with any tag and any payload, which a buggy or
  malicious peer could send: the machine reacts as the protocol says or faults cleanly;
- MESSAGE frames with any header and segments (correct CRCs): delivered in seq order, or
  dropped as old.

And the handshake, both ways: a recorded conversation replayed to a fresh machine with one
frame's payload changed (bytes flipped, cut, added or replaced) and its CRC made right again,
so the change reaches the decoders.

Every case also checks that at most one fault is reported, that it carries a MsgrError, that
nothing comes out after it, and that the receive buffer stays bounded.
``FUZZ_EXAMPLES=N`` draws N examples per test instead of 300.
"""
import os

from hypothesis import event, given, settings
from hypothesis import strategies as st

from msgr import Message, MsgrError, Policy
from msgr.protocol.events import Faulted, SessionRequest
from msgr.protocol.frames import (HEADER2, PREAMBLE_SIZE, Tag, _preamble, control_frame,
                                  message_frame)
from msgr.protocol.machine import ProtocolMachine
from msgr.protocol.states import ConnState
from msgr.testing.pair import MachinePair, default_arbiter, make_params

MAX_SEGMENT = 64 * 1024
RECV_BUFFER = 64 * 1024                     # the everyday buffer's largest size
RX_BOUND = 4 * MAX_SEGMENT + 4096           # a frame of four maximal segments, plus its framing
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)), deadline=None)


def ready_server(rev1: bool, lossless: bool) -> MachinePair:
    """A client/server pair with the session up; the server bounds segments at MAX_SEGMENT."""
    policies = ({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()}) \
        if lossless else ({}, {})
    p = MachinePair.create({"rev1_allowed": rev1, **policies[0]},
                           {"rev1_allowed": rev1, "max_segment_bytes": MAX_SEGMENT,
                            "recv_buffer_bytes": RECV_BUFFER, **policies[1]})
    p.start()
    p.pump()
    assert p.server.state is ConnState.READY
    return p


def feed(machine, data: bytes, cuts: list) -> list:
    """Delivers ``data`` in pieces split at ``cuts`` (offsets) as a transport does: each
    piece is read into the machine's own buffer at most a buffer's room at a time, the
    events are drained after every read, and nothing is read once the machine is closed."""
    events, last = [], 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        piece, last = memoryview(data)[last:cut], cut
        while piece and machine.state is not ConnState.CLOSED:   # a closed socket is not read
            view = machine.get_recv_buffer()
            n = min(len(view), len(piece))
            view[:n] = piece[:n]
            machine.commit_recv(n, 1000.0)
            piece = piece[n:]
            while batch := machine.next_events():
                events.extend(batch)
                for ev in batch:
                    if isinstance(ev, SessionRequest):
                        machine.decide(default_arbiter(machine, ev))
                machine.data_to_send(1000.0)
    return events


def check_clean(machine, events: list) -> list:
    """The common promises; returns the delivered messages."""
    faults = [i for i, e in enumerate(events) if isinstance(e, Faulted)]
    assert len(faults) <= 1
    if faults:
        (i,) = faults
        assert isinstance(events[i].error, MsgrError)
        event(f"fault: {getattr(events[i].error, 'reason', type(events[i].error).__name__)}")
        assert machine.state is ConnState.CLOSED
        assert all(not isinstance(e, Message) for e in events[i + 1:])
    assert machine.rx.buffer_size <= RX_BOUND
    if faults:
        machine.receive_data(b"\x00" * 64)
        assert machine.next_events() == []
    if not faults:
        event("no fault")
    return [e for e in events if isinstance(e, Message)]


def wire(m: Message) -> tuple:
    """Every field the sender sets."""
    return (m.type, m.tid, m.priority, m.version, m.compat_version, m.data_off,
            bytes(m.front), bytes(m.middle), bytes(m.data))


segment = st.binary(max_size=300)
u16 = st.integers(0, 0xFFFF)
messages = st.lists(st.builds(
    Message, u16, segment, segment, segment, priority=st.integers(0, 255),
    tid=st.integers(0, (1 << 64) - 1), version=u16, compat_version=u16, data_off=u16),
    min_size=1, max_size=6)
mutation = st.one_of(
    st.just(("none",)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 40)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
)
cuts = st.lists(st.integers(0, 1 << 20), max_size=8)


def mutate(data: bytes, how: tuple) -> bytes:
    if how[0] == "none" or not data:
        return data
    pos = how[1] % len(data)
    if how[0] == "flip":
        return data[:pos] + bytes([data[pos] ^ how[2]]) + data[pos + 1:]
    if how[0] == "insert":
        return data[:pos] + how[2] + data[pos:]
    if how[0] == "delete":
        return data[:pos] + data[pos + how[2]:]
    return data[:pos]


def in_order_subset(got: list, sent: list) -> bool:
    it = iter(sent)
    return all(any(g == s for s in it) for g in got)


@FUZZ
@given(rev1=st.booleans(), lossless=st.booleans(), msgs=messages, how=mutation, cuts=cuts)
def test_a_changed_stream_never_delivers_a_changed_message(rev1, lossless, msgs, how, cuts):
    p = ready_server(rev1, lossless)
    for msg in msgs:
        p.client.send_message(msg)
    stream = b"".join(bytes(b) for b in p.client.data_to_send(1000.0))
    events = feed(p.server, mutate(stream, how), [c % (len(stream) + 1) for c in cuts])
    got = [wire(m) for m in check_clean(p.server, events)]
    originals = [wire(m) for m in sorted(msgs, key=lambda m: m.seq)]   # priority decides order
    assert in_order_subset(got, originals)
    if how[0] == "none":
        assert got == originals and p.server.state is ConnState.READY
    elif how[0] == "flip" and not any(isinstance(e, Faulted) for e in events):
        # a flip no CRC sees landed in an epilogue: in an unused CRC slot or an unused
        # bit of the late status (nothing changes), or on its "aborted" bit, which
        # drops that one frame, as Ceph does
        assert len(got) >= len(originals) - 1


READY_TAGS = st.sampled_from([int(Tag.KEEPALIVE2), int(Tag.KEEPALIVE2_ACK), int(Tag.ACK)])
@FUZZ
@given(rev1=st.booleans(), tag=st.sampled_from([int(Tag.MESSAGE), int(Tag.ACK), 99]),
       lens=st.lists(st.integers(0, (1 << 32) - 1), min_size=1, max_size=4),
       tail=st.integers(0, 5 * MAX_SEGMENT), cuts=cuts)
def test_a_preamble_claiming_large_segments_never_grows_the_buffer(rev1, tag, lens, tail, cuts):
    """A correct preamble CRC, any segment lengths, then up to 320 KiB of zeros: over the
    limit is a fault before the segments are read; under it, the buffer grows to hold that
    frame at most (``check_clean``'s bound)."""
    p = ready_server(rev1, False)
    stream = _preamble(tag, tuple(lens), (8,) * len(lens)) + bytes(tail)
    events = feed(p.server, stream, [c % (len(stream) + 1) for c in cuts])
    check_clean(p.server, events)
    if max(lens) > MAX_SEGMENT:      # too_large, or another reason found first
        assert any(isinstance(e, Faulted) for e in events)


TAGS = st.one_of(READY_TAGS, READY_TAGS, READY_TAGS,           # mostly what READY accepts,
                 st.sampled_from([int(t) for t in Tag]), st.integers(0, 255))   # then anything
PAYLOADS = st.one_of(st.binary(max_size=200), st.binary(min_size=8, max_size=8),
                     st.binary(min_size=16, max_size=16))   # 8 and 16: sizes some frames expect


@FUZZ
@given(rev1=st.booleans(), lossless=st.booleans(),
       frames=st.lists(st.tuples(TAGS, PAYLOADS), min_size=1, max_size=5),
       cuts=cuts)
def test_well_framed_control_frames_with_any_payload_fault_cleanly(rev1, lossless, frames, cuts):
    p = ready_server(rev1, lossless)
    stream = b"".join(control_frame(tag, payload, rev1) for tag, payload in frames)
    check_clean(p.server, feed(p.server, stream, [c % (len(stream) + 1) for c in cuts]))
    p.server.data_to_send(1000.0)          # whatever it answers (a KEEPALIVE_ACK, say) frames


header = st.tuples(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1),
                   st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                   st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF),
                   st.integers(0, (1 << 64) - 1), st.integers(0, 255), st.integers(0, 0xFFFF),
                   st.integers(0, 0xFFFF))


@FUZZ
@given(rev1=st.booleans(), lossless=st.booleans(),
       frames=st.lists(st.tuples(header, segment, segment, segment), min_size=1, max_size=5),
       cuts=cuts)
def test_message_frames_with_any_header_are_delivered_in_seq_order(rev1, lossless, frames, cuts):
    p = ready_server(rev1, lossless)
    parts = []
    for hdr, f, m, d in frames:
        parts += message_frame(HEADER2.pack(*hdr), f, m, d, rev1)
    stream = b"".join(bytes(x) for x in parts)
    got = check_clean(p.server, feed(p.server, stream, [c % (len(stream) + 1) for c in cuts]))
    seqs = [m.seq for m in got]
    assert seqs == sorted(set(seqs))                   # strictly increasing: old ones dropped
    for msg in got:
        assert (msg.tid, msg.type, bytes(msg.front), bytes(msg.middle), bytes(msg.data)) in \
            [(hdr[1], hdr[2], f, m, d) for hdr, f, m, d in frames if hdr[0] == msg.seq]


BANNER_SIZE = 26


def split_frames(data: bytes) -> list:
    """(tag, payload) of each one-segment msgr2.1 control frame in ``data``."""
    out, pos = [], 0
    while pos < len(data):
        tag, n = data[pos], int.from_bytes(data[pos + 2:pos + 6], "little")
        out.append((tag, data[pos + PREAMBLE_SIZE:pos + PREAMBLE_SIZE + n]))
        pos += PREAMBLE_SIZE + n + (4 if n else 0)
    return out


def recorded_handshake() -> tuple:
    """Each side's banner and control frames from a lossless client/server handshake."""
    p = MachinePair.create({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()})
    p.start()
    p.pump()
    sides = []
    for from_client in (True, False):
        data = b"".join(d for c, d in p.wire_log if c is from_client)
        sides.append((data[:BANNER_SIZE], split_frames(data[BANNER_SIZE:])))
    return sides


HANDSHAKE = recorded_handshake()
payload_change = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 16)),
    st.tuples(st.just("add"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("replace"), st.binary(max_size=64)),
)


def change(payload: bytes, how: tuple) -> bytes:
    if how[0] == "add":
        return payload + how[1]
    if how[0] == "replace":
        return how[1]
    if not payload:
        return payload
    pos = how[1] % len(payload)
    if how[0] == "flip":
        return payload[:pos] + bytes([payload[pos] ^ how[2]]) + payload[pos + 1:]
    return payload[:pos]


@FUZZ
@given(client_side=st.booleans(), which=st.integers(0, 15), how=st.one_of(st.none(), payload_change),
       cuts=cuts)
def test_a_changed_handshake_frame_faults_cleanly(client_side, which, how, cuts):
    """client_side: the client's frames go to a fresh server (else the server's to a client)."""
    banner, frames = HANDSHAKE[0 if client_side else 1]
    k = which % len(frames)
    stream = banner + b"".join(
        control_frame(tag, change(payload, how) if how and i == k else payload, True)
        for i, (tag, payload) in enumerate(frames))
    policy = Policy.stateful_server() if client_side else Policy.lossless_client()
    m = ProtocolMachine(make_params(not client_side, policy=policy), connecting=not client_side)
    m.start(1000.0)
    m.data_to_send(1000.0)
    events = feed(m, stream, [c % (len(stream) + 1) for c in cuts])
    check_clean(m, events)
    if how is None:
        assert m.state is ConnState.READY
    elif m.state not in (ConnState.READY, ConnState.CLOSED):     # stuck: the ready timeout ends it
        event(f"waiting in {m.state.name}")
        m.on_tick(m.next_deadline())
        assert [type(e) for e in m.next_events()] == [Faulted] and m.state is ConnState.CLOSED
