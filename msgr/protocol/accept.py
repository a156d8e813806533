"""The msgr2 handshake, accepting side: banner, HELLO, AUTH, CLIENT_IDENT, SESSION_RECONNECT.

:class:`ServerHandshake` runs the accepting role's table actions (see
:mod:`.handshake`). The machine checks what it can alone (addresses, features),
then emits a :class:`SessionRequest` and waits: whether an existing session is
reused, the peer must WAIT, retry or reset is the owner's call, because only
the owner can see the other connections (Ceph's ``handle_existing_connection``
and ``handle_reconnect``). The owner answers with ``decide(Decision)``.
"""
from __future__ import annotations

from ..entity import EntityAddr
from ..errors import Reason, RemoteProtocolError
from .events import Decision, Reply, SessionRequest
from .frames import Tag
from .handshake import Handshake
from .params import FEATURE_MSG_ADDR2
from .payloads import (FLAG_LOSSY, AuthBadMethod, AuthDone, ClientIdent, Hello, Reconnect,
                       ServerIdent, decode_auth_request, decode_client_ident, decode_reconnect,
                       encode_auth_bad_method, encode_auth_done, encode_hello,
                       encode_server_ident, encode_u8, encode_u64)
from .states import ConnState

__all__ = ["ServerHandshake"]


class ServerHandshake(Handshake):
    """The accepting side's table actions (see the module docstring)."""

    def server_banner(self, payload: bytes) -> None:
        """The client's banner: pick the framing, send our HELLO (with its address)."""
        self._peer_banner(payload)
        addr = self.p.peer_socket_addr or EntityAddr("any")
        self.m.send_frame(Tag.HELLO, encode_hello(Hello(self.p.my_name.type, addr)))

    def server_hello(self, payload: bytes) -> None:
        """The client's HELLO: its type picks the policy."""
        h = self._hello_type(payload)
        self.peer_type = h.entity_type
        if self.p.policy_for is not None:
            self.policy = self.p.policy_for(h.entity_type)
        self.session.stream.lossy = self.policy.lossy

    def auth_request(self, payload: bytes):
        """AUTH_REQUEST: AUTH_DONE and our AUTH_SIGNATURE, or AUTH_BAD_METHOD."""
        req = decode_auth_request(payload)
        auth = self.p.auth_server
        res = auth.handle_request(req.method, req.preferred_modes, req.payload)
        if not res.ok:
            self.m.send_frame(Tag.AUTH_BAD_METHOD, encode_auth_bad_method(AuthBadMethod(
                req.method, res.result, auth.methods, auth.modes)))
            return ConnState.AUTH_ACCEPTING
        self.m.send_frame(Tag.AUTH_DONE, encode_auth_done(AuthDone(res.global_id, res.con_mode, b"")))
        self.m.send_frame(Tag.AUTH_SIGNATURE, auth.signature())
        return None

    def server_auth_signature(self, payload: bytes) -> None:
        """The client's AUTH_SIGNATURE: check it."""
        self._check_signature(payload, self.p.auth_server.signature())

    # ----------------------------------------------------------- session requests
    def _check_addrs(self, addrs: tuple) -> None:
        if not addrs or addrs[0].type == "none":
            raise RemoteProtocolError("session frame without a peer address", Reason.PEER_ADDR)

    def client_ident(self, payload: bytes):
        """CLIENT_IDENT: check addresses and features, then ask the owner (SessionRequest)."""
        ident: ClientIdent = decode_client_ident(payload)
        self._check_addrs(ident.addrs)
        if ident.target_addr not in self.my_addrs:
            raise RemoteProtocolError(
                f"peer is trying to reach us at {ident.target_addr}, which is not one of "
                f"{[str(a) for a in self.my_addrs]}", Reason.PEER_ADDR)
        missing = (self.policy.features_required | FEATURE_MSG_ADDR2) & ~ident.features_supported
        if missing:
            self.m.send_frame(Tag.IDENT_MISSING_FEATURES, encode_u64(missing))
            return None
        self._ask(SessionRequest(False, ident, ident.addrs))
        return None

    def session_reconnect(self, payload: bytes):
        """SESSION_RECONNECT: ask the owner whether the session resumes."""
        rc: Reconnect = decode_reconnect(payload)
        self._check_addrs(rc.addrs)
        self._ask(SessionRequest(True, rc, rc.addrs))
        return None

    def _ask(self, request: SessionRequest) -> None:
        self.peer_addrs = request.peer_addrs
        self.request = request
        self.m.emit(request)

    def decided(self, d: Decision):
        """The owner's answer to the SessionRequest: reply, accept, or close (STOP)."""
        req, self.request = self.request, None
        if req is None:
            raise RemoteProtocolError("decision without a pending session request", Reason.BAD_TAG)
        kind = d.kind
        if kind is Reply.ACCEPT:
            if d.session is not None:
                self.m.use_session(d.session)
            return self._accept_reconnect(req.ident) if req.reconnect else \
                self._accept_ident(req.ident)
        if kind is Reply.STOP:
            return ConnState.CLOSED
        if kind is Reply.WAIT:
            self.m.send_frame(Tag.WAIT, b"")
        elif kind is Reply.RESET:
            self.m.send_frame(Tag.SESSION_RESET, encode_u8(1 if d.full else 0))
        elif kind is Reply.RETRY:
            self.m.send_frame(Tag.SESSION_RETRY, encode_u64(d.seq))
        else:
            self.m.send_frame(Tag.SESSION_RETRY_GLOBAL, encode_u64(d.seq))
        return ConnState.SESSION_ACCEPTING

    def _accept_ident(self, ci: ClientIdent) -> None:
        """``send_server_ident``: a new (or reset, or reused) session."""
        ident, stream = self.session.ident, self.session.stream
        ident.client_cookie = ci.client_cookie
        ident.peer_global_seq = ci.global_seq
        stream.lossy = self.policy.lossy
        stream.discard_requeued_up_to(0)
        stream.in_seq = 0
        ident.server_cookie = 0 if stream.lossy else self.p.rng.randrange(1, 1 << 64)
        required = self.policy.features_required | FEATURE_MSG_ADDR2
        # Ceph queues the accept notification before writing SERVER_IDENT.
        self._established(ci.gid, ci.addrs, ci.features_supported, accepted=True)
        self.m.send_frame(Tag.SERVER_IDENT, encode_server_ident(ServerIdent(
            self.my_addrs, self.p.my_name.num, self.p.next_global_seq(0),
            self.p.features_supported, required, FLAG_LOSSY if stream.lossy else 0,
            ident.server_cookie)))

    def _accept_reconnect(self, rc: Reconnect) -> None:
        """``send_reconnect_ok``: the peer resumes the existing session."""
        ident, stream = self.session.ident, self.session.stream
        ident.peer_global_seq = rc.global_seq
        ident.connect_seq = rc.connect_seq
        stream.discard_requeued_up_to(rc.msg_seq)
        self._established(ident.peer_gid, rc.addrs, ident.features, accepted=True,
                          reconnected=True)
        self.m.send_frame(Tag.SESSION_RECONNECT_OK, encode_u64(stream.in_seq))
