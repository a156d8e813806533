"""The loopback connection: messages sent on it are dispatched locally.

Sends from any thread go through the connection's pending list (per-thread
order kept) to reactor 0, which stamps them like received messages and hands
them to dispatch, so they keep the same threading and ordering rules.
"""
from __future__ import annotations

from .connection import Connection
from .entity import EntityAddr
from .policy import Policy

__all__ = ["LoopbackConnection"]


class LoopbackConnection(Connection):
    """A Connection whose peer is its own messenger."""

    _direct = False     # every send goes through the pending list and local delivery
    _pooled = False     # always on reactor 0, outside the pool's load count

    def __init__(self, msgr, worker) -> None:
        addr = msgr.addr or EntityAddr("any", "0.0.0.0", 0, msgr.nonce)
        super().__init__(msgr, worker, msgr.name.type, addr, Policy.lossy_client(), outgoing=False)
        self.peer_name = msgr.name
        self.features = 0x3F01CFBDFFFDFFFF
        self._connected = True
        self._loop_seq = 0

    def _flush_pending(self) -> None:
        with self._lock:
            msgs, self._pending = self._pending, []
            self._flush_scheduled = False
        now = self._reactor.time
        name = self.msgr.name
        for m in msgs:
            self._loop_seq += 1
            m.seq = self._loop_seq
            m.source = name
            m.connection = self
            m.recv_stamp = now
        self._worker.counters.messages_received += len(msgs)
        if msgs:
            self.msgr._deliver_batch(self, msgs)

    def _do_keepalive(self) -> None:
        self.last_keepalive_ack = self._reactor.time
