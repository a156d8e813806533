"""The compiled decoder and its pure twin give the same messages and the same session updates.

Streams of MESSAGE frames (and a few other frames among them) are built from
the spec with tests/frame_builder.py, scanned by the native scanner, and decoded
by both ``decode_run`` twins from the same records; every result, every
Message field and the MessageStream afterwards must agree.
"""
from __future__ import annotations

import os
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgr._native import Scanner
from msgr._native import decode as decode_py
from msgr._native import message as message_py
from msgr.protocol.frames import HEADER2
from msgr.protocol.session import MessageStream
from tests.frame_builder import build_frame

try:
    from msgr._native import _decode as decode_cy
    from msgr._native import _message as message_cy
except ImportError:                 # not built
    decode_cy = message_cy = None

TAG_MESSAGE, TAG_ACK = 17, 13
FIELDS = ("type", "front", "middle", "data", "priority", "tid", "version", "compat_version",
          "data_off", "seq", "source", "connection", "recv_stamp")


def compiled():
    if decode_cy is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled decoder (msgr._native._decode) is not built")
        pytest.skip("the compiled decoder is not built")
    return decode_cy, message_cy.Message


def message_frame(seq, ack, rev1, front=b"", middle=b"", data=b"", tid=0, type_=1, prio=127,
                  version=1, compat=1, data_off=0):
    hdr = HEADER2.pack(seq, tid, type_, prio, version, 0, data_off, ack, 3, compat, 0)
    segs = [hdr, front, middle, data]
    while len(segs) > 1 and not segs[-1]:
        segs.pop()
    return build_frame(TAG_MESSAGE, segs, rev1)


def decode_both(buf: bytes, rev1: bool, in_seq: int, lossy: bool, sent_seqs: list, stop=None):
    """Scans ``buf`` and decodes it with both twins; returns their (result, messages, stream)."""
    scanner = Scanner(64)
    n, status, _pos, _need = scanner.scan(bytearray(buf), 0, len(buf), rev1, 1 << 30)
    assert status == 0 or n > 0
    results = []
    for mod, cls in ((decode_py, message_py.Message), compiled()):
        stream = MessageStream(lossy)
        stream.in_seq = in_seq
        stream.sent = deque((s, None) for s in sent_seqs)
        out = []
        res = mod.decode_run(scanner.recs, 0, n if stop is None else stop, memoryview(buf), rev1,
                             stream, "osd.7", "conn", 12.5, out, cls)
        msgs = [tuple(getattr(m, f) for f in FIELDS) for m in out]
        results.append((res, msgs, (stream.in_seq, stream.ack_left, [s for s, _ in stream.sent])))
    return results


_bytes = st.binary(max_size=40)
_frame = st.fixed_dictionaries({
    "seq": st.integers(0, 40), "ack": st.integers(0, 40), "tid": st.integers(0, (1 << 64) - 1),
    "type_": st.integers(0, 65535), "prio": st.integers(0, 65535), "version": st.integers(0, 65535),
    "compat": st.integers(0, 65535), "data_off": st.integers(0, 65535),
    "front": _bytes, "middle": _bytes, "data": _bytes, "other": st.booleans()})


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, min_size=1, max_size=12), rev1=st.booleans(),
       in_seq=st.integers(0, 20), lossy=st.booleans(),
       sent=st.lists(st.integers(1, 40), max_size=6).map(sorted))
def test_both_decoders_agree(frames, rev1, in_seq, lossy, sent):
    buf = b""
    for f in frames:
        if f.pop("other"):          # an ACK frame: the run stops before it
            buf += build_frame(TAG_ACK, [f["ack"].to_bytes(8, "little")], rev1)
        else:
            buf += message_frame(rev1=rev1, **f)
    py, cy = decode_both(buf, rev1, in_seq, lossy, sent)
    assert py == cy


@pytest.mark.parametrize("rev1", [True, False])
def test_large_segments_are_views_in_both(rev1):
    big = os.urandom(200 * 1024)
    buf = message_frame(1, 0, rev1, front=b"f", data=big, tid=5) + \
        message_frame(2, 0, rev1, middle=b"m")
    py, cy = decode_both(buf, rev1, 0, False, [])
    assert py == cy
    (irec, rpos, nbytes, donated), msgs, _ = py
    assert (irec, rpos, nbytes, donated) == (2, len(buf), 1 + len(big) + 1, True)
    assert bytes(msgs[0][3]) == big and type(msgs[0][3]) is memoryview


def test_a_stop_limits_the_run_and_duplicates_are_dropped_but_acked():
    buf = b"".join(message_frame(s, s - 1, True, front=b"x") for s in (3, 4, 5, 6))
    py, cy = decode_both(buf, True, 4, False, [1, 2, 3, 4, 5], stop=3)
    assert py == cy
    (irec, _rpos, nbytes, _d), msgs, (in_seq, ack_left, sent) = py
    assert irec == 3 and [m[9] for m in msgs] == [5] and (in_seq, ack_left) == (5, 1)
    assert sent == [5] and nbytes == 1          # acks up to 4 trimmed seqs 1..4


def test_the_compiled_decoder_wants_the_compiled_message():
    mod, _cls = compiled()
    with pytest.raises(TypeError):
        mod.decode_run(Scanner(1).recs, 0, 0, memoryview(b""), True, MessageStream(True),
                       None, None, 0.0, [], message_py.Message)
