"""ConnectionEvents: what a connection does with its machine's events (mixed into Connection).

Everything here runs on the connection's reactor thread. Events are drained
one batch at a time; received messages pass the policy throttles (a full
throttle parks the rest of the batch and stops the reading until it frees up)
and go to delivery; other events (established, faulted, session requests,
keepalive acks) change the connection's state.
"""
from __future__ import annotations

from .failover import guarded
from .message import Message
from .protocol.events import (AddrLearned, Established, Faulted, KeepaliveAck,
                              RemoteReset, SessionRequest)
from .reactor.loop import EVENT_READ

__all__ = ["ConnectionEvents"]


class ConnectionEvents:
    """See the module docstring."""

    def _process(self) -> bool:
        """Drains machine events; False when reading must stop (paused, faulted, handed off)."""
        m = self._machine
        while m is self._machine and m is not None:
            if self._backlog:
                evs, self._backlog = self._backlog, None
                nbytes = -1
            else:
                evs = m.next_events()
                if not evs:
                    return True
                nbytes = m.last_batch_bytes
            if len(evs) > self._flush_every > 0:
                if not self._handle_in_runs(evs, nbytes):
                    return False
            elif not self._handle(evs, nbytes):
                return False
        return False

    def _handle_in_runs(self, evs: list, nbytes: int = -1) -> bool:
        """:meth:`_handle` for a burst longer than ``ms_reply_flush_msgs``.

        While the CPUs have headroom the burst goes in runs of that many events,
        and the replies inline or fast dispatch queued are written after each
        run: the peer starts on them while this side dispatches the rest (see
        :mod:`msgr.reactor.headroom`). Otherwise it is handled in one go.
        """
        k, n = self._flush_every, len(evs)
        if not self._reactor.headroom.spare(self._reactor.time):
            return self._handle(evs, nbytes)
        for i in range(0, n, k):
            if not self._handle(evs[i:i + k]):
                if self._backlog is not None:
                    self._backlog += evs[i + k:]
                return False
            m = self._machine
            if i + k < n and self._session.out.count and m is not None and m.is_ready:
                self._worker.counters.early_reply_writes += 1
                self._write(process_faults=False)
        return True

    def _handle(self, evs: list, nbytes: int = -1) -> bool:
        """Delivers a batch of events in order; keeps the rest when a throttle is full.

        ``nbytes`` >= 0: ``evs`` are all Messages with that many payload bytes
        (the machine's ``last_batch_bytes``), taken without looking at each.
        False when reading must stop (paused by a throttle, faulted, handed off).
        """
        if nbytes >= 0:
            return self._take(evs, evs, 0, nbytes)
        msgs = []
        for i, ev in enumerate(evs):
            if type(ev) is Message:
                msgs.append(ev)
                continue
            if msgs and not self._take(msgs, evs, i - len(msgs)):
                return False
            msgs = []
            if not self._on_event(ev):
                return False
        return not msgs or self._take(msgs, evs, len(evs) - len(msgs))

    def _take(self, msgs: list, evs: list, first: int, total: int = -1) -> bool:
        """Throttles and delivers ``msgs`` (== evs[first:first+len(msgs)]);
        ``total``: their payload bytes, if known (else -1)."""
        th = self._throttles
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
        th = self._throttles
        for k, m in enumerate(msgs):
            if not th.try_get_batch(m.size, 1, self._throttle_released):
                self._worker.counters.throttle_waits += 1
                self._hand_over(msgs[:k])
                self._backlog = evs[first + k:]
                self._set_mask(self._mask & ~EVENT_READ)
                return False
            m._throttle = th
        self._hand_over(msgs)
        return True

    def _hand_over(self, msgs: list, th=None, total: int = 0) -> None:
        """Counts throttled messages and passes them on (delay injection or delivery).

        ``th``/``total``: the throttle share taken for the whole batch, not yet
        attached to the messages (see ``DeliveryMixin._deliver_batch``).
        """
        if not msgs:
            return
        self._worker.counters.messages_received += len(msgs)
        if self._delay is not None:
            for m in msgs:
                if th is not None:
                    m._throttle = th
                self._delay.push(m)
        else:
            self.msgr._deliver_batch(self, msgs, th, total)

    def _deliver_now(self, msg: Message) -> None:
        self.msgr._deliver_batch(self, [msg])

    def _throttle_released(self) -> None:
        self._reactor.submit(self._resume_read)

    @guarded
    def _resume_read(self) -> None:
        if self._dead or self._machine is None or not self._backlog:
            return
        if self._process() and self._machine is not None:
            self._set_mask(self._mask | EVENT_READ)
            if self._out or self._machine.has_pending_output():
                self._write()

    def _on_event(self, ev) -> bool:
        kind = type(ev)
        if kind is Established:
            self._on_established(ev)
        elif kind is Faulted:
            self._on_fault(ev)
            return False
        elif kind is SessionRequest:
            return self._on_session_request(ev)
        elif kind is KeepaliveAck:
            self.last_keepalive_ack = self._reactor.time
        elif kind is AddrLearned:
            self.msgr._learned_addr(ev.addr)
        elif kind is RemoteReset:
            self._remote_reset(ev.dropped)
        return True

    def _on_established(self, ev: Established) -> None:
        m = self._machine
        self.peer_name = ev.peer_name
        self.peer_type = ev.peer_name.type
        self.features = ev.features
        self.policy = m.policy
        if ev.accepted and self._throttles is None:
            self._throttles = self.msgr._throttles_for(self.peer_type)
        if self._delay is None:
            self._delay = self.msgr._delay_for(self)
        self._backoff = 0.0
        self._connected = True
        self._announced = True
        self._standby = False
        self._arm_timer(m.next_deadline())
        self.msgr._on_established(self, ev)
