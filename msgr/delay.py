"""Delivery delay injection: Ceph's ``ms_inject_delay_*`` (``DelayedDelivery``).

For peers whose type is named in ``ms_inject_delay_type`` (e.g. ``"client
osd"``), each received message is held for ``U(0, ms_inject_delay_max)``
seconds with probability ``ms_inject_delay_probability`` before it is handed
to dispatch. Order is kept: a message never overtakes one held before it. The
queue is flushed (delivered at once) when the transport faults and dropped on
close, releasing the throttles of what it held. Owned by one reactor thread.
"""
from __future__ import annotations

import random
from collections import deque

__all__ = ["DelayedDelivery"]


class DelayedDelivery:
    """Holds messages of one connection and releases them in order on timers."""

    def __init__(self, reactor, deliver, max_delay: float, probability: float,
                 rng: random.Random) -> None:
        self._reactor = reactor
        self._deliver = deliver
        self._max = max_delay
        self._p = probability
        self._rng = rng
        self._q: deque = deque()
        self._timer = None
        self.delayed = 0

    def __len__(self) -> int:
        return len(self._q)

    def push(self, msg) -> None:
        """Delivers ``msg`` now, or later if it (or one before it) is held."""
        now = self._reactor.time
        release = now
        if self._rng.random() < self._p:
            release = now + self._rng.random() * self._max
            self.delayed += 1
        if self._q:
            release = max(release, self._q[-1][0])
        elif release <= now:
            self._deliver(msg)
            return
        self._q.append((release, msg))
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and self._q:
            self._timer = self._reactor.call_at(self._q[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._reactor.time
        q = self._q
        while q and q[0][0] <= now:
            self._deliver(q.popleft()[1])
        self._arm()

    def flush(self) -> None:
        """Delivers everything held, in order (on a transport fault)."""
        self._cancel()
        while self._q:
            self._deliver(self._q.popleft()[1])

    def discard(self, release) -> None:
        """Drops everything held, calling ``release(msg)`` for each (on close)."""
        self._cancel()
        while self._q:
            release(self._q.popleft()[1])

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
