# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""Decoding MESSAGE frames into Messages, compiled: the twin of :mod:`msgr._native.decode`.

Same arguments, same results, same session updates as the pure
:func:`~msgr._native.decode.decode_run` (its specification). The header is read
from the receive buffer with little-endian loads, small segments become
``bytes`` with one allocation each, and the compiled :class:`Message` is filled
in place. Bounds: every record comes from the frame scanner, which checked that
the frame lies within the scanned bytes; the loop checks it again before it
reads (``FrameOutOfBounds`` would be a scanner bug, raised, never a read past the end).
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize

from ._message cimport Message

cdef extern from *:
    """
    static inline uint64_t msgr_le64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
    static inline uint16_t msgr_le16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
    """
    uint64_t msgr_le64(const unsigned char *p) nogil
    uint16_t msgr_le16(const unsigned char *p) nogil

cdef enum:
    ZERO_COPY_MIN = 128 * 1024      # segments this large are views of the buffer
    PREAMBLE_SIZE = 32
    HEADER2_SIZE = 41
    TAG_MESSAGE = 17                # frames.Tag.MESSAGE
    RECORD = 8                      # int64 per scanner record (FRAME_RECORD_SIZE)


def decode_run(const int64_t[:] recs, Py_ssize_t irec, Py_ssize_t stop, mv, bint rev1, stream,
               source, owner, double stamp, list out, message_cls):
    """See :func:`msgr._native.decode.decode_run` (the specification)."""
    if message_cls is not Message:
        raise TypeError("the compiled decoder builds the compiled Message")
    cdef const unsigned char[:] buf = mv
    cdef const unsigned char *p
    cdef Py_ssize_t i = irec, blen = buf.shape[0], off, start, nseg, l0, l1, l2, l3, end
    cdef Py_ssize_t nrec_max = recs.shape[0] // RECORD
    cdef uint64_t seq, in_seq = stream.in_seq, ack = 0, ack_seq
    cdef bint lossy = stream.lossy, have_ack = False, donated = False
    cdef Py_ssize_t acks = 0, rpos = -1
    cdef object nbytes = 0
    cdef Py_ssize_t nsmall = 0
    cdef Message m
    cdef object front, middle, data
    if stop > nrec_max:
        stop = nrec_max
    try:
        while i < stop:
            start = recs[i * RECORD]
            nseg = recs[i * RECORD + 2]
            l0 = recs[i * RECORD + 3]
            if recs[i * RECORD + 1] != TAG_MESSAGE or recs[i * RECORD + 7] or l0 != HEADER2_SIZE:
                break
            l1, l2, l3 = recs[i * RECORD + 4], recs[i * RECORD + 5], recs[i * RECORD + 6]
            off = start + PREAMBLE_SIZE
            end = off + HEADER2_SIZE + (4 if rev1 else 0) + l1 + l2 + l3
            if start < 0 or l1 < 0 or l2 < 0 or l3 < 0 or end > blen:
                raise ValueError(f"frame record {i} lies outside the {blen}-byte buffer")
            i += 1
            p = &buf[off]
            seq = msgr_le64(p)
            ack_seq = msgr_le64(p + 28)
            off += HEADER2_SIZE + (4 if rev1 else 0)
            front = _segment(buf, mv, off, l1)
            off += l1
            middle = _segment(buf, mv, off, l2)
            off += l2
            data = _segment(buf, mv, off, l3)
            off += l3
            if l1 >= ZERO_COPY_MIN or l2 >= ZERO_COPY_MIN or l3 >= ZERO_COPY_MIN:
                donated = True
            rpos = (off + (13 if nseg > 1 else 0)) if rev1 else off + 17
            if not have_ack or ack_seq > ack:
                ack, have_ack = ack_seq, True
            if seq <= in_seq:           # an old duplicate (a replay we already had)
                continue
            in_seq = seq
            if not lossy:
                acks += 1
            m = Message.__new__(Message)    # a received Message, built without __init__'s checks
            m.type = msgr_le16(p + 16)
            m.front = front
            m.middle = middle
            m.data = data
            m.priority = msgr_le16(p + 18)
            m.tid = msgr_le64(p + 8)
            m.version = msgr_le16(p + 20)
            m.compat_version = msgr_le16(p + 37)
            m.data_off = msgr_le16(p + 26)
            m.seq = seq
            m.source = source
            m.connection = owner
            m.recv_stamp = stamp
            m._throttle = None
            m._queued_at = 0.0
            out.append(m)
            nsmall += l1 + l2 + l3
    finally:
        stream.in_seq = in_seq
        stream.ack_left += acks
        if have_ack:
            sent = stream.sent
            if sent and sent[0][0] <= ack:
                stream.acked(ack)
    nbytes = nsmall
    return i, rpos, nbytes, donated


cdef inline object _segment(const unsigned char[:] buf, mv, Py_ssize_t off, Py_ssize_t n):
    if n == 0:
        return b""
    if n < ZERO_COPY_MIN:
        return PyBytes_FromStringAndSize(<const char*>&buf[off], n)
    return mv[off:off + n]
