"""Events that cross the protocol boundary (machine -> its owner).

``ProtocolMachine.next_event()`` returns a received :class:`~msgr.Message`
as itself (the hot path makes no extra object), or one of these frozen
dataclasses, or the :data:`NEED_DATA` sentinel. Owners dispatch on ``type()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..entity import EntityAddr, EntityName
from ..errors import MsgrError

__all__ = ["NEED_DATA", "Established", "Faulted", "KeepaliveAck", "AddrLearned",
           "RemoteReset", "SessionRequest", "Decision", "Reply"]


class _NeedData:
    """Sentinel: no event until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Established:
    """The handshake finished; the session is READY.

    Attributes:
        accepted: True on the accepting side (``ms_handle_accept``), False on
            the connecting side (``ms_handle_connect``).
        reconnected: True when an existing session was resumed.
    """

    accepted: bool
    peer_name: EntityName
    peer_addrs: tuple
    features: int
    lossy: bool
    reconnected: bool = False


@dataclass(frozen=True, slots=True)
class Faulted:
    """The transport under this machine must be dropped.

    Attributes:
        error: why (a RemoteProtocolError, TransportError, ...).
        was_ready: the session had reached READY on this transport.
        wait: the peer said WAIT: retry after ``ms_max_backoff``.
    """

    error: MsgrError
    was_ready: bool
    wait: bool = False


@dataclass(frozen=True, slots=True)
class KeepaliveAck:
    """The peer acknowledged our KEEPALIVE2 with this utime stamp."""

    stamp: tuple


@dataclass(frozen=True, slots=True)
class AddrLearned:
    """The peer told us the address it sees us at (HELLO)."""

    addr: EntityAddr


@dataclass(frozen=True, slots=True)
class RemoteReset:
    """The peer lost our session (SESSION_RESET full); queues were dropped.

    ``dropped``: how many queued or unacknowledged messages went with them.
    """

    dropped: int = 0


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """Accepting side: a CLIENT_IDENT or SESSION_RECONNECT awaits the owner's decision.

    The machine processes no further frames until ``machine.decide(Decision)``.
    ``ident`` is the decoded ``ClientIdent`` or ``Reconnect`` payload.
    """

    reconnect: bool
    ident: object
    peer_addrs: tuple


class Reply(Enum):
    """What the accepting machine answers a :class:`SessionRequest` with (the frame it sends)."""

    ACCEPT = "accept"               # SERVER_IDENT, or SESSION_RECONNECT_OK for a reconnect
    WAIT = "wait"                   # WAIT: a connection race this side wins
    RESET = "reset"                 # SESSION_RESET (``full`` or not)
    RETRY = "retry"                 # SESSION_RETRY with our connect_seq
    RETRY_GLOBAL = "retry_global"   # SESSION_RETRY_GLOBAL with the peer global_seq we know
    STOP = "stop"                   # nothing: a stale attempt, closed without a word


@dataclass(frozen=True)
class Decision:
    """The owner's answer to a :class:`SessionRequest` (Ceph's ``handle_existing_connection``
    and ``handle_reconnect`` outcomes).

    Attributes:
        kind: the :class:`Reply` to send.
        full: for ``RESET``: a full session reset.
        seq: for ``RETRY`` the connect_seq, for ``RETRY_GLOBAL`` the global_seq.
        session: for ``ACCEPT``: the existing Session to continue (reuse), or
            None for the machine's own new session.
    """

    kind: Reply
    full: bool = False
    seq: int = 0
    session: object = None

    def __post_init__(self) -> None:
        """``kind`` may be given as the Reply's value (``"accept"``); anything else raises
        ValueError here rather than sending a wrong frame later."""
        object.__setattr__(self, "kind", Reply(self.kind))
