"""Front payloads of the few Ceph messages needed to talk to monitors.

Enough of Ceph's message catalogue for two jobs: msgr as a client of a real
``ceph-mon`` (MPing, MMonGetMap, MMonGetVersion), and a msgr server that the
real ``ceph`` CLI can ``ping`` (MMonMap, MConfig, the MPing reply).

Theory of operation: these functions deal only with a message's ``front``
segment (``Message::payload`` in C++, filled by ``encode_payload(features)``).
The header's ``version``/``compat_version`` name the front's encoding;
:data:`HEADER_VERSIONS` holds what Pacific (16.2) sends. Encodings assume a
peer with Pacific's features (msgr2 implies ``MSG_ADDR2`` and
``SERVER_NAUTILUS``): MonMap v9, msgr2 ``entity_addr_t``. Every ``decode_*``
raises :class:`~msgr.protocol.encoding.DecodeError` on truncated or malformed
input (never ``IndexError``/``struct.error``) and does not modify its input.

Sources (ceph/ceph): type numbers from ``src/include/ceph_fs.h`` and
``src/msg/Message.h``; layouts from ``src/messages/M*.h`` and
``src/mon/MonMap.cc``; the MonMap v9 bytes were checked against Pacific's
``monmaptool --create``.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, NamedTuple, Sequence, Union

from .entity import EntityAddr
from .protocol.addrs import decode_addrvec, encode_addrvec
from .protocol.encoding import DecodeError, Decoder, Encoder

__all__ = [
    "CEPH_MSG_PING", "CEPH_MSG_MON_MAP", "CEPH_MSG_MON_GET_MAP", "CEPH_MSG_MON_SUBSCRIBE",
    "CEPH_MSG_MON_SUBSCRIBE_ACK", "CEPH_MSG_AUTH", "CEPH_MSG_AUTH_REPLY", "CEPH_MSG_MON_GET_VERSION",
    "CEPH_MSG_MON_GET_VERSION_REPLY", "MSG_MON_COMMAND", "MSG_MON_COMMAND_ACK", "MSG_CONFIG",
    "MSG_GET_CONFIG", "HEADER_VERSIONS", "CEPH_SUBSCRIBE_ONETIME", "MON_FEATURES_PACIFIC",
    "CEPH_RELEASE_PACIFIC", "MonMapInfo", "MonGetVersion", "MonGetVersionReply", "MonSubscribe",
    "encode_monmap", "decode_monmap", "encode_mmonmap_front", "decode_mmonmap_front",
    "encode_ping_reply_front", "decode_ping_reply_front", "encode_mon_get_version_front",
    "decode_mon_get_version_front", "encode_mon_get_version_reply_front",
    "decode_mon_get_version_reply_front", "encode_config_front", "decode_config_front",
    "encode_mon_subscribe_front", "decode_mon_subscribe_front",
]

# --- message types: src/include/ceph_fs.h (CEPH_MSG_*), src/msg/Message.h (MSG_*)
CEPH_MSG_PING = 2
CEPH_MSG_MON_MAP = 4
CEPH_MSG_MON_GET_MAP = 5
CEPH_MSG_MON_SUBSCRIBE = 15
CEPH_MSG_MON_SUBSCRIBE_ACK = 16
CEPH_MSG_AUTH = 17
CEPH_MSG_AUTH_REPLY = 18
CEPH_MSG_MON_GET_VERSION = 19
CEPH_MSG_MON_GET_VERSION_REPLY = 20
MSG_MON_COMMAND = 50
MSG_MON_COMMAND_ACK = 51
MSG_CONFIG = 62
MSG_GET_CONFIG = 63

#: ``(header.version, header.compat_version)`` as Pacific sends each message.
#: ``Message(t)`` defaults to (1, 0); classes with HEAD/COMPAT_VERSION override.
HEADER_VERSIONS: Mapping[int, tuple[int, int]] = MappingProxyType({
    CEPH_MSG_PING: (1, 0), CEPH_MSG_MON_MAP: (1, 0), CEPH_MSG_MON_GET_MAP: (1, 0),
    CEPH_MSG_MON_SUBSCRIBE: (3, 1), CEPH_MSG_MON_GET_VERSION: (1, 0),
    CEPH_MSG_MON_GET_VERSION_REPLY: (2, 0), MSG_CONFIG: (1, 1),
})

#: ``ceph_mon_subscribe_item.flags`` bit: send one map, then forget the sub.
CEPH_SUBSCRIBE_ONETIME = 1

#: ``ceph::features::mon`` bits kraken..pacific plus pinging (bits 0-7), the
#: persistent set a fresh Pacific cluster writes into its MonMap.
MON_FEATURES_PACIFIC = 0xFF
#: ``ceph_release_t::pacific`` (``min_mon_release``).
CEPH_RELEASE_PACIFIC = 16

_ELECTION_CLASSIC = 1
_MONMAP_MIN_DECODABLE = 6  # v6 (Nautilus) dropped the legacy mon_addr map

AddrSpec = Union[EntityAddr, str, Sequence[EntityAddr]]


# --------------------------------------------------------------------------- MonMap

@dataclass(frozen=True)
class MonMapInfo:
    """The parts of a decoded ``MonMap`` a client needs.

    Attributes:
        fsid: the cluster id.
        epoch: the map epoch (0 for a map fresh from ``monmaptool --create``).
        mons: mon name -> its public addrvec, read-only.
        ranks: mon names in rank order.
        last_changed, created: ``utime_t`` as ``(sec, nsec)``.
        persistent_features, optional_features: ``mon_feature_t`` bit sets.
        min_mon_release: ``ceph_release_t`` number (16 = pacific), 0 if unknown.
        struct_v: the encoding version that was decoded.
    """

    fsid: uuid.UUID
    epoch: int
    mons: Mapping[str, tuple[EntityAddr, ...]]
    ranks: tuple[str, ...] = ()
    last_changed: tuple[int, int] = (0, 0)
    created: tuple[int, int] = (0, 0)
    persistent_features: int = 0
    optional_features: int = 0
    min_mon_release: int = 0
    struct_v: int = 9


def _as_addrvec(spec: AddrSpec) -> tuple[EntityAddr, ...]:
    if isinstance(spec, (EntityAddr, str)):
        return (EntityAddr.parse(spec),)
    return tuple(EntityAddr.parse(a) for a in spec)


def _encode_mon_feature(enc: Encoder, bits: int) -> None:
    with enc.struct(1, 1):  # mon_feature_t: ENCODE_START(1, 1) + le64
        enc.u64(bits)


def _encode_mon_info(enc: Encoder, name: str, addrs: tuple[EntityAddr, ...]) -> None:
    # mon_info_t v5 (Pacific): name, public_addrs, priority, weight, crush_loc
    with enc.struct(5, 1):
        enc.string(name)
        encode_addrvec(enc, addrs)
        enc.u16(0).u16(0).u32(0)


def _encode_mon_infos(enc: Encoder, infos: dict[str, tuple[EntityAddr, ...]]) -> None:
    enc.u32(len(infos))  # std::map: sorted by key bytes
    for name in sorted(infos, key=str.encode):
        enc.string(name)
        _encode_mon_info(enc, name, infos[name])


def _encode_monmap_tail(enc: Encoder, ranks: Sequence[str], min_mon_release: int) -> None:
    # ranks; min_mon_release; removed_ranks {}; strategy; disallowed_leaders {};
    # stretch_mode_enabled; tiebreaker_mon ""; stretch_marked_down_mons {}
    enc.u32(len(ranks))
    for name in ranks:
        enc.string(name)
    enc.u8(min_mon_release).u32(0).u8(_ELECTION_CLASSIC).u32(0)
    enc.bool(False).string("").u32(0)


def encode_monmap(fsid: uuid.UUID, epoch: int, mons: Sequence[tuple[str, AddrSpec]], *,
                  created: tuple[int, int] = (0, 0), last_changed: tuple[int, int] | None = None,
                  persistent_features: int = 0, optional_features: int = 0,
                  min_mon_release: int = 0) -> bytes:
    """Encodes a MonMap exactly as Pacific's ``MonMap::encode`` (struct v9).

    ``ENCODE_START(9, 6)``: fsid, epoch, last_changed, created, persistent and
    optional features, ``map<string, mon_info_t>`` (v5, priority and weight 0,
    no crush location), then ranks and the Pacific tail (``_encode_monmap_tail``):
    no removed ranks, classic elections, no stretch mode.

    Args:
        fsid: the cluster id.
        epoch: the map epoch; a bootstrapping client waits for one above 0.
        mons: ``(name, address or addrvec)`` pairs; their order is the rank order.
        created, last_changed: ``(sec, nsec)``; last_changed defaults to created.
        persistent_features, optional_features: ``mon_feature_t`` bits
            (see :data:`MON_FEATURES_PACIFIC`).
        min_mon_release: ``ceph_release_t`` (see :data:`CEPH_RELEASE_PACIFIC`).

    Returns:
        The bytes ``monmaptool`` writes to a file (a ``bufferlist``'s contents).

    Raises:
        ValueError: duplicate mon names.
        ConfigError: an address string does not parse.
    """
    infos = {name: _as_addrvec(addr) for name, addr in mons}
    if len(infos) != len(mons):
        raise ValueError("duplicate mon names in monmap")
    enc = Encoder()
    with enc.struct(9, 6):
        enc.raw(fsid.bytes).u32(epoch)
        enc.utime(*(last_changed or created)).utime(*created)
        _encode_mon_feature(enc, persistent_features)
        _encode_mon_feature(enc, optional_features)
        _encode_mon_infos(enc, infos)
        _encode_monmap_tail(enc, [name for name, _ in mons], min_mon_release)
    return enc.getvalue()


def _decode_mon_feature(dec: Decoder) -> int:
    with dec.struct(1):
        return dec.u64()


def _decode_mon_info(dec: Decoder) -> tuple[str, tuple[EntityAddr, ...]]:
    # priority (v2+), weight (v4+) and crush_loc (v5+) follow; struct() skips them.
    with dec.struct(1):
        return dec.string(), decode_addrvec(dec)


def _decode_mon_infos(dec: Decoder) -> dict[str, tuple[EntityAddr, ...]]:
    mons: dict[str, tuple[EntityAddr, ...]] = {}
    for _ in range(dec.count(5)):
        key = dec.string()
        _name, addrs = _decode_mon_info(dec)
        mons[key] = addrs
    return mons


def decode_monmap(data) -> MonMapInfo:
    """Decodes a MonMap of struct v6..v9 (Nautilus to Pacific and later).

    Fields after ``min_mon_release``, and newer ones, are skipped (``DECODE_FINISH``).

    Args:
        data: the MonMap encoding (``MMonMap``'s bufferlist, or a monmap file).

    Returns:
        A :class:`MonMapInfo`.

    Raises:
        DecodeError: truncation, a compat version above 9, or a pre-Nautilus
            (v < 6) encoding, which carries legacy addresses.
    """
    dec = Decoder(data, "MonMap")
    with dec.struct(9) as struct_v:
        if struct_v < _MONMAP_MIN_DECODABLE:
            raise DecodeError(f"MonMap: struct v{struct_v} (pre-Nautilus) is not supported")
        fsid = uuid.UUID(bytes=dec.raw(16))
        epoch = dec.u32()
        last_changed, created = dec.utime(), dec.utime()
        persistent, optional = _decode_mon_feature(dec), _decode_mon_feature(dec)
        mons = _decode_mon_infos(dec)
        ranks = tuple(dec.string() for _ in range(dec.count(4)))
        min_release = dec.u8() if struct_v >= 7 else 0
    return MonMapInfo(fsid, epoch, MappingProxyType(mons), ranks, last_changed, created,
                      persistent, optional, min_release, struct_v)


def encode_mmonmap_front(monmap: bytes) -> bytes:
    """MMonMap's front: the MonMap encoding as a ``bufferlist`` (le32 length + bytes)."""
    return Encoder().blob(monmap).getvalue()


def decode_mmonmap_front(front) -> bytes:
    """Returns the MonMap bytes inside an MMonMap front (trailing bytes ignored, as in Ceph).

    Raises:
        DecodeError: the front is shorter than its length prefix says.
    """
    return Decoder(front, "MMonMap").blob()


# --------------------------------------------------------------------------- MPing

def encode_ping_reply_front(obj: Mapping | str) -> bytes:
    """The front of the mon's MPing reply: one ``std::string`` holding JSON.

    ``Monitor::handle_ping`` fills it with ``{"health": ..., "mon_status": ...}``;
    ``ceph ping mon.X`` prints the string as is.

    Args:
        obj: a JSON-serialisable mapping, or an already formatted JSON string.
    """
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=4)
    return Encoder().string(text).getvalue()


def decode_ping_reply_front(front) -> dict:
    """Decodes an MPing reply front to the JSON object it carries.

    An empty front (a plain MPing, as clients send) gives ``{}``, as
    ``MonClientPinger`` treats it.

    Raises:
        DecodeError: truncation, not UTF-8, not JSON, or JSON that is not an object.
    """
    if len(front) == 0:
        return {}
    text = Decoder(front, "MPing reply").string()
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise DecodeError(f"MPing reply: not JSON ({e})") from e
    if not isinstance(obj, dict):
        raise DecodeError("MPing reply: JSON is not an object")
    return obj


# --------------------------------------------------------------------------- MMonGetVersion

class MonGetVersion(NamedTuple):
    """MMonGetVersion: ask for the newest version of map ``what``."""

    handle: int
    what: str


class MonGetVersionReply(NamedTuple):
    """MMonGetVersionReply: the newest and oldest versions, for ``handle``."""

    handle: int
    version: int
    oldest_version: int


def encode_mon_get_version_front(handle: int, what: str) -> bytes:
    """MMonGetVersion front: le64 handle (ceph_tid_t); string what ("osdmap", ...)."""
    return Encoder().u64(handle).string(what).getvalue()


def decode_mon_get_version_front(front) -> MonGetVersion:
    """Decodes an MMonGetVersion front; raises DecodeError on truncation or bad UTF-8."""
    dec = Decoder(front, "MMonGetVersion")
    return MonGetVersion(dec.u64(), dec.string())


def encode_mon_get_version_reply_front(handle: int, version: int, oldest_version: int = 0) -> bytes:
    """MMonGetVersionReply front (header version 2): le64 handle, version, oldest_version."""
    return Encoder().u64(handle).u64(version).u64(oldest_version).getvalue()


def decode_mon_get_version_reply_front(front, header_version: int = 2) -> MonGetVersionReply:
    """Decodes an MMonGetVersionReply front.

    Args:
        front: the front bytes.
        header_version: the header's version; below 2 ``oldest_version`` is absent (0).

    Raises:
        DecodeError: truncation.
    """
    dec = Decoder(front, "MMonGetVersionReply")
    handle, version = dec.u64(), dec.u64()
    oldest = dec.u64() if header_version >= 2 else 0
    return MonGetVersionReply(handle, version, oldest)


# --------------------------------------------------------------------------- MConfig

def encode_config_front(values: Mapping[str, str] | None = None) -> bytes:
    """MConfig front: ``map<string,string>`` of config options (may be empty)."""
    values = values or {}
    enc = Encoder().u32(len(values))
    for key in sorted(values, key=str.encode):
        enc.string(key).string(values[key])
    return enc.getvalue()


def decode_config_front(front) -> dict[str, str]:
    """Decodes an MConfig front to a dict; raises DecodeError on truncation or bad UTF-8."""
    dec = Decoder(front, "MConfig")
    return {dec.string(): dec.string() for _ in range(dec.count(8))}


# --------------------------------------------------------------------------- MMonSubscribe

class MonSubscribe(NamedTuple):
    """MMonSubscribe: ``what`` maps a map name to ``(start epoch, flags)``."""

    what: dict[str, tuple[int, int]]
    hostname: str


def encode_mon_subscribe_front(what: Mapping[str, tuple[int, int]], hostname: str = "") -> bytes:
    """MMonSubscribe front, header version 3.

    ``map<string, ceph_mon_subscribe_item>`` (each a packed le64 start, u8
    flags, see :data:`CEPH_SUBSCRIBE_ONETIME`), then string hostname.
    """
    enc = Encoder().u32(len(what))
    for name in sorted(what, key=str.encode):
        start, flags = what[name]
        enc.string(name).u64(start).u8(flags)
    return enc.string(hostname).getvalue()


def decode_mon_subscribe_front(front, header_version: int = 3) -> MonSubscribe:
    """Decodes an MMonSubscribe front of header version 2 or 3.

    Args:
        front: the front bytes.
        header_version: the message header's version; v2 has no hostname.

    Raises:
        DecodeError: truncation, or the pre-2013 (v0/v1) item layout.
    """
    if header_version < 2:
        raise DecodeError(f"MMonSubscribe: header version {header_version} is not supported")
    dec = Decoder(front, "MMonSubscribe")
    what = {}
    for _ in range(dec.count(13)):
        name = dec.string()
        what[name] = (dec.u64(), dec.u8())
    hostname = dec.string() if header_version >= 3 else ""
    return MonSubscribe(what, hostname)
