"""Encoders and decoders of msgr2 control-frame payloads.

Field order follows ``src/msg/async/frames_v2.h`` (reference/msgr2.md section 6).
Each ``decode_*`` takes the payload bytes and returns a frozen value or raises
``DecodeError``; each ``encode_*`` returns the payload bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..entity import EntityAddr
from .addrs import decode_addr, decode_addrvec, encode_addr, encode_addrvec
from .encoding import Decoder, Encoder

__all__ = [
    "Hello", "AuthRequest", "AuthBadMethod", "AuthDone", "ClientIdent", "ServerIdent",
    "Reconnect", "encode_hello", "decode_hello", "encode_auth_request", "decode_auth_request",
    "encode_auth_bad_method", "decode_auth_bad_method", "encode_auth_done", "decode_auth_done",
    "encode_client_ident", "decode_client_ident", "encode_server_ident", "decode_server_ident",
    "encode_reconnect", "decode_reconnect", "encode_u64", "decode_u64", "encode_u8",
    "decode_u8", "decode_blob", "encode_blob", "FLAG_LOSSY",
]

FLAG_LOSSY = 1   # CEPH_MSG_CONNECT_LOSSY


@dataclass(frozen=True, slots=True)
class Hello:
    entity_type: int
    peer_addr: EntityAddr


@dataclass(frozen=True, slots=True)
class AuthRequest:
    method: int
    preferred_modes: tuple
    payload: bytes


@dataclass(frozen=True, slots=True)
class AuthBadMethod:
    method: int
    result: int
    allowed_methods: tuple
    allowed_modes: tuple


@dataclass(frozen=True, slots=True)
class AuthDone:
    global_id: int
    con_mode: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ClientIdent:
    addrs: tuple
    target_addr: EntityAddr
    gid: int
    global_seq: int
    features_supported: int
    features_required: int
    flags: int
    client_cookie: int


@dataclass(frozen=True, slots=True)
class ServerIdent:
    addrs: tuple
    gid: int
    global_seq: int
    features_supported: int
    features_required: int
    flags: int
    server_cookie: int


@dataclass(frozen=True, slots=True)
class Reconnect:
    addrs: tuple
    client_cookie: int
    server_cookie: int
    global_seq: int
    connect_seq: int
    msg_seq: int


def encode_hello(h: Hello) -> bytes:
    enc = Encoder().u8(h.entity_type)
    encode_addr(enc, h.peer_addr)
    return enc.getvalue()


def decode_hello(data) -> Hello:
    d = Decoder(data, "HELLO")
    h = Hello(d.u8(), decode_addr(d))
    d.expect_end()
    return h


def encode_auth_request(r: AuthRequest) -> bytes:
    return Encoder().u32(r.method).u32_list(list(r.preferred_modes)).blob(r.payload).getvalue()


def decode_auth_request(data) -> AuthRequest:
    d = Decoder(data, "AUTH_REQUEST")
    r = AuthRequest(d.u32(), tuple(d.u32_list()), d.blob())
    d.expect_end()
    return r


def encode_auth_bad_method(b: AuthBadMethod) -> bytes:
    return (Encoder().u32(b.method).s32(b.result).u32_list(list(b.allowed_methods))
            .u32_list(list(b.allowed_modes)).getvalue())


def decode_auth_bad_method(data) -> AuthBadMethod:
    d = Decoder(data, "AUTH_BAD_METHOD")
    b = AuthBadMethod(d.u32(), d.s32(), tuple(d.u32_list()), tuple(d.u32_list()))
    d.expect_end()
    return b


def encode_auth_done(a: AuthDone) -> bytes:
    return Encoder().u64(a.global_id).u32(a.con_mode).blob(a.payload).getvalue()


def decode_auth_done(data) -> AuthDone:
    d = Decoder(data, "AUTH_DONE")
    a = AuthDone(d.u64(), d.u32(), d.blob())
    d.expect_end()
    return a


def encode_client_ident(c: ClientIdent) -> bytes:
    enc = Encoder()
    encode_addrvec(enc, c.addrs)
    encode_addr(enc, c.target_addr)
    enc.s64(c.gid).u64(c.global_seq).u64(c.features_supported).u64(c.features_required)
    return enc.u64(c.flags).u64(c.client_cookie).getvalue()


def decode_client_ident(data) -> ClientIdent:
    d = Decoder(data, "CLIENT_IDENT")
    c = ClientIdent(decode_addrvec(d), decode_addr(d), d.s64(), d.u64(), d.u64(), d.u64(),
                    d.u64(), d.u64())
    d.expect_end()
    return c


def encode_server_ident(s: ServerIdent) -> bytes:
    enc = Encoder()
    encode_addrvec(enc, s.addrs)
    enc.s64(s.gid).u64(s.global_seq).u64(s.features_supported).u64(s.features_required)
    return enc.u64(s.flags).u64(s.server_cookie).getvalue()


def decode_server_ident(data) -> ServerIdent:
    d = Decoder(data, "SERVER_IDENT")
    s = ServerIdent(decode_addrvec(d), d.s64(), d.u64(), d.u64(), d.u64(), d.u64(), d.u64())
    d.expect_end()
    return s


def encode_reconnect(r: Reconnect) -> bytes:
    enc = Encoder()
    encode_addrvec(enc, r.addrs)
    enc.u64(r.client_cookie).u64(r.server_cookie).u64(r.global_seq).u64(r.connect_seq)
    return enc.u64(r.msg_seq).getvalue()


def decode_reconnect(data) -> Reconnect:
    d = Decoder(data, "SESSION_RECONNECT")
    r = Reconnect(decode_addrvec(d), d.u64(), d.u64(), d.u64(), d.u64(), d.u64())
    d.expect_end()
    return r


def encode_u64(v: int) -> bytes:
    return Encoder().u64(v).getvalue()


def decode_u64(data, what: str) -> int:
    d = Decoder(data, what)
    v = d.u64()
    d.expect_end()
    return v


def encode_u8(v: int) -> bytes:
    return Encoder().u8(v).getvalue()


def decode_u8(data, what: str) -> int:
    d = Decoder(data, what)
    v = d.u8()
    d.expect_end()
    return v


def encode_blob(b: bytes) -> bytes:
    return Encoder().blob(b).getvalue()


def decode_blob(data, what: str) -> bytes:
    d = Decoder(data, what)
    v = d.blob()
    d.expect_end()
    return v
