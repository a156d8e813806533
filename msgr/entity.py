"""Entity names and addresses: Ceph's ``entity_name_t`` and ``entity_addr_t``.

Plain frozen values. Their wire encodings live in ``msgr.protocol.addrs``.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

from .checks import as_int
from .errors import ConfigError

__all__ = ["EntityType", "EntityName", "EntityAddr", "ADDR_TYPES"]


class EntityType(IntEnum):
    """Ceph entity types (``src/include/msgr.h``, CEPH_ENTITY_TYPE_*)."""

    MON = 0x01
    MDS = 0x02
    OSD = 0x04
    CLIENT = 0x08
    MGR = 0x10
    AUTH = 0x20
    ANY = 0xFF

    @property
    def label(self) -> str:
        """Ceph's lower-case name (``"osd"``)."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> "EntityType":
        """Parses ``"osd"``, ``"client"``, ...; raises ConfigError."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ConfigError("entity", f"unknown entity type {label!r}") from None


@dataclass(frozen=True, slots=True)
class EntityName:
    """An entity's type and number, e.g. ``osd.0`` or ``client.-1``."""

    type: EntityType
    num: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", EntityType(self.type))
        num = as_int(self.num, "EntityName.num")
        if not -(1 << 63) <= num < 1 << 63:
            raise ValueError(f"EntityName.num {num} does not fit entity_name_t's int64")
        object.__setattr__(self, "num", num)

    def __str__(self) -> str:
        return f"{self.type.label}.{self.num}"

    @classmethod
    def parse(cls, text: str) -> "EntityName":
        """Parses ``"type.num"``.

        Raises:
            ConfigError: the text is not of that form.
        """
        label, sep, num = str(text).partition(".")
        if not sep:
            raise ConfigError("entity", f"{text!r} is not of the form type.num")
        try:
            n = int(num)
        except ValueError:
            raise ConfigError("entity", f"{text!r}: number {num!r} is not an integer") from None
        try:
            return cls(EntityType.from_label(label), n)
        except ValueError as e:
            raise ConfigError("entity", f"{text!r}: {e}") from None


# entity_addr_t::type values
ADDR_TYPES = {"none": 0, "v1": 1, "v2": 2, "any": 3}
_ADDR_TYPE_NAMES = {v: k for k, v in ADDR_TYPES.items()}


@dataclass(frozen=True, slots=True)
class EntityAddr:
    """Ceph's ``entity_addr_t``: type, IP host, port and nonce.

    ``str()`` gives Ceph's form ``v2:127.0.0.1:6800/1234`` (IPv6 in brackets);
    :meth:`parse` accepts it, with or without the nonce or the type.
    """

    type: str = "v2"
    host: str = "0.0.0.0"
    port: int = 0
    nonce: int = 0

    def __post_init__(self) -> None:
        if self.type not in ADDR_TYPES:
            raise ConfigError("address", f"unknown address type {self.type!r}")
        if not 0 <= self.port <= 0xFFFF:
            raise ConfigError("address", f"port {self.port} out of range")
        if not 0 <= self.nonce <= 0xFFFFFFFF:
            raise ConfigError("address", f"nonce {self.nonce} out of range")
        if self.type != "none":
            try:
                ip = ipaddress.ip_address(self.host)
            except ValueError:
                raise ConfigError("address", f"host {self.host!r} is not an IP address") from None
            object.__setattr__(self, "host", str(ip))

    @property
    def is_ipv6(self) -> bool:
        """True for an IPv6 host (``v2:[::1]:6800/0``)."""
        return ":" in self.host

    @property
    def type_code(self) -> int:
        """``entity_addr_t``'s type number (``TYPE_MSGR2`` for ``v2``)."""
        return ADDR_TYPES[self.type]

    @property
    def is_blank(self) -> bool:
        """True when the IP is unspecified (0.0.0.0 / ::)."""
        return self.type == "none" or ipaddress.ip_address(self.host).is_unspecified

    def __str__(self) -> str:
        if self.type == "none":
            return "-"
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return f"{self.type}:{host}:{self.port}/{self.nonce}"

    def with_nonce(self, nonce: int) -> "EntityAddr":
        """This address with another nonce."""
        return EntityAddr(self.type, self.host, self.port, nonce)

    def with_port(self, port: int) -> "EntityAddr":
        """This address with another port."""
        return EntityAddr(self.type, self.host, port, self.nonce)

    def with_type(self, type_: str) -> "EntityAddr":
        """This address with another type (``"v2"``, ``"any"``, ``"none"``)."""
        return EntityAddr(type_, self.host, self.port, self.nonce)

    def sockaddr_bytes(self) -> bytes:
        """The Linux ``sockaddr_in``/``sockaddr_in6`` as Ceph keeps it in memory.

        Family in host (little-endian) order, port and address in network order.
        """
        ip = ipaddress.ip_address(self.host)
        if ip.version == 4:
            return struct.pack("<H", 2) + struct.pack(">H", self.port) + ip.packed + bytes(8)
        return struct.pack("<H", 10) + struct.pack(">HI", self.port, 0) + ip.packed + bytes(4)

    def sort_key(self) -> bytes:
        """The key of Ceph's ``operator<``: a memcmp of the in-memory struct.

        ``entity_addr_t`` is ``{__u32 type; __u32 nonce; union {sockaddr_in,
        sockaddr_in6} u;}`` and is compared with ``memcmp``, so the le32 fields
        compare byte by byte, low byte first. The union is 28 bytes.
        """
        sa = self.sockaddr_bytes() if self.type != "none" else b""
        return struct.pack("<II", self.type_code, self.nonce) + sa.ljust(28, b"\0")

    @classmethod
    def parse(cls, text: "str | EntityAddr") -> "EntityAddr":
        """Parses ``[type:]host:port[/nonce]``; IPv6 hosts in brackets.

        A missing type means ``v2``; a missing nonce means 0.

        Raises:
            ConfigError: the text is malformed (the message says how).
        """
        if isinstance(text, EntityAddr):
            return text
        s = str(text).strip()
        if s == "-":
            return cls("none", "0.0.0.0", 0, 0)
        type_ = "v2"
        head, sep, rest = s.partition(":")
        if sep and head in ADDR_TYPES:
            type_, s = head, rest
        s, _, nonce_s = s.partition("/")
        if s.startswith("["):
            host, close, port_s = s[1:].partition("]")
            if not close or not port_s.startswith(":"):
                raise ConfigError("address", f"{text!r}: bad IPv6 form, want [host]:port")
            port_s = port_s[1:]
        else:
            host, sep, port_s = s.rpartition(":")
            if not sep:
                raise ConfigError("address", f"{text!r}: missing port")
        try:
            port = int(port_s)
            nonce = int(nonce_s) if nonce_s else 0
        except ValueError:
            raise ConfigError("address", f"{text!r}: port and nonce must be integers") from None
        return cls(type_, host, port, nonce)
