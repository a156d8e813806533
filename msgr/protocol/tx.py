"""TxMixin: the send side of ProtocolMachine (queueing and framing).

``send_message`` only queues; ``data_to_send`` frames what the session may
send now, highest priority first. Messages are laid out in one batch buffer
(small segments copied in) and one native call (``frame_fill``) writes every
preamble, CRC and epilogue; a message with a segment over ``COPY_LIMIT`` is
framed on its own with that segment referenced, so it is never copied.
"""
from __future__ import annotations

from array import array

from .. import _native
from .frames import HEADER2, HEADER2_SIZE, Tag, message_frame
from .intercept import WRITE_BPS
from .states import ConnState

__all__ = ["TxMixin", "COPY_LIMIT"]

_READY = ConnState.READY
_MESSAGE = Tag.MESSAGE.value
_FRAME_FLAGS = 3   # CEPH_MSG_FOOTER_COMPLETE | CEPH_MSG_FOOTER_NOCRC, as Ceph sends
COPY_LIMIT = 64 * 1024   # segments up to this size are copied into the batch buffer
_ZERO32, _ZERO4, _ZERO13, _ZERO17 = bytes(32), bytes(4), bytes(13), bytes(17)


class TxMixin:
    """See the module docstring; mixed into ProtocolMachine."""

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

    def data_to_send(self, now: float = 0.0, budget: int = 1 << 20, send_hist=None) -> list:
        """Frames what may be sent now, up to about ``budget`` bytes of messages.

        ``send_hist`` (a :class:`~msgr.counters.Histogram` or None) observes, for each
        message framed for the first time, ``now - msg._queued_at`` (send-queue latency).

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
                self._frame_messages(self._out, budget, now, send_hist)
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

    def _frame_messages(self, out: list, budget: int, now: float = 0.0, hist=None) -> None:
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
        stamp, run = 0.0, 0
        while len(buf) < budget and not self.halted:
            m = pop()
            if m is None:
                break
            if hist is not None and m._queued_at:
                if m._queued_at != stamp:   # a run of one send batch: one observation
                    if run:
                        hist.observe_n(now - stamp, run)
                    stamp, run = m._queued_at, 0
                run += 1
                m._queued_at = 0.0          # a replay after a reconnect is not observed again
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
        if run:
            hist.observe_n(now - stamp, run)
        self._flush_batch(out, buf, desc)

    def _flush_batch(self, out: list, buf: bytearray, desc: array):
        if desc:
            _native.frame_fill(buf, desc, len(desc) // 6, self.rev1)
            out.append(buf)
        return bytearray(), array("q")
