"""The producer end of a dispatch ring, owned by one reactor.

Items are stored into the ring's slots as they come and published once per
reactor loop iteration (:meth:`RingProducer.flush`, an end-of-iteration hook),
so a whole receive batch costs one native call. When the ring is full, items
wait in an overflow deque in order; the reactor retries shortly after.
"""
from __future__ import annotations

from collections import deque

from .._native import RingSet

__all__ = ["RingProducer", "RingSet"]


class RingProducer:
    """Ring ``index`` of ``ringset``; every method runs on the producing reactor."""

    __slots__ = ("rs", "index", "slots", "mask", "cap", "tail", "published", "cached_head",
                 "overflow")

    def __init__(self, ringset: RingSet, index: int) -> None:
        self.rs = ringset
        self.index = index
        self.slots = ringset.slots[index]
        self.mask = ringset.mask
        self.cap = ringset.capacity
        self.tail = self.published = self.cached_head = 0
        self.overflow: deque = deque()

    def put(self, item) -> None:
        """Stores ``item``; it becomes visible at the next :meth:`flush`."""
        t = self.tail
        if self.overflow or t - self.cached_head >= self.cap:
            self.cached_head = self.rs.head(self.index)
            if self.overflow or t - self.cached_head >= self.cap:
                self.overflow.append(item)
                return
        self.slots[t & self.mask] = item
        self.tail = t + 1

    def put_many(self, items: list, last=None) -> None:
        """:meth:`put` for each of ``items``, in order, then ``last`` if given."""
        t, mask, slots = self.tail, self.mask, self.slots
        n = len(items) + (last is not None)
        if self.overflow or t + n - self.cached_head > self.cap:
            self.cached_head = self.rs.head(self.index)
        if self.overflow or t + n - self.cached_head > self.cap:
            self.overflow.extend(items)             # the reactor retries (flush)
            if last is not None:
                self.overflow.append(last)
            return
        for item in items:
            slots[t & mask] = item
            t += 1
        if last is not None:
            slots[t & mask] = last
            t += 1
        self.tail = t

    def flush(self) -> bool:
        """Publishes stored items; returns True if items still wait in overflow."""
        if self.overflow:
            self._drain_overflow()
        if self.tail != self.published:
            self.published = self.tail
            self.rs.publish(self.index, self.tail)
        return bool(self.overflow)

    def _drain_overflow(self) -> None:
        self.cached_head = self.rs.head(self.index)
        t, ov = self.tail, self.overflow
        while ov and t - self.cached_head < self.cap:
            self.slots[t & self.mask] = ov.popleft()
            t += 1
        self.tail = t
