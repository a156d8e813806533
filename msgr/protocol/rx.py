"""RxMixin: the receive side of ProtocolMachine (buffers, scanning, decoding).

Bytes land in one receive buffer (``get_recv_buffer`` + ``commit_recv``), which
starts small and doubles on full reads. One native call (``scan_frames``)
finds every complete frame in it and checks their CRCs; the machine then walks
the records. MESSAGE frames in READY are decoded in a tight loop
(``next_events``); everything else goes through the transition table one frame
at a time (``next_event``). Segments under ``ZERO_COPY_MIN`` bytes are copied
out as ``bytes``; larger ones are handed out as memoryviews and the buffer is
given away with them, so a large data segment is never copied. Given-away
buffers go to the messenger's :class:`~msgr.bufpool.BufferPool`
(``params.buffer_pool``), which hands them out again once the user has dropped
every view of them, so a stream of large messages does not pay for a fresh
zeroed buffer (and its page faults) each.
"""
from __future__ import annotations

import struct

from .. import _native
from ..errors import MsgrError, Reason, RemoteProtocolError
from ..message import Message
from .events import NEED_DATA
from .frames import HEADER2, HEADER2_SIZE, PREAMBLE_SIZE, Tag
from .handshake import BANNER_PREFIX
from .intercept import BANNER_READ, READ_BPS
from .states import ConnState, Input

__all__ = ["RxMixin", "ZERO_COPY_MIN", "RX_INITIAL", "MAX_RECORDS", "EVENTS_PER_CALL"]

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
_TAG_INPUT = {t.value: Input(t.value) for t in Tag}
_REC = struct.Struct("<8q")
_H2_UNPACK = HEADER2.unpack_from
_READY = ConnState.READY
_MESSAGE = Tag.MESSAGE.value
_new = object.__new__


class RxMixin:
    """See the module docstring; mixed into ProtocolMachine."""

    def get_recv_buffer(self) -> memoryview:
        """A writable view where the owner may read up to ``len(view)`` bytes.

        An empty buffer larger than ``recv_buffer_bytes`` (grown for a large
        frame) is swapped for an everyday one here.
        """
        need = max(self._need, PREAMBLE_SIZE)
        rx = self._rx
        if self._donated or len(rx) - self._rpos < need or self._wpos == len(rx) or \
                (self._rpos == self._wpos and len(rx) > self.p.recv_buffer_bytes):
            self._compact(need)
        view = self._rxmv[self._wpos:]
        self._view_len = len(view)
        return view

    def commit_recv(self, n: int, now: float) -> None:
        """``n`` bytes were written into the view from ``get_recv_buffer``.

        A read that fills the whole view doubles the buffer for the next one
        (up to ``recv_buffer_bytes``): idle connections keep a small buffer,
        busy ones read many frames per call.
        """
        self._wpos += n
        self._last_active = now
        if n == self._view_len and self._rx_target < self.p.recv_buffer_bytes:
            self._rx_target = min(2 * self._rx_target, self.p.recv_buffer_bytes)

    def receive_data(self, data, now: float = 0.0) -> None:
        """Copies ``data`` in (for tests and non-zero-copy transports)."""
        mv = memoryview(data).cast("B")
        while mv:
            buf = self.get_recv_buffer()
            n = min(len(buf), len(mv))
            buf[:n] = mv[:n]
            self.commit_recv(n, now)
            mv = mv[n:]

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
        size = max(self._rx_target, need, pending + PREAMBLE_SIZE)
        rx, pool = self._rx, self.p.buffer_pool
        if self._donated and pool is not None and len(rx) <= pool.max_bytes:
            size = max(size, len(rx))
        if not self._donated and self._rpos and \
                size <= len(rx) <= max(2 * size, self.p.recv_buffer_bytes):
            rx[:pending] = self._rxmv[self._rpos:self._wpos]
        else:
            old = self._rxmv[self._rpos:self._wpos]
            self._scanner.forget()
            self._rxmv = None
            if pool is not None and (self._donated or len(rx) > self.p.recv_buffer_bytes):
                pool.give(rx)
            self._rx = (pool is not None and size >= ZERO_COPY_MIN and pool.take(size)) \
                or bytearray(size)
            self._rx[:pending] = old
            self._rxmv = memoryview(self._rx)
            self._donated = False
        self._rpos, self._wpos = 0, pending
        self._nrec = self._irec = 0
        self._scan_end = -1

    def next_event(self):
        """The next event, a received Message, or NEED_DATA. Never raises."""
        if self._events:
            return self._events.popleft()
        try:
            while not self._events:
                if self.state is ConnState.CLOSED or self.state is ConnState.WAIT or \
                        self._request is not None or self.halted:
                    return NEED_DATA
                if not self._banner_done:
                    if not self._take_banner():
                        return NEED_DATA
                    continue
                if self._irec >= self._nrec and not self._scan():
                    return NEED_DATA
                msg = self._next_frame()
                if msg is not None:
                    return msg
        except MsgrError as e:
            if self.state is not ConnState.CLOSED:
                self._step(Input.FAULT, e)
        return self._events.popleft() if self._events else NEED_DATA

    def next_events(self) -> list:
        """The events available now, in order; empty means NEED_DATA.

        At most about ``EVENTS_PER_CALL`` messages per call: call again until it
        returns an empty list.

        The hot path: consecutive MESSAGE frames in READY are decoded in one
        tight loop (no per-frame method dispatch); anything else goes through
        :meth:`next_event`. Stops after a fault, a session request or a halt.

        Afterwards ``last_batch_bytes`` is the payload bytes of the returned
        messages when every event returned is a :class:`Message` from that
        loop, else -1 (the caller sums what it needs itself).
        """
        self.last_batch_bytes = -1
        if not self._events and self._irec >= self._nrec and self._wpos == self._scan_end:
            return []           # every frame taken and no byte since: nothing to do (hot path)
        out = []
        if self._events:
            out.extend(self._events)
            self._events.clear()
        if self._ic is not None or self.state is not _READY:
            while (ev := self.next_event()) is not NEED_DATA:
                out.append(ev)
                if self.done or self._request is not None or self.halted:
                    break
            return out
        plain = not out
        try:
            nbytes = self._read_ready(out)
        except MsgrError as e:
            if self.state is not ConnState.CLOSED:
                self._step(Input.FAULT, e)
            out.extend(self._events)
            self._events.clear()
            return out
        if plain and nbytes >= 0:
            self.last_batch_bytes = nbytes
        return out

    def _read_ready(self, out: list) -> int:
        """Decodes MESSAGE frames in READY straight from the scan records.

        Consecutive MESSAGE frames of one scan are decoded in a local loop; any
        other frame goes through :meth:`next_event`, and a state change ends the
        call (the caller's ``next_events`` picks the path again).

        Returns:
            The payload bytes of the messages appended, or -1 if any other
            event was appended too.
        """
        unpack, recs, decode, append = _REC.unpack_from, self._recs, self._decode, out.append
        nbytes, mixed = 0, False
        while len(out) < EVENTS_PER_CALL:
            if self._irec >= self._nrec and (self._wpos == self._scan_end or not self._scan()):
                break
            i, n = self._irec, self._nrec
            try:
                while i < n:
                    start, tag, nseg, l0, l1, l2, l3, flags = unpack(recs, i * 64)
                    if tag != _MESSAGE or flags or l0 != HEADER2_SIZE:
                        break
                    i += 1
                    msg = decode(start, nseg, l1, l2, l3)
                    if msg is not None:
                        append(msg)
                        nbytes += l1 + l2 + l3
            finally:
                self._irec = i
            if i < n:
                ev = self.next_event()
                if ev is NEED_DATA:
                    break
                out.append(ev)
                if type(ev) is Message:     # a MESSAGE after a frame without an event (an ACK)
                    nbytes += ev.size
                else:
                    mixed = True
                if self.done or self._request is not None or self.state is not _READY:
                    break
        return -1 if mixed else nbytes

    def _take_banner(self) -> bool:
        got = self._rxmv[self._rpos:self._wpos]
        prefix_len = min(len(got), len(BANNER_PREFIX))
        if bytes(got[:prefix_len]) != BANNER_PREFIX[:prefix_len]:
            if bytes(got[:prefix_len]).startswith(b"ceph v0"):
                raise RemoteProtocolError("peer is using the msgr v1 protocol", Reason.BAD_BANNER)
            raise RemoteProtocolError(f"bad banner {bytes(got[:10])!r}", Reason.BAD_BANNER)
        if len(got) < len(BANNER_PREFIX) + 2:
            return False
        plen = int.from_bytes(got[8:10], "little")
        if not 16 <= plen <= 4096:
            raise RemoteProtocolError(f"banner payload length {plen}", Reason.BAD_BANNER)
        total = 10 + plen
        if len(got) < total:
            return False
        payload = bytes(got[10:total])
        if self._ic is not None and not self._bp_passed and not self._hit(BANNER_READ):
            self._bp_passed = True
            return False
        self._bp_passed = False
        self._rpos += total
        self._banner_done = True
        self._run(Input.BANNER, payload)
        return True

    def _scan(self) -> bool:
        """Indexes the complete frames from ``_rpos``; False when there are none.

        A scan that recorded every complete frame (fewer than ``MAX_RECORDS``,
        no error) remembers ``_wpos``: until more bytes arrive, scanning again
        would find nothing, so it is skipped.
        """
        if self._wpos == self._scan_end:
            return False
        n, status, pos, need = self._scanner.scan(
            self._rx, self._rpos, self._wpos, self.rev1, self.p.max_segment_bytes)
        self._nrec, self._irec, self._need = n, 0, need
        if n == 0 and status:
            what, reason = _SCAN_ERRORS[status]
            raise RemoteProtocolError(f"frame at offset {pos}: {what}", reason)
        self._scan_status = status
        self._scan_end = self._wpos if n < MAX_RECORDS and not status else -1
        return n > 0

    def _next_frame(self):
        i = self._irec
        self._irec = i + 1
        r = self._recs
        b = i * 8
        start, tag, nseg, flags = r[b], r[b + 1], r[b + 2], r[b + 7]
        lens = (r[b + 3], r[b + 4], r[b + 5], r[b + 6])
        end = self._frame_end(start, nseg, lens)
        if self._ic is not None and not flags & _native.FLAG_ABORTED:
            if not self._bp_passed and not self._hit(READ_BPS.get(tag) or READ_BPS[1]):
                self._irec, self._bp_passed = i, True
                return None
            self._bp_passed = False
        self._rpos = end
        if flags & _native.FLAG_ABORTED:
            return None
        if tag == _MESSAGE and self.state is _READY:
            return self._message(start, nseg, lens)
        inp = _TAG_INPUT.get(tag)
        if inp is None:
            raise RemoteProtocolError(f"unknown frame tag {tag}", Reason.BAD_TAG)
        if nseg != 1 and inp is not Input.MESSAGE:
            raise RemoteProtocolError(f"control frame {inp.name} with {nseg} segments", Reason.BAD_FRAME)
        off = start + PREAMBLE_SIZE
        payload = bytes(self._rxmv[off:off + lens[0]])
        self._step(inp, payload)
        if self._irec >= self._nrec and self._scan_status:
            what, reason = _SCAN_ERRORS[self._scan_status]
            raise RemoteProtocolError(f"frame after offset {end}: {what}", reason)
        return None

    def _frame_end(self, start: int, nseg: int, lens: tuple) -> int:
        size = PREAMBLE_SIZE + lens[0] + lens[1] + lens[2] + lens[3]
        if self.rev1:
            return start + size + (4 if lens[0] else 0) + (13 if nseg > 1 else 0)
        return start + size + 17

    def _segment(self, off: int, n: int):
        if n == 0:
            return b""
        if n < ZERO_COPY_MIN:
            return bytes(self._rxmv[off:off + n])
        self._donated = True
        return self._rxmv[off:off + n]

    def _message(self, start: int, nseg: int, lens: tuple):
        """READY + MESSAGE: the table's ``(READY, MESSAGE) -> message, READY`` inlined."""
        if lens[0] != HEADER2_SIZE:
            raise RemoteProtocolError(f"message header of {lens[0]} bytes", Reason.BAD_FRAME)
        return self._decode(start, nseg, lens[1], lens[2], lens[3])

    def _decode(self, start: int, nseg: int, l1: int, l2: int, l3: int):
        """Decodes the MESSAGE frame at ``start``; None for an old duplicate.

        Sets ``_rpos`` past the frame and applies the piggy-backed ack and the
        seq rules of the session (``seq <= in_seq`` is dropped).
        """
        mv = self._rxmv
        off = start + PREAMBLE_SIZE
        (seq, tid, type_, prio, version, _pad, data_off, ack_seq, _fl, compat,
         _res) = _H2_UNPACK(mv, off)
        off += HEADER2_SIZE + (4 if self.rev1 else 0)
        if l1:      # _segment, inlined for the usual small front
            front = bytes(mv[off:off + l1]) if l1 < ZERO_COPY_MIN else self._segment(off, l1)
            off += l1
        else:
            front = b""
        middle = self._segment(off, l2) if l2 else b""
        off += l2
        if l3:
            data = bytes(mv[off:off + l3]) if l3 < ZERO_COPY_MIN else self._segment(off, l3)
            off += l3
        else:
            data = b""
        self._rpos = (off + (13 if nseg > 1 else 0)) if self.rev1 else off + 17
        s = self.session
        if s.sent and s.sent[0][0] <= ack_seq:
            s.acked(ack_seq)
        if seq <= s.in_seq:          # Session.accept_seq, inlined (once per message)
            return None
        s.in_seq = seq
        if not s.lossy:
            s.ack_left += 1
        m = _new(Message)           # a received Message, built without __init__'s checks
        m.type = type_
        m.front = front
        m.middle = middle
        m.data = data
        m.priority = prio
        m.tid = tid
        m.version = version
        m.compat_version = compat
        m.data_off = data_off
        m.seq = seq
        m.source = self.peer_name
        m.connection = self.owner
        m.recv_stamp = self._last_active
        m._throttle = None
        m._queued_at = 0.0
        return m
