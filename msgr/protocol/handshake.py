"""The msgr2 handshake: banner, HELLO, AUTH_*, IDENT and RECONNECT actions.

These are the table actions (``states.TRANSITIONS``) of the handshake states,
mixed into :class:`~msgr.protocol.machine.ProtocolMachine`. Each reads one
payload, may queue frames in ``self._out`` and returns None (the table's next
state) or one of the table's alternatives. Raising a ``MsgrError`` faults the
machine. Order and checks follow ``ProtocolV2.cc`` (reference/msgr2.md s. 5-6).
"""
from __future__ import annotations

import struct

from ..entity import EntityAddr, EntityName, EntityType
from ..errors import Reason, RemoteProtocolError
from .events import AddrLearned, Established, RemoteReset
from .frames import Tag, control_frame
from .intercept import WRITE_BPS
from .params import FEATURE_MSG_ADDR2, MSGR2_REV1
from .payloads import (FLAG_LOSSY, AuthBadMethod, AuthDone, AuthRequest, ClientIdent, Hello,
                       Reconnect, ServerIdent, decode_auth_done, decode_auth_request,
                       decode_hello, decode_server_ident, decode_u8, decode_u64,
                       encode_auth_bad_method, encode_auth_done, encode_auth_request,
                       encode_client_ident, encode_hello, encode_reconnect)
from .states import ConnState

__all__ = ["HandshakeMixin", "BANNER_PREFIX", "WaitSignal"]

BANNER_PREFIX = b"ceph v2\n"
_BANNER_PAYLOAD = struct.Struct("<QQ")
_KNOWN_TYPES = {t.value for t in EntityType}


class WaitSignal(RemoteProtocolError):
    """The peer answered WAIT: back off ``ms_max_backoff`` and retry."""

    def __init__(self) -> None:
        super().__init__("peer asked us to WAIT (connection race)", Reason.WAIT)


class RefusedError(RemoteProtocolError):
    """The peer refused us (features or auth); retrying will not help soon."""


class HandshakeMixin:
    """Handshake actions; see the module docstring."""

    def _init_handshake(self) -> None:
        p = self.p
        self.peer_type = p.peer_type
        self.peer_name: EntityName | None = None
        self.peer_addrs: tuple = ()
        self.features = 0
        self.peer_global_id = 0
        self.policy = p.policy
        self.my_addrs = tuple(p.my_addrs)

    def _send(self, tag: Tag, payload: bytes) -> None:
        if self._ic is not None:
            self._hit(WRITE_BPS[int(tag)])
        self._out.append(control_frame(tag, payload, self.rev1))

    # ----------------------------------------------------------- banner
    def _banner(self) -> bytes:
        supported = MSGR2_REV1 if self.p.rev1_allowed else 0
        return BANNER_PREFIX + (16).to_bytes(2, "little") + _BANNER_PAYLOAD.pack(supported, 0)

    def _a_start_connect(self, _arg) -> None:
        self._out.append(self._banner())

    _a_start_accept = _a_start_connect

    def _peer_banner(self, payload: bytes) -> None:
        supported, required = _BANNER_PAYLOAD.unpack_from(payload)
        ours = MSGR2_REV1 if self.p.rev1_allowed else 0
        if required & ~ours:
            raise RefusedError(f"peer requires msgr2 features {required:#x}, we have {ours:#x}",
                               Reason.FEATURES)
        self.rev1 = bool(ours & supported & MSGR2_REV1)

    def _a_client_banner(self, payload: bytes) -> None:
        self._peer_banner(payload)
        self._send(Tag.HELLO, encode_hello(Hello(self.p.my_name.type, self.p.target_addr)))

    def _a_server_banner(self, payload: bytes) -> None:
        self._peer_banner(payload)
        addr = self.p.peer_socket_addr or EntityAddr("any")
        self._send(Tag.HELLO, encode_hello(Hello(self.p.my_name.type, addr)))

    # ----------------------------------------------------------- hello
    def _hello_type(self, payload: bytes) -> Hello:
        h = decode_hello(payload)
        if h.entity_type not in _KNOWN_TYPES:
            raise RemoteProtocolError(f"HELLO names unknown entity type {h.entity_type}", Reason.DECODE)
        return h

    def _a_client_hello(self, payload: bytes) -> None:
        h = self._hello_type(payload)
        if h.entity_type != self.peer_type:
            raise RemoteProtocolError(
                f"peer is a {EntityType(h.entity_type).label}, we dialled a "
                f"{EntityType(self.peer_type).label}", Reason.PEER_TYPE)
        self._learn_addr(h.peer_addr)
        auth = self.p.auth_client
        req = AuthRequest(auth.method, auth.modes, auth.request_payload(self.peer_type))
        self._send(Tag.AUTH_REQUEST, encode_auth_request(req))

    def _learn_addr(self, seen: EntityAddr) -> None:
        mine = self.my_addrs[0] if self.my_addrs else None
        if mine is not None and mine.is_blank and seen.type != "none" and not seen.is_blank:
            learned = EntityAddr(mine.type, seen.host, mine.port, mine.nonce)
            self.my_addrs = (learned,) + self.my_addrs[1:]
            self._events.append(AddrLearned(learned))

    def _a_server_hello(self, payload: bytes) -> None:
        h = self._hello_type(payload)
        self.peer_type = h.entity_type
        if self.p.policy_for is not None:
            self.policy = self.p.policy_for(h.entity_type)
        self.session.lossy = self.policy.lossy

    # ----------------------------------------------------------- auth
    def _a_auth_request(self, payload: bytes):
        req = decode_auth_request(payload)
        auth = self.p.auth_server
        res = auth.handle_request(req.method, req.preferred_modes, req.payload)
        if not res.ok:
            self._send(Tag.AUTH_BAD_METHOD, encode_auth_bad_method(AuthBadMethod(
                req.method, res.result, auth.methods, auth.modes)))
            return ConnState.AUTH_ACCEPTING
        self.peer_global_id = res.global_id
        self._send(Tag.AUTH_DONE, encode_auth_done(AuthDone(res.global_id, res.con_mode, b"")))
        self._send(Tag.AUTH_SIGNATURE, auth.signature())
        return None

    def _a_auth_done(self, payload: bytes) -> None:
        done: AuthDone = decode_auth_done(payload)
        if done.con_mode not in self.p.auth_client.modes:
            raise RemoteProtocolError(f"server chose connection mode {done.con_mode}", Reason.AUTH)
        self._send(Tag.AUTH_SIGNATURE, self.p.auth_client.signature())

    def _a_auth_bad_method(self, payload: bytes) -> None:
        raise RefusedError("server refused auth method none (AUTH_BAD_METHOD)", Reason.AUTH)

    def _a_auth_reply_more(self, payload: bytes) -> None:
        raise RemoteProtocolError("AUTH_REPLY_MORE: auth none takes one round", Reason.AUTH)

    def _check_signature(self, payload: bytes, expected: bytes) -> None:
        if payload != expected:
            raise RemoteProtocolError("AUTH_SIGNATURE mismatch", Reason.AUTH)

    def _a_client_auth_signature(self, payload: bytes):
        self._check_signature(payload, self.p.auth_client.signature())
        s = self.session
        if s.server_cookie:
            self._send_reconnect()
            return ConnState.SESSION_RECONNECTING
        self._send_client_ident()
        return None

    def _a_server_auth_signature(self, payload: bytes) -> None:
        self._check_signature(payload, self.p.auth_server.signature())

    # ----------------------------------------------------------- ident (client)
    def _send_client_ident(self) -> None:
        s, p = self.session, self.p
        if not self.policy.lossy and not s.client_cookie:
            s.client_cookie = p.rng.randrange(1, 1 << 64)
        s.global_seq = s.global_seq or p.global_seq
        ident = ClientIdent(self.my_addrs, p.target_addr, p.my_name.num, s.global_seq,
                            p.features_supported, self.policy.features_required | FEATURE_MSG_ADDR2,
                            FLAG_LOSSY if self.policy.lossy else 0, s.client_cookie)
        self._send(Tag.CLIENT_IDENT, encode_client_ident(ident))

    def _send_reconnect(self) -> None:
        s = self.session
        s.global_seq = s.global_seq or self.p.global_seq
        self._send(Tag.SESSION_RECONNECT, encode_reconnect(Reconnect(
            self.my_addrs, s.client_cookie, s.server_cookie, s.global_seq, s.connect_seq,
            s.in_seq)))

    def _a_server_ident(self, payload: bytes) -> None:
        ident: ServerIdent = decode_server_ident(payload)
        if self.p.target_addr not in ident.addrs:
            raise RemoteProtocolError(
                f"server addrs {[str(a) for a in ident.addrs]} do not include the address we "
                f"dialled {self.p.target_addr}", Reason.PEER_ADDR)
        s = self.session
        s.server_cookie = ident.server_cookie
        s.peer_global_seq = ident.global_seq
        if ident.flags & FLAG_LOSSY and not self.policy.lossy:
            self.policy = self.policy.as_lossy()
        s.lossy = self.policy.lossy
        self._established(ident.gid, ident.addrs, ident.features_supported, accepted=False)

    def _established(self, gid: int, addrs: tuple, peer_features: int, accepted: bool,
                     reconnected: bool = False) -> None:
        """READY: records the peer and emits Established (features already masked
        when ``reconnected``)."""
        s = self.session
        self.peer_name = EntityName(self.peer_type, gid)
        self.peer_addrs = tuple(addrs)
        self.features = peer_features if reconnected else peer_features & self.p.features_supported
        s.peer_gid, s.features = gid, self.features
        self._events.append(Established(accepted, self.peer_name, self.peer_addrs,
                                        self.features, self.policy.lossy, reconnected))

    def _a_ident_missing_features(self, payload: bytes) -> None:
        missing = decode_u64(payload, "IDENT_MISSING_FEATURES")
        raise RefusedError(f"server requires features we lack: {missing:#x}", Reason.FEATURES)

    def _a_wait(self, payload: bytes) -> None:
        raise WaitSignal()

    # ----------------------------------------------------------- reconnect (client)
    def _a_reconnect_ok(self, payload: bytes) -> None:
        ms = decode_u64(payload, "SESSION_RECONNECT_OK")
        s = self.session
        s.discard_requeued_up_to(ms)
        self._established(s.peer_gid, self.p.target_addr and (self.p.target_addr,) or (),
                          s.features, accepted=False, reconnected=True)

    def _a_session_reset(self, payload: bytes) -> None:
        full = decode_u8(payload, "SESSION_RESET")
        s = self.session
        if full:
            self._events.append(RemoteReset(len(s.reset())))
        else:
            s.server_cookie = s.connect_seq = s.in_seq = 0
        self._send_client_ident()

    def _a_session_retry(self, payload: bytes) -> None:
        self.session.connect_seq = decode_u64(payload, "SESSION_RETRY") + 1
        self._send_reconnect()

    def _a_session_retry_global(self, payload: bytes) -> None:
        gs = decode_u64(payload, "SESSION_RETRY_GLOBAL")
        self.session.global_seq = self.p.next_global_seq(gs)
        self._send_reconnect()
