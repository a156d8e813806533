"""ConnectionIO: a connection's reactor-side I/O (mixed into Connection).

Everything here runs on the connection's reactor thread. Reads go straight
into the machine's buffer (``recv_into``), up to ``_READ_BURST`` reads per
readiness event, and the events each read yields are handled at once
(:mod:`msgr.conn_events`); writes hand the machine's buffer lists to
``sendmsg`` until the kernel pushes back, then wait for EVENT_WRITE.
"""
from __future__ import annotations

import time
from time import monotonic as _monotonic

from . import counters as _counters
from .errors import TransportError
from .failover import guarded
from .protocol.events import Faulted
from .protocol.intercept import SOCKET_ACCEPTED, SOCKET_CONNECTING, Action
from .protocol.machine import ProtocolMachine
from .reactor.loop import EVENT_READ, EVENT_WRITE

__all__ = ["ConnectionIO"]
_READ_BURST = 16


class ConnectionIO:
    """See the module docstring."""

    # ---------------------------------------------------------------- user work
    @guarded
    def _flush_pending(self) -> None:
        with self._lock:
            msgs, self._pending = self._pending, []
            self._flush_scheduled = False
            t0 = self._pending_t0
        if self._dead:
            self.msgr._count_dropped(len(msgs))
            return
        if t0:
            for m in msgs:
                m._queued_at = t0
        self._session.out.push_all(msgs)
        self._kick()

    @guarded
    def _flush_direct(self) -> None:
        """End of a loop iteration: write what reactor-thread sends queued (often
        a write after the read that led to them has framed them already)."""
        self._write_soon = False
        if not self._dead and self._session.out.count:
            self._kick()

    def _kick(self) -> None:
        """Something was queued: write it if READY, or leave standby to send it."""
        m = self._machine
        if m is not None:
            if m.is_ready:
                self._write()
        elif self._standby:
            self._wake_from_standby()

    @guarded
    def _do_keepalive(self) -> None:
        if self._dead:
            return
        m = self._machine
        if m is None:
            self._keepalive_wanted = True
            if self._standby:
                self._wake_from_standby()
            return
        m.send_keepalive(_wall_stamp())
        self._write()

    @guarded
    def _make_lossy(self) -> None:
        self.policy = self.policy.as_lossy()
        self._session.lossy = True
        self._session.sent.clear()
        if self._machine is not None:
            self._machine.policy = self._machine.policy.as_lossy()

    # ---------------------------------------------------------------- connect / accept
    @guarded
    def _start_connect(self) -> None:
        self._timer = None
        if self._dead:
            return
        self._standby = False
        cfg = self.msgr.config
        self._arm_timer(self._reactor.time + cfg.ms_connection_ready_timeout)
        try:
            ic = self.msgr.interceptor
            if ic is not None and ic.intercept(self, SOCKET_CONNECTING) is Action.FAULT:
                raise TransportError("interceptor fault at socket_connecting")
            self._transport = self.msgr._make_transport(self.peer_addr)
        except TransportError as e:
            self._on_fault(Faulted(e, False))
            return
        self._set_mask(EVENT_WRITE)

    def _on_connected(self) -> None:
        try:
            self._transport.finish_connect()
        except TransportError as e:
            self._on_fault(Faulted(e, False))
            return
        self._machine = ProtocolMachine(self.msgr._connect_params(self), True, self._session)
        self._machine.owner = self
        self._machine.start(self._reactor.time)
        if self._keepalive_wanted:
            self._keepalive_wanted = False
            self._machine.send_keepalive(_wall_stamp())
        self._set_mask(EVENT_READ)
        self._write()

    @guarded
    def _start_accept(self, transport) -> None:
        if self._dead:              # closed (mark_down_all, shutdown) before it started
            transport.close()
            return
        self._transport = transport
        ic = self.msgr.interceptor
        if ic is not None and ic.intercept(self, SOCKET_ACCEPTED) is Action.FAULT:
            transport.close()
            self._close_now(reset=False)
            return
        self._machine = ProtocolMachine(self.msgr._accept_params(transport.peer_addr), False,
                                        self._session)
        self._machine.owner = self
        self._machine.start(self._reactor.time)
        self._arm_timer(self._machine.next_deadline())
        self._set_mask(EVENT_READ)
        self._write()

    def _set_mask(self, mask: int) -> None:
        if mask == self._mask or self._transport is None:
            return
        fd = self._transport.fileno()
        if not self._mask:
            self._reactor.register(fd, mask, self._on_io)
        elif not mask:
            self._reactor.unregister(fd)
        else:
            self._reactor.modify(fd, mask, self._on_io)
        self._mask = mask

    @guarded
    def _resume_halt(self) -> None:
        """An interceptor BLOCK was lifted: go on reading and writing."""
        m = self._machine
        if m is None or self._dead:
            return
        m.resume()
        if self._process() and self._machine is m:
            self._write()

    # ---------------------------------------------------------------- reading
    @guarded
    def _on_io(self, mask: int) -> None:
        if self._closed:        # mark_down() etc. from another thread: its _close_now is
            return              # queued; reading on would ack messages it then discards
        if self._machine is None:
            self._on_connected()
            return
        if mask & EVENT_READ:
            self._on_readable()
        if mask & EVENT_WRITE and self._machine is not None and self._transport is not None:
            self._write()

    def _on_readable(self) -> None:
        m, t, counters = self._machine, self._transport, self._worker.counters
        try:
            for _ in range(_READ_BURST):
                buf = m.get_recv_buffer()
                n = t.recv_into(buf)
                if n is None:
                    break
                m.commit_recv(n, self._reactor.time)
                counters.bytes_received += n
                if not self._process():
                    return
                if n < len(buf):
                    break
        except TransportError as e:
            self._set_mask(0)       # the socket is dead, whenever its fault gets handled
            m.fault(e)
            self._process()
            return
        self._write()

    # ---------------------------------------------------------------- writing
    def _write(self, process_faults: bool = True) -> None:
        """Frames and sends what the machine has, until the kernel pushes back.

        ``process_faults=False`` (a write in the middle of delivering a burst)
        leaves a transport fault's event to the caller's event loop.
        """
        m, out = self._machine, self._out
        if m is None or self._transport is None:
            return
        counters, queue, framed = self._worker.counters, self._session.out, False
        try:
            while True:
                if not out:
                    # after one data_to_send only messages over its budget can be left
                    more = queue.count > 0 if framed else m.has_pending_output()
                    if not more:
                        break
                    framed = True
                    seq0 = self._session.out_seq
                    if _counters.HISTOGRAMS_ENABLED and queue.count:
                        now, hist = _monotonic(), counters.send_queue_latency   # one read per batch
                    else:
                        now, hist = self._reactor.time, None
                    out.extend(m.data_to_send(now, self.msgr.config.ms_send_batch_bytes, hist))
                    if m.invalid_dropped:
                        self.msgr._count_dropped(m.invalid_dropped)
                        m.invalid_dropped = 0
                    sent = self._session.out_seq - seq0
                    if sent > 0:
                        counters.messages_sent += sent
                    if not out:
                        break
                n = self._transport.send(out)
                if not n:
                    break
                counters.bytes_sent += n
                _consume(out, n)
        except TransportError as e:
            self._set_mask(0)       # no busy loop on a dead socket behind a throttled backlog
            m.fault(e)
            if process_faults:
                self._process()
            return
        want = EVENT_READ | EVENT_WRITE if out else EVENT_READ
        if self._backlog:
            want &= ~EVENT_READ
        self._set_mask(want)

    # ---------------------------------------------------------------- time
    def _arm_timer(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._reactor.call_at(deadline, self._on_timer)

    @guarded
    def _on_timer(self) -> None:
        self._timer = None
        m = self._machine
        if self._dead or self._handed_off:
            return
        if m is None:
            if self._transport is not None:
                self._worker.counters.ready_timeouts += 1
                self._on_fault(Faulted(TransportError(
                    "connect timed out (ms_connection_ready_timeout)"), False))
            return
        m.on_tick(self._reactor.time)
        if m.done:
            if m.was_ready:
                self._worker.counters.idle_timeouts += 1
            else:
                self._worker.counters.ready_timeouts += 1
            self._process()
        elif not self._dead:
            self._arm_timer(m.next_deadline())


def _wall_stamp() -> tuple:
    """Now as a ``utime_t`` (seconds, nanoseconds) for KEEPALIVE2."""
    ns = time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000


def _consume(out: list, n: int) -> None:
    """Removes the first ``n`` bytes from the buffer list ``out``."""
    i = 0
    while n:
        b = out[i]
        lb = len(b)
        if n >= lb:
            n -= lb
            i += 1
        else:
            out[i] = memoryview(b)[n:]
            n = 0
    del out[:i]
