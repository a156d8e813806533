"""LoopbackIO: the I/O side of the loopback connection (messages sent on it are dispatched locally).

The loopback connection is a plain :class:`~msgr.connection.Connection` whose
I/O side is this object instead of an IOHandler: there is no transport and no
machine. Sends from any thread go through the handle's pending list (per-thread
order kept) to its reactor, which stamps them like received messages and hands
them to delivery, so they keep the same threading and ordering rules. Its
lifecycle starts READY and only ever closes.
"""
from __future__ import annotations

from .reactor.entry import guarded

__all__ = ["LoopbackIO"]


class LoopbackIO:
    """The loopback's reactor side; also its delivery endpoint (``producer``,
    ``counters``, ``reactor``)."""

    machine = None          # never a machine (the lifecycle and repr look)
    transport = None

    def __init__(self, conn, messenger, worker, producer) -> None:
        self.conn = conn
        self.reactor = worker.reactor
        self.counters = worker.counters
        self.producer = producer
        self.delivery = messenger._delivery
        self.life = None            # set by the Lifecycle
        self._name = messenger.name
        self._seq = 0               # reactor thread only

    def __repr__(self) -> str:
        return repr(self.conn)

    def _on_internal_error(self, error: Exception) -> None:
        self.life.internal_error(error)

    @guarded
    def flush_pending(self) -> None:
        """Delivers what was sent, stamped as if received from ourselves."""
        msgs, _t0 = self.conn._take_pending()
        if not msgs:
            return
        now, name, conn = self.reactor.time, self._name, self.conn
        for m in msgs:
            self._seq += 1
            m.seq = self._seq
            m.source = name
            m.connection = conn
            m.recv_stamp = now
        self.counters.messages_received += len(msgs)
        self.delivery.deliver_batch(self, msgs)

    @guarded
    def keepalive(self) -> None:
        """Our own keepalive is acknowledged at once."""
        self.conn.last_keepalive_ack = self.reactor.time

    def shut(self) -> None:
        """Nothing to close."""

    def notify(self, kind) -> None:
        """Tells the dispatchers about the loopback connection (its close, with reset)."""
        self.delivery.deliver_event(self, self.conn, kind)
