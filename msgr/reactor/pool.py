"""A fixed pool of reactors; a new connection goes to the least-loaded one."""
from __future__ import annotations

import threading

from .loop import Reactor

__all__ = ["ReactorPool"]


class ReactorPool:
    """``n`` reactors named ``{prefix}-0..n-1``.

    ``load`` counts connections per reactor; it is changed under the pool lock
    by :meth:`pick` and :meth:`release` from any thread.
    """

    def __init__(self, n: int, prefix: str = "msgr-io", busy_poll: float = 0.0) -> None:
        self.reactors = [Reactor(f"{prefix}-{i}", i, busy_poll) for i in range(n)]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.reactors)

    def __iter__(self):
        return iter(self.reactors)

    def start(self) -> None:
        for r in self.reactors:
            r.start()

    def stop(self) -> None:
        for r in self.reactors:
            r.stop()

    def join(self, timeout: float | None = None) -> bool:
        return all([r.join(timeout) for r in self.reactors])

    def pick(self) -> Reactor:
        """The least-loaded reactor, its load counted up by one."""
        with self._lock:
            r = min(self.reactors, key=lambda x: x.load)
            r.load += 1
            return r

    def release(self, reactor: Reactor) -> None:
        with self._lock:
            reactor.load -= 1
