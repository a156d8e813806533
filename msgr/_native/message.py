"""Message, pure Python: the specification of :class:`msgr.Message` (twin of ``_message.pyx``).

A message has three payload segments (``front``, ``middle``, ``data``), any
bytes-like objects; large ``data`` travels without a copy in Python. The header
fields map one to one onto ``ceph_msg_header2``.

The compiled twin (``msgr._native._message``) must behave exactly like this
module's class: same constructor, same checks and error messages (it calls
:func:`check_header_fields` and :func:`check_segments` from here for anything
but the common case), same attributes, ``size`` and ``repr``. The tests run
both (``tests/unit/test_message.py``).
"""
from __future__ import annotations

from ..checks import as_int

__all__ = ["Message", "FIELD_BITS", "SEGMENTS", "check_header_fields", "check_segments",
           "segment_error"]

SEGMENTS = ("front", "middle", "data")     # the payload segments, in wire order
_type = type        # Message.__init__'s first parameter hides the builtin


# ceph_msg_header2's width of each settable field, in bits
FIELD_BITS = {"type": 16, "priority": 8, "tid": 64, "version": 16, "compat_version": 16,
              "data_off": 16}


def check_header_fields(**fields) -> None:
    """Raises TypeError (not an int) or ValueError (out of range) for the first bad field
    (keyword names from ``FIELD_BITS``)."""
    for name, value in fields.items():
        value = as_int(value, f"message {name}")
        if not 0 <= value < 1 << FIELD_BITS[name]:
            raise ValueError(f"message {name} {value} out of range 0..{(1 << FIELD_BITS[name]) - 1}")


def segment_error(seg) -> str | None:
    """Why ``seg`` cannot be a payload segment, or None. Never raises.

    A segment is a C-contiguous buffer (``bytes``, ``bytearray``, ``memoryview``,
    ``array``...) whose ``len()`` is its size in bytes: frame lengths are taken
    from ``len()``.
    """
    kind = type(seg)
    if kind is bytes or kind is bytearray:
        return None
    try:
        if kind is memoryview and seg.c_contiguous and seg.nbytes == len(seg):
            return None             # the usual view (a received large segment, echoed)
        with memoryview(seg) as view:       # released at once: a bytearray stays resizable
            contiguous, nbytes = view.c_contiguous, view.nbytes
        if not contiguous:
            return f"a {kind.__name__} object that is not contiguous"
        if nbytes != len(seg):
            return (f"a {kind.__name__} object whose len() ({len(seg)}) is not its size in "
                    f"bytes ({nbytes}); pass memoryview(x).cast('B')")
    except Exception as e:          # noqa: BLE001 - no buffer protocol, a released view...
        return f"{kind.__name__} is not bytes-like ({e})"
    return None


def check_segments(front, middle, data) -> None:
    """Raises TypeError naming the first segment that :func:`segment_error` refuses."""
    for name, seg in (("front", front), ("middle", middle), ("data", data)):
        if _type(seg) is not bytes and (why := segment_error(seg)) is not None:
            raise TypeError(f"message {name}: {why}")


class Message:
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

    __slots__ = ("type", "front", "middle", "data", "priority", "tid", "version",
                 "compat_version", "seq", "connection", "source", "recv_stamp",
                 "data_off", "_throttle", "_queued_at")

    def __init__(self, type: int, front=b"", middle=b"", data=b"", *,
                 priority: int = 127, tid: int = 0, version: int = 1,
                 compat_version: int = 1, data_off: int = 0) -> None:
        try:        # one cheap test of every header field (a negative int shifts to -1)
            bad = type >> 16 or priority >> 8 or tid >> 64 or version >> 16 or \
                compat_version >> 16 or data_off >> 16
        except TypeError:
            bad = True
        if bad:
            check_header_fields(type=type, priority=priority, tid=tid, version=version,
                          compat_version=compat_version, data_off=data_off)
        if _type(front) is not bytes or _type(middle) is not bytes or _type(data) is not bytes:
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
    def size(self) -> int:
        """Total payload bytes (front + middle + data), the throttle cost."""
        return len(self.front) + len(self.middle) + len(self.data)

    def __repr__(self) -> str:
        return (f"Message(type={self.type}, seq={self.seq}, tid={self.tid}, prio={self.priority}, "
                f"front={len(self.front)}B, middle={len(self.middle)}B, data={len(self.data)}B)")
