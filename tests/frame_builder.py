"""A msgr2 frame builder for the native-code tests: preambles, frames, streams, records.

Built from the spec (reference/msgr2.md) in plain Python, independently of
the code under test, with the HELLO frame captured from a real ceph-mon.
"""
from __future__ import annotations

import array
import random
import struct

from msgr._native import pure

CRC_SEED = 0xFFFFFFFF

_crc = pure.crc32c


def make_preamble(tag, nseg, lens, aligns=None, tail_descs=None):
    """32-byte preamble with a correct crc; unused descriptors are zero
    unless ``tail_descs`` supplies (len, align) pairs for them."""
    descs = b""
    for i in range(4):
        if i < len(lens):
            descs += struct.pack("<IH", lens[i], aligns[i] if aligns else 8)
        elif tail_descs:
            descs += struct.pack("<IH", *tail_descs[i - len(lens)])
        else:
            descs += struct.pack("<IH", 0, 0)
    head = struct.pack("<BB", tag, nseg) + descs + b"\0\0"
    return head + struct.pack("<I", _crc(0, head))


def build_frame(tag, segments, rev1, late=None, aborted=False, aligns=None,
                tail_descs=None):
    """Builds one crc-mode msgr2 frame.

    Args:
        tag: frame tag.
        segments: 1..4 byte strings.
        rev1: msgr2.1 framing if True, else msgr2.0.
        late: rev1 late_status byte / rev0 late_flags byte; by default
            COMPLETE (0x0E) or aborted (0x01) for rev1, 0 or 1 for rev0.
        aborted: build an aborted frame (only used when ``late`` is None).
        aligns: alignments put in the descriptors (default 8).
        tail_descs: garbage (len, align) for the unused descriptors.
    """
    n = len(segments)
    pre = make_preamble(tag, n, [len(s) for s in segments], aligns, tail_descs)
    crcs = [_crc(CRC_SEED, s) for s in segments] + [0] * (4 - n)
    if rev1:
        body = segments[0]
        if segments[0]:
            body += struct.pack("<I", crcs[0])
        body += b"".join(segments[1:])
        if n > 1:
            status = late if late is not None else (0x01 if aborted else 0x0E)
            body += bytes([status]) + struct.pack("<3I", *crcs[1:4])
    else:
        flags = late if late is not None else (1 if aborted else 0)
        body = b"".join(segments) + bytes([flags]) + struct.pack("<4I", *crcs)
    return pre + body


def frame_size(lens, rev1):
    size = 32 + sum(lens)
    if not rev1:
        return size + 17
    return size + (4 if lens[0] else 0) + (13 if len(lens) > 1 else 0)


def expected_record(offset, tag, segments, flags=0):
    lens = [len(s) for s in segments] + [0] * (4 - len(segments))
    return [offset, tag, len(segments), *lens, flags]


def new_out(max_frames):
    return array.array("q", [-1] * (max_frames * 8))


def scan(nat, buf, rev1, start=0, end=None, max_segment=1 << 30,
         max_frames=64):
    """Runs scan_frames; returns (result tuple, list of records)."""
    out = new_out(max_frames)
    end = len(buf) if end is None else end
    res = nat.scan_frames(buf, start, end, rev1, max_segment, out, max_frames)
    recs = [list(out[8 * k:8 * k + 8]) for k in range(res[0])]
    return res, recs


# msgr2 spec vectors
HELLO_PREAMBLE = bytes.fromhex("0101240000000800" + "00" * 20)
HELLO_PAYLOAD = bytes.fromhex(
    "08010101" "1c000000" "02000000" "00000000" "10000000" "0200" "0ce4"
    "7f000001" "0000000000000000")
HELLO_REV1 = (HELLO_PREAMBLE + bytes.fromhex("3fbd6b06") + HELLO_PAYLOAD
              + bytes.fromhex("7d883e07"))
HELLO_REV0 = (HELLO_PREAMBLE + bytes.fromhex("3fbd6b06") + HELLO_PAYLOAD
              + bytes.fromhex("00" "7d883e07" + "00" * 12))
WAIT_REV1 = (bytes.fromhex("1001000000000800") + b"\0" * 20
             + bytes.fromhex("c8e3aab0"))
WAIT_REV0 = WAIT_REV1 + bytes.fromhex("00" "ffffffff" + "00" * 12)


def sample_frames():
    """(tag, segments, aborted) covering the interesting shapes."""
    rnd = random.Random(7)
    blob = lambda n: bytes(rnd.randrange(256) for _ in range(n))  # noqa: E731
    return [
        (0x01, [HELLO_PAYLOAD], False),
        (0x10, [b""], False),
        (0x11, [blob(5), blob(17)], False),
        (0x11, [blob(9), b"", b"", blob(3)], False),
        (0x11, [b"", b"", b"", blob(1)], False),
        (0x11, [blob(20), blob(4), blob(33)], True),
        (0x07, [blob(64)], False),
        (0x11, [b"", blob(8)], False),
    ]


def build_stream(rev1, frames=None):
    """Concatenated frames; returns (buffer, list of (offset, size, rec))."""
    buf, layout = b"", []
    for tag, segs, aborted in frames or sample_frames():
        frame = build_frame(tag, segs, rev1, aborted=aborted)
        flags = 1 if (aborted and (len(segs) > 1 or not rev1)) else 0
        layout.append((len(buf), len(frame),
                       expected_record(len(buf), tag, segs, flags)))
        buf += frame
    return buf, layout
