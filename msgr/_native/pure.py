"""Pure-Python backend of :mod:`msgr._native`.

Behaves exactly like :mod:`msgr._native.cffi_backend` (same names, same
results, same exceptions) and is used when the compiled extension is missing
or ``MSGR_NATIVE=0``.  It is a correctness fallback, not a fast path: the CRC
is a slice-by-8 table loop in Python (a few MB/s).

The module also holds the argument checks shared by both backends
(:func:`check_scan_args`, :func:`ring_capacity`).
"""

from __future__ import annotations

import struct
from array import array
from typing import Any, List, Sequence

__all__ = [
    "BACKEND",
    "FLAG_ABORTED",
    "FRAME_RECORD_SIZE",
    "RingSet",
    "SCAN_BAD_LATE_STATUS",
    "SCAN_BAD_PREAMBLE_CRC",
    "SCAN_BAD_SEGMENT_COUNT",
    "SCAN_BAD_SEGMENT_CRC",
    "SCAN_OK",
    "SCAN_SEGMENT_TOO_LARGE",
    "Scanner",
    "crc32c",
    "crc32c_sw",
    "fill_message_frames",
    "scan_frames",
]

BACKEND = "python"

SCAN_OK = 0
SCAN_BAD_PREAMBLE_CRC = 1
SCAN_BAD_SEGMENT_COUNT = 2
SCAN_SEGMENT_TOO_LARGE = 3
SCAN_BAD_SEGMENT_CRC = 4
SCAN_BAD_LATE_STATUS = 5
FRAME_RECORD_SIZE = 8
FLAG_ABORTED = 1

MAX_RINGS = 65536

# ---------------------------------------------------------------- CRC32C

_POLY = 0x82F63B78


def _make_tables() -> List[List[int]]:
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([t0[c & 0xFF] ^ (c >> 8) for c in prev])
    return tables


_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = _make_tables()
_Q = struct.Struct("<Q")


def _as_bytes_view(data: Any) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def crc32c(seed: int, data: Any) -> int:
    """Ceph's ``ceph_crc32c``: raw CRC32C of ``data`` starting from ``seed``.

    Castagnoli polynomial (reflected 0x82F63B78), no initial or final
    inversion: the standard CRC-32C of ``x`` is
    ``crc32c(0xFFFFFFFF, x) ^ 0xFFFFFFFF``.

    Args:
        seed: 32-bit starting value (0 .. 0xFFFFFFFF).
        data: any C-contiguous bytes-like object.

    Returns:
        The 32-bit CRC.

    Raises:
        OverflowError: ``seed`` does not fit in 32 unsigned bits.
        TypeError: ``data`` does not support the buffer protocol.
    """
    if not 0 <= seed <= 0xFFFFFFFF:
        raise OverflowError("crc32c seed must fit in 32 unsigned bits")
    view = _as_bytes_view(data)
    n8 = len(view) & ~7
    t0, t1, t2, t3, t4, t5, t6, t7 = _T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7
    crc = seed
    for (word,) in _Q.iter_unpack(view[:n8]):
        x = word ^ crc
        crc = (t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF]
               ^ t4[(x >> 24) & 0xFF] ^ t3[(x >> 32) & 0xFF]
               ^ t2[(x >> 40) & 0xFF] ^ t1[(x >> 48) & 0xFF] ^ t0[x >> 56])
    for byte in view[n8:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


#: The table path; in this backend it is the only one.
crc32c_sw = crc32c

# ---------------------------------------------------------- frame scanner

_PREAMBLE = struct.Struct("<BB" + "IH" * 4 + "2xI")
_PREAMBLE_SIZE = 32
_PREAMBLE_CRC_SPAN = 28
_CRC_SIZE = 4
_EPILOGUE_REV1 = 13
_EPILOGUE_REV0 = 17
_LATE_STATUS_COMPLETE = 0x0E
_LATE_STATUS_ABORTED = 0x01
_U32 = struct.Struct("<I")
_RECORD = struct.Struct("=8q")


_ALIGN = (8, 8, 8, 4096)
_TAG_MESSAGE = 17
HEADER2_SIZE = 41   # ceph_msg_header2, as msgr.protocol.frames.HEADER2 (a unit test compares)


def fill_message_frames(buf: bytearray, lens: Sequence[int], n: int, rev1: bool) -> None:
    """Pure-Python twin of the native ``fill_message_frames`` (same layout, same checks)."""
    if len(lens) < 3 * n:
        raise ValueError("lens holds fewer than 3 * n lengths")
    if memoryview(buf).readonly:
        raise ValueError("bad frame lengths or buffer: the buffer is read-only")
    off = 0
    for k in range(n):
        seg = [HEADER2_SIZE, *lens[3 * k:3 * k + 3]]
        nseg = 4
        while nseg > 1 and seg[nseg - 1] == 0:
            nseg -= 1
        if not all(type(x) is int for x in seg):
            raise ValueError(f"bad frame lengths or buffer: frame {k} has a non-int length")
        size = 32 + sum(seg) + (4 + (13 if nseg > 1 else 0) if rev1 else 17)
        if off + size > len(buf) or min(seg) < 0 or max(seg) > 0xFFFFFFFF:
            raise ValueError(f"frame {k} does not fit in the buffer or is malformed")
        _fill_one(buf, off, _TAG_MESSAGE, nseg, seg, rev1)
        off += size
    if n > 0 and off != len(buf):
        raise ValueError(f"frame {n} does not fit in the buffer or is malformed "
                         f"(the frames end at {off} of {len(buf)} bytes)")


def _fill_one(buf, off: int, tag: int, nseg: int, lens, rev1: bool) -> None:
    p, crcs = off + 32, [0, 0, 0, 0]
    for i in range(nseg):
        crcs[i] = crc32c(0xFFFFFFFF, memoryview(buf)[p:p + lens[i]])
        p += lens[i]
        if rev1 and i == 0 and lens[0]:
            struct.pack_into("<I", buf, p, crcs[0])
            p += 4
    pre = bytearray(28)
    pre[0], pre[1] = tag, nseg
    for i in range(nseg):
        struct.pack_into("<IH", pre, 2 + 6 * i, lens[i], _ALIGN[i])
    buf[off:off + 28] = pre
    struct.pack_into("<I", buf, off + 28, crc32c(0, pre))
    if rev1:
        if nseg > 1:
            struct.pack_into("<BIII", buf, p, 0x0E, *crcs[1:])
    else:
        struct.pack_into("<BIIII", buf, p, 0, *crcs)


def check_scan_args(nbytes: int, start: int, end: int, out_bytes: int,
                    max_frames: int) -> None:
    """Validates :func:`scan_frames` arguments (shared by both backends).

    Raises:
        ValueError: the range is outside the buffer or ``out`` is too small.
    """
    if not 0 <= start <= end <= nbytes:
        raise ValueError(f"bad scan range [{start}, {end}) for {nbytes} bytes")
    if max_frames < 0:
        raise ValueError("max_frames must be >= 0")
    if out_bytes < max_frames * FRAME_RECORD_SIZE * 8:
        raise ValueError("out holds fewer than max_frames * 8 int64 items")


def _onwire_size(lens: Sequence[int], rev1: bool) -> int:
    size = _PREAMBLE_SIZE + sum(lens)
    if not rev1:
        return size + _EPILOGUE_REV0
    if lens[0] > 0:
        size += _CRC_SIZE
    if len(lens) > 1:
        size += _EPILOGUE_REV1
    return size


def _parse_preamble(view: memoryview, pos: int, rev1: bool,
                    max_segment: int):
    """Returns ``(status, tag, lens, size)`` for the preamble at ``pos``."""
    fields = _PREAMBLE.unpack_from(view, pos)
    if crc32c(0, view[pos:pos + _PREAMBLE_CRC_SPAN]) != fields[10]:
        return SCAN_BAD_PREAMBLE_CRC, 0, (), 0
    tag, nseg = fields[0], fields[1]
    if not 1 <= nseg <= 4:
        return SCAN_BAD_SEGMENT_COUNT, 0, (), 0
    lens = fields[2:2 + 2 * nseg:2]
    if nseg > 1 and lens[-1] == 0:
        return SCAN_BAD_SEGMENT_COUNT, 0, (), 0
    if any(n > max_segment for n in lens):
        return SCAN_SEGMENT_TOO_LARGE, 0, (), 0
    return SCAN_OK, tag, lens, _onwire_size(lens, rev1)


def _crc_matches(view: memoryview, off: int, length: int, crc_at: int) -> bool:
    return (crc32c(0xFFFFFFFF, view[off:off + length])
            == _U32.unpack_from(view, crc_at)[0])


def _check_rev1(view: memoryview, pos: int, lens: Sequence[int], size: int):
    """Returns ``(status, flags)`` for the complete rev1 frame at ``pos``."""
    off = pos + _PREAMBLE_SIZE
    epi = pos + size - _EPILOGUE_REV1
    if lens[0] > 0:
        if not _crc_matches(view, off, lens[0], off + lens[0]):
            return SCAN_BAD_SEGMENT_CRC, 0
        off += lens[0] + _CRC_SIZE
    if len(lens) == 1:
        return SCAN_OK, 0
    for i in range(1, len(lens)):
        if not _crc_matches(view, off, lens[i], epi + 1 + _CRC_SIZE * (i - 1)):
            return SCAN_BAD_SEGMENT_CRC, 0
        off += lens[i]
    late = view[epi] & 0x0F
    if late == _LATE_STATUS_ABORTED:
        return SCAN_OK, FLAG_ABORTED
    if late != _LATE_STATUS_COMPLETE:
        return SCAN_BAD_LATE_STATUS, 0
    return SCAN_OK, 0


def _check_rev0(view: memoryview, pos: int, lens: Sequence[int], size: int):
    """Returns ``(status, flags)`` for the complete rev0 frame at ``pos``."""
    off = pos + _PREAMBLE_SIZE
    epi = pos + size - _EPILOGUE_REV0
    for i, length in enumerate(lens):
        if not _crc_matches(view, off, length, epi + 1 + _CRC_SIZE * i):
            return SCAN_BAD_SEGMENT_CRC, 0
        off += length
    return SCAN_OK, FLAG_ABORTED if view[epi] & 1 else 0


def scan_frames(buf: Any, start: int, end: int, rev1: bool, max_segment: int,
                out: Any, max_frames: int):
    """Validates and indexes the complete msgr2 crc-mode frames in a buffer.

    Scans ``buf[start:end]`` from ``start``, frame after frame, and stops at
    ``end``, at an incomplete frame, at an invalid frame, or after
    ``max_frames`` frames.  Never reads outside ``[start, end)``.

    Args:
        buf: bytes-like object (bytes, bytearray, memoryview, read-only ok).
        start: offset of the first frame.
        end: offset just past the received data.
        rev1: True for msgr2.1 framing, False for msgr2.0.
        max_segment: largest segment length accepted.
        out: writable int64 buffer (``array.array('q')``) with room for
            ``max_frames * FRAME_RECORD_SIZE`` items.  Frame k is written
            to ``out[8k:8k+8] = [offset, tag, num_segments, len0, len1,
            len2, len3, flags]``; lengths of unused segments are 0; flags
            bit 0 (``FLAG_ABORTED``) marks a valid frame whose sender
            aborted it, whose content must be dropped.
        max_frames: maximum number of frames to record.

    Returns:
        ``(nframes, status, pos, need)``: frames recorded; ``SCAN_OK`` or the
        ``SCAN_*`` error of the frame at ``pos``; the offset just past the
        last recorded frame (``start`` if none); and, when status is OK and
        the scan stopped at an incomplete frame whose preamble is present
        and valid, that frame's total on-wire size, else 0.  A bad preamble
        is reported as soon as its 32 bytes are present.

    Raises:
        ValueError: bad range, negative ``max_frames`` or ``out`` too small.
        TypeError: ``out`` is not a writable buffer.
    """
    view = _as_bytes_view(buf)
    out_view = memoryview(out)
    if out_view.readonly:
        raise TypeError("out must be a writable buffer")
    check_scan_args(len(view), start, end, out_view.nbytes, max_frames)
    pos, nframes, status, need = start, 0, SCAN_OK, 0
    while nframes < max_frames and end - pos >= _PREAMBLE_SIZE:
        status, tag, lens, size = _parse_preamble(view, pos, rev1, max_segment)
        if status != SCAN_OK:
            break
        if end - pos < size:
            need = size
            break
        check = _check_rev1 if rev1 else _check_rev0
        status, flags = check(view, pos, lens, size)
        if status != SCAN_OK:
            break
        padded = tuple(lens) + (0,) * (4 - len(lens))
        _RECORD.pack_into(out_view, 64 * nframes, pos, tag, len(lens),
                          *padded, flags)
        nframes += 1
        pos += size
    return nframes, status, pos, need


from .pure_ring import RingSet  # noqa: E402,F401  (re-exported)


class Scanner:
    """:func:`scan_frames` with its own record table: the receive hot path's form.

    ``recs`` holds ``max_frames`` records of ``FRAME_RECORD_SIZE`` int64 (index
    it, or ``struct.unpack_from`` it at ``64 * k``); :meth:`scan` has the
    contract of :func:`scan_frames` writing into ``recs``. The cffi twin keeps
    the C pointer of the buffer it last scanned, so scanning the same buffer
    again costs one C call and no buffer export.
    """

    __slots__ = ("max_frames", "recs")

    def __init__(self, max_frames: int) -> None:
        if max_frames < 0:
            raise ValueError("max_frames must be >= 0")
        self.max_frames = max_frames
        self.recs = array("q", bytes(8 * FRAME_RECORD_SIZE * max_frames))

    def forget(self) -> None:
        """Drops any cached reference to the last buffer (none here; see the cffi twin)."""

    def scan(self, buf: Any, start: int, end: int, rev1: bool, max_segment: int):
        """``scan_frames(buf, start, end, rev1, max_segment, self.recs, self.max_frames)``."""
        return scan_frames(buf, start, end, rev1, max_segment, self.recs, self.max_frames)
