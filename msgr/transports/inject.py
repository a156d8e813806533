"""Socket failure injection: Ceph's ``ms_inject_socket_failures``.

Wraps any transport; each ``recv_into`` and ``send`` fails with probability
1/N (``rng.randrange(N) == 0``), as if the socket had been shut down under
us. The failure is a TransportError, so it travels the normal fault path.
"""
from __future__ import annotations

import random

from ..errors import TransportError
from .base import Transport

__all__ = ["FailureInjector"]


class FailureInjector(Transport):
    """A transport that fails 1 in ``n`` reads and writes."""

    def __init__(self, inner: Transport, n: int, rng: random.Random) -> None:
        self._inner = inner
        self._n = n
        self._rng = rng
        self.injected = 0

    def _maybe_fail(self, what: str) -> None:
        if self._rng.randrange(self._n) == 0:
            self.injected += 1
            raise TransportError(f"injected socket failure on {what} (ms_inject_socket_failures)")

    def fileno(self) -> int:
        return self._inner.fileno()

    def finish_connect(self) -> None:
        self._inner.finish_connect()

    def recv_into(self, buf):
        self._maybe_fail("read")
        return self._inner.recv_into(buf)

    def send(self, buffers: list) -> int:
        self._maybe_fail("write")
        return self._inner.send(buffers)

    def close(self) -> None:
        self._inner.close()

    @property
    def peer_addr(self):
        return self._inner.peer_addr
