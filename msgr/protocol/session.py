"""A session: its message stream (seqs, acks, the out queue) and its handshake identity.

A :class:`Session` outlives the transports under it: a lossless connection
keeps one across reconnects, a lossy one throws it away on the first fault.
It is split along crimson's line: the :class:`MessageStream` (queues, seqs,
acks, replay) belongs to the connection's I/O side; the
:class:`SessionIdentity` (cookies, connect_seq, global_seq, what the peer said
of itself) to the handshake and the lifecycle. Both are owned by the
connection's reactor thread.

Rules (``ProtocolV2::write_message``, ``handle_message``, ``requeue_sent``):

* sending: ``seq = ++out_seq``; the header piggy-backs ``ack_seq = in_seq``;
  a lossless session keeps ``(seq, message)`` in ``sent`` until acked. The seq is
  the session's own: one Message object may be queued on several sessions (a
  broadcast), and ``message.seq`` only holds the last one it was framed with;
* receiving: ``seq <= in_seq`` is an old duplicate and is dropped; otherwise
  ``in_seq = seq`` (and a lossless session owes one more ack) and ``ack_seq``
  trims ``sent`` (``acked``); the sending rule is applied batch-wise in
  ``tx.py``, the receiving one per message in ``rx.py``'s decode loop;
* on a fault, ``sent`` goes back to the front of the queue at the highest
  priority and ``out_seq`` steps back, so replays carry their original seq.
"""
from __future__ import annotations

from collections import deque

__all__ = ["OutQueue", "MessageStream", "SessionIdentity", "Session"]


REQUEUE_PRIORITY = 255   # CEPH_MSG_PRIO_HIGHEST: where requeue_sent puts unacked messages


class OutQueue:
    """Messages waiting to be framed, highest priority first, FIFO within one.

    A priority's deque is kept once created (most connections use one or two
    priorities), so pushing and popping allocate nothing; ``_prios`` lists the
    known priorities, highest first.
    """

    __slots__ = ("_queues", "_prios", "count", "last_priority")

    def __init__(self) -> None:
        self._queues: dict[int, deque] = {}
        self._prios: list = []
        self.count = 0          # messages queued (read-only outside; len() works too)
        self.last_priority = 0  # the queue the last pop/pop_many took from (to push back to)

    def __len__(self) -> int:
        return self.count

    def _queue(self, priority: int) -> deque:
        q = self._queues.get(priority)
        if q is None:
            q = self._queues[priority] = deque()
            self._prios = sorted(self._queues, reverse=True)
        return q

    def push(self, msg) -> None:
        q = self._queues.get(msg.priority)
        if q is None:
            q = self._queue(msg.priority)
        q.append(msg)
        self.count += 1

    def push_all(self, msgs: list) -> None:
        """``push`` for each of ``msgs``, in order."""
        qs = self._queues
        for m in msgs:
            q = qs.get(m.priority)
            if q is None:
                q = self._queue(m.priority)
            q.append(m)
        self.count += len(msgs)

    def push_front(self, msgs, priority: int = REQUEUE_PRIORITY) -> None:
        """Puts ``msgs`` (in order) ahead of everything at ``priority``."""
        self._queue(priority).extendleft(reversed(list(msgs)))
        self.count += len(msgs)

    def _top(self) -> deque:
        qs = self._queues
        for prio in self._prios:
            q = qs[prio]
            if q:
                self.last_priority = prio
                return q
        raise AssertionError("OutQueue length and deques disagree")

    def pop(self):
        """Removes and returns the next message, or None when empty."""
        if not self.count:
            return None
        self.count -= 1
        return self._top().popleft()

    def pop_many(self, n: int) -> list:
        """Removes and returns up to ``n`` messages of the highest priority present."""
        if not self.count:
            return []
        q = self._top()
        if len(q) <= n:
            out = list(q)
            q.clear()
        else:
            popleft = q.popleft
            out = [popleft() for _ in range(n)]
        self.count -= len(out)
        return out

    def drop_requeued_up_to(self, seqs: list, seq: int) -> int | None:
        """Drops requeued messages numbered up to ``seq`` from the front of the HIGHEST
        queue; ``seqs`` are their session seqs, front first (``Session.requeued``).

        Returns how many were dropped, or None when the HIGHEST queue is empty.
        """
        rq = self._queues.get(REQUEUE_PRIORITY)
        if not rq:
            return None
        n = 0
        for s in seqs:
            if s > seq or not rq:
                break
            rq.popleft()
            n += 1
        self.count -= n
        return n

    def clear(self) -> list:
        """Empties the queue and returns what it held, in send order."""
        out = []
        while self.count:
            out.append(self.pop())
        return out


class MessageStream:
    """One session's ordered message stream (see the module docstring): the I/O side."""

    __slots__ = ("out", "sent", "requeued", "out_seq", "in_seq", "ack_left", "lossy")

    def __init__(self, lossy: bool) -> None:
        self.out = OutQueue()
        self.sent: deque = deque()      # (seq, message), unacked, lossless only
        self.requeued: list = []        # seqs of the requeued messages at the queue's front
        self.out_seq = 0
        self.in_seq = 0
        self.ack_left = 0
        self.lossy = lossy

    def acked(self, ack_seq: int) -> None:
        """The peer has everything up to ``ack_seq``: trim ``sent``."""
        sent = self.sent
        while sent and sent[0][0] <= ack_seq:
            sent.popleft()

    def requeue_sent(self) -> None:
        """On a fault: unacked messages go back first, keeping their seqs.

        Their send-queue stamps are cleared: a replay is not observed again.
        """
        if self.sent:
            msgs = [m for _, m in self.sent]
            for m in msgs:
                m._queued_at = 0.0
            self.out.push_front(msgs)
            # no framing happens before the (re)connect consumes this in
            # discard_requeued_up_to; anything still listed is behind these
            self.requeued = [seq for seq, _ in self.sent] + self.requeued
            self.out_seq -= len(self.sent)
            self.sent.clear()

    def discard_requeued_up_to(self, seq: int) -> None:
        """The peer already has messages up to ``seq``: drop them from the requeue.

        Ceph's ``discard_requeued_up_to``: with nothing at the highest priority,
        ``out_seq`` becomes ``seq`` (everything we sent was acked); otherwise the
        requeued messages numbered up to ``seq`` in this session (``requeued``, set
        by :meth:`requeue_sent`) are dropped, each advancing ``out_seq``.
        """
        dropped = self.out.drop_requeued_up_to(self.requeued, seq)
        self.requeued = []
        self.out_seq = seq if dropped is None else self.out_seq + dropped

    def make_lossy(self) -> None:
        """From now on nothing is kept for replay (``mark_disposable``)."""
        self.lossy = True
        self.sent.clear()

    def discard(self) -> int:
        """The session ends: forgets what is queued or unacknowledged; returns how many."""
        n = len(self.out.clear()) + len(self.sent)
        self.sent.clear()
        return n

    def reset(self) -> list:
        """Forgets the stream (``reset_session``); returns the dropped messages."""
        dropped = [m for _, m in self.sent] + self.out.clear()
        self.sent.clear()
        self.requeued = []
        self.out_seq = self.in_seq = self.ack_left = 0
        return dropped


class SessionIdentity:
    """Who the session is, for the handshake (reconnects and races): the lifecycle side."""

    __slots__ = ("client_cookie", "server_cookie", "connect_seq", "global_seq",
                 "peer_global_seq", "peer_gid", "features")

    def __init__(self) -> None:
        self.client_cookie = 0
        self.server_cookie = 0
        self.connect_seq = 0
        self.global_seq = 0
        self.peer_global_seq = 0
        self.peer_gid = -1
        self.features = 0

    def reset(self) -> None:
        """Forgets the session's identity (``reset_session``): the next ident starts anew."""
        self.client_cookie = self.server_cookie = self.connect_seq = 0
        self.peer_global_seq = 0


class Session:
    """A session: its :class:`MessageStream` and its :class:`SessionIdentity`.

    Attributes:
        stream: queues, seqs and acks (the I/O side).
        ident: cookies and sequence numbers of the handshake (the lifecycle side).
    """

    __slots__ = ("stream", "ident")

    def __init__(self, lossy: bool) -> None:
        self.stream = MessageStream(lossy)
        self.ident = SessionIdentity()

    def reset(self) -> list:
        """Forgets the session (``reset_session``); returns the dropped messages."""
        self.ident.reset()
        return self.stream.reset()
