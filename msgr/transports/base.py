"""Transport and Listener interfaces, the factory, and the OS-error boundary.

A transport is a non-blocking byte stream the reactor polls by ``fileno()``;
it never owns a selector. Every OS error raised by a transport method is
turned into a msgr error here, at the one boundary, by one mapping
(:func:`transport_error`, also behind :func:`translate_os_errors`): above it
there is no ``OSError`` and no raw errno.
"""
from __future__ import annotations

import errno as _errno
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Iterator

from ..entity import EntityAddr
from ..errors import ConfigError, ConnectionRefused, TransportError

__all__ = ["Transport", "Listener", "TransportFactory", "create_transport", "register_transport",
           "translate_os_errors", "transport_error", "consume"]

_REFUSED = {_errno.ECONNREFUSED}


def transport_error(what: str, e: OSError) -> TransportError:
    """The msgr error for OS error ``e`` during ``what``: the one mapping.

    ECONNREFUSED becomes :class:`ConnectionRefused`; every other errno a
    :class:`TransportError` keeping it. Hot paths that cannot afford a context
    manager (a transport's ``recv_into``/``send``) call this in their own
    ``except OSError``; everything else uses :func:`translate_os_errors`.
    """
    cls = ConnectionRefused if e.errno in _REFUSED else TransportError
    return cls(f"{what}: {e.strerror or e}", e.errno)


@contextmanager
def translate_os_errors(what: str) -> Iterator[None]:
    """Turns ``OSError`` raised inside into :func:`transport_error`'s msgr error."""
    try:
        yield
    except OSError as e:
        raise transport_error(what, e) from None


def consume(buffers: list, n: int) -> None:
    """Removes the first ``n`` bytes from ``buffers`` (what :meth:`Transport.send` took)."""
    i = 0
    while n:
        b = buffers[i]
        lb = len(b)
        if n >= lb:
            n -= lb
            i += 1
        else:
            buffers[i] = memoryview(b)[n:]
            n = 0
    del buffers[:i]


class Transport(ABC):
    """A connected, non-blocking byte stream."""

    @abstractmethod
    def fileno(self) -> int:
        """The fd the reactor polls for readiness."""

    @abstractmethod
    def finish_connect(self) -> None:
        """Completes a non-blocking connect once writable; raises TransportError on failure."""

    @abstractmethod
    def recv_into(self, buf: memoryview) -> int | None:
        """Reads into ``buf``: bytes read, None if nothing is ready.

        Raises:
            TransportError: the stream ended (EOF) or broke.
        """

    @abstractmethod
    def send(self, buffers: list) -> int:
        """Writes as much of ``buffers`` as the kernel takes; returns the byte count (0 if full)."""

    @abstractmethod
    def close(self) -> None:
        """Closes the stream; idempotent."""

    @property
    @abstractmethod
    def peer_addr(self) -> EntityAddr:
        """The socket address of the other end (nonce 0)."""


class Listener(ABC):
    """A bound, listening endpoint."""

    @abstractmethod
    def fileno(self) -> int: ...

    @abstractmethod
    def accept(self) -> Transport | None:
        """One pending connection, or None when there is none."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def addr(self) -> EntityAddr:
        """The bound address (nonce 0)."""


class TransportFactory(ABC):
    """Makes connecting transports and listeners of one kind."""

    name: str

    @abstractmethod
    def connect(self, addr: EntityAddr, *, nodelay: bool = True, rcvbuf: int = 0) -> Transport:
        """Starts a non-blocking connect; ``finish_connect`` completes it."""

    @abstractmethod
    def listen(self, addr: EntityAddr, *, backlog: int = 512) -> Listener: ...


_FACTORIES: dict[str, type] = {}


def register_transport(name: str, factory: type) -> None:
    """Makes ``create_transport(name)`` return ``factory()``."""
    _FACTORIES[name] = factory


def create_transport(name: str) -> TransportFactory:
    """The transport factory called ``name`` (``"tcp"``).

    Raises:
        ConfigError: no transport of that name is available here.
    """
    if not _FACTORIES:
        from . import tcp  # noqa: F401  (registers itself)
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ConfigError("transport", f"unknown transport {name!r}; have {sorted(_FACTORIES)}") from None
