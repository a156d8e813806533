"""Steady-state session bookkeeping: sequence numbers, acks, the out queue.

A :class:`Session` outlives the transports under it: a lossless connection
keeps one across reconnects, a lossy one throws it away on the first fault.
It is owned by the connection's reactor thread, except :class:`OutQueue`'s
producer side, which the runtime feeds from any thread through its own lock.

Rules (``ProtocolV2::write_message``, ``handle_message``, ``requeue_sent``):

* sending: ``seq = ++out_seq``; the header piggy-backs ``ack_seq = in_seq``;
  a lossless session keeps the message in ``sent`` until acked;
* receiving: ``seq <= in_seq`` is an old duplicate and is dropped; otherwise
  ``in_seq = seq`` and ``ack_seq`` trims ``sent``;
* on a fault, ``sent`` goes back to the front of the queue at the highest
  priority and ``out_seq`` steps back, so replays carry their original seq.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["OutQueue", "Session", "SessionState"]


class OutQueue:
    """Messages waiting to be framed, highest priority first, FIFO within one."""

    __slots__ = ("_queues", "_len")

    def __init__(self) -> None:
        self._queues: dict[int, deque] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, msg) -> None:
        q = self._queues.get(msg.priority)
        if q is None:
            q = self._queues[msg.priority] = deque()
        q.append(msg)
        self._len += 1

    def push_front(self, msgs, priority: int = 255) -> None:
        """Puts ``msgs`` (in order) ahead of everything at ``priority``."""
        q = self._queues.setdefault(priority, deque())
        q.extendleft(reversed(list(msgs)))
        self._len += len(msgs)

    def pop(self):
        """Removes and returns the next message, or None when empty."""
        if not self._len:
            return None
        qs = self._queues
        prio = next(iter(qs)) if len(qs) == 1 else max(qs)
        q = qs[prio]
        msg = q.popleft()
        if not q:
            del qs[prio]
        self._len -= 1
        return msg

    def pop_many(self, n: int) -> list:
        """Removes and returns up to ``n`` messages of the highest priority present."""
        if not self._len:
            return []
        qs = self._queues
        prio = next(iter(qs)) if len(qs) == 1 else max(qs)
        q = qs[prio]
        if len(q) <= n:
            out = list(q)
            del qs[prio]
        else:
            popleft = q.popleft
            out = [popleft() for _ in range(n)]
        self._len -= len(out)
        return out

    def clear(self) -> list:
        """Empties the queue and returns what it held, in send order."""
        out = []
        while self._len:
            out.append(self.pop())
        return out


@dataclass(frozen=True, slots=True)
class SessionState:
    """What a finished handshake hands to the session (a value, never mutated)."""

    peer_type: int
    peer_gid: int
    peer_addrs: tuple
    features: int
    lossy: bool
    client_cookie: int
    server_cookie: int
    peer_global_seq: int
    connect_seq: int


class Session:
    """Per-session counters and queues (see the module docstring)."""

    __slots__ = ("out", "sent", "out_seq", "in_seq", "ack_left", "lossy", "client_cookie",
                 "server_cookie", "connect_seq", "global_seq", "peer_global_seq", "peer_gid",
                 "features")

    def __init__(self, lossy: bool) -> None:
        self.out = OutQueue()
        self.sent: deque = deque()
        self.out_seq = 0
        self.in_seq = 0
        self.ack_left = 0
        self.lossy = lossy
        self.client_cookie = 0
        self.server_cookie = 0
        self.connect_seq = 0
        self.global_seq = 0
        self.peer_global_seq = 0
        self.peer_gid = -1
        self.features = 0

    def assign_seq(self, msg) -> int:
        """Gives ``msg`` the next seq; keeps it for replay on a lossless session."""
        self.out_seq += 1
        msg.seq = self.out_seq
        if not self.lossy:
            self.sent.append(msg)
        self.ack_left = 0
        return self.out_seq

    def accept_seq(self, seq: int) -> bool:
        """Records a received seq; False means an old duplicate to drop."""
        if seq <= self.in_seq:
            return False
        self.in_seq = seq
        if not self.lossy:
            self.ack_left += 1
        return True

    def acked(self, ack_seq: int) -> None:
        """The peer has everything up to ``ack_seq``: trim ``sent``."""
        sent = self.sent
        while sent and sent[0].seq <= ack_seq:
            sent.popleft()

    def requeue_sent(self) -> None:
        """On a fault: unacked messages go back first, keeping their seqs."""
        if self.sent:
            self.out.push_front(list(self.sent))
            self.out_seq -= len(self.sent)
            self.sent.clear()

    def discard_requeued_up_to(self, seq: int) -> None:
        """The peer already has messages up to ``seq``: drop them from the requeue.

        Ceph's ``discard_requeued_up_to``: with nothing requeued, ``out_seq``
        becomes ``seq`` (everything we sent was acked); otherwise requeued
        messages with ``0 < m.seq <= seq`` are dropped, each advancing ``out_seq``.
        """
        qs = self.out._queues
        rq = qs.get(255)
        if rq is None:
            self.out_seq = seq
            return
        count = self.out_seq
        while rq and 0 < rq[0].seq <= seq:
            rq.popleft()
            self.out._len -= 1
            count += 1
        if not rq:
            del qs[255]
        self.out_seq = count

    def reset(self) -> list:
        """Forgets the session (``reset_session``); returns the dropped messages."""
        dropped = list(self.sent) + self.out.clear()
        self.sent.clear()
        self.out_seq = self.in_seq = self.ack_left = 0
        self.client_cookie = self.server_cookie = self.connect_seq = 0
        self.peer_global_seq = 0
        return dropped
