"""The msgr2 handshake, connecting side: banner, HELLO, AUTH_*, IDENT and RECONNECT.

A :class:`Handshake` holds what one transport's handshake learns and decides
(the peer's name, addresses and features, the negotiated policy, the session
it works on) and runs the table actions (``states.TRANSITIONS``) of its role:
:class:`ClientHandshake` here, ``ServerHandshake`` in :mod:`.accept`. Each
action reads one payload, may send frames and returns None (the table's next
state) or one of the table's alternatives; raising a ``MsgrError`` faults the
machine. Order and checks follow ``ProtocolV2.cc`` (reference/msgr2.md s. 5-6).

It reaches its machine only through four methods (the machine's handshake
port): ``send_frame(tag, payload)``, ``emit(event)``, ``set_rev1(flag)`` and
``use_session(session)``.
"""
from __future__ import annotations

import struct

from ..entity import EntityAddr, EntityName, EntityType
from ..errors import Reason, RemoteProtocolError
from .events import AddrLearned, Established, RemoteReset
from .frames import Tag
from .params import FEATURE_MSG_ADDR2, MSGR2_REV1
from .payloads import (FLAG_LOSSY, AuthDone, AuthRequest, ClientIdent, Hello, Reconnect,
                       ServerIdent, decode_auth_done, decode_hello, decode_server_ident,
                       decode_u8, decode_u64, encode_auth_request, encode_client_ident,
                       encode_hello, encode_reconnect)
from .states import ConnState

__all__ = ["Handshake", "ClientHandshake", "BANNER_PREFIX", "WaitSignal", "RefusedError"]

BANNER_PREFIX = b"ceph v2\n"
_BANNER_PAYLOAD = struct.Struct("<QQ")
_KNOWN_TYPES = {t.value for t in EntityType}


class WaitSignal(RemoteProtocolError):
    """The peer answered WAIT: back off ``ms_max_backoff`` and retry."""

    def __init__(self) -> None:
        super().__init__("peer asked us to WAIT (connection race)", Reason.WAIT)


class RefusedError(RemoteProtocolError):
    """The peer refused us (features or auth); retrying will not help soon."""


class Handshake:
    """What both roles share: the banner, HELLO's checks, READY.

    Args:
        port: the machine (``send_frame``, ``emit``, ``set_rev1``, ``use_session``).
        params: this side's :class:`~msgr.protocol.params.MachineParams`.
        session: the session this transport works on.

    Attributes:
        request: accepting side: the SessionRequest waiting for the owner's
            decision (the machine reads no further frame meanwhile); else None.
    """

    request = None

    def __init__(self, port, params, session) -> None:
        self.m = port
        self.p = params
        self.session = session
        self.peer_type = params.peer_type
        self.peer_name: EntityName | None = None
        self.peer_addrs: tuple = ()
        self.features = 0
        self.policy = params.policy
        self.my_addrs = tuple(params.my_addrs)

    # ----------------------------------------------------------- banner
    def banner(self) -> bytes:
        """Our banner: the prefix, then the msgr2 features we support and require."""
        supported = MSGR2_REV1 if self.p.rev1_allowed else 0
        return BANNER_PREFIX + (16).to_bytes(2, "little") + _BANNER_PAYLOAD.pack(supported, 0)

    def _peer_banner(self, payload: bytes) -> None:
        supported, required = _BANNER_PAYLOAD.unpack_from(payload)
        ours = MSGR2_REV1 if self.p.rev1_allowed else 0
        if required & ~ours:
            raise RefusedError(f"peer requires msgr2 features {required:#x}, we have {ours:#x}",
                               Reason.FEATURES)
        self.m.set_rev1(bool(ours & supported & MSGR2_REV1))

    def _hello_type(self, payload: bytes) -> Hello:
        h = decode_hello(payload)
        if h.entity_type not in _KNOWN_TYPES:
            raise RemoteProtocolError(f"HELLO names unknown entity type {h.entity_type}",
                                      Reason.DECODE)
        return h

    def _check_signature(self, payload: bytes, expected: bytes) -> None:
        if payload != expected:
            raise RemoteProtocolError("AUTH_SIGNATURE mismatch", Reason.AUTH)

    def _established(self, gid: int, addrs: tuple, peer_features: int, accepted: bool,
                     reconnected: bool = False) -> None:
        """READY: records the peer and emits Established (features already masked
        when ``reconnected``)."""
        ident = self.session.ident
        self.peer_name = EntityName(self.peer_type, gid)
        self.peer_addrs = tuple(addrs)
        self.features = peer_features if reconnected else peer_features & self.p.features_supported
        ident.peer_gid, ident.features = gid, self.features
        self.m.emit(Established(accepted, self.peer_name, self.peer_addrs, self.features,
                                self.policy.lossy, reconnected))


class ClientHandshake(Handshake):
    """The connecting side's table actions (see the module docstring)."""

    def client_banner(self, payload: bytes) -> None:
        """The server's banner: pick the framing, send our HELLO."""
        self._peer_banner(payload)
        self.m.send_frame(Tag.HELLO, encode_hello(Hello(self.p.my_name.type, self.p.target_addr)))

    def client_hello(self, payload: bytes) -> None:
        """The server's HELLO: check its type, learn our address, send AUTH_REQUEST."""
        h = self._hello_type(payload)
        if h.entity_type != self.peer_type:
            raise RemoteProtocolError(
                f"peer is a {EntityType(h.entity_type).label}, we dialled a "
                f"{EntityType(self.peer_type).label}", Reason.PEER_TYPE)
        self._learn_addr(h.peer_addr)
        auth = self.p.auth_client
        req = AuthRequest(auth.method, auth.modes, auth.request_payload(self.peer_type))
        self.m.send_frame(Tag.AUTH_REQUEST, encode_auth_request(req))

    def _learn_addr(self, seen: EntityAddr) -> None:
        mine = self.my_addrs[0] if self.my_addrs else None
        if mine is not None and mine.is_blank and seen.type != "none" and not seen.is_blank:
            learned = EntityAddr(mine.type, seen.host, mine.port, mine.nonce)
            self.my_addrs = (learned,) + self.my_addrs[1:]
            self.m.emit(AddrLearned(learned))

    # ----------------------------------------------------------- auth
    def auth_done(self, payload: bytes) -> None:
        """AUTH_DONE: check the connection mode, send our AUTH_SIGNATURE."""
        done: AuthDone = decode_auth_done(payload)
        if done.con_mode not in self.p.auth_client.modes:
            raise RemoteProtocolError(f"server chose connection mode {done.con_mode}", Reason.AUTH)
        self.m.send_frame(Tag.AUTH_SIGNATURE, self.p.auth_client.signature())

    def auth_bad_method(self, payload: bytes) -> None:
        """AUTH_BAD_METHOD: the server refuses auth none."""
        raise RefusedError("server refused auth method none (AUTH_BAD_METHOD)", Reason.AUTH)

    def auth_reply_more(self, payload: bytes) -> None:
        """AUTH_REPLY_MORE: auth none has no second round."""
        raise RemoteProtocolError("AUTH_REPLY_MORE: auth none takes one round", Reason.AUTH)

    def client_auth_signature(self, payload: bytes):
        """The server's AUTH_SIGNATURE: check it, then CLIENT_IDENT (or SESSION_RECONNECT)."""
        self._check_signature(payload, self.p.auth_client.signature())
        if self.session.ident.server_cookie:
            self._send_reconnect()
            return ConnState.SESSION_RECONNECTING
        self._send_client_ident()
        return None

    # ----------------------------------------------------------- ident
    def _send_client_ident(self) -> None:
        ident, p = self.session.ident, self.p
        if not self.policy.lossy and not ident.client_cookie:
            ident.client_cookie = p.rng.randrange(1, 1 << 64)
        ident.global_seq = ident.global_seq or p.global_seq
        msg = ClientIdent(self.my_addrs, p.target_addr, p.my_name.num, ident.global_seq,
                          p.features_supported, self.policy.features_required | FEATURE_MSG_ADDR2,
                          FLAG_LOSSY if self.policy.lossy else 0, ident.client_cookie)
        self.m.send_frame(Tag.CLIENT_IDENT, encode_client_ident(msg))

    def _send_reconnect(self) -> None:
        ident = self.session.ident
        ident.global_seq = ident.global_seq or self.p.global_seq
        self.m.send_frame(Tag.SESSION_RECONNECT, encode_reconnect(Reconnect(
            self.my_addrs, ident.client_cookie, ident.server_cookie, ident.global_seq,
            ident.connect_seq, self.session.stream.in_seq)))

    def server_ident(self, payload: bytes) -> None:
        """SERVER_IDENT: the session is READY (the server may make it lossy)."""
        si: ServerIdent = decode_server_ident(payload)
        if self.p.target_addr not in si.addrs:
            raise RemoteProtocolError(
                f"server addrs {[str(a) for a in si.addrs]} do not include the address we "
                f"dialled {self.p.target_addr}", Reason.PEER_ADDR)
        ident = self.session.ident
        ident.server_cookie = si.server_cookie
        ident.peer_global_seq = si.global_seq
        if si.flags & FLAG_LOSSY and not self.policy.lossy:
            self.policy = self.policy.as_lossy()
        self.session.stream.lossy = self.policy.lossy
        self._established(si.gid, si.addrs, si.features_supported, accepted=False)

    def ident_missing_features(self, payload: bytes) -> None:
        """IDENT_MISSING_FEATURES: the server needs features we lack."""
        missing = decode_u64(payload, "IDENT_MISSING_FEATURES")
        raise RefusedError(f"server requires features we lack: {missing:#x}", Reason.FEATURES)

    def wait(self, payload: bytes) -> None:
        """WAIT: the server's own attempt wins a race; back off."""
        raise WaitSignal()

    # ----------------------------------------------------------- reconnect
    def reconnect_ok(self, payload: bytes) -> None:
        """SESSION_RECONNECT_OK: the session resumes; drop what the server has."""
        ms = decode_u64(payload, "SESSION_RECONNECT_OK")
        s = self.session
        s.stream.discard_requeued_up_to(ms)
        self._established(s.ident.peer_gid, self.p.target_addr and (self.p.target_addr,) or (),
                          s.ident.features, accepted=False, reconnected=True)

    def session_reset(self, payload: bytes) -> None:
        """SESSION_RESET: start a new session (a full one also forgets our queues)."""
        full = decode_u8(payload, "SESSION_RESET")
        s = self.session
        if full:
            self.m.emit(RemoteReset(len(s.reset())))
        else:
            s.ident.server_cookie = s.ident.connect_seq = s.stream.in_seq = 0
        self._send_client_ident()

    def session_retry(self, payload: bytes) -> None:
        """SESSION_RETRY: reconnect again with the server's connect_seq + 1."""
        self.session.ident.connect_seq = decode_u64(payload, "SESSION_RETRY") + 1
        self._send_reconnect()

    def session_retry_global(self, payload: bytes) -> None:
        """SESSION_RETRY_GLOBAL: reconnect again with a global_seq above the server's."""
        gs = decode_u64(payload, "SESSION_RETRY_GLOBAL")
        self.session.ident.global_seq = self.p.next_global_seq(gs)
        self._send_reconnect()
