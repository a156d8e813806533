"""Laying out messages as MESSAGE frames, pure Python: the specification of ``_layout.pyx``.

The send hot path (``msgr.protocol.tx.Framer``) pops a batch of queued messages
and hands it to :func:`lay_out`, which numbers each one (the session's next
seq; a lossless session keeps ``(seq, message)`` in ``sent`` for replay) and
appends its frame to the batch buffer: a zeroed preamble, ``ceph_msg_header2``,
in msgr2.1 a zeroed crc slot, the segments copied in, a zeroed epilogue. The
native ``fill_message_frames`` then writes every preamble, CRC and epilogue of
the buffer in one call. A message with a segment over ``COPY_LIMIT`` is left
for the caller, which frames it on its own with that segment referenced (never
copied). The compiled twin takes the same arguments and gives the same bytes.
"""
from __future__ import annotations

import struct

from .message import segment_error

__all__ = ["lay_out", "COPY_LIMIT", "FRAME_FLAGS"]

COPY_LIMIT = 64 * 1024     # segments up to this size are copied into the batch buffer
FRAME_FLAGS = 3            # CEPH_MSG_FOOTER_COMPLETE | CEPH_MSG_FOOTER_NOCRC, as Ceph sends
_H2 = "QQHHHIHQBHH"        # ceph_msg_header2
_LEAD_REV1 = struct.Struct("<32x" + _H2 + "4x")       # preamble placeholder, header2, crc slot
_LEAD_REV0 = struct.Struct("<32x" + _H2)
_ZERO13, _ZERO17 = bytes(13), bytes(17)


def lay_out(batch: list, i: int, stop: int, buf: bytearray, lens: list, seq: int, in_seq: int,
            lossy: bool, sent, rev1: bool) -> tuple:
    """Appends the frames of ``batch[i:stop]`` to ``buf`` (3 lengths each to ``lens``).

    Each message gets ``seq + 1`` as its seq (``msg.seq``; and ``(seq, msg)`` in
    ``sent`` unless ``lossy``) before its frame is laid out; the header carries
    ``in_seq`` as the ack.

    Returns:
        ``(i, seq, error)``: where it stopped, the last seq given, and None, or the
        exception the message at ``i`` raised: a segment that is not a contiguous
        buffer whose ``len()`` is its size (:func:`segment_error`), a header field
        that does not fit (the caller undoes the batch; a
        message that failed after it was numbered is in ``sent``, and its seq is
        not in the returned ``seq``). It stops early, with no error, at a message
        with a segment over ``COPY_LIMIT`` (not numbered: the caller frames it).
    """
    lead = (_LEAD_REV1 if rev1 else _LEAD_REV0).pack
    epi = _ZERO13 if rev1 else _ZERO17
    while i < stop:
        m = batch[i]
        try:
            f, mid, d = m.front, m.middle, m.data
            for seg in (f, mid, d):
                if type(seg) is not bytes and (why := segment_error(seg)) is not None:
                    raise ValueError(why)
            lf, lm, ld = len(f), len(mid), len(d)
        except Exception as e:          # noqa: BLE001 - the caller drops what wire_error refuses
            return i, seq, e
        if lf > COPY_LIMIT or lm > COPY_LIMIT or ld > COPY_LIMIT:
            return i, seq, None
        seq += 1
        try:
            m.seq = seq
            if not lossy:
                sent.append((seq, m))
            lens.extend((lf, lm, ld))
            buf += lead(seq, m.tid, m.type, m.priority, m.version, 0, m.data_off,
                        in_seq, FRAME_FLAGS, m.compat_version, 0)
            if lf:
                buf += f
            if lm:
                buf += mid
            if ld:
                buf += d
            if lf or lm or ld or not rev1:
                buf += epi
        except Exception as e:          # noqa: BLE001 - the caller drops what wire_error refuses
            return i, seq, e
        i += 1
    return i, seq, None
