"""Ceph's little-endian encodings, as used inside msgr2 control frames.

Conventions (``src/include/encoding.h``): integers are little-endian; a
``std::string`` or ``bufferlist`` is a le32 length then the bytes; containers
are a le32 count then the elements; a versioned struct (``ENCODE_START(v,
compat)``) is u8 struct_v, u8 compat_v, le32 byte length, then the body, and a
decoder skips to ``start + length`` so newer fields are tolerated.

:class:`Decoder` raises :class:`DecodeError` (a ``RemoteProtocolError``) on
any truncation or inconsistency; it never reads past the buffer it was given.
"""
from __future__ import annotations

import struct
from contextlib import contextmanager
from typing import Iterator

from ..errors import Reason, RemoteProtocolError

__all__ = ["Encoder", "Decoder", "DecodeError"]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_S64 = struct.Struct("<q")
_STRUCT_HDR = struct.Struct("<BBI")


class DecodeError(RemoteProtocolError):
    """The peer's bytes do not decode as the expected Ceph structure."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.DECODE)


class Encoder:
    """Appends Ceph encodings to a bytearray.

    ``getvalue()`` returns the bytes built so far. Struct lengths are patched
    in place when a :meth:`struct` block closes.
    """

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        """Returns the encoded bytes."""
        return bytes(self.buf)

    def u8(self, v: int) -> "Encoder":
        self.buf += _U8.pack(v)
        return self

    def u16(self, v: int) -> "Encoder":
        self.buf += _U16.pack(v)
        return self

    def u32(self, v: int) -> "Encoder":
        self.buf += _U32.pack(v)
        return self

    def s32(self, v: int) -> "Encoder":
        self.buf += _S32.pack(v)
        return self

    def u64(self, v: int) -> "Encoder":
        self.buf += _U64.pack(v)
        return self

    def s64(self, v: int) -> "Encoder":
        self.buf += _S64.pack(v)
        return self

    def bool(self, v: bool) -> "Encoder":
        return self.u8(1 if v else 0)

    def raw(self, data: bytes) -> "Encoder":
        """Appends bytes with no length prefix."""
        self.buf += data
        return self

    def blob(self, data: bytes) -> "Encoder":
        """A ``bufferlist``: le32 length, then the bytes."""
        self.buf += _U32.pack(len(data))
        self.buf += data
        return self

    def string(self, s: str) -> "Encoder":
        """A ``std::string`` (UTF-8), le32 length first."""
        return self.blob(s.encode())

    def u32_list(self, values: list[int]) -> "Encoder":
        """A ``vector<__le32>``."""
        self.u32(len(values))
        for v in values:
            self.u32(v)
        return self

    def utime(self, sec: int, nsec: int) -> "Encoder":
        """A ``utime_t``: le32 seconds, le32 nanoseconds."""
        return self.u32(sec).u32(nsec)

    @contextmanager
    def struct(self, version: int, compat: int) -> Iterator["Encoder"]:
        """``ENCODE_START(version, compat)`` ... ``ENCODE_FINISH``."""
        at = len(self.buf)
        self.buf += _STRUCT_HDR.pack(version, compat, 0)
        yield self
        _U32.pack_into(self.buf, at + 2, len(self.buf) - at - 6)


class Decoder:
    """Reads Ceph encodings from a bytes-like object, bounds-checked.

    Args:
        data: the bytes to decode (not copied).
        what: a name for error messages (``"CLIENT_IDENT"``).
    """

    __slots__ = ("mv", "pos", "end", "what")

    def __init__(self, data, what: str = "payload") -> None:
        self.mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.pos = 0
        self.end = len(data)
        self.what = what

    def _take(self, n: int) -> int:
        at = self.pos
        if n < 0 or at + n > self.end:
            raise DecodeError(f"{self.what}: truncated (need {n} bytes at {at}, have {self.end - at})")
        self.pos = at + n
        return at

    def remaining(self) -> int:
        """How many bytes are left before the current end."""
        return self.end - self.pos

    def u8(self) -> int:
        return _U8.unpack_from(self.mv, self._take(1))[0]

    def u16(self) -> int:
        return _U16.unpack_from(self.mv, self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.mv, self._take(4))[0]

    def s32(self) -> int:
        return _S32.unpack_from(self.mv, self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.mv, self._take(8))[0]

    def s64(self) -> int:
        return _S64.unpack_from(self.mv, self._take(8))[0]

    def bool(self) -> bool:
        return self.u8() != 0

    def raw(self, n: int) -> bytes:
        """Takes ``n`` bytes with no length prefix."""
        at = self._take(n)
        return bytes(self.mv[at:at + n])

    def blob(self) -> bytes:
        """A ``bufferlist``: le32 length then the bytes."""
        return self.raw(self.u32())

    def string(self) -> str:
        """A ``std::string``; invalid UTF-8 is a DecodeError."""
        data = self.blob()
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            raise DecodeError(f"{self.what}: string is not UTF-8") from e

    def count(self, elem_min_size: int = 1) -> int:
        """A container's le32 element count, checked against the bytes left."""
        n = self.u32()
        if n * elem_min_size > self.remaining():
            raise DecodeError(f"{self.what}: container of {n} elements exceeds the payload")
        return n

    def u32_list(self) -> list[int]:
        return [self.u32() for _ in range(self.count(4))]

    def utime(self) -> tuple[int, int]:
        return self.u32(), self.u32()

    @contextmanager
    def struct(self, max_compat: int) -> Iterator[int]:
        """``DECODE_START``: yields struct_v; skips unread trailing bytes.

        Raises:
            DecodeError: compat_v is newer than ``max_compat``, the length runs
                past the buffer, or the body read past its declared length.
        """
        version, compat, length = _STRUCT_HDR.unpack_from(self.mv, self._take(6))
        if compat > max_compat:
            raise DecodeError(f"{self.what}: struct compat {compat} > supported {max_compat}")
        start, outer_end = self.pos, self.end
        if start + length > outer_end:
            raise DecodeError(f"{self.what}: struct length {length} runs past the payload")
        self.end = start + length
        yield version
        self.end = outer_end
        if self.pos > start + length:
            raise DecodeError(f"{self.what}: struct body overran its length")
        self.pos = start + length

    def expect_end(self) -> None:
        """Raises DecodeError if bytes are left over."""
        if self.pos != self.end:
            raise DecodeError(f"{self.what}: {self.end - self.pos} trailing bytes")
