"""cffi backend of :mod:`msgr._native` (the compiled ``msgr._native._cffi``).

Thin wrappers: one C call per operation on a whole buffer or batch, never
per item.  cffi releases the GIL around every call, so a CRC or scan of a
large buffer runs in parallel with other Python threads, and
:meth:`RingSet.wait` sleeps in the kernel without holding the GIL.

Importing this module raises ImportError when the extension is not built
(``python cffi_build/build_native.py``).
"""

from __future__ import annotations

import time
from array import array as _array
from typing import Any, List, Optional, Sequence

from ._cffi import ffi, lib
from .pure import check_scan_args
from .pure_ring import ring_capacity

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

BACKEND = "cffi"

SCAN_OK = lib.MSGR_SCAN_OK
SCAN_BAD_PREAMBLE_CRC = lib.MSGR_SCAN_BAD_PREAMBLE_CRC
SCAN_BAD_SEGMENT_COUNT = lib.MSGR_SCAN_BAD_SEGMENT_COUNT
SCAN_SEGMENT_TOO_LARGE = lib.MSGR_SCAN_SEGMENT_TOO_LARGE
SCAN_BAD_SEGMENT_CRC = lib.MSGR_SCAN_BAD_SEGMENT_CRC
SCAN_BAD_LATE_STATUS = lib.MSGR_SCAN_BAD_LATE_STATUS
FRAME_RECORD_SIZE = lib.MSGR_FRAME_RECORD_SIZE
FLAG_ABORTED = lib.MSGR_FLAG_ABORTED

_from_buffer = ffi.from_buffer
_crc_hw = lib.msgr_crc32c
_crc_sw = lib.msgr_crc32c_sw
_scan = lib.msgr_scan_frames
_fill = lib.msgr_fill_message_frames
_publish = lib.msgr_ring_publish
_head = lib.msgr_ring_head
_wait = lib.msgr_ringset_wait
_unpack = ffi.unpack


def _crc(fn, seed: int, data: Any) -> int:
    if type(data) is bytes:  # passed to C as char* without a buffer export
        return fn(seed, data, len(data))
    buf = _from_buffer(data)
    return fn(seed, buf, len(buf))


def crc32c(seed: int, data: Any) -> int:
    """Ceph's ``ceph_crc32c``: raw CRC32C of ``data`` starting from ``seed``.

    Castagnoli polynomial (reflected 0x82F63B78), no initial or final
    inversion: the standard CRC-32C of ``x`` is
    ``crc32c(0xFFFFFFFF, x) ^ 0xFFFFFFFF``.  Uses carry-less multiply
    folding (AVX-512 VPCLMULQDQ, or PCLMULQDQ) for 128 bytes and more and the
    SSE4.2 crc32 instruction below, when the CPU has them, else slice-by-8
    tables; ``MSGR_CRC32C=table|crc32|pclmul|vpclmul`` caps the level (tests).

    Args:
        seed: 32-bit starting value (0 .. 0xFFFFFFFF).
        data: any C-contiguous bytes-like object.

    Returns:
        The 32-bit CRC.

    Raises:
        OverflowError: ``seed`` does not fit in 32 unsigned bits.
        TypeError: ``data`` does not support the buffer protocol.
    """
    return _crc(_crc_hw, seed, data)


def fill_message_frames(buf: bytearray, lens: Sequence[int], n: int, rev1: bool) -> None:
    """Writes preambles, segment crcs and epilogues of ``n`` MESSAGE frames in ``buf``.

    The frames lie back to back from ``buf[0]`` and fill it exactly, each laid
    out as ``frames_build.c`` describes (placeholders included), with front,
    middle and data segments of ``lens[3k]``, ``lens[3k+1]`` and ``lens[3k+2]``
    bytes.
    A long ``lens`` is converted to an ``int64_t`` array in one step
    (``array('q')`` does it about 3x faster per item than cffi's list conversion).

    Raises:
        ValueError: a frame does not fit in ``buf``, the frames end before
            ``buf`` does, a length is out of range or not an int, or ``buf`` is
            not writable.
    """
    if len(lens) < 3 * n:
        raise ValueError("lens holds fewer than 3 * n lengths")
    if n <= 0:
        return
    try:
        # cffi converts a short list itself; a long one goes faster through array('q')
        if n <= 8 and type(lens) is list:
            clens = lens
        else:
            clens = _from_buffer("int64_t[]", _array("q", lens))
        cbuf = _from_buffer(buf) if type(buf) is bytearray else _from_buffer(buf, require_writable=True)
        r = _fill(cbuf, len(buf), clens, n, 1 if rev1 else 0)
    except (OverflowError, TypeError, BufferError) as e:
        raise ValueError(f"bad frame lengths or buffer: {e}") from None
    if r:
        raise ValueError(f"frame {-1 - r} does not fit in the buffer or is malformed")


def crc32c_sw(seed: int, data: Any) -> int:
    """:func:`crc32c` computed with the slice-by-8 tables only."""
    return _crc(_crc_sw, seed, data)


def scan_frames(buf: Any, start: int, end: int, rev1: bool, max_segment: int,
                out: Any, max_frames: int):
    """Validates and indexes the complete msgr2 crc-mode frames in a buffer.

    One C call for the whole buffer.  Same contract as
    :func:`msgr._native.pure.scan_frames`: records frame k at
    ``out[8k:8k+8] = [offset, tag, num_segments, len0..len3, flags]`` and
    returns ``(nframes, status, pos, need)``.

    Raises:
        ValueError: bad range, negative ``max_frames`` or ``out`` too small.
        TypeError: ``out`` is not a writable buffer.
    """
    cbuf = _from_buffer(buf)
    try:
        cout = _from_buffer("int64_t[]", out, require_writable=True)
    except BufferError as exc:
        raise TypeError("out must be a writable buffer") from exc
    check_scan_args(len(cbuf), start, end, len(cout) * 8, max_frames)
    result = ffi.new("int64_t[3]")
    nframes = _scan(cbuf, start, end, bool(rev1), max_segment, cout,
                    max_frames, result)
    return nframes, result[0], result[1], result[2]


class Scanner:
    """:func:`scan_frames` with its own record table (see ``pure.Scanner``).

    The records live in C memory (``recs`` is an int64 view of it) next to the
    three result slots; the buffer last scanned keeps its exported C pointer
    (a bytearray cannot be resized while exported, so its length holds), so a
    rescan of the same buffer is a single C call.
    """

    __slots__ = ("max_frames", "recs", "_c", "_res", "_buf", "_cbuf", "_blen")

    def __init__(self, max_frames: int) -> None:
        if max_frames < 0:
            raise ValueError("max_frames must be >= 0")
        n = FRAME_RECORD_SIZE * max_frames
        self.max_frames = max_frames
        self._c = ffi.new("int64_t[]", n + 3)
        self._res = self._c + n
        self.recs = memoryview(ffi.buffer(self._c, 8 * n)).cast("q")
        self._buf = self._cbuf = None
        self._blen = 0

    def forget(self) -> None:
        """Drops the cached buffer and its export (the owner moved to another buffer)."""
        self._buf = self._cbuf = None

    def scan(self, buf: Any, start: int, end: int, rev1: bool, max_segment: int):
        """``scan_frames(buf, start, end, rev1, max_segment, self.recs, self.max_frames)``."""
        if buf is not self._buf:
            cbuf = _from_buffer(buf)
            self._buf, self._cbuf, self._blen = buf, cbuf, len(cbuf)
        if not 0 <= start <= end <= self._blen:
            raise ValueError(f"bad scan range [{start}, {end}) for {self._blen} bytes")
        n = _scan(self._cbuf, start, end, rev1, max_segment, self._c, self.max_frames, self._res)
        r = self._res
        return n, r[0], r[1], r[2]


class RingSet:
    """N single-producer rings drained by one consumer thread.

    See :mod:`msgr._native` for the theory of operation.  The slots are
    Python lists; the C struct (cache-line aligned, freed with the object)
    holds the head/tail counters and the futex eventcount.

    Attributes:
        nrings: number of rings.
        capacity: slots per ring (a power of two).
        mask: ``capacity - 1``; slot of sequence number s is ``s & mask``.
        slots: ``slots[i]`` is ring i's list of ``capacity`` slots.
    """

    __slots__ = ("nrings", "capacity", "mask", "slots", "_rs", "_cheads",
                 "_ctails")

    def __init__(self, nrings: int, capacity: int) -> None:
        cap = ring_capacity(nrings, capacity)
        rs = lib.msgr_ringset_new(nrings)
        if rs == ffi.NULL:
            raise MemoryError("msgr_ringset_new failed")
        self._rs = ffi.gc(rs, lib.msgr_ringset_free)
        self.nrings = nrings
        self.capacity = cap
        self.mask = cap - 1
        self.slots: List[list] = [[None] * cap for _ in range(nrings)]
        # Consumer-only scratch arrays (wait() has a single caller thread).
        self._cheads = ffi.new("uint64_t[]", nrings)
        self._ctails = ffi.new("uint64_t[]", nrings)

    def publish(self, i: int, tail: int) -> None:
        """Producer of ring i: makes items [old tail, tail) visible.

        Enters the kernel (futex wake) only if the consumer sleeps.

        Raises:
            IndexError: no ring i.
            ValueError: ``tail`` is below the last published tail.
        """
        try:
            rc = _publish(self._rs, i, tail)
        except OverflowError:
            rc = -1 if not 0 <= i < self.nrings else -2
        if rc:
            if rc == -1:
                raise IndexError(f"no ring {i}")
            raise ValueError(f"ring {i}: tail {tail} below published tail")

    def head(self, i: int) -> int:
        """Producer of ring i: items the consumer has released (acquire).

        Raises:
            IndexError: no ring i.
        """
        if not 0 <= i < self.nrings:
            raise IndexError(f"no ring {i}")
        return _head(self._rs, i)

    def wait(self, heads: Sequence[int],
             timeout: Optional[float] = None) -> Optional[List[int]]:
        """Consumer: releases ``heads`` and waits for items without the GIL.

        Args:
            heads: per ring, the number of items consumed so far; slots below
                are handed back to the producers.
            timeout: seconds to wait; None waits forever.

        Returns:
            The list of current tails as soon as some ring has
            ``tail > head``; the tails (all equal to ``heads``) on timeout;
            None once the set is closed and every ring is drained.

        Raises:
            ValueError: ``len(heads) != nrings``.
            OverflowError: a head is negative.
        """
        n = self.nrings
        if len(heads) != n:
            raise ValueError("need one head per ring")
        cheads, ctails = self._cheads, self._ctails
        cheads[0:n] = heads
        if timeout is None:
            rc = _wait(self._rs, cheads, ctails, -1.0)
            while rc == 0:  # interrupted by a signal; handlers ran meanwhile
                rc = _wait(self._rs, cheads, ctails, -1.0)
        else:
            deadline = time.monotonic() + timeout
            rc = _wait(self._rs, cheads, ctails, max(timeout, 0.0))
            while rc == 0 and (left := deadline - time.monotonic()) > 0:
                rc = _wait(self._rs, cheads, ctails, left)
        if rc < 0:
            return None
        return _unpack(ctails, n)

    def close(self) -> None:
        """Marks the set closed and wakes the consumer (idempotent)."""
        lib.msgr_ringset_close(self._rs)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(lib.msgr_ringset_closed(self._rs))

    def _consumer_sleeping(self) -> bool:
        """Test hook: True while the consumer has announced it sleeps."""
        return bool(lib.msgr_ringset_sleeping(self._rs))
