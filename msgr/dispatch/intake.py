"""Intake: one connection's received events on their way to delivery.

Owned by the connection's reactor thread (a part of its
:class:`~msgr.io_handler.IOHandler`). The machine's events come in batches, in
order. Received messages take their share of the receive throttles (the peer
type's policy throttles and the dispatch throttle, as Ceph's
``policy.throttler_*`` and ``dispatch_throttler``) before they are delivered,
and give it back once dispatched. Other events go to the connection at once
(``on_event``): a fault, a session that became READY, a session request change
the connection's state whatever waits.

When a throttle is full, the messages that do not fit wait in
:attr:`Intake.backlog`, and so does every message after them: the connection
stops reading until the throttle calls back (:meth:`Intake.drain`), so the
kernel's socket buffer pushes back on the sender and memory stays bounded.
The dispatchers' notifications about the connection (``ms_handle_connect``,
``ms_handle_remote_reset``, ...) go through :meth:`Intake.notify`: while
messages wait, a notice waits behind them, so callbacks reach the
dispatchers in the order things happened. What waits is no transport's: a
fault drops the transport, not the backlog (those messages count in the
session's ``in_seq``, so the peer will not send them again).

Delay injection (``ms_inject_delay_*``) sits between the throttles and
delivery. A burst longer than ``ms_reply_flush_msgs`` goes in runs of that many
while the CPUs have headroom (:mod:`msgr.reactor.headroom`), and the replies
inline or fast dispatch queued are written after each run (``write_early``):
the peer starts on them while this side dispatches the rest.
"""
from __future__ import annotations

from ..message import Message
from .chain import release

__all__ = ["Intake"]


class Intake:
    """Receive throttles, the backlog and delay injection of one connection.

    Args:
        ep: the connection's delivery endpoint (``producer``, ``counters``,
            ``reactor``; its IOHandler), passed to ``Delivery.deliver_batch``.
        delivery: the messenger's :class:`~msgr.dispatch.chain.Delivery`.
        conn: the user's handle (named in notifications).
        throttles: the receive throttles (a ThrottleSet), or None until the peer's
            type is known (an accepted connection).
        flush_every: ``ms_reply_flush_msgs`` (0: bursts go in one run).
        on_event: takes an event that is not a message; False stops the batch.
        write_early: writes the replies queued so far (between runs).
        resume: called on the reactor thread once a full throttle has room again.

    Attributes:
        backlog: what waits, in order: Messages, and ``(Notify, conn)`` notices
            behind them; None when nothing does.
    """

    def __init__(self, ep, delivery, conn, throttles, flush_every: int, on_event, write_early,
                 resume) -> None:
        self._ep = ep
        self._delivery = delivery
        self._conn = conn
        self._counters = ep.counters
        self._flush_every = flush_every
        self._on_event = on_event
        self._write_early = write_early
        self._resume = resume
        self.throttles = throttles
        self.backlog: list | None = None
        self.delay = None                   # DelayedDelivery, once the peer is known

    def peer_known(self, peer_type, accepted: bool) -> None:
        """The session is READY: throttles (accepted side) and delay injection by peer type."""
        if accepted and self.throttles is None:
            self.throttles = self._delivery.throttles_for(peer_type)
        if self.delay is None:
            self.delay = self._delivery.delay_for(self._ep.reactor, peer_type.label,
                                                  self._deliver_one)

    # ---------------------------------------------------------------- events in
    def handle(self, evs: list, nbytes: int = -1) -> bool:
        """Takes a batch of machine events in order; False when the connection must
        stop reading: messages wait (:attr:`backlog`), or an event said so (a
        fault, a hand-off).

        ``nbytes`` >= 0: ``evs`` are all Messages with that many payload bytes
        (the machine's ``last_batch_bytes``), taken without looking at each.
        """
        if self.backlog is None and len(evs) > self._flush_every > 0:
            return self._handle_in_runs(evs, nbytes)
        return self._handle(evs, nbytes)

    def _handle_in_runs(self, evs: list, nbytes: int) -> bool:
        """:meth:`_handle` for a burst longer than ``ms_reply_flush_msgs``: in runs,
        with the replies written between them, while the CPUs have headroom."""
        k, n, reactor = self._flush_every, len(evs), self._ep.reactor
        if not reactor.headroom.spare(reactor.time):
            return self._handle(evs, nbytes)
        for i in range(0, n, k):
            if not self._handle(evs[i:i + k]):
                if self.backlog is not None:
                    self._admit(evs[i + k:])    # the rest waits too (its events go now)
                return False
            if i + k < n:
                self._write_early()
        return True

    def _handle(self, evs: list, nbytes: int = -1) -> bool:
        """Messages to the throttles (or behind what waits); other events to the connection."""
        if nbytes >= 0 and self.backlog is None:
            return self._take(evs, nbytes)
        return self._admit(evs)

    def _admit(self, evs: list) -> bool:
        """:meth:`_handle` for a mixed batch, or while something waits."""
        msgs = []
        for ev in evs:
            if type(ev) is Message:
                msgs.append(ev)
                continue
            if msgs:
                self._queue(msgs)
                msgs = []
            if not self._on_event(ev):
                return False
        if msgs:
            self._queue(msgs)
        return self.backlog is None

    def _queue(self, msgs: list) -> None:
        if self.backlog is not None:
            self.backlog += msgs            # behind what already waits
        else:
            self._take(msgs)

    def _take(self, msgs: list, total: int = -1) -> bool:
        """Throttles and delivers ``msgs`` (``total``: their payload bytes, if known);
        False when some had to wait (they and the rest are the backlog)."""
        th = self.throttles
        if th is not None:
            if total < 0:
                total = 0
                for m in msgs:
                    total += len(m.front) + len(m.middle) + len(m.data)
            if not th.try_get_batch(total, len(msgs)):
                return self._take_each(msgs)
            self._hand_over(msgs, th, total)
            return True
        self._hand_over(msgs)
        return True

    def _take_each(self, msgs: list) -> bool:
        """Throttle nearly full: take messages one by one; the rest waits."""
        th = self.throttles
        for k, m in enumerate(msgs):
            if not th.try_get_batch(m.size, 1, self._throttle_released):
                self._counters.throttle_waits += 1
                self._hand_over(msgs[:k])
                self.backlog = msgs[k:]
                return False
            m._throttle = th
        self._hand_over(msgs)
        return True

    def _hand_over(self, msgs: list, th=None, total: int = 0) -> None:
        """Counts throttled messages and passes them on (delay injection or delivery).

        ``th``/``total``: the throttle share taken for the whole batch, not yet
        attached to the messages (see :meth:`Delivery.deliver_batch`).
        """
        if not msgs:
            return
        self._counters.messages_received += len(msgs)
        if self.delay is not None:
            for m in msgs:
                if th is not None:
                    m._throttle = th
                self.delay.push(m)
        else:
            self._delivery.deliver_batch(self._ep, msgs, th, total)

    def _deliver_one(self, msg) -> None:
        self._delivery.deliver_batch(self._ep, [msg])

    def _throttle_released(self) -> None:
        """A throttle's waiter, called by whichever thread gave shares back."""
        self._ep.reactor.submit(self._resume)

    # ---------------------------------------------------------------- what waits
    def notify(self, kind) -> None:
        """Tells the dispatchers about the connection (:class:`Notify`), after any
        message that waits."""
        if self.backlog is not None:
            self.backlog.append((kind, self._conn))
        else:
            self._delivery.deliver_event(self._ep, self._conn, kind)

    def drain(self) -> bool:
        """Hands over what waits, as far as the throttles let it; True when nothing
        waits any more (else the throttle calls ``resume`` again)."""
        waiting, self.backlog = self.backlog or [], None
        msgs = []
        for i, item in enumerate(waiting):
            if type(item) is Message:
                msgs.append(item)
                continue
            if msgs and not self._take(msgs):
                self.backlog += waiting[i:]
                return False
            msgs = []
            self._delivery.deliver_event(self._ep, item[1], item[0])
        return not msgs or self._take(msgs)

    def flush_delayed(self) -> None:
        """The transport faulted: messages held by delay injection are delivered now."""
        if self.delay is not None:
            self.delay.flush()

    def discard(self) -> None:
        """The connection closes: waiting messages go (counted in ``messages_dropped``,
        as delivery counts what a closed connection never dispatches), waiting notices
        are delivered, held messages give their throttle shares back."""
        waiting, self.backlog = self.backlog or [], None
        dropped = 0
        for item in waiting:
            if type(item) is Message:
                dropped += 1
            else:
                self._delivery.deliver_event(self._ep, item[1], item[0])
        if dropped:
            self._delivery.count_dropped(dropped)
        if self.delay is not None:
            self.delay.discard(release)
