"""msgr2 frames in crc mode, revisions 0 (msgr2.0) and 1 (msgr2.1).

Theory of operation: a frame is a 32-byte preamble (tag, segment count, four
``{le32 length, le16 alignment}`` descriptors, two reserved bytes and
``crc32c(0, preamble[0:28])``) followed by up to four segments and their CRCs
(``crc32c(0xFFFFFFFF, segment)``):

* rev1: ``preamble | seg0 | crc(seg0) if len0 | seg1..3 | epilogue(13) if n > 1``
  where the epilogue is ``u8 late_status (0x0E complete) + le32 crc[3]``;
* rev0: ``preamble | seg0..n-1 | epilogue(17)`` always, with
  ``u8 late_flags + le32 crc[4]``.

Building returns a list of buffers for scatter/gather I/O; large segments are
referenced, never copied. Parsing is done for a whole receive buffer at once
by ``msgr._native.scan_frames`` (one C call), which checks every CRC.
"""
from __future__ import annotations

import struct
from enum import IntEnum

from .._native import crc32c

__all__ = ["Tag", "PREAMBLE_SIZE", "control_frame", "message_frame", "segment_offsets",
           "HEADER2", "HEADER2_SIZE", "ALIGN_DEFAULT", "ALIGN_DATA", "EMPTY_CRC"]


class Tag(IntEnum):
    """Frame tags (``src/msg/async/frames_v2.h``)."""

    HELLO = 1
    AUTH_REQUEST = 2
    AUTH_BAD_METHOD = 3
    AUTH_REPLY_MORE = 4
    AUTH_REQUEST_MORE = 5
    AUTH_DONE = 6
    AUTH_SIGNATURE = 7
    CLIENT_IDENT = 8
    SERVER_IDENT = 9
    IDENT_MISSING_FEATURES = 10
    SESSION_RECONNECT = 11
    SESSION_RESET = 12
    SESSION_RETRY = 13
    SESSION_RETRY_GLOBAL = 14
    SESSION_RECONNECT_OK = 15
    WAIT = 16
    MESSAGE = 17
    KEEPALIVE2 = 18
    KEEPALIVE2_ACK = 19
    ACK = 20
    COMPRESSION_REQUEST = 21
    COMPRESSION_DONE = 22


PREAMBLE_SIZE = 32
ALIGN_DEFAULT = 8          # segment_t::DEFAULT_ALIGNMENT (sizeof(void*))
ALIGN_DATA = 4096          # PAGE_SIZE_ALIGNMENT, message data
EMPTY_CRC = 0xFFFFFFFF     # crc32c(-1, b"")
LATE_STATUS_COMPLETE = 0x0E

# ceph_msg_header2: seq, tid, type, priority, version, data_pre_padding_len,
# data_off, ack_seq, flags, compat_version, reserved (41 bytes, packed)
HEADER2 = struct.Struct("<QQHHHIHQBHH")
HEADER2_SIZE = HEADER2.size
assert HEADER2_SIZE == 41

_PRE_HEAD = struct.Struct("<BB")
_DESC = struct.Struct("<IH")
_U32 = struct.Struct("<I")
_EPI_REV1 = struct.Struct("<BIII")
_EPI_REV0 = struct.Struct("<BIIII")
_PRE = struct.Struct("<BBIHIHIHIH2x")


def _preamble(tag: int, lens: tuple, aligns: tuple) -> bytes:
    nseg = len(lens)
    l4 = lens + (0,) * (4 - nseg)
    a4 = aligns + (0,) * (4 - nseg)
    body = _PRE.pack(tag, nseg, l4[0], a4[0], l4[1], a4[1], l4[2], a4[2], l4[3], a4[3])
    return body + _U32.pack(crc32c(0, body))


def control_frame(tag: int, payload: bytes, rev1: bool) -> bytes:
    """Builds a one-segment control frame as one bytes object.

    Args:
        tag: a :class:`Tag`.
        payload: the encoded payload (may be empty).
        rev1: msgr2.1 layout if True, else msgr2.0.
    """
    n = len(payload)
    pre = _preamble(tag, (n,), (ALIGN_DEFAULT,))
    crc = crc32c(0xFFFFFFFF, payload) if n else EMPTY_CRC
    if rev1:
        return pre + payload + _U32.pack(crc) if n else pre
    return pre + payload + _EPI_REV0.pack(0, crc, 0, 0, 0)


def message_frame(header: bytes, front, middle, data, rev1: bool,
                  copy_limit: int = 65536) -> list:
    """Builds a MESSAGE frame: header2 and the three payload segments.

    Args:
        header: the 41-byte ``ceph_msg_header2``.
        front, middle, data: bytes-like segments (a memoryview must be of bytes).
        rev1: msgr2.1 layout if True, else msgr2.0.
        copy_limit: segments up to this size are joined into the frame's own
            bytes; larger ones are referenced in the returned list (zero copy).

    Returns:
        A list of buffers whose concatenation is the frame.
    """
    segs = (header, front, middle, data)
    lens = [HEADER2_SIZE, len(front), len(middle), len(data)]
    nseg = 4
    while nseg > 1 and lens[nseg - 1] == 0:
        nseg -= 1
    crcs = [crc32c(0xFFFFFFFF, segs[i]) if lens[i] else EMPTY_CRC for i in range(nseg)]
    pre = _preamble(17, tuple(lens[:nseg]), (ALIGN_DEFAULT, ALIGN_DEFAULT, ALIGN_DEFAULT, ALIGN_DATA)[:nseg])
    parts = [pre, header]
    if rev1:
        parts.append(_U32.pack(crcs[0]))
    for i in range(1, nseg):
        if lens[i]:
            parts.append(segs[i])
    if rev1:
        if nseg > 1:
            c = crcs[1:] + [0] * (4 - nseg)
            parts.append(_EPI_REV1.pack(LATE_STATUS_COMPLETE, c[0], c[1], c[2]))
    else:
        c = crcs + [0] * (4 - nseg)
        parts.append(_EPI_REV0.pack(0, c[0], c[1], c[2], c[3]))
    return _coalesce(parts, copy_limit)


def _coalesce(parts: list, copy_limit: int) -> list:
    """Joins runs of small buffers; keeps buffers over ``copy_limit`` by reference."""
    out, run = [], []
    for p in parts:
        if len(p) > copy_limit:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(p)
        else:
            run.append(p)
    if run:
        out.append(b"".join(run) if len(run) > 1 else bytes(run[0]))
    return out


def segment_offsets(start: int, lens: tuple, rev1: bool) -> list[int]:
    """Offsets of segments 0..3 of a frame starting at ``start``."""
    off = start + PREAMBLE_SIZE
    out = []
    for i, n in enumerate(lens):
        out.append(off)
        off += n
        if rev1 and i == 0 and n:
            off += 4
    return out
