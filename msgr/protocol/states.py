"""ProtocolV2's states and the one transition table.

Rule 1: everything that changes a connection's protocol state lives here.
``TRANSITIONS[(state, input)]`` names the action the machine runs and the
state it lands in; an action may pick one of the listed alternatives instead
(for example AUTH_BAD_METHOD on an AUTH_REQUEST). A missing key is a protocol
error: the machine faults and ends in CLOSED. State names are Ceph's
(``src/msg/async/ProtocolV2.h``), so the C++ maps one to one.

One machine lives for one transport (socket); a lossless session outlives it
in a ``Session`` carried by the connection (see ``session.py``). Ceph's
STANDBY (16) is therefore not a machine state here: it is the state of a
connection that waits without a transport, and so without a machine.
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from .frames import Tag

__all__ = ["ConnState", "Input", "Transition", "TRANSITIONS", "TERMINAL",
           "CONNECTING_STATES", "ACCEPTING_STATES"]


class ConnState(Enum):
    """ProtocolV2 states, with Ceph's values (its range checks compare them)."""

    NONE = 0
    START_CONNECT = 1
    BANNER_CONNECTING = 2
    HELLO_CONNECTING = 3
    AUTH_CONNECTING = 4
    AUTH_CONNECTING_SIGN = 5
    SESSION_CONNECTING = 6
    SESSION_RECONNECTING = 7
    START_ACCEPT = 8
    BANNER_ACCEPTING = 9
    HELLO_ACCEPTING = 10
    AUTH_ACCEPTING = 11
    AUTH_ACCEPTING_MORE = 12
    AUTH_ACCEPTING_SIGN = 13
    SESSION_ACCEPTING = 14
    READY = 15
    WAIT = 17
    CLOSED = 18


_LOCAL_INPUTS = {
    "CONNECT": "connect",        # local: start as the connecting side
    "ACCEPT": "accept",          # local: start as the accepting side
    "BANNER": "banner",          # the peer's banner arrived
    "DECIDED": "decided",        # local: the owner answered a SessionRequest
    "FAULT": "fault",            # local: a protocol or transport error
    "CLOSE": "close",            # local: mark_down / shutdown
    "TIMEOUT": "timeout",        # local: ready or idle timeout expired
}

#: What can happen to a machine: a peer frame (one member per frame tag, same
#: name and value as :class:`~msgr.protocol.frames.Tag`) or a local event.
Input = Enum("Input", {**_LOCAL_INPUTS, **{t.name: t.value for t in Tag}},
             module=__name__, qualname="Input")


class Transition(NamedTuple):
    """An edge: run ``action`` (a machine method name), land in ``next`` or one of ``alt``."""

    action: str
    next: ConnState
    alt: frozenset = frozenset()


S, I = ConnState, Input
_T = Transition

CONNECTING_STATES = frozenset({S.START_CONNECT, S.BANNER_CONNECTING, S.HELLO_CONNECTING,
                               S.AUTH_CONNECTING, S.AUTH_CONNECTING_SIGN,
                               S.SESSION_CONNECTING, S.SESSION_RECONNECTING})
ACCEPTING_STATES = frozenset({S.START_ACCEPT, S.BANNER_ACCEPTING, S.HELLO_ACCEPTING,
                              S.AUTH_ACCEPTING, S.AUTH_ACCEPTING_MORE,
                              S.AUTH_ACCEPTING_SIGN, S.SESSION_ACCEPTING})
TERMINAL = frozenset({S.CLOSED})

TRANSITIONS: dict[tuple[ConnState, Input], Transition] = {
    # connecting side
    (S.NONE, I.CONNECT): _T("start_connect", S.BANNER_CONNECTING),
    (S.BANNER_CONNECTING, I.BANNER): _T("client_banner", S.HELLO_CONNECTING),
    (S.HELLO_CONNECTING, I.HELLO): _T("client_hello", S.AUTH_CONNECTING),
    (S.AUTH_CONNECTING, I.AUTH_DONE): _T("auth_done", S.AUTH_CONNECTING_SIGN),
    (S.AUTH_CONNECTING, I.AUTH_BAD_METHOD): _T("auth_bad_method", S.CLOSED),
    (S.AUTH_CONNECTING, I.AUTH_REPLY_MORE): _T("auth_reply_more", S.CLOSED),
    (S.AUTH_CONNECTING_SIGN, I.AUTH_SIGNATURE): _T(
        "client_auth_signature", S.SESSION_CONNECTING, frozenset({S.SESSION_RECONNECTING})),
    (S.SESSION_CONNECTING, I.SERVER_IDENT): _T("server_ident", S.READY),
    (S.SESSION_CONNECTING, I.IDENT_MISSING_FEATURES): _T("ident_missing_features", S.CLOSED),
    (S.SESSION_CONNECTING, I.WAIT): _T("wait", S.WAIT),
    (S.SESSION_RECONNECTING, I.SESSION_RECONNECT_OK): _T("reconnect_ok", S.READY),
    (S.SESSION_RECONNECTING, I.SESSION_RESET): _T("session_reset", S.SESSION_CONNECTING),
    (S.SESSION_RECONNECTING, I.SESSION_RETRY): _T("session_retry", S.SESSION_RECONNECTING),
    (S.SESSION_RECONNECTING, I.SESSION_RETRY_GLOBAL): _T(
        "session_retry_global", S.SESSION_RECONNECTING),
    (S.SESSION_RECONNECTING, I.WAIT): _T("wait", S.WAIT),
    # accepting side
    (S.NONE, I.ACCEPT): _T("start_accept", S.BANNER_ACCEPTING),
    (S.BANNER_ACCEPTING, I.BANNER): _T("server_banner", S.HELLO_ACCEPTING),
    (S.HELLO_ACCEPTING, I.HELLO): _T("server_hello", S.AUTH_ACCEPTING),
    (S.AUTH_ACCEPTING, I.AUTH_REQUEST): _T(
        "auth_request", S.AUTH_ACCEPTING_SIGN, frozenset({S.AUTH_ACCEPTING})),
    (S.AUTH_ACCEPTING_SIGN, I.AUTH_SIGNATURE): _T("server_auth_signature", S.SESSION_ACCEPTING),
    (S.SESSION_ACCEPTING, I.CLIENT_IDENT): _T("client_ident", S.SESSION_ACCEPTING),
    (S.SESSION_ACCEPTING, I.SESSION_RECONNECT): _T("session_reconnect", S.SESSION_ACCEPTING),
    (S.SESSION_ACCEPTING, I.DECIDED): _T(
        "decided", S.READY, frozenset({S.SESSION_ACCEPTING, S.CLOSED})),
    # steady state. (READY, MESSAGE) is the hot path: ProtocolMachine decodes
    # MESSAGE frames in READY itself (rx.py), without stepping, and lands here
    # again; the "message" action is never run (it raises if it were).
    (S.READY, I.MESSAGE): _T("message", S.READY),
    (S.READY, I.ACK): _T("ack", S.READY),
    (S.READY, I.KEEPALIVE2): _T("keepalive", S.READY),
    (S.READY, I.KEEPALIVE2_ACK): _T("keepalive_ack", S.READY),
}

# Local inputs valid from every live state.
for _s in ConnState:
    if _s is not S.CLOSED:
        TRANSITIONS[(_s, I.FAULT)] = _T("fault", S.CLOSED, frozenset({S.WAIT}))
        TRANSITIONS[(_s, I.CLOSE)] = _T("close", S.CLOSED)
        TRANSITIONS[(_s, I.TIMEOUT)] = _T("timeout", S.CLOSED)
    else:
        TRANSITIONS[(_s, I.CLOSE)] = _T("close", S.CLOSED)

