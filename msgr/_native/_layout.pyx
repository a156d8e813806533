# cython: language_level=3, freethreading_compatible=True, boundscheck=False, wraparound=False
"""Laying out messages as MESSAGE frames, compiled: the twin of :mod:`msgr._native.layout`.

Same arguments, same bytes, same numbering as the pure
:func:`~msgr._native.layout.lay_out` (its specification). Each frame is sized
first, the batch buffer grown once for it, and the header stored with
little-endian writes; segments are copied from their buffers (bytes directly,
anything else through the buffer protocol once the twin's ``segment_error``
has accepted it).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.number cimport PyNumber_Index

from ._message cimport Message
from .message import segment_error

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object)

cdef extern from *:
    """
    static inline void msgr_st64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
    static inline void msgr_st32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
    static inline void msgr_st16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
    """
    void msgr_st64(unsigned char *p, uint64_t v) nogil
    void msgr_st32(unsigned char *p, uint32_t v) nogil
    void msgr_st16(unsigned char *p, uint16_t v) nogil

COPY_LIMIT = 64 * 1024
FRAME_FLAGS = 3

cdef enum:
    _COPY_LIMIT = 64 * 1024
    _FLAGS = 3
    PREAMBLE = 32
    HEADER2 = 41


cdef inline uint16_t _u16(object v) except? 0xFFFF:
    """``v`` as struct's ``H``: an int (or what acts as one) in 0..65535."""
    cdef long x = PyNumber_Index(v)
    if x < 0 or x > 0xFFFF:
        raise OverflowError(f"{x} does not fit an unsigned 16-bit header field")
    return <uint16_t>x


cdef class _Segment:
    """One segment's bytes, held for the copy (a buffer export, or a bytes object)."""
    cdef Py_buffer view
    cdef bint held
    cdef const char *ptr
    cdef Py_ssize_t size

    cdef int take(self, object seg) except -1:
        if PyBytes_CheckExact(seg):
            self.ptr, self.size = PyBytes_AS_STRING(seg), PyBytes_GET_SIZE(seg)
            return 0
        why = segment_error(seg)         # the twin's words for what is not a segment
        if why is not None:
            raise ValueError(why)
        if len(seg) == 0:               # (an empty view may be strided: nothing to copy)
            self.ptr, self.size = NULL, 0
            return 0
        PyObject_GetBuffer(seg, &self.view, PyBUF_SIMPLE)
        self.held = True
        self.ptr, self.size = <const char*>self.view.buf, self.view.len
        return 0

    cdef void release(self):
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False


def lay_out(list batch, Py_ssize_t i, Py_ssize_t stop, bytearray buf, list lens, seq, in_seq,
            bint lossy, sent, bint rev1):
    """See :func:`msgr._native.layout.lay_out` (the specification)."""
    cdef uint64_t s = seq, ack = in_seq
    cdef _Segment f = _Segment(), mid = _Segment(), d = _Segment()
    cdef Message m
    cdef object obj
    cdef uint16_t typ, prio, ver, off16, compat
    cdef uint64_t tid
    cdef Py_ssize_t size, at, epi
    cdef unsigned char *p
    if stop > len(batch):
        stop = len(batch)
    while i < stop:
        obj = batch[i]
        try:
            if not isinstance(obj, Message):
                raise TypeError(f"{type(obj).__name__} is not a msgr.Message")
            m = <Message>obj
            f.take(m.front)
            mid.take(m.middle)
            d.take(m.data)
            if f.size > _COPY_LIMIT or mid.size > _COPY_LIMIT or d.size > _COPY_LIMIT:
                return i, s, None
            tid = PyNumber_Index(m.tid)     # as struct's Q: no float, no negative, no 2**64
            typ, prio, ver = _u16(m.type), _u16(m.priority), _u16(m.version)
            off16, compat = _u16(m.data_off), _u16(m.compat_version)
            s += 1
            m.seq = s
            if not lossy:
                sent.append((s, m))
            lens.append(f.size)
            lens.append(mid.size)
            lens.append(d.size)
            epi = (13 if (f.size or mid.size or d.size) else 0) if rev1 else 17
            size = PREAMBLE + HEADER2 + (4 if rev1 else 0) + f.size + mid.size + d.size + epi
            at = PyByteArray_GET_SIZE(buf)
            PyByteArray_Resize(buf, at + size)
            p = <unsigned char*>PyByteArray_AS_STRING(buf) + at
            memset(p, 0, PREAMBLE)
            p += PREAMBLE
            msgr_st64(p, s)
            msgr_st64(p + 8, tid)
            msgr_st16(p + 16, typ)
            msgr_st16(p + 18, prio)
            msgr_st16(p + 20, ver)
            msgr_st32(p + 22, 0)
            msgr_st16(p + 26, off16)
            msgr_st64(p + 28, ack)
            p[36] = _FLAGS
            msgr_st16(p + 37, compat)
            msgr_st16(p + 39, 0)
            p += HEADER2
            if rev1:
                memset(p, 0, 4)
                p += 4
            memcpy(p, f.ptr, f.size)
            p += f.size
            memcpy(p, mid.ptr, mid.size)
            p += mid.size
            memcpy(p, d.ptr, d.size)
            p += d.size
            memset(p, 0, epi)
        except Exception as e:
            return i, s, e
        finally:
            f.release()
            mid.release()
            d.release()
        i += 1
    return i, s, None
