"""Message: one msgr2 MESSAGE frame's worth of user data.

A message has three payload segments (``front``, ``middle``, ``data``), any
bytes-like objects; large ``data`` travels without a copy in Python. The header
fields map one to one onto ``ceph_msg_header2``.

:class:`Message` is the compiled type (``msgr._native._message``) when it is
built, else its pure-Python twin (``msgr._native.message``, the
specification); ``MSGR_NATIVE=0`` picks the twin. Both behave alike.
"""
from __future__ import annotations

from ._native import Message
from ._native.message import (FIELD_BITS, SEGMENTS, check_header_fields, check_segments,
                              segment_error)

__all__ = ["Message", "FIELD_BITS", "SEGMENTS", "check_header_fields", "check_segments",
           "segment_error"]
