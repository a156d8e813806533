"""Throttles: bounded counters that make the reader stop when full.

A received message takes its share (bytes, or 1 message) before it is handed
to dispatch and gives it back when its dispatch returns. While a throttle is
full, the connection stops reading its socket, so the kernel's buffers push
back on the sender and memory stays bounded. Like Ceph's ``get_or_fail``,
a message larger than the whole throttle still passes when nothing is held.
"""
from __future__ import annotations

import threading

__all__ = ["Throttle", "ThrottleSet"]


class Throttle:
    """A counter with a maximum; thread-safe.

    Args:
        name: for metrics and logs.
        maximum: the cap; 0 means unlimited.
    """

    def __init__(self, name: str, maximum: int) -> None:
        self.name = name
        self.maximum = maximum
        self.current = 0
        self.waits = 0
        self._lock = threading.Lock()
        self._waiters: list = []

    def try_get(self, n: int, waiter=None) -> bool:
        """Takes ``n`` if it fits; else registers ``waiter()`` for the next release."""
        if not self.maximum:
            return True
        with self._lock:
            if self.current and self.current + n > self.maximum:
                if waiter is not None:
                    self._waiters.append(waiter)
                self.waits += 1
                return False
            self.current += n
            return True

    def put(self, n: int) -> None:
        """Gives ``n`` back and wakes the waiters."""
        if not self.maximum:
            return
        with self._lock:
            self.current -= n
            waiters, self._waiters = self._waiters, []
        for w in waiters:
            w()


class ThrottleSet:
    """The throttles one connection's messages pass: policy bytes, policy count, dispatch bytes."""

    __slots__ = ("throttles",)

    def __init__(self, byte_throttles: tuple, msg_throttle: Throttle | None) -> None:
        self.throttles = tuple((t, False) for t in byte_throttles if t is not None)
        if msg_throttle is not None:
            self.throttles += ((msg_throttle, True),)

    def try_get(self, nbytes: int, waiter) -> bool:
        """Takes every share or none; ``waiter`` is called when a full one frees up."""
        taken = []
        for t, counts in self.throttles:
            if not t.try_get(1 if counts else nbytes, waiter):
                for u, c in taken:
                    u.put(1 if c else nbytes)
                return False
            taken.append((t, counts))
        return True

    def put(self, nbytes: int) -> None:
        for t, counts in self.throttles:
            t.put(1 if counts else nbytes)
