"""The msgr error hierarchy.

Every error msgr raises into user code derives from :class:`MsgrError`. OS
errors never escape: ``msgr.transports.base.translate_os_errors`` turns them
into :class:`TransportError` at the one boundary where sockets are touched.

What each error leaves behind:

* :class:`LocalProtocolError`: *you* (this side) did something the protocol or
  the API forbids. The object is unchanged; fix the call.
* :class:`RemoteProtocolError`: the *peer* sent bytes that break msgr2. Inside
  msgr this faults that one connection per its policy; it never reaches a
  dispatcher.
* :class:`ConnectionClosed`: the operation needs a connection that this side
  closed (``mark_down``, ``shutdown``).
* :class:`TransportError`: the byte stream broke underneath (reset, refused,
  timed out). ``errno`` keeps the OS error number when there was one.
* :class:`ConfigError`: a bad configuration value or address string; it is a
  ``ValueError`` and its message names the option.
"""
from __future__ import annotations

from enum import StrEnum

__all__ = [
    "MsgrError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
    "ConnectionClosed", "TransportError", "ConnectionRefused", "ConfigError", "Reason",
]


class Reason(StrEnum):
    """Why a peer's bytes were refused: :attr:`RemoteProtocolError.reason`.

    A ``str`` enum, so ``error.reason == "bad_crc"`` holds; inside msgr the
    members are used, so a misspelt reason fails where it is written.
    """

    PROTOCOL = "protocol"       # any other protocol rule
    BAD_BANNER = "bad_banner"   # not a msgr2 banner (msgr v1, garbage)
    BAD_CRC = "bad_crc"         # a preamble or segment CRC32C mismatch
    BAD_FRAME = "bad_frame"     # a frame's layout (segment count, lengths, late status)
    BAD_TAG = "bad_tag"         # a frame tag unknown, or not allowed in this state
    DECODE = "decode"           # a payload that does not decode
    TOO_LARGE = "too_large"     # a segment over ms_max_segment_bytes
    AUTH = "auth"               # authentication refused or failed
    FEATURES = "features"       # the peers' required features do not match
    PEER_ADDR = "peer_addr"     # the peer names addresses that do not fit
    PEER_TYPE = "peer_type"     # the peer is not the entity type we dialled
    WAIT = "wait"               # the peer answered WAIT (a connection race it wins)

    @property
    def is_bad_frame(self) -> bool:
        """True for reasons that mean corrupt or malformed frames (``msgr_bad_frames_total``)."""
        return self in _BAD_FRAME


_BAD_FRAME = frozenset({Reason.BAD_CRC, Reason.BAD_FRAME, Reason.BAD_TAG, Reason.DECODE,
                        Reason.TOO_LARGE, Reason.BAD_BANNER})


class MsgrError(Exception):
    """Base of every msgr error."""


class ProtocolError(MsgrError):
    """A msgr2 protocol rule was broken (see the two subclasses)."""


class LocalProtocolError(ProtocolError):
    """This side asked for something illegal; nothing was changed."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal.

    Attributes:
        reason: a :class:`Reason` (a ``str`` enum: ``"bad_crc"``, ``"bad_tag"``, ...),
            used for counting faults.

    Raises:
        ValueError: ``reason`` is not one of :class:`Reason`'s values.
    """

    def __init__(self, message: str, reason: Reason | str = Reason.PROTOCOL) -> None:
        super().__init__(message)
        self.reason = Reason(reason)


class ConnectionClosed(MsgrError):
    """The connection was closed by this side.

    Nothing raises it yet: it is the error a pending ``Connection.request()``
    future will fail with when its connection is marked down or reset.
    """


class TransportError(MsgrError):
    """The transport failed underneath the protocol.

    Attributes:
        errno: the OS error number, or None when the failure was not an OS error
            (for example an injected failure or an end of stream).
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class ConnectionRefused(TransportError):
    """The peer refused the connection attempt (ECONNREFUSED)."""


class ConfigError(MsgrError, ValueError):
    """A configuration value or an address string is invalid.

    Attributes:
        option: the name of the offending option (or ``"address"``).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
