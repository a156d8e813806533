"""Framer: lays out a session's queued messages as MESSAGE frames.

The machine's ``data_to_send`` asks the framer for what the message stream may
send now, highest priority first. Each popped batch is laid out in one batch
buffer by :func:`msgr._native.layout.lay_out` (compiled when built: numbering,
header, small segments copied in), and one native call (``fill_message_frames``)
writes every preamble, CRC and epilogue; a message with a segment over
``COPY_LIMIT`` is framed on its own with that segment referenced, so it is never
copied.
"""
from __future__ import annotations

import logging
from operator import attrgetter

from .. import _native
from ..errors import MsgrError
from ..message import FIELD_BITS, SEGMENTS, check_header_fields, segment_error
from .frames import HEADER2, message_frame

__all__ = ["Framer", "COPY_LIMIT", "wire_error"]
_log = logging.getLogger(__name__)

_FRAME_FLAGS = _native.FRAME_FLAGS
COPY_LIMIT = _native.COPY_LIMIT     # segments up to this size are copied into the batch buffer
_lay_out = _native.lay_out
_POP_BATCH = 64
_QUEUED_AT = attrgetter("_queued_at")


def wire_error(msg) -> str | None:
    """Why ``msg`` cannot be framed (a header field or segment), or None if it can. Never raises.

    Message() checks its arguments; this catches what was changed afterwards
    or was never a Message: fields that do not fit ``ceph_msg_header2``, and
    segments that are not contiguous bytes-like objects whose ``len()`` is
    their size in bytes (a released memoryview included).
    """
    try:
        check_header_fields(**{name: getattr(msg, name) for name in FIELD_BITS})
    except Exception as e:          # noqa: BLE001 - any failure is the reason
        return f"header: {e}"
    for name in SEGMENTS:
        try:
            why = segment_error(getattr(msg, name))
        except Exception as e:      # noqa: BLE001 - the attribute itself is missing
            why = str(e)
        if why is not None:
            return f"{name}: {why}"
    return None


def _describe(msg) -> str:
    """repr(msg), or a plainer text when its repr fails (as a bad segment can make it)."""
    try:
        return repr(msg)
    except Exception:               # noqa: BLE001
        return f"<{type(msg).__name__} type={getattr(msg, 'type', '?')} tid={getattr(msg, 'tid', '?')}>"


class Framer:
    """MESSAGE framing for one transport (see the module docstring).

    Attributes:
        rev1: msgr2.1 framing (set once the banners are exchanged).
    """

    def __init__(self) -> None:
        self.rev1 = False

    def frame(self, out: list, s, budget: int, now: float = 0.0, hist=None, hit=None) -> int:
        """Frames messages queued on stream ``s`` into ``out``, up to about ``budget``
        bytes, as batch buffers each filled by one native call.

        Small segments are copied into the batch buffer; a message with a
        segment over ``COPY_LIMIT`` is framed on its own with its large
        segments referenced (zero copy). A message that cannot be framed (a
        header field changed out of range, a segment that is not bytes-like
        or whose ``len()`` is not its size) is dropped with an error logged,
        and the others are framed as if it had never been queued (see
        :meth:`_unframe`): each retry has dropped one message at least.

        Args:
            hist: a :class:`~msgr.counters.Histogram` that observes, for each
                message framed for the first time, ``now - msg._queued_at``.
            hit: an interceptor's write breakpoint, called after each message:
                False halts the framing there (the rest goes back to the queue).

        Returns:
            How many messages were dropped as unframeable.

        Raises:
            TransportError: ``hit`` faulted (an interceptor FAULT).
        """
        dropped = 0
        while True:
            n = self._frame_once(out, s, budget, now, hist, hit)
            if n < 0:
                return dropped
            dropped += n

    def _frame_once(self, out: list, s, budget: int, now: float, hist, hit) -> int:
        """:meth:`frame`'s work: -1 when done, else how many it dropped (go on)."""
        rev1, lossy, sent, in_seq = self.rev1, s.lossy, s.sent, s.in_seq
        buf, lens = bytearray(), []
        seq = base_seq = s.out_seq
        s.ack_left = 0
        queue = s.out
        # buf holds popped[0][first:] + popped[1:] (each (priority, batch)), for _unframe;
        # i is the next message of the last batch (the failing one while ``inside``)
        popped, first = [], 0
        i, inside, halted = 0, False, False
        try:
            while queue.count and len(buf) < budget and not halted:
                batch = queue.pop_many(_POP_BATCH)
                popped.append((queue.last_priority, batch))
                i, inside, n = 0, True, len(batch)
                if hist is not None:       # replays were unstamped by Session.requeue_sent
                    hist.observe_batch(now, batch, _QUEUED_AT)
                while i < n:
                    stop = n if hit is None else i + 1
                    i, seq, error = _lay_out(batch, i, stop, buf, lens, seq, in_seq, lossy,
                                             sent, rev1)
                    if error is not None:
                        raise error
                    if i < stop:           # a segment over COPY_LIMIT: framed on its own,
                        m = batch[i]       # that segment referenced (zero copy)
                        seq, hdr = _number_large(m, seq, in_seq, lossy, sent)
                        buf, lens = self._flush_batch(out, buf, lens)
                        popped, first, base_seq = [popped[-1]], i, seq - 1     # buf is empty
                        out.extend(message_frame(hdr, m.front, m.middle, m.data, rev1,
                                                 COPY_LIMIT))
                        i += 1
                        first, base_seq = i, seq
                    if hit is not None:
                        inside = False       # _hit_after requeues the rest itself
                        if not _hit_after(s, seq, batch, i - 1, hit):
                            halted = True
                            break
                        inside = True
                inside = False
                if len(buf) >= budget:
                    break
            s.out_seq = seq
            self._flush_batch(out, buf, lens)
        except MsgrError:
            raise
        except Exception as e:                    # noqa: BLE001 - a message that cannot be framed
            return _unframe(s, popped, first, i, inside, base_seq, e)
        return -1

    def _flush_batch(self, out: list, buf: bytearray, lens: list):
        """Fills the frames laid out in ``buf`` (``lens``: 3 per frame) and queues it."""
        if lens:
            _native.fill_message_frames(buf, lens, len(lens) // 3, self.rev1)
            out.append(buf)
        return bytearray(), []


def _number_large(m, seq: int, in_seq: int, lossy: bool, sent) -> tuple:
    """Numbers a message that goes in a frame of its own; returns ``(seq, header2 bytes)``.

    Raises:
        ValueError: it cannot be framed (:func:`wire_error`); it was numbered.
    """
    seq += 1
    m.seq = seq
    if not lossy:
        sent.append((seq, m))
    why = wire_error(m)        # rare: a large message, checked whole
    if why is not None:
        raise ValueError(why)
    return seq, HEADER2.pack(seq, m.tid, m.type, m.priority, m.version, 0, m.data_off,
                             in_seq, _FRAME_FLAGS, m.compat_version, 0)


def _unframe(s, popped: list, first: int, end: int, inside: bool, base_seq: int,
             error: Exception) -> int:
    """Undoes the batch buffer's frames after ``error``; drops what cannot be framed.

    ``popped``: (priority, batch) pairs. The buffer held
    ``popped[0][first:]``, ``popped[1:-1]`` and ``popped[-1][:end]``
    (within one batch: ``popped[0][first:end]``). The rest of
    ``popped[-1]`` was not reached; unless ``inside`` (the error came from
    the framing loop), an interceptor halt had requeued it. All of it goes
    back to the front of the queue it came from, in order, its send-queue
    stamps cleared (observed already), except the messages
    :func:`wire_error` rejects: those are dropped and logged.

    Returns:
        How many were dropped.

    Raises:
        ``error`` again if no message is at fault.
    """
    if not popped:
        raise error
    last = popped[-1][1]
    groups = [(prio, b[:]) for prio, b in popped]
    if not inside:
        groups[-1] = (groups[-1][0], groups[-1][1][:end])
    groups[0] = (groups[0][0], groups[0][1][first:])
    framed = sum(len(g) for _, g in groups) - (len(last) - end if inside else 0)
    failed = last[end] if inside and end < len(last) else None
    if not s.lossy:        # the framed ones, and the failed one if it got that far
        k = framed + (1 if failed is not None and s.sent and s.sent[-1][1] is failed else 0)
        for _ in range(k):
            s.sent.pop()
    s.out_seq = base_seq
    dropped = 0
    for prio, g in reversed(groups):
        keep = []
        for m in g:
            why = wire_error(m)
            if why is None:
                m._queued_at = 0.0
                keep.append(m)
            else:
                dropped += 1
                _log.error("dropping a message that cannot be framed (%s): %s", why, _describe(m))
        if keep:
            s.out.push_front(keep, prio)
    if not dropped:
        raise error
    return dropped


def _hit_after(s, seq: int, batch: list, i: int, hit) -> bool:
    """The write breakpoint after framing ``batch[i]``; False when it halts.

    Messages of ``batch`` not framed yet go back to the front of their queue if
    the breakpoint halts or faults the machine, their send-queue stamps cleared:
    the whole batch was observed when it was popped.
    """
    s.out_seq = seq
    rest = batch[i + 1:]
    for m in rest:
        m._queued_at = 0.0
    try:
        go_on = hit()
    except BaseException:
        if rest:
            s.out.push_front(rest, s.out.last_priority)
        raise
    if not go_on and rest:
        s.out.push_front(rest, s.out.last_priority)
    return go_on
