"""Events that cross the protocol boundary (machine -> its owner).

``ProtocolMachine.next_event()`` returns a received :class:`~msgr.Message`
as itself (the hot path makes no extra object), or one of these frozen
dataclasses, or the :data:`NEED_DATA` sentinel. Owners dispatch on ``type()``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..entity import EntityAddr, EntityName
from ..errors import MsgrError

__all__ = ["NEED_DATA", "Established", "Faulted", "KeepaliveAck", "AddrLearned",
           "RemoteReset", "SessionRequest", "Decision"]


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
        refused: the server refused features (IDENT_MISSING_FEATURES) or auth.
    """

    error: MsgrError
    was_ready: bool
    wait: bool = False
    refused: bool = False


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


@dataclass(frozen=True)
class Decision:
    """The owner's answer to a :class:`SessionRequest` (Ceph's ``handle_existing_connection``
    and ``handle_reconnect`` outcomes).

    Attributes:
        kind: ``"accept"`` (SERVER_IDENT, or RECONNECT_OK for a reconnect),
            ``"wait"``, ``"reset"``, ``"retry"``, ``"retry_global"`` or ``"stop"``.
        full: for ``"reset"``: a full session reset.
        seq: for ``"retry"`` the connect_seq, for ``"retry_global"`` the global_seq.
        session: for ``"accept"``: the existing Session to continue (reuse), or
            None for the machine's own new session.
    """

    kind: str
    full: bool = False
    seq: int = 0
    session: object = None
