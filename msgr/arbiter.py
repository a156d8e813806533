"""Who wins when a peer's CLIENT_IDENT or SESSION_RECONNECT meets an existing session.

Pure functions of two snapshots (the existing connection's view and the
request), so every rule is unit-testable. They follow Ceph's
``ProtocolV2::handle_existing_connection`` and ``handle_reconnect`` in order;
the first matching rule decides. Addresses compare as Ceph's ``operator<`` on
``entity_addr_t`` (a memcmp; :meth:`EntityAddr.sort_key`): the connection
initiated by the lower address wins a race.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .entity import EntityAddr

__all__ = ["Existing", "Outcome", "Verdict", "decide_ident", "decide_reconnect"]


class Verdict(Enum):
    """Who wins, and how the loser is told."""

    ACCEPT_NEW = "accept_new"         # the request starts a new session on its own connection
    REPLACE_LOSSY = "replace_lossy"   # stop the existing lossy one, then as ACCEPT_NEW
    REUSE = "reuse"                   # the existing connection adopts the new socket
    STOP = "stop"                     # the request is stale: close it without a word
    WAIT = "wait"                     # reply WAIT: our own attempt wins the race
    RESET = "reset"                   # reply SESSION_RESET (``full`` or not)
    RETRY = "retry"                   # reply SESSION_RETRY with ``seq`` (our connect_seq)
    RETRY_GLOBAL = "retry_global"     # reply SESSION_RETRY_GLOBAL with ``seq``


@dataclass(frozen=True)
class Existing:
    """What the arbiter needs to know about the existing connection (a snapshot)."""

    dead: bool
    ready: bool
    standby: bool
    lossy: bool
    server: bool
    resetcheck: bool
    client_cookie: int
    server_cookie: int
    connect_seq: int
    peer_global_seq: int
    peer_addr: EntityAddr


@dataclass(frozen=True)
class Outcome:
    """The decision: a :class:`Verdict`; for ``REUSE``, ``reset`` resets the
    existing session first; ``full`` and ``seq`` go into the reply."""

    kind: Verdict
    full: bool = False
    seq: int = 0
    reset: bool = False


def decide_ident(ex: Existing, client_cookie: int, global_seq: int, peer_addr: EntityAddr,
                 my_addr: EntityAddr) -> Outcome:
    """``handle_existing_connection`` for a CLIENT_IDENT."""
    if ex.dead:
        return Outcome(Verdict.ACCEPT_NEW)
    if ex.peer_global_seq > global_seq:
        return Outcome(Verdict.STOP)
    if ex.lossy:
        return Outcome(Verdict.REPLACE_LOSSY)
    if ex.server_cookie and ex.client_cookie and ex.client_cookie != client_cookie:
        return Outcome(Verdict.REUSE, reset=ex.resetcheck)        # the peer restarted
    if ex.client_cookie == client_cookie:
        return Outcome(Verdict.REUSE)                             # establishment was interrupted
    if ex.ready or ex.standby:
        return Outcome(Verdict.REUSE)
    if peer_addr.sort_key() < my_addr.sort_key() or ex.server:
        return Outcome(Verdict.REUSE)                             # race: the peer's attempt wins
    return Outcome(Verdict.WAIT)                                  # race: ours wins


def decide_reconnect(ex: Existing, client_cookie: int, global_seq: int, connect_seq: int,
                     my_addr: EntityAddr) -> Outcome:
    """``handle_reconnect`` for a SESSION_RECONNECT (``ex`` None: no session here)."""
    if ex is None or ex.dead:
        return Outcome(Verdict.RESET, full=True)
    if ex.client_cookie != client_cookie:
        return Outcome(Verdict.RESET, full=ex.resetcheck)
    if ex.server_cookie == 0:
        return Outcome(Verdict.RESET, full=False)     # we were the client and never got SERVER_IDENT
    if ex.peer_global_seq > global_seq:
        return Outcome(Verdict.RETRY_GLOBAL, seq=ex.peer_global_seq)
    if ex.connect_seq > connect_seq:
        return Outcome(Verdict.RETRY, seq=ex.connect_seq)
    if ex.connect_seq == connect_seq and ex.peer_addr.sort_key() > my_addr.sort_key() \
            and not ex.server:
        return Outcome(Verdict.WAIT)                  # reconnect race: ours wins
    return Outcome(Verdict.REUSE)
