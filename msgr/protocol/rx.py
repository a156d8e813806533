"""RxStream: the receive side of one transport (buffers, scanning, decoding).

Bytes land in one receive buffer (``get_recv_buffer`` + ``commit``), which
starts small and doubles on full reads. One native call (``scan_frames``)
finds every complete frame in it and checks their CRCs; the stream then hands
out the records one at a time (:meth:`RxStream.record`, :meth:`control_payload`,
:meth:`message`) or decodes a run of MESSAGE frames in a tight loop
(:meth:`decode_run`, the hot path: :func:`msgr._native.decode.decode_run`, compiled
when built). It knows frames, not states: what a frame means is the machine's
business (:mod:`msgr.protocol.machine`).

Segments under ``ZERO_COPY_MIN`` bytes are copied out as ``bytes``; larger ones
are handed out as memoryviews and the buffer is given away with them, so a
large data segment is never copied. Given-away buffers go to the messenger's
:class:`~msgr.bufpool.BufferPool` (``params.buffer_pool``), which hands them
out again once the user has dropped every view of them, so a stream of large
messages does not pay for a fresh zeroed buffer (and its page faults) each.
"""
from __future__ import annotations

from .. import _native
from ..errors import Reason, RemoteProtocolError
from ..message import Message
from .frames import HEADER2_SIZE, PREAMBLE_SIZE
from .handshake import BANNER_PREFIX

__all__ = ["RxStream", "ZERO_COPY_MIN", "RX_INITIAL", "MAX_RECORDS", "EVENTS_PER_CALL"]

ZERO_COPY_MIN = 128 * 1024
RX_INITIAL = 16 * 1024     # a new connection's receive buffer; grows on full reads
MAX_RECORDS = 64
# Messages one next_events() call returns, at most (about: a scan's records are
# finished first). A bounded batch keeps few received Messages alive at once, so
# most die before the cyclic GC's youngest generation fills (700 objects) and
# are never traversed or promoted: 64 B decode 1150 -> 1026 ns (A/B, one process).
EVENTS_PER_CALL = MAX_RECORDS
_SCAN_ERRORS = {
    _native.SCAN_BAD_PREAMBLE_CRC: ("bad preamble crc", Reason.BAD_CRC),
    _native.SCAN_BAD_SEGMENT_COUNT: ("bad segment count", Reason.BAD_FRAME),
    _native.SCAN_SEGMENT_TOO_LARGE: ("segment larger than ms_max_segment_bytes", Reason.TOO_LARGE),
    _native.SCAN_BAD_SEGMENT_CRC: ("bad segment crc", Reason.BAD_CRC),
    _native.SCAN_BAD_LATE_STATUS: ("bad epilogue late status", Reason.BAD_FRAME),
}
_decode_run = _native.decode_run


class RxStream:
    """The receive buffer and frame records of one transport.

    Args:
        recv_buffer_bytes: the everyday buffer's largest size.
        max_segment_bytes: the largest segment a frame may carry.
        buffer_pool: a :class:`~msgr.bufpool.BufferPool` for large buffers, or None.

    Attributes:
        rev1: msgr2.1 framing (set once the banners are exchanged).
        stamp: the time of the last read: ``recv_stamp`` of what is decoded.
        source, owner: ``source`` and ``connection`` of the messages decoded
            (the peer's name once known; the owner's handle).
    """

    def __init__(self, recv_buffer_bytes: int, max_segment_bytes: int, buffer_pool=None) -> None:
        self._max_buf = recv_buffer_bytes
        self._max_segment = max_segment_bytes
        self._pool = buffer_pool
        self._target = min(RX_INITIAL, recv_buffer_bytes)
        self._rx = bytearray(self._target)
        self._rxmv = memoryview(self._rx)
        self._view_len = 0
        self._rpos = self._wpos = 0
        self._donated = False
        self._scanner = _native.Scanner(MAX_RECORDS)
        self._recs = self._scanner.recs
        self._nrec = self._irec = 0
        self._scan_end = -1
        self._need = 0
        self._scan_status = 0
        self.rev1 = False
        self.stamp = 0.0
        self.source = None
        self.owner = None

    # ----------------------------------------------------------------- bytes in
    def get_recv_buffer(self) -> memoryview:
        """A writable view where the owner may read up to ``len(view)`` bytes.

        An empty buffer larger than ``recv_buffer_bytes`` (grown for a large
        frame) is swapped for an everyday one here.
        """
        need = max(self._need, PREAMBLE_SIZE)
        rx = self._rx
        if self._donated or len(rx) - self._rpos < need or self._wpos == len(rx) or \
                (self._rpos == self._wpos and len(rx) > self._max_buf):
            self._compact(need)
        view = self._rxmv[self._wpos:]
        self._view_len = len(view)
        return view

    def commit(self, n: int, now: float) -> None:
        """``n`` bytes were written into the view from ``get_recv_buffer`` at ``now``.

        A read that fills the whole view doubles the buffer for the next one
        (up to ``recv_buffer_bytes``): idle connections keep a small buffer,
        busy ones read many frames per call.
        """
        self._wpos += n
        self.stamp = now
        if n == self._view_len and self._target < self._max_buf:
            self._target = min(2 * self._target, self._max_buf)

    def _compact(self, need: int) -> None:
        """Moves the unread bytes to the front of a buffer with room for ``need`` more.

        The current buffer is kept unless it was given away (a large segment
        is a view of it) or is the wrong size: too small, or over twice the
        size wanted and over ``recv_buffer_bytes`` (a buffer grown for a large
        frame does not stay a connection's everyday one). After a large frame
        the next buffer is as large again (large messages tend to come in
        runs), taken from the pool when one is free.
        """
        pending = self._wpos - self._rpos
        size = max(self._target, need, pending + PREAMBLE_SIZE)
        rx, pool = self._rx, self._pool
        if self._donated and pool is not None and len(rx) <= pool.max_bytes:
            size = max(size, len(rx))
        if not self._donated and self._rpos and \
                size <= len(rx) <= max(2 * size, self._max_buf):
            rx[:pending] = self._rxmv[self._rpos:self._wpos]
        else:
            old = self._rxmv[self._rpos:self._wpos]
            self._scanner.forget()
            self._rxmv = None
            if pool is not None and (self._donated or len(rx) > self._max_buf):
                pool.give(rx)
            self._rx = (pool is not None and size >= ZERO_COPY_MIN and pool.take(size)) \
                or bytearray(size)
            self._rx[:pending] = old
            self._rxmv = memoryview(self._rx)
            self._donated = False
        self._rpos, self._wpos = 0, pending
        self._nrec = self._irec = 0
        self._scan_end = -1

    @property
    def buffer_size(self) -> int:
        """The receive buffer's size now (bounded: tests check it)."""
        return len(self._rx)

    def idle(self) -> bool:
        """True when every frame was taken and no byte came since (the hot path's cheap check)."""
        return self._irec >= self._nrec and self._wpos == self._scan_end

    # ----------------------------------------------------------------- banner
    def banner(self) -> bytes | None:
        """The peer's banner payload once it is all here (not consumed yet), else None.

        Raises:
            RemoteProtocolError: it is no msgr2 banner.
        """
        got = self._rxmv[self._rpos:self._wpos]
        prefix_len = min(len(got), len(BANNER_PREFIX))
        if bytes(got[:prefix_len]) != BANNER_PREFIX[:prefix_len]:
            if bytes(got[:prefix_len]).startswith(b"ceph v0"):
                raise RemoteProtocolError("peer is using the msgr v1 protocol", Reason.BAD_BANNER)
            raise RemoteProtocolError(f"bad banner {bytes(got[:10])!r}", Reason.BAD_BANNER)
        if len(got) < len(BANNER_PREFIX) + 2:
            return None
        plen = int.from_bytes(got[8:10], "little")
        if not 16 <= plen <= 4096:
            raise RemoteProtocolError(f"banner payload length {plen}", Reason.BAD_BANNER)
        if len(got) < 10 + plen:
            return None
        return bytes(got[10:10 + plen])

    def take_banner(self, payload: bytes) -> None:
        """Consumes the banner :meth:`banner` returned."""
        self._rpos += 10 + len(payload)

    # ----------------------------------------------------------------- frames, one by one
    def record(self) -> tuple | None:
        """The next frame's ``(tag, aborted)``, scanning for it if need be; None when
        no complete frame is here. The frame stays until taken.

        Raises:
            RemoteProtocolError: the bytes at the read position are no valid frame.
        """
        if self._irec >= self._nrec and not self._scan():
            return None
        b = self._irec * 8
        return self._recs[b + 1], bool(self._recs[b + 7] & _native.FLAG_ABORTED)

    def skip(self) -> None:
        """Consumes the current frame unread (an aborted one)."""
        start, nseg, lens = self._current()
        self._rpos = self._frame_end(start, nseg, lens)

    def control_payload(self, name: str, one_segment: bool = True) -> bytes:
        """Consumes the current frame and returns its first segment (a control
        frame's payload).

        Raises:
            RemoteProtocolError: ``one_segment`` and it has more than one.
        """
        start, nseg, lens = self._current()
        if one_segment and nseg != 1:
            raise RemoteProtocolError(f"control frame {name} with {nseg} segments",
                                      Reason.BAD_FRAME)
        self._rpos = self._frame_end(start, nseg, lens)
        off = start + PREAMBLE_SIZE
        return bytes(self._rxmv[off:off + lens[0]])

    def check_after(self) -> None:
        """After a control frame is handled: the scanner's error past the last frame,
        if that was the last one, is the peer's.

        Raises:
            RemoteProtocolError: the bytes after the frames taken are no valid frame.
        """
        if self._irec >= self._nrec and self._scan_status:
            what, reason = _SCAN_ERRORS[self._scan_status]
            raise RemoteProtocolError(f"frame after offset {self._rpos}: {what}", reason)

    def message(self, stream):
        """Consumes the current frame as a MESSAGE: the Message, or None for an old duplicate.

        Raises:
            RemoteProtocolError: its header segment has the wrong size.
        """
        r, b = self._recs, self._irec * 8
        if r[b + 3] != HEADER2_SIZE:
            self._irec += 1
            raise RemoteProtocolError(f"message header of {r[b + 3]} bytes", Reason.BAD_FRAME)
        out = []
        self._run(out, stream, self._irec + 1)
        return out[0] if out else None

    def _current(self) -> tuple:
        """Takes the current record: ``(start, nseg, lens)``."""
        r, b = self._recs, self._irec * 8
        self._irec += 1
        return r[b], r[b + 2], (r[b + 3], r[b + 4], r[b + 5], r[b + 6])

    # ----------------------------------------------------------------- the hot path
    def decode_run(self, out: list, stream) -> int:
        """Decodes the consecutive MESSAGE frames of the current scan into ``out``
        (scanning first if every record was taken); stops before any other frame
        (:meth:`pending` is then True).

        Returns:
            The payload bytes of the messages appended, or -1 when no complete
            frame was here at all.

        Raises:
            RemoteProtocolError: a scan found no valid frame at the read position.
        """
        if self._irec >= self._nrec and (self._wpos == self._scan_end or not self._scan()):
            return -1
        return self._run(out, stream, self._nrec)

    def _run(self, out: list, stream, stop: int) -> int:
        """``decode_run`` (native, or its twin) over records ``_irec .. stop - 1``."""
        irec, rpos, nbytes, donated = _decode_run(
            self._recs, self._irec, stop, self._rxmv, self.rev1, stream, self.source,
            self.owner, self.stamp, out, Message)
        self._irec = irec
        if rpos >= 0:
            self._rpos = rpos
        if donated:
            self._donated = True
        return nbytes

    def pending(self) -> bool:
        """True when a frame of the current scan is still to be taken."""
        return self._irec < self._nrec

    def _scan(self) -> bool:
        """Indexes the complete frames from the read position; False when there are none.

        A scan that recorded every complete frame (fewer than ``MAX_RECORDS``,
        no error) remembers the write position: until more bytes arrive,
        scanning again would find nothing, so it is skipped.
        """
        if self._wpos == self._scan_end:
            return False
        n, status, pos, need = self._scanner.scan(
            self._rx, self._rpos, self._wpos, self.rev1, self._max_segment)
        self._nrec, self._irec, self._need = n, 0, need
        if n == 0 and status:
            what, reason = _SCAN_ERRORS[status]
            raise RemoteProtocolError(f"frame at offset {pos}: {what}", reason)
        self._scan_status = status
        self._scan_end = self._wpos if n < MAX_RECORDS and not status else -1
        return n > 0

    def _frame_end(self, start: int, nseg: int, lens: tuple) -> int:
        size = PREAMBLE_SIZE + lens[0] + lens[1] + lens[2] + lens[3]
        if self.rev1:
            return start + size + (4 if lens[0] else 0) + (13 if nseg > 1 else 0)
        return start + size + 17
