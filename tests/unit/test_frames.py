"""Frame building against the byte vectors of reference/msgr2.md, and parsing back."""
from array import array

import pytest

from msgr import _native
from msgr.entity import EntityAddr
from msgr.protocol.frames import HEADER2, Tag, control_frame, message_frame, segment_offsets
from msgr.protocol.payloads import Hello, encode_hello

HELLO_PREAMBLE = bytes.fromhex("0101240000000800" + "00" * 20 + "3fbd6b06")
HELLO_PAYLOAD = bytes.fromhex("08010101" "1c000000" "02000000" "00000000" "10000000"
                              "0200" "0ce4" "7f000001" "0000000000000000")
HELLO_CRC = bytes.fromhex("7d883e07")


def test_hello_payload_vector():
    assert encode_hello(Hello(8, EntityAddr.parse("v2:127.0.0.1:3300/0"))) == HELLO_PAYLOAD


def test_hello_rev1_vector():
    frame = control_frame(Tag.HELLO, HELLO_PAYLOAD, rev1=True)
    assert len(frame) == 72
    assert frame == HELLO_PREAMBLE + HELLO_PAYLOAD + HELLO_CRC


def test_hello_rev0_vector():
    frame = control_frame(Tag.HELLO, HELLO_PAYLOAD, rev1=False)
    assert len(frame) == 85
    assert frame == HELLO_PREAMBLE + HELLO_PAYLOAD + b"\0" + HELLO_CRC + bytes(12)


def test_wait_vectors():
    rev1 = control_frame(Tag.WAIT, b"", rev1=True)
    assert len(rev1) == 32 and rev1[:2] == b"\x10\x01" and rev1[-4:] == bytes.fromhex("c8e3aab0")
    rev0 = control_frame(Tag.WAIT, b"", rev1=False)
    assert rev0 == rev1 + b"\0" + bytes.fromhex("ffffffff") + bytes(12)


def scan(buf: bytes, rev1: bool):
    out = array("q", bytes(8 * 8 * 16))
    n, status, pos, need = _native.scan_frames(buf, 0, len(buf), rev1, 1 << 30, out, 16)
    return [tuple(out[i * 8:i * 8 + 8]) for i in range(n)], status, pos, need


@pytest.mark.parametrize("rev1", [True, False])
@pytest.mark.parametrize("sizes", [(0, 0, 0), (5, 0, 0), (0, 0, 9), (3, 4, 5), (100000, 0, 70000)])
def test_message_frame_round_trip(rev1, sizes):
    front, middle, data = (bytes([i + 1]) * n for i, n in enumerate(sizes))
    hdr = HEADER2.pack(7, 99, 42, 127, 1, 0, 0, 3, 3, 1, 0)
    buf = b"".join(bytes(b) for b in message_frame(hdr, front, middle, data, rev1))
    recs, status, pos, need = scan(buf, rev1)
    assert status == 0 and pos == len(buf) and len(recs) == 1
    start, tag, nseg, *lens, flags = recs[0]
    assert tag == Tag.MESSAGE and flags == 0
    assert lens == [41, *sizes][:4]
    offs = segment_offsets(start, tuple(lens), rev1)
    assert buf[offs[0]:offs[0] + 41] == hdr
    for seg, off, n in zip((front, middle, data), offs[1:], sizes):
        assert buf[off:off + n] == seg


def test_large_segment_is_referenced_not_copied():
    data = bytearray(1 << 20)
    parts = message_frame(HEADER2.pack(1, 0, 1, 127, 1, 0, 0, 0, 3, 1, 0), b"", b"", data, True)
    assert any(p is data for p in parts)
