"""ProtocolMachine: one msgr2 connection over one transport, sans I/O.

Theory of operation. The owner (the runtime, or a test's byte pump) moves
bytes and time; the machine never touches a socket, a clock or a thread:

* incoming bytes: ``get_recv_buffer()`` + ``commit_recv(n, now)`` (read
  straight into the machine's buffer) or ``receive_data(data, now)``;
* events: ``next_event()`` returns a received :class:`~msgr.Message`, an
  event from ``events.py``, or ``NEED_DATA``. Frames are parsed lazily, one
  event per call, so an owner whose throttle is full simply stops asking;
* outgoing: ``send_message(msg)`` queues; ``data_to_send(now)`` frames queued
  messages (highest priority first) and returns a list of buffers for
  scatter/gather I/O;
* time: ``start(now)``, ``on_tick(now)`` and ``next_deadline()`` drive the
  ready and idle timeouts.

The receive buffer is scanned by one native call (``scan_frames``) that finds
every complete frame and checks its CRCs; the machine then walks the records.
Segments up to ``ZERO_COPY_MIN`` bytes are copied out as ``bytes``; larger ones
are handed out as memoryviews and the buffer is given away with them (the next
read goes to a fresh buffer), so a large ``data`` segment is never copied.

Any protocol error faults the machine: it lands in CLOSED (or WAIT) and emits
:class:`Faulted`; nothing raises out of ``next_event``.
"""
from __future__ import annotations

import struct
from array import array
from collections import deque

from .. import _native
from ..errors import LocalProtocolError, MsgrError, RemoteProtocolError, TransportError
from ..message import make_received
from .events import NEED_DATA, Faulted
from .frames import HEADER2, HEADER2_SIZE, PREAMBLE_SIZE, Tag, control_frame, message_frame
from .accept import AcceptMixin
from .handshake import BANNER_PREFIX, HandshakeMixin, WaitSignal
from .intercept import BANNER_READ, BANNER_WRITE, READ_BPS, WRITE_BPS, Action
from .session import Session
from .states import TERMINAL, ConnState, Input, TRANSITIONS

__all__ = ["ProtocolMachine", "MachineParams", "ZERO_COPY_MIN"]

from .params import MachineParams  # noqa: E402  (re-exported)

ZERO_COPY_MIN = 128 * 1024
RX_INITIAL = 16 * 1024     # a new connection's receive buffer; grows on full reads
_MAX_RECORDS = 64
_SCAN_ERRORS = {
    _native.SCAN_BAD_PREAMBLE_CRC: ("bad preamble crc", "bad_crc"),
    _native.SCAN_BAD_SEGMENT_COUNT: ("bad segment count", "bad_frame"),
    _native.SCAN_SEGMENT_TOO_LARGE: ("segment larger than ms_max_segment_bytes", "too_large"),
    _native.SCAN_BAD_SEGMENT_CRC: ("bad segment crc", "bad_crc"),
    _native.SCAN_BAD_LATE_STATUS: ("bad epilogue late status", "bad_frame"),
}
_TAG_INPUT = {t.value: Input(t.value) for t in Tag}
_REC = struct.Struct("<8q")
_H2_UNPACK = HEADER2.unpack_from
_READY = ConnState.READY
_MESSAGE = Tag.MESSAGE.value
_FRAME_FLAGS = 3   # CEPH_MSG_FOOTER_COMPLETE | CEPH_MSG_FOOTER_NOCRC, as Ceph sends
COPY_LIMIT = 64 * 1024   # segments up to this size are copied into the batch buffer
_ZERO32, _ZERO4, _ZERO13, _ZERO17 = bytes(32), bytes(4), bytes(13), bytes(17)


class ProtocolMachine(HandshakeMixin, AcceptMixin):
    """See the module docstring.

    Args:
        params: this side's identity and limits (:class:`MachineParams`).
        connecting: True for the dialling side, False for the accepting side.
        session: the session to continue (lossless reconnect), or None for new.
    """

    def __init__(self, params: MachineParams, connecting: bool, session: Session | None = None) -> None:
        self.p = params
        self.connecting = connecting
        self.state = ConnState.NONE
        self.session = session if session is not None else Session(params.policy.lossy)
        self.rev1 = False
        self.was_ready = False
        self.fault_event: Faulted | None = None
        self._rx_target = min(RX_INITIAL, params.recv_buffer_bytes)
        self._rx = bytearray(self._rx_target)
        self._rxmv = memoryview(self._rx)
        self._view_len = 0
        self._rpos = self._wpos = 0
        self._donated = False
        self._banner_done = False
        self._recs = array("q", bytes(8 * 8 * _MAX_RECORDS))
        self._nrec = self._irec = 0
        self._need = 0
        self._events: deque = deque()
        self._out: list = []
        self._keepalive_stamp = None
        self._keepalive_acks: list = []
        self._ready_deadline = 0.0
        self._last_active = 0.0
        self.owner = None
        self.halted = False
        self._bp_passed = False
        self._ic = params.interceptor
        self._init_handshake()

    # ----------------------------------------------------------------- driving
    def start(self, now: float) -> None:
        """Begins the handshake (sends our banner); arms the ready timeout."""
        self._last_active = now
        self._ready_deadline = now + self.p.ready_timeout
        self._run(Input.CONNECT if self.connecting else Input.ACCEPT, None)
        if self._ic is not None and not self.done:
            try:
                self._hit(BANNER_WRITE)
            except MsgrError as e:
                self._step(Input.FAULT, e)

    # ----------------------------------------------------------------- interceptor
    def _hit(self, bp) -> bool:
        """Reports breakpoint ``bp``; False when the machine must halt here."""
        action = self._ic.intercept(self.owner, bp)
        if action is Action.CONTINUE:
            return True
        if action is Action.FAULT:
            raise TransportError(f"interceptor fault at {bp}")
        self.halted = True
        return False

    def resume(self) -> None:
        """Lifts an interceptor BLOCK: processing and output go on."""
        self.halted = False

    def close(self) -> None:
        """Local close (mark_down): CLOSED, no event."""
        self._step(Input.CLOSE, None)

    def fault(self, error: MsgrError) -> None:
        """Reports a transport failure: the machine faults (emits Faulted once)."""
        if self.state not in TERMINAL and self.fault_event is None:
            self._run(Input.FAULT, error)

    @property
    def is_ready(self) -> bool:
        return self.state is _READY

    @property
    def done(self) -> bool:
        """True once faulted, waiting or closed: the transport must go."""
        return self.state is ConnState.CLOSED or self.state is ConnState.WAIT

    # ----------------------------------------------------------------- table
    def _step(self, inp: Input, arg) -> None:
        t = TRANSITIONS.get((self.state, inp))
        if t is None:
            raise RemoteProtocolError(f"unexpected {inp.name} in state {self.state.name}", "bad_tag")
        res = getattr(self, "_a_" + t.action)(arg)
        nxt = t.next if res is None else res
        if nxt is not t.next and nxt not in t.alt:
            raise LocalProtocolError(f"{t.action} chose {nxt.name}, not allowed by the table")
        self.state = nxt
        if nxt is _READY:
            self.was_ready = True

    def _run(self, inp: Input, arg) -> None:
        """Steps; any msgr error becomes a fault instead of escaping."""
        try:
            self._step(inp, arg)
        except MsgrError as e:
            if inp is Input.FAULT:
                raise
            self._step(Input.FAULT, e)

    def _a_fault(self, error: MsgrError):
        wait = isinstance(error, WaitSignal)
        self.fault_event = Faulted(error, self.was_ready, wait=wait,
                                   refused=getattr(error, "refused", False))
        self._events.append(self.fault_event)
        return ConnState.WAIT if wait else None

    def _a_close(self, _arg) -> None:
        self._out.clear()

    def _a_timeout(self, error) -> None:
        self._a_fault(error)

    # ----------------------------------------------------------------- input
    def get_recv_buffer(self) -> memoryview:
        """A writable view where the owner may read up to ``len(view)`` bytes."""
        need = max(self._need, PREAMBLE_SIZE)
        if self._donated or len(self._rx) - self._rpos < need or self._wpos == len(self._rx):
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
        pending = self._wpos - self._rpos
        size = max(self._rx_target, need, pending + PREAMBLE_SIZE)
        if not self._donated and size <= len(self._rx) and self._rpos:
            self._rx[:pending] = self._rxmv[self._rpos:self._wpos]
        else:
            old = self._rxmv[self._rpos:self._wpos]
            self._rx = bytearray(size)
            self._rx[:pending] = old
            self._rxmv = memoryview(self._rx)
            self._donated = False
        self._rpos, self._wpos = 0, pending
        self._nrec = self._irec = 0

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
        """Every event available now, in order (possibly empty: NEED_DATA).

        The hot path: consecutive MESSAGE frames in READY are decoded in one
        tight loop (no per-frame method dispatch); anything else goes through
        :meth:`next_event`. Stops after a fault, a session request or a halt.
        """
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
        try:
            self._read_ready(out)
        except MsgrError as e:
            if self.state is not ConnState.CLOSED:
                self._step(Input.FAULT, e)
            out.extend(self._events)
            self._events.clear()
        return out

    def _read_ready(self, out: list) -> None:
        """Decodes MESSAGE frames in READY straight from the scan records."""
        unpack, recs, mv = _REC.unpack_from, self._recs, self._rxmv
        rev1 = 4 if self.rev1 else 0
        s = self.session
        sent, lossy = s.sent, s.lossy
        source, owner, now = self.peer_name, self.owner, self._last_active
        while True:
            if self._irec >= self._nrec and not self._scan():
                return
            i = self._irec
            start, tag, nseg, l0, l1, l2, l3, flags = unpack(recs, i * 64)
            if tag != _MESSAGE or flags or l0 != HEADER2_SIZE or self.state is not _READY:
                ev = self.next_event()
                if ev is NEED_DATA:
                    return
                out.append(ev)
                if self.done or self._request is not None:
                    return
                continue
            self._irec = i + 1
            off = start + PREAMBLE_SIZE
            (seq, tid, type_, prio, version, _pad, data_off, ack_seq, _fl, compat,
             _res) = _H2_UNPACK(mv, off)
            off += HEADER2_SIZE + rev1
            if not l1:
                front = b""
            elif l1 < ZERO_COPY_MIN:
                front = bytes(mv[off:off + l1])
            else:
                front = self._segment(off, l1)
            off += l1
            middle = self._segment(off, l2) if l2 else b""
            off += l2
            if not l3:
                data = b""
            elif l3 < ZERO_COPY_MIN:
                data = bytes(mv[off:off + l3])
            else:
                data = self._segment(off, l3)
            off += l3
            self._rpos = off + (13 if nseg > 1 else 0) if rev1 else off + 17
            if sent and sent[0].seq <= ack_seq:
                s.acked(ack_seq)
            if seq <= s.in_seq:
                continue
            s.in_seq = seq
            if not lossy:
                s.ack_left += 1
            out.append(make_received(type_, front, middle, data, prio, tid, version, compat,
                                     seq, data_off, source, owner, now))

    def _take_banner(self) -> bool:
        got = self._rxmv[self._rpos:self._wpos]
        prefix_len = min(len(got), len(BANNER_PREFIX))
        if bytes(got[:prefix_len]) != BANNER_PREFIX[:prefix_len]:
            if bytes(got[:prefix_len]).startswith(b"ceph v0"):
                raise RemoteProtocolError("peer is using the msgr v1 protocol", "bad_banner")
            raise RemoteProtocolError(f"bad banner {bytes(got[:10])!r}", "bad_banner")
        if len(got) < len(BANNER_PREFIX) + 2:
            return False
        plen = int.from_bytes(got[8:10], "little")
        if not 16 <= plen <= 4096:
            raise RemoteProtocolError(f"banner payload length {plen}", "bad_banner")
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
        n, status, pos, need = _native.scan_frames(
            self._rx, self._rpos, self._wpos, self.rev1, self.p.max_segment_bytes,
            self._recs, _MAX_RECORDS)
        self._nrec, self._irec, self._need = n, 0, need
        if n == 0 and status:
            what, reason = _SCAN_ERRORS[status]
            raise RemoteProtocolError(f"frame at offset {pos}: {what}", reason)
        self._scan_status = status
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
            raise RemoteProtocolError(f"unknown frame tag {tag}", "bad_tag")
        if nseg != 1 and inp is not Input.MESSAGE:
            raise RemoteProtocolError(f"control frame {inp.name} with {nseg} segments", "bad_frame")
        off = start + PREAMBLE_SIZE
        payload = bytes(self._rxmv[off:off + lens[0]])
        self._step(inp, payload)
        if self._irec >= self._nrec and getattr(self, "_scan_status", 0):
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
            raise RemoteProtocolError(f"message header of {lens[0]} bytes", "bad_frame")
        off = start + PREAMBLE_SIZE
        (seq, tid, type_, prio, version, _pad, data_off, ack_seq, _flags, compat,
         _res) = HEADER2.unpack_from(self._rx, off)
        off += HEADER2_SIZE + (4 if self.rev1 else 0)
        front = self._segment(off, lens[1])
        off += lens[1]
        middle = self._segment(off, lens[2])
        data = self._segment(off + lens[2], lens[3])
        s = self.session
        s.acked(ack_seq)
        if not s.accept_seq(seq):
            return None
        return make_received(type_, front, middle, data, prio, tid, version, compat, seq,
                             data_off, self.peer_name, self.owner, self._last_active)

    # ----------------------------------------------------------------- steady state
    def _a_message(self, payload) -> None:
        raise RemoteProtocolError("MESSAGE frame outside READY handled by the table", "bad_tag")

    def _a_ack(self, payload) -> None:
        from .payloads import decode_u64
        self.session.acked(decode_u64(payload, "ACK"))

    def _a_keepalive(self, payload) -> None:
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2 payload is not 8 bytes", "decode")
        self._out.append(control_frame(Tag.KEEPALIVE2_ACK, payload, self.rev1))

    def _a_keepalive_ack(self, payload) -> None:
        from .events import KeepaliveAck
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2_ACK payload is not 8 bytes", "decode")
        stamp = (int.from_bytes(payload[:4], "little"), int.from_bytes(payload[4:], "little"))
        self._events.append(KeepaliveAck(stamp))

    # ----------------------------------------------------------------- output
    def send_message(self, msg) -> None:
        """Queues ``msg``; it is framed by a later :meth:`data_to_send`."""
        self.session.out.push(msg)

    def send_keepalive(self, stamp: tuple) -> None:
        """Queues a KEEPALIVE2 with ``stamp`` = (sec, nsec) wall-clock time."""
        self._keepalive_stamp = stamp

    def has_pending_output(self) -> bool:
        """True if :meth:`data_to_send` would return something now."""
        return bool(self._out) or (self.state is _READY and (
            bool(self.session.out) or self.session.ack_left > 0
            or self._keepalive_stamp is not None))

    def data_to_send(self, now: float = 0.0, budget: int = 1 << 20) -> list:
        """Frames what may be sent now, up to about ``budget`` bytes of messages.

        Returns:
            A list of bytes-like buffers, in order (possibly empty; always empty
            while an interceptor halts the machine).

        Raises:
            TransportError: an interceptor FAULT at a write breakpoint.
        """
        if self.halted:
            return []
        if self.state is _READY:
            if self._keepalive_stamp is not None:
                sec, nsec = self._keepalive_stamp
                self._keepalive_stamp = None
                self._send(Tag.KEEPALIVE2, sec.to_bytes(4, "little") + nsec.to_bytes(4, "little"))
            if self.session.out:
                self._frame_messages(self._out, budget)
            s = self.session
            if s.ack_left > 0 and not self.halted:
                s.ack_left = 0
                self._send(Tag.ACK, s.in_seq.to_bytes(8, "little"))
        out = self._out
        if not out or self.halted:
            return []
        self._out = []
        self._last_active = now or self._last_active
        return out

    def _frame_messages(self, out: list, budget: int) -> None:
        """Frames queued messages into one buffer, filled by one native call.

        Small segments are copied into the batch buffer; a message with a
        segment over ``COPY_LIMIT`` is framed on its own with its large
        segments referenced (zero copy).
        """
        s = self.session
        pop = s.out.pop
        rev1, lossy, sent, in_seq = self.rev1, s.lossy, s.sent, s.in_seq
        pack, ic = HEADER2.pack, self._ic
        crc_ph = _ZERO4 if rev1 else b""
        epi = _ZERO13 if rev1 else _ZERO17
        buf, desc = bytearray(), array("q")
        seq = s.out_seq
        s.ack_left = 0
        while len(buf) < budget and not self.halted:
            m = pop()
            if m is None:
                break
            seq += 1
            m.seq = seq
            if not lossy:
                sent.append(m)
            f, mid, d = m.front, m.middle, m.data
            hdr = pack(seq, m.tid, m.type, m.priority, m.version, 0, m.data_off, in_seq,
                       _FRAME_FLAGS, m.compat_version, 0)
            if len(d) > COPY_LIMIT or len(f) > COPY_LIMIT or len(mid) > COPY_LIMIT:
                buf, desc = self._flush_batch(out, buf, desc)
                out.extend(message_frame(hdr, f, mid, d, rev1, COPY_LIMIT))
            else:
                off = len(buf)
                buf += _ZERO32
                buf += hdr
                buf += crc_ph
                buf += f
                buf += mid
                buf += d
                if f or mid or d or not rev1:
                    buf += epi
                desc.extend((off, _MESSAGE, HEADER2_SIZE, len(f), len(mid), len(d)))
            if ic is not None:
                s.out_seq = seq
                self._hit(WRITE_BPS[_MESSAGE])
        s.out_seq = seq
        self._flush_batch(out, buf, desc)

    def _flush_batch(self, out: list, buf: bytearray, desc: array):
        if desc:
            _native.frame_fill(buf, desc, len(desc) // 6, self.rev1)
            out.append(buf)
        return bytearray(), array("q")

    # ----------------------------------------------------------------- time
    def next_deadline(self) -> float:
        """When ``on_tick`` should next run (monotonic seconds)."""
        if self.state is _READY:
            return self._last_active + self.p.idle_timeout
        return self._ready_deadline

    def on_tick(self, now: float) -> None:
        """Checks the ready and idle timeouts; a timeout faults the machine."""
        if self.done or self.state is ConnState.STANDBY:
            return
        if self.state is _READY:
            if now - self._last_active >= self.p.idle_timeout:
                self._run(Input.TIMEOUT, TransportError(
                    f"idle for {self.p.idle_timeout}s (ms_connection_idle_timeout)"))
        elif now >= self._ready_deadline:
            self._run(Input.TIMEOUT, TransportError(
                f"not ready within {self.p.ready_timeout}s (ms_connection_ready_timeout)"))
