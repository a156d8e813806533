"""Intake: one connection's received events on their way to delivery.

Owned by the connection's reactor thread (a part of its
:class:`~msgr.io_handler.IOHandler`). The machine's events come in batches, in
order: other events than messages go back to the connection (``on_event``);
received messages take their share of
the receive throttles (the peer type's policy throttles and the dispatch
throttle, as Ceph's ``policy.throttler_*`` and ``dispatch_throttler``) before
they are delivered, and give it back once dispatched. When a throttle is full,
the rest of the batch is parked in :attr:`Intake.backlog` and the connection
stops reading until the throttle calls back: the kernel's socket buffer then
pushes back on the sender, so memory stays bounded under any load. Delay
injection (``ms_inject_delay_*``) sits between the throttles and delivery.

A burst longer than ``ms_reply_flush_msgs`` goes in runs of that many while the
CPUs have headroom (:mod:`msgr.reactor.headroom`), and the replies inline or
fast dispatch queued are written after each run (``write_early``): the peer
starts on them while this side dispatches the rest.
"""
from __future__ import annotations

from ..message import Message
from .chain import release

__all__ = ["Intake"]


class Intake:
    """Receive throttles, the parked backlog and delay injection of one connection.

    Args:
        ep: the connection's delivery endpoint (``producer``, ``counters``,
            ``reactor``; its IOHandler), passed to ``Delivery.deliver_batch``.
        delivery: the messenger's :class:`~msgr.dispatch.chain.Delivery`.
        throttles: the receive throttles (a ThrottleSet), or None until the peer's
            type is known (an accepted connection).
        flush_every: ``ms_reply_flush_msgs`` (0: bursts go in one run).
        on_event: takes an event that is not a message; False stops the batch.
        write_early: writes the replies queued so far (between runs).
        resume: called on the reactor thread once a full throttle has room again.
    """

    def __init__(self, ep, delivery, throttles, flush_every: int, on_event, write_early,
                 resume) -> None:
        self._ep = ep
        self._delivery = delivery
        self._counters = ep.counters
        self._flush_every = flush_every
        self._on_event = on_event
        self._write_early = write_early
        self._resume = resume
        self.throttles = throttles
        self.backlog: list | None = None    # events parked behind a full throttle
        self.delay = None                   # DelayedDelivery, once the peer is known

    def peer_known(self, peer_type, accepted: bool) -> None:
        """The session is READY: throttles (accepted side) and delay injection by peer type."""
        if accepted and self.throttles is None:
            self.throttles = self._delivery.throttles_for(peer_type)
        if self.delay is None:
            self.delay = self._delivery.delay_for(self._ep.reactor, peer_type.label,
                                                  self._deliver_one)

    def handle(self, evs: list, nbytes: int = -1) -> bool:
        """Takes a batch of events in order; False when the connection must stop
        reading: a throttle is full (:attr:`backlog` holds the rest) or an event
        said so (a fault, a hand-off).

        ``nbytes`` >= 0: ``evs`` are all Messages with that many payload bytes
        (the machine's ``last_batch_bytes``), taken without looking at each.
        """
        if len(evs) > self._flush_every > 0:
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
                    self.backlog += evs[i + k:]
                return False
            if i + k < n:
                self._write_early()
        return True

    def _handle(self, evs: list, nbytes: int = -1) -> bool:
        """Delivers a batch of events in order; keeps the rest when a throttle is full."""
        take = self.take
        if nbytes >= 0:
            return take(evs, evs, 0, nbytes)
        msgs = []
        for i, ev in enumerate(evs):
            if type(ev) is Message:
                msgs.append(ev)
                continue
            if msgs and not take(msgs, evs, i - len(msgs)):
                return False
            msgs = []
            if not self._on_event(ev):
                return False
        return not msgs or take(msgs, evs, len(evs) - len(msgs))

    def take(self, msgs: list, evs: list, first: int, total: int = -1) -> bool:
        """Throttles and delivers ``msgs`` (== ``evs[first:first + len(msgs)]``).

        ``total``: their payload bytes, if known (else -1). Returns False when a
        throttle is full: what did not fit is parked (from ``evs[first + k]`` on,
        events after the messages included) and reading must stop.
        """
        th = self.throttles
        if th is not None:
            if total < 0:
                total = 0
                for m in msgs:
                    total += len(m.front) + len(m.middle) + len(m.data)
            if not th.try_get_batch(total, len(msgs)):
                return self._take_each(msgs, evs, first)
            self._hand_over(msgs, th, total)
            return True
        self._hand_over(msgs)
        return True

    def _take_each(self, msgs: list, evs: list, first: int) -> bool:
        """Throttle nearly full: take messages one by one; park the rest."""
        th = self.throttles
        for k, m in enumerate(msgs):
            if not th.try_get_batch(m.size, 1, self._throttle_released):
                self._counters.throttle_waits += 1
                self._hand_over(msgs[:k])
                self.backlog = evs[first + k:]
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

    def take_parked(self) -> list:
        """The received messages parked behind a full throttle (the other events go)."""
        return [ev for ev in self.backlog or () if type(ev) is Message]

    def flush_delayed(self) -> None:
        """The transport faulted: messages held by delay injection are delivered now."""
        if self.delay is not None:
            self.delay.flush()

    def discard(self) -> None:
        """The connection closes: parked messages go (counted in ``messages_dropped``,
        as delivery counts what a closed connection never dispatches); held ones give
        their throttle shares back."""
        parked = self.take_parked()
        self.backlog = None
        if parked:
            self._delivery.count_dropped(len(parked))
        if self.delay is not None:
            self.delay.discard(release)
