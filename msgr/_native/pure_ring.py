"""Pure-Python twin of the native SPSC ring set (see ``msgr._native`` for the protocol).

Same public behaviour as the cffi ``RingSet``: slots in Python lists, head and
tail counters, a consumer that sleeps on a Condition instead of a futex.
"""

from __future__ import annotations

import threading
import time
from typing import List, Optional, Sequence

__all__ = ["RingSet", "ring_capacity", "MAX_RINGS"]

MAX_RINGS = 65536


def ring_capacity(nrings: int, capacity: int) -> int:
    """Validates RingSet arguments; returns capacity rounded up to 2**k.

    Raises:
        ValueError: ``nrings`` outside [1, 65536] or ``capacity`` < 2.
    """
    if not 1 <= nrings <= MAX_RINGS:
        raise ValueError(f"nrings must be in [1, {MAX_RINGS}], got {nrings}")
    if capacity < 2:
        raise ValueError(f"capacity must be >= 2, got {capacity}")
    return 1 << (capacity - 1).bit_length()


class RingSet:
    """N single-producer rings drained by one consumer thread.

    See :mod:`msgr._native` for the theory of operation.  This twin keeps
    the counters in Python lists and sleeps on a :class:`threading.Condition`;
    a producer takes the lock once per published batch, to see whether the consumer sleeps.

    Attributes:
        nrings: number of rings.
        capacity: slots per ring (a power of two).
        mask: ``capacity - 1``; slot of sequence number s is ``s & mask``.
        slots: ``slots[i]`` is ring i's list of ``capacity`` slots.
    """

    __slots__ = ("nrings", "capacity", "mask", "slots", "_tails", "_heads",
                 "_cond", "_sleeping", "_closed")

    def __init__(self, nrings: int, capacity: int) -> None:
        cap = ring_capacity(nrings, capacity)
        self.nrings = nrings
        self.capacity = cap
        self.mask = cap - 1
        self.slots: List[list] = [[None] * cap for _ in range(nrings)]
        self._tails = [0] * nrings
        self._heads = [0] * nrings
        self._cond = threading.Condition(threading.Lock())
        self._sleeping = False
        self._closed = False

    def publish(self, i: int, tail: int) -> None:
        """Producer of ring i: makes items [old tail, tail) visible.

        Wakes the consumer if it sleeps.

        Raises:
            IndexError: no ring i.
            ValueError: ``tail`` is below the last published tail.
        """
        if not 0 <= i < self.nrings:
            raise IndexError(f"no ring {i}")
        tails = self._tails
        old = tails[i]
        if tail <= old:
            if tail < old:
                raise ValueError(f"ring {i}: tail {tail} < published {old}")
            return
        tails[i] = tail
        # The store above and the consumer's "sleeping, then poll" are ordered by the
        # lock: read outside it, _sleeping could be seen stale without the GIL (a lost
        # wakeup). One acquire per published batch.
        with self._cond:
            if self._sleeping:
                self._sleeping = False
                self._cond.notify()

    def head(self, i: int) -> int:
        """Producer of ring i: items the consumer has released.

        Slots of sequence numbers below the returned value may be reused.

        Raises:
            IndexError: no ring i.
        """
        if not 0 <= i < self.nrings:
            raise IndexError(f"no ring {i}")
        return self._heads[i]

    def _poll(self, heads: Sequence[int]):
        """Returns the tails if some ring has items, None if closed and
        drained, else False."""
        closed = self._closed
        tails = self._tails[:]
        for t, h in zip(tails, heads):
            if t > h:
                return tails
        return None if closed else False

    def wait(self, heads: Sequence[int],
             timeout: Optional[float] = None) -> Optional[List[int]]:
        """Consumer: releases ``heads`` and waits for items.

        Args:
            heads: per ring, the number of items consumed so far; slots below
                are handed back to the producers.
            timeout: seconds to wait; None waits forever.

        Returns:
            The list of current tails as soon as some ring has
            ``tail > head``; the tails (all equal to ``heads``) on timeout;
            None once the set is closed and every ring is drained.

        Raises:
            ValueError: ``len(heads) != nrings``.
        """
        if len(heads) != self.nrings:
            raise ValueError("need one head per ring")
        self._heads[:] = heads
        result = self._poll(heads)
        if result is not False or timeout is not None and timeout <= 0:
            return self._tails[:] if result is False else result
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._sleeping = True
                result = self._poll(heads)
                if result is not False:
                    break
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    result = self._tails[:]
                    break
                self._cond.wait(left)
            self._sleeping = False
        return result

    def close(self) -> None:
        """Marks the set closed and wakes the consumer (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _consumer_sleeping(self) -> bool:
        """Test hook: True while the consumer has announced it sleeps."""
        return self._sleeping
