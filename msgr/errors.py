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

__all__ = [
    "MsgrError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
    "ConnectionClosed", "TransportError", "ConnectionRefused", "ConfigError",
]


class MsgrError(Exception):
    """Base of every msgr error."""


class ProtocolError(MsgrError):
    """A msgr2 protocol rule was broken (see the two subclasses)."""


class LocalProtocolError(ProtocolError):
    """This side asked for something illegal; nothing was changed."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something illegal.

    Attributes:
        reason: a short machine-friendly word (``"bad_crc"``, ``"bad_tag"``, ...)
            used for counting faults.
    """

    def __init__(self, message: str, reason: str = "protocol") -> None:
        super().__init__(message)
        self.reason = reason


class ConnectionClosed(MsgrError):
    """The connection was closed by this side."""


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
