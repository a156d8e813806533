"""Accepting side of session establishment: CLIENT_IDENT, SESSION_RECONNECT, decisions.

Table actions mixed into :class:`~msgr.protocol.machine.ProtocolMachine`.
The machine checks what it can alone (addresses, features), then emits a
:class:`SessionRequest` and waits: whether an existing session is reused, the
peer must WAIT, retry or reset is the owner's call, because only the owner can
see the other connections (Ceph's ``handle_existing_connection`` and
``handle_reconnect``). The owner answers with ``decide(Decision)``.
"""
from __future__ import annotations

from ..errors import Reason, RemoteProtocolError
from .events import Decision, Reply, SessionRequest
from .frames import Tag
from .params import FEATURE_MSG_ADDR2
from .payloads import (FLAG_LOSSY, ClientIdent, Reconnect, ServerIdent, decode_client_ident,
                       decode_reconnect, encode_server_ident, encode_u8, encode_u64)
from .states import ConnState, Input

__all__ = ["AcceptMixin"]


class AcceptMixin:
    """See the module docstring."""

    _request: SessionRequest | None = None

    def decide(self, decision: Decision) -> None:
        """Answers the pending SessionRequest (owner side)."""
        self._run(Input.DECIDED, decision)

    def _check_addrs(self, addrs: tuple) -> None:
        if not addrs or addrs[0].type == "none":
            raise RemoteProtocolError("session frame without a peer address", Reason.PEER_ADDR)

    def _a_client_ident(self, payload: bytes):
        ident: ClientIdent = decode_client_ident(payload)
        self._check_addrs(ident.addrs)
        if ident.target_addr not in self.my_addrs:
            raise RemoteProtocolError(
                f"peer is trying to reach us at {ident.target_addr}, which is not one of "
                f"{[str(a) for a in self.my_addrs]}", Reason.PEER_ADDR)
        missing = (self.policy.features_required | FEATURE_MSG_ADDR2) & ~ident.features_supported
        if missing:
            self._send(Tag.IDENT_MISSING_FEATURES, encode_u64(missing))
            return None
        self._ask(SessionRequest(False, ident, ident.addrs))
        return None

    def _a_session_reconnect(self, payload: bytes):
        rc: Reconnect = decode_reconnect(payload)
        self._check_addrs(rc.addrs)
        self._ask(SessionRequest(True, rc, rc.addrs))
        return None

    def _ask(self, request: SessionRequest) -> None:
        self.peer_addrs = request.peer_addrs
        self._request = request
        self._events.append(request)

    def _a_decided(self, d: Decision):
        req, self._request = self._request, None
        if req is None:
            raise RemoteProtocolError("decision without a pending session request", Reason.BAD_TAG)
        kind = d.kind
        if kind is Reply.ACCEPT:
            if d.session is not None:
                self.session = d.session
            return self._accept_reconnect(req.ident, d) if req.reconnect else \
                self._accept_ident(req.ident)
        if kind is Reply.STOP:
            self._out.clear()
            return ConnState.CLOSED
        if kind is Reply.WAIT:
            self._send(Tag.WAIT, b"")
        elif kind is Reply.RESET:
            self._send(Tag.SESSION_RESET, encode_u8(1 if d.full else 0))
        elif kind is Reply.RETRY:
            self._send(Tag.SESSION_RETRY, encode_u64(d.seq))
        else:
            self._send(Tag.SESSION_RETRY_GLOBAL, encode_u64(d.seq))
        return ConnState.SESSION_ACCEPTING

    def _accept_ident(self, ident: ClientIdent) -> None:
        """``send_server_ident``: a new (or reset, or reused) session."""
        s = self.session
        s.client_cookie = ident.client_cookie
        s.peer_global_seq = ident.global_seq
        s.lossy = self.policy.lossy
        s.discard_requeued_up_to(0)
        s.in_seq = 0
        s.server_cookie = 0 if s.lossy else self.p.rng.randrange(1, 1 << 64)
        required = self.policy.features_required | FEATURE_MSG_ADDR2
        # Ceph queues the accept notification before writing SERVER_IDENT.
        self._established(ident.gid, ident.addrs, ident.features_supported, accepted=True)
        self._send(Tag.SERVER_IDENT, encode_server_ident(ServerIdent(
            self.my_addrs, self.p.my_name.num, self.p.next_global_seq(0),
            self.p.features_supported, required, FLAG_LOSSY if s.lossy else 0, s.server_cookie)))

    def _accept_reconnect(self, rc: Reconnect, d: Decision) -> None:
        """``send_reconnect_ok``: the peer resumes the existing session."""
        s = self.session
        s.peer_global_seq = rc.global_seq
        s.connect_seq = rc.connect_seq
        s.discard_requeued_up_to(rc.msg_seq)
        self._established(s.peer_gid, rc.addrs, s.features, accepted=True, reconnected=True)
        self._send(Tag.SESSION_RECONNECT_OK, encode_u64(s.in_seq))
