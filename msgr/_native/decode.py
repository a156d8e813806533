"""Decoding MESSAGE frames into Messages, pure Python: the specification of ``_decode.pyx``.

The receive hot path (``msgr.protocol.rx.RxStream``) hands a run of scanned
frame records to :func:`decode_run`, which builds a :class:`Message` for each
MESSAGE frame straight from the receive buffer and applies the session's
receiving rules to it (Ceph's ``handle_message``): the piggy-backed ack trims
what the peer has (``stream.acked``), a seq at or below ``in_seq`` is an old
duplicate and is dropped, and a lossless session owes one more ack per message.
The compiled twin does the same with the same arguments and results; the tests
feed both the same bytes.
"""
from __future__ import annotations

import struct

__all__ = ["decode_run", "ZERO_COPY_MIN", "PREAMBLE_SIZE", "HEADER2_SIZE", "TAG_MESSAGE"]

ZERO_COPY_MIN = 128 * 1024     # segments this large are views of the buffer, not copies
PREAMBLE_SIZE = 32
HEADER2_SIZE = 41
TAG_MESSAGE = 17                # frames.Tag.MESSAGE
_REC = struct.Struct("<8q")                           # a scanner record: start, tag, nseg, 4 lens, flags
_H2 = struct.Struct("<QQHHHIHQBHH")                   # ceph_msg_header2


def decode_run(recs, irec: int, stop: int, mv: memoryview, rev1: bool, stream, source, owner,
               stamp: float, out: list, message_cls) -> tuple:
    """Decodes the consecutive MESSAGE records ``irec .. stop - 1`` into ``out``.

    Stops before the first record that is no plain MESSAGE frame (another tag,
    flags, or a header segment of the wrong size); the caller takes that one
    through the state machine.

    Args:
        recs: the scanner's records (int64, ``FRAME_RECORD_SIZE`` per frame).
        mv: the receive buffer the records index.
        rev1: msgr2.1 framing.
        stream: the session's MessageStream (``in_seq``, ``ack_left``, ``lossy``,
            ``sent``/``acked``), updated as the messages are taken.
        source, owner, stamp: each Message's ``source``, ``connection`` and
            ``recv_stamp``.
        message_cls: the Message class to build.

    Returns:
        ``(irec, rpos, nbytes, donated)``: the next record to take, the read
        position after the last frame decoded (-1 when none was), the payload
        bytes of the messages appended (old duplicates are not), and whether a
        segment of ``ZERO_COPY_MIN`` bytes or more is now a view of ``mv``.
    """
    unpack, h2, append, new = _REC.unpack_from, _H2.unpack_from, out.append, message_cls.__new__
    in_seq, lossy, ack = stream.in_seq, stream.lossy, -1
    nbytes, rpos, donated, acks = 0, -1, False, 0
    i = irec
    try:
        while i < stop:
            start, tag, nseg, l0, l1, l2, l3, flags = unpack(recs, i * 64)
            if tag != TAG_MESSAGE or flags or l0 != HEADER2_SIZE:
                break
            i += 1
            off = start + PREAMBLE_SIZE
            seq, tid, type_, prio, version, _pad, data_off, ack_seq, _fl, compat, _res = h2(mv, off)
            off += HEADER2_SIZE + (4 if rev1 else 0)
            segs = []
            for n in (l1, l2, l3):
                if n == 0:
                    segs.append(b"")
                elif n < ZERO_COPY_MIN:
                    segs.append(bytes(mv[off:off + n]))
                else:
                    segs.append(mv[off:off + n])
                    donated = True
                off += n
            rpos = (off + (13 if nseg > 1 else 0)) if rev1 else off + 17
            if ack_seq > ack:
                ack = ack_seq
            if seq <= in_seq:           # an old duplicate (a replay we already had)
                continue
            in_seq = seq
            if not lossy:
                acks += 1
            m = new(message_cls)        # a received Message, built without __init__'s checks
            m.type = type_
            m.front, m.middle, m.data = segs
            m.priority = prio
            m.tid = tid
            m.version = version
            m.compat_version = compat
            m.data_off = data_off
            m.seq = seq
            m.source = source
            m.connection = owner
            m.recv_stamp = stamp
            m._throttle = None
            m._queued_at = 0.0
            append(m)
            nbytes += l1 + l2 + l3
    finally:
        stream.in_seq = in_seq
        stream.ack_left += acks
        if ack >= 0 and stream.sent and stream.sent[0][0] <= ack:
            stream.acked(ack)
    return i, rpos, nbytes, donated
