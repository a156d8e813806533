"""Wire encodings of ``entity_addr_t`` and ``entity_addrvec_t`` (msgr2 form).

msgr2 encodes control payloads with ``MSG_ADDR2``, so an address is::

    u8 marker = 1
    ENCODE_START(1, 1)
      le32 type; le32 nonce; le32 sa_len (16 IPv4, 28 IPv6, 0 blank)
      sockaddr: le16 family, be16 port, IP, padding
    ENCODE_FINISH

and an addrvec is ``u8 marker = 2; le32 n; n x addr`` (a decoder also takes a
bare addr with marker 1).
"""
from __future__ import annotations

import ipaddress
import struct

from ..entity import ADDR_TYPES, EntityAddr
from .encoding import DecodeError, Decoder, Encoder

__all__ = ["encode_addr", "decode_addr", "encode_addrvec", "decode_addrvec"]

_TYPE_NAMES = {v: k for k, v in ADDR_TYPES.items()}
_AF_INET, _AF_INET6 = 2, 10


def encode_addr(enc: Encoder, addr: EntityAddr) -> None:
    """Appends ``addr`` in the msgr2 (marker 1) encoding."""
    enc.u8(1)
    with enc.struct(1, 1):
        enc.u32(addr.type_code).u32(addr.nonce)
        if addr.type == "none":
            enc.u32(0)
        else:
            sa = addr.sockaddr_bytes()
            enc.u32(len(sa)).raw(sa)


def _decode_sockaddr(dec: Decoder, sa_len: int, type_: str, nonce: int) -> EntityAddr:
    if sa_len == 0:
        return EntityAddr(type_, "0.0.0.0", 0, nonce) if type_ != "none" else EntityAddr("none")
    sa = dec.raw(sa_len)
    family = struct.unpack_from("<H", sa)[0]
    if family == _AF_INET and sa_len >= 8:
        port = struct.unpack_from(">H", sa, 2)[0]
        host = str(ipaddress.IPv4Address(sa[4:8]))
    elif family == _AF_INET6 and sa_len >= 24:
        port = struct.unpack_from(">H", sa, 2)[0]
        host = str(ipaddress.IPv6Address(sa[8:24]))
    else:
        raise DecodeError(f"entity_addr_t: unsupported family {family} / length {sa_len}")
    return EntityAddr(type_ if type_ != "none" else "any", host, port, nonce)


def decode_addr(dec: Decoder) -> EntityAddr:
    """Reads one msgr2-encoded ``entity_addr_t``.

    Raises:
        DecodeError: legacy marker, unknown type or family, or truncation.
    """
    marker = dec.u8()
    if marker != 1:
        raise DecodeError(f"entity_addr_t: marker {marker}, want 1 (msgr2 encoding)")
    with dec.struct(1):
        type_code, nonce, sa_len = dec.u32(), dec.u32(), dec.u32()
        if type_code not in _TYPE_NAMES:
            raise DecodeError(f"entity_addr_t: unknown type {type_code}")
        if sa_len > 128:
            raise DecodeError(f"entity_addr_t: sockaddr length {sa_len}")
        return _decode_sockaddr(dec, sa_len, _TYPE_NAMES[type_code], nonce)


def encode_addrvec(enc: Encoder, addrs: list[EntityAddr] | tuple[EntityAddr, ...]) -> None:
    """Appends an ``entity_addrvec_t`` (marker 2)."""
    enc.u8(2).u32(len(addrs))
    for a in addrs:
        encode_addr(enc, a)


def decode_addrvec(dec: Decoder) -> tuple[EntityAddr, ...]:
    """Reads an ``entity_addrvec_t`` (or a bare marker-1 addr)."""
    marker = dec.mv[dec.pos] if dec.remaining() else None
    if marker == 1:
        return (decode_addr(dec),)
    if dec.u8() != 2:
        raise DecodeError(f"entity_addrvec_t: marker {marker}, want 2")
    return tuple(decode_addr(dec) for _ in range(dec.count(7)))
