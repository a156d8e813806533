"""A connection's lifecycle state, and what it does after a fault, as plain data.

Ceph's ProtocolV2 keeps one enum for the handshake steps and for the states of
the connection around them (STANDBY, WAIT, CLOSED). Here one
:class:`~msgr.protocol.machine.ProtocolMachine` lives per transport, so the two
are apart: the machine's :class:`~msgr.protocol.states.ConnState` says where a
handshake is; :class:`LinkState` says where the connection is (crimson's
``ProtocolV2::state_t``), and it is what ``repr``, metrics and logs show.

The fault decision is the pure function :func:`after_fault` of the facts a
fault leaves (:class:`FaultFacts`), Ceph's ``ProtocolV2::_fault`` rule by
rule, unit-tested without sockets like :mod:`msgr.arbiter`. A socket that moves
from one connection to another (adoption) travels as a :class:`Handoff` value.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

__all__ = ["LinkState", "Next", "FaultFacts", "after_fault", "next_backoff", "Handoff",
           "LinkListener"]


class LinkState(Enum):
    """Where a connection is, whichever transport is under it.

    ::

        NONE -> CONNECTING -> READY -> (fault) -> CONNECTING | WAIT | STANDBY | CLOSED
        NONE -> ACCEPTING -> READY          WAIT -> (backoff timer) -> CONNECTING
        ACCEPTING -> HANDED_OFF -> ACCEPTING | CLOSED (adopted by the existing connection)
        STANDBY -> (something to send) -> CONNECTING;  STANDBY -> (the peer redials) -> ACCEPTING
    """

    NONE = 0          # made, not started yet
    CONNECTING = 1    # dialling: the transport connects, then our handshake runs
    ACCEPTING = 2     # the handshake of an accepted (or adopted) transport runs
    READY = 3         # the session is up on a transport; messages flow
    STANDBY = 4       # lossless, no transport: waits for a send (or for the peer to redial)
    WAIT = 5          # no transport: a backoff timer redials
    HANDED_OFF = 6    # accepted: its session request is with the existing connection
    CLOSED = 7        # for good


class Next(Enum):
    """What a connection does after a fault (:func:`after_fault`)."""

    REDIAL = "redial"             # dial again at once (a READY session broke: connect_seq + 1)
    BACKOFF = "backoff"           # dial again after the backoff: WAIT
    STANDBY = "standby"           # keep the session; wait without a transport
    CLOSE_RESET = "close_reset"   # close, and tell the dispatchers (ms_handle_reset)
    CLOSE = "close"               # close silently: nothing was ever announced


@dataclass(frozen=True, slots=True)
class FaultFacts:
    """What :func:`after_fault` decides on.

    Attributes:
        lossy, server, standby: the policy's flags (the transport's, as negotiated).
        announced: ``ms_handle_connect``/``ms_handle_accept`` was delivered once.
        can_dial: this side may redial the peer (it dialled, or the peer's
            address is dialable); never with a server policy.
        was_ready: the session was READY on the transport that faulted.
        peer_wait: the peer answered WAIT (it wins a connection race).
        has_output: messages are queued (unacked ones requeued) or a keepalive is wanted.
    """

    lossy: bool
    server: bool
    standby: bool
    announced: bool
    can_dial: bool
    was_ready: bool
    peer_wait: bool
    has_output: bool


def after_fault(f: FaultFacts) -> Next:
    """Ceph's ``ProtocolV2::_fault``, in its order; the first rule that matches decides.

    * lossy: an announced session ends with a reset; a dialling side that failed
      its handshake retries after a backoff; an unannounced accepted one goes.
    * lossless: an accepted side that was never announced and cannot dial goes;
      a ``standby`` policy with nothing to send, or a server, or a side that cannot
      dial waits in STANDBY; a READY session redials at once; a failed handshake
      redials after a backoff.
    """
    if f.lossy:
        if f.announced:
            return Next.CLOSE_RESET
        return Next.BACKOFF if f.can_dial else Next.CLOSE
    if not f.announced and not f.can_dial:
        return Next.CLOSE
    if f.standby and not f.has_output and not f.peer_wait:
        return Next.STANDBY
    if f.server or not f.can_dial:
        return Next.STANDBY
    return Next.REDIAL if f.was_ready else Next.BACKOFF


def next_backoff(current: float, peer_wait: bool, initial: float, maximum: float) -> float:
    """The next redial delay: ``maximum`` after a WAIT, else ``initial`` doubling up to it."""
    if peer_wait:
        return maximum
    if not current:
        return initial
    return min(2 * current, maximum)


@dataclass(frozen=True, slots=True)
class Handoff:
    """An accepted socket on its way to the connection that adopts it
    (crimson's ``FrameAssemblerV2::mover_t``): its machine and its transport.

    Whoever holds the value owns both; it is only ever held by one side, taken
    under the handing connection's lock (:meth:`msgr.connection.Connection.claim_for_handoff`).
    """

    machine: object
    transport: object

    def close(self) -> None:
        """Closes the transport and the machine (nobody will adopt them)."""
        self.transport.close()
        self.machine.close()


class LinkListener(Protocol):
    """What an IOHandler tells its lifecycle (crimson's ``HandshakeListener``).

    Implemented by :class:`msgr.lifecycle.Lifecycle`; every method runs on the
    connection's reactor thread.
    """

    state: LinkState

    def on_established(self, ev) -> None:
        """The handshake finished on this transport: the session is READY."""

    def on_fault(self, ev) -> None:
        """The transport must go (the machine faulted, or the transport broke)."""

    def on_session_request(self, req) -> bool:
        """An accepted peer named itself; False when this transport stops reading."""

    def on_remote_reset(self, dropped: int) -> None:
        """The peer lost our session; ``dropped`` queued messages went with it."""

    def on_connected(self) -> None:
        """A dialled transport connected: start the handshake on it."""

    def want_send(self) -> None:
        """Messages were queued while there is no transport."""

    def want_keepalive(self) -> None:
        """A keepalive was asked for while there is no transport."""

    def internal_error(self, error: Exception) -> None:
        """A bug hit a reactor entry point: close the connection."""
