"""Message: one msgr2 MESSAGE frame's worth of user data.

A message has three payload segments (``front``, ``middle``, ``data``), any
bytes-like objects; large ``data`` travels without a copy in Python. The header
fields map one to one onto ``ceph_msg_header2``.
"""
from __future__ import annotations

__all__ = ["Message"]


class Message:
    """A message to send, or one received.

    Args:
        type: the message type (``CEPH_MSG_*``), 0..65535.
        front, middle, data: bytes-like payload segments.
        priority: 0..255, higher goes first; see the ``PRIO_*`` constants.
        tid: transaction id, echoed by convention in replies.
        version, compat_version: the encoding version of the front payload.

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
        if not 0 <= type <= 0xFFFF:
            raise ValueError(f"message type {type} out of range 0..65535")
        if not 0 <= priority <= 255:
            raise ValueError(f"priority {priority} out of range 0..255")
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
