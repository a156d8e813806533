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
        self._lock = threading.Lock()
        self._waiters: list = []

    def try_get(self, n: int, waiter=None, single: bool = True) -> bool:
        """Takes ``n`` if it fits; else registers ``waiter()`` for the next release.

        ``single``: ``n`` is one message's share, which may exceed the maximum
        when nothing is held; a batch (``single=False``) must fit.
        """
        if not self.maximum:
            return True
        with self._lock:
            if self.current + n > self.maximum and (self.current or not single):
                if waiter is not None:
                    self._waiters.append(waiter)
                return False
            self.current += n
            return True

    def put(self, n: int) -> None:
        """Gives ``n`` back and wakes the waiters."""
        if not self.maximum:
            return
        with self._lock:
            self.current -= n
            if not self._waiters:
                return
            waiters, self._waiters = self._waiters, []
        for w in waiters:
            w()


class ThrottleSet:
    """The throttles one connection's messages pass: policy bytes, policy count, dispatch bytes.

    Unlimited throttles (maximum 0) are left out, so they cost no lock.
    """

    __slots__ = ("throttles",)

    def __init__(self, byte_throttles: tuple, msg_throttle: Throttle | None) -> None:
        self.throttles = tuple((t, False) for t in byte_throttles if t is not None and t.maximum)
        if msg_throttle is not None and msg_throttle.maximum:
            self.throttles += ((msg_throttle, True),)

    def try_get_batch(self, nbytes: int, nmsgs: int, waiter=None) -> bool:
        """Takes every share for ``nmsgs`` messages of ``nbytes`` in all, or none.

        ``waiter`` (if given) is called when a full throttle frees up.
        """
        throttles = self.throttles
        if len(throttles) == 1:                     # the usual case: one lock, no bookkeeping
            t, counts = throttles[0]
            return t.try_get(nmsgs if counts else nbytes, waiter, nmsgs == 1)
        taken = []
        for t, counts in throttles:
            n = nmsgs if counts else nbytes
            if not t.try_get(n, waiter, nmsgs == 1):
                for u, k in taken:
                    u.put(k)
                return False
            taken.append((t, n))
        return True

    def put_batch(self, nbytes: int, nmsgs: int) -> None:
        """Gives back what :meth:`try_get_batch` took for these messages."""
        for t, counts in self.throttles:
            t.put(nmsgs if counts else nbytes)
