"""BufferPool: large receive buffers given back once the user is done with them.

A segment of ``ZERO_COPY_MIN`` bytes or more is handed to the user as a view of
the receive buffer, so the machine must start the next frame in another
buffer. Without a pool that is a fresh zeroed bytearray per large message
(and the page faults of touching it). A machine gives such a buffer to the
pool when it moves on; the pool hands it out again only when it is free:

* no view of it is alive (a bytearray with live buffer exports refuses to
  resize, so a probe resize raises ``BufferError``), and
* nothing else refers to it (its reference count is the pool's own, measured
  against the same code path at import, so the check follows the interpreter).

One pool serves a whole messenger (every reactor), under a lock; it holds at
most ``max_buffers`` buffers of at most ``max_bytes`` each, and hands out a
buffer only for a request of at least half its size, so a big buffer never
becomes a small connection's everyday one.
"""
from __future__ import annotations

import threading
from sys import getrefcount as _getrefcount

__all__ = ["BufferPool"]


def _count(b: bytearray) -> int:
    return _getrefcount(b)


def _baseline() -> int:
    """References to a pooled buffer seen from :meth:`BufferPool.take`'s loop, when
    nothing outside the pool holds it (same code shape as ``take``)."""
    bufs = [bytearray(1)]
    for i in range(len(bufs)):
        b = bufs[i]
        return _count(b)
    raise AssertionError("unreachable")


_BASE_REFS = _baseline()


def _unexported(b: bytearray) -> bool:
    """True if no buffer export (memoryview, ffi.from_buffer, ...) of ``b`` is alive."""
    try:
        b.append(0)
    except BufferError:
        return False
    del b[-1]
    return True


class BufferPool:
    """See the module docstring. Thread-safe.

    Args:
        max_buffers: how many buffers the pool keeps (oldest dropped first).
        max_bytes: larger buffers are not kept.
    """

    def __init__(self, max_buffers: int = 4, max_bytes: int = 4 << 20) -> None:
        self.max_buffers = max_buffers
        self.max_bytes = max_bytes
        self._bufs: list = []
        self._lock = threading.Lock()

    def give(self, buf: bytearray) -> None:
        """Offers ``buf`` (possibly still viewed by the user) for later reuse."""
        if len(buf) > self.max_bytes:
            return
        with self._lock:
            self._bufs.append(buf)
            if len(self._bufs) > self.max_buffers:
                del self._bufs[0]

    def take(self, size: int) -> bytearray | None:
        """Removes and returns a free buffer of ``size`` to ``2 * size`` bytes, or None.

        Its content is stale: the caller overwrites what it uses.
        """
        with self._lock:
            bufs = self._bufs
            for i in range(len(bufs)):
                b = bufs[i]
                if size <= len(b) <= 2 * size and _count(b) <= _BASE_REFS and _unexported(b):
                    del bufs[i]
                    return b
        return None

    def held(self) -> int:
        """How many buffers the pool keeps now (no ``__len__``: an empty pool stays truthy)."""
        return len(self._bufs)
