"""Dispatch threads: each drains one RingSet (one ring per reactor).

A connection is pinned to one dispatch thread, and lives on one reactor, so
its messages and events travel through exactly one SPSC ring and keep their
order. An item is either a received Message (handed to ``on_message``), a
``(function, argument)`` pair (a connection event), called as is, or a
``(function, None)`` pair after a batch of messages (its throttle share given
back, ``GiveBack``), called and not counted as an item.
"""
from __future__ import annotations

import logging
import threading
from time import monotonic as _monotonic

from .. import counters as _counters
from ..counters import Counters
from ..message import Message
from .ring import RingProducer, RingSet

__all__ = ["DispatchPool"]
log = logging.getLogger(__name__)


class DispatchPool:
    """``nthreads`` dispatch threads fed by ``nproducers`` reactors.

    Args:
        nthreads: dispatch threads (>= 1).
        nproducers: reactors; each gets one producer end per thread.
        capacity: slots per ring.
        on_message: called with each Message on its dispatch thread.
        release_all: called with the list of Messages of a batch once they are
            all dispatched (throttle release, one call per batch).
        prefix: thread name prefix.
    """

    def __init__(self, nthreads: int, nproducers: int, capacity: int, on_message,
                 release_all=None, prefix: str = "msgr-dispatch") -> None:
        self.ringsets = [RingSet(nproducers, capacity) for _ in range(nthreads)]
        self._on_message = on_message
        self._release_all = release_all or (lambda msgs: None)
        self.threads = [threading.Thread(target=self._run, args=(i, rs), name=f"{prefix}-{i}",
                                          daemon=True) for i, rs in enumerate(self.ringsets)]
        self._lock = threading.Lock()
        self.done = [0] * nthreads
        self.counters = [Counters() for _ in range(nthreads)]   # one per thread, owner-written

    def producers(self, reactor_index: int) -> list[RingProducer]:
        """The producer ends reactor ``reactor_index`` writes, one per dispatch thread."""
        return [RingProducer(rs, reactor_index) for rs in self.ringsets]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        """Closes the rings; threads exit once they have drained them."""
        for rs in self.ringsets:
            rs.close()

    def join(self, timeout: float | None = None) -> bool:
        ok = True
        for t in self.threads:
            if t.ident is None:
                continue
            if t is threading.current_thread():
                ok = False
                continue
            t.join(timeout)
            ok = ok and not t.is_alive()
        return ok

    def is_dispatch_thread(self) -> bool:
        return threading.current_thread() in self.threads

    def _run(self, index: int, rs: RingSet) -> None:
        heads = [0] * rs.nrings
        mask = rs.mask
        on_message, release_all = self._on_message, self._release_all
        hist = self.counters[index].dispatch_latency
        while (tails := rs.wait(heads, None)) is not None:
            now = _monotonic() if _counters.HISTOGRAMS_ENABLED else 0.0   # one clock read per batch
            batch, tokens = [], 0
            for i in range(rs.nrings):
                ring = rs.slots[i]
                for s in range(heads[i], tails[i]):
                    item = ring[s & mask]
                    ring[s & mask] = None
                    try:
                        if type(item) is Message:
                            on_message(item)
                            batch.append(item)
                        elif item[1] is None:
                            item[0](None)           # a GiveBack: not counted as an item
                            tokens += 1
                        else:
                            item[0](item[1])
                    except Exception:
                        log.exception("dispatch of %r failed", item)
            if now and batch:
                hist.observe_batch(now, batch, _counters.RECV_STAMP)
            release_all(batch)
            self.done[index] += sum(tails) - sum(heads) - tokens
            heads = tails
