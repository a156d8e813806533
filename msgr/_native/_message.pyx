# cython: language_level=3, freethreading_compatible=True
"""Message, compiled: the twin of :mod:`msgr._native.message` (which is its specification).

A ``cdef class`` with the same constructor, checks, error messages, attributes,
``size`` and ``repr``; subclassable from Python (a subclass gets a ``__dict__``).
The common case (int header fields in range, ``bytes`` segments) is checked in
C; anything else goes to the pure module's :func:`check_header_fields` and
:func:`check_segments`, so the errors are the same words. Received messages are
built by the compiled decoder straight into these fields, without ``__init__``.
"""
from .message import check_header_fields, check_segments

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object, int*) except? -1
    bint PyLong_CheckExact(object)
    bint PyBytes_CheckExact(object)


cdef inline bint _fits(object v, long long limit):
    """``v`` is an exact int in ``0 .. limit - 1`` (False: let the slow check decide)."""
    cdef int overflow = 0
    cdef long long x
    if not PyLong_CheckExact(v):
        return False
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0 and 0 <= x < limit


cdef inline bint _fits_u64(object v):
    """``v`` is an exact int in ``0 .. 2**63 - 1`` (larger tids take the slow check)."""
    cdef int overflow = 0
    cdef long long x
    if not PyLong_CheckExact(v):
        return False
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0 and x >= 0


cdef class Message:
    """A message to send, or one received.

    Args:
        type: the message type (``CEPH_MSG_*``), 0..65535.
        front, middle, data: bytes-like payload segments.
        priority: 0..255, higher goes first; see the ``PRIO_*`` constants.
        tid: transaction id, echoed by convention in replies.
        version, compat_version: the encoding version of the front payload.
        data_off: the data segment's offset hint (``ceph_msg_header2.data_off``).

    Raises:
        TypeError: a header field is not an int, or a segment is not a
            contiguous bytes-like object whose ``len()`` is its size in bytes.
        ValueError: a header field is out of its wire range (type, version,
            compat_version and data_off: 16 bits; priority: 8; tid: 64).

    Set on receipt: ``seq``, ``connection``, ``source`` (the peer's
    :class:`~msgr.EntityName`), ``recv_stamp`` (monotonic seconds).
    """

    PRIO_LOW = 64
    PRIO_DEFAULT = 127
    PRIO_HIGH = 196
    PRIO_HIGHEST = 255

    def __init__(self, type, front=b"", middle=b"", data=b"", *,
                 priority=127, tid=0, version=1, compat_version=1, data_off=0):
        if not (_fits(type, 65536) and _fits(priority, 256) and _fits_u64(tid)
                and _fits(version, 65536) and _fits(compat_version, 65536)
                and _fits(data_off, 65536)):
            check_header_fields(type=type, priority=priority, tid=tid, version=version,
                                compat_version=compat_version, data_off=data_off)
        if not (PyBytes_CheckExact(front) and PyBytes_CheckExact(middle)
                and PyBytes_CheckExact(data)):
            check_segments(front, middle, data)
        self.type = type
        self.front = front
        self.middle = middle
        self.data = data
        self.priority = priority
        self.tid = tid
        self.version = version
        self.compat_version = compat_version
        self.data_off = data_off
        self.seq = 0
        self.connection = None
        self.source = None
        self.recv_stamp = 0.0
        self._throttle = None
        self._queued_at = 0.0

    @property
    def size(self):
        """Total payload bytes (front + middle + data), the throttle cost."""
        return len(self.front) + len(self.middle) + len(self.data)

    def __repr__(self):
        return (f"Message(type={self.type}, seq={self.seq}, tid={self.tid}, prio={self.priority}, "
                f"front={len(self.front)}B, middle={len(self.middle)}B, data={len(self.data)}B)")
