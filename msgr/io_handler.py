"""IOHandler: one connection's transport, machine, reads and writes, on its reactor.

Theory of operation (crimson's ``IOHandler``): the hot path. Only the
connection's reactor thread touches these fields. Reads go straight into the
machine's buffer (``recv_into``), up to ``_READ_BURST`` per readiness event; the
events each read yields go to the :class:`~msgr.dispatch.intake.Intake` at
once (received messages through the receive throttles to delivery), and the
others come back to :meth:`IOHandler._on_event`, which tells the connection's
:class:`~msgr.lifecycle.Lifecycle` (:class:`~msgr.linkstate.LinkListener`).
Writes hand the machine's buffer lists to the transport until the kernel
pushes back, then wait for EVENT_WRITE.

The user's handle reaches this object only by submitting :meth:`flush_pending`
/ :meth:`keepalive`, or by :meth:`send_direct` on the reactor's own thread. The
lifecycle gives it a transport (:meth:`dial`, :meth:`run`, :meth:`attach`) and
takes it away (:meth:`drop`, :meth:`park`, :meth:`shut`). It is also the
connection's delivery endpoint (``producer``, ``counters``, ``reactor``).
"""
from __future__ import annotations

import time
from time import monotonic as _monotonic

from . import counters as _counters
from .dispatch.intake import Intake
from .errors import TransportError
from .linkstate import Handoff, LinkListener, LinkState
from .message import Message
from .protocol.events import (AddrLearned, Established, Faulted, KeepaliveAck, RemoteReset,
                              SessionRequest)
from .reactor.entry import guarded
from .reactor.loop import EVENT_READ, EVENT_WRITE
from .transports.base import consume

__all__ = ["IOHandler", "wall_stamp"]
_READ_BURST = 16
_CLOSED, _HANDED_OFF = LinkState.CLOSED, LinkState.HANDED_OFF


class IOHandler:
    """The reactor side of one connection's I/O (see the module docstring).

    Args:
        conn: the user's handle (stamped on messages, passed to dispatchers).
        messenger: the owning Messenger (its "for connections" section).
        worker: the reactor this connection lives on, with its counters.
        producer: the dispatch ring producer, or None for inline dispatch.
        stream: the session's message stream (queues and seqs): the lifecycle's,
            borrowed; it outlives transports.
        throttles: the receive throttles, or None until the peer's type is known.
    """

    def __init__(self, conn, messenger, worker, producer, stream, throttles) -> None:
        # links, fixed for life
        self.conn = conn
        self.reactor = worker.reactor
        self.counters = worker.counters
        self.producer = producer
        self.delivery = messenger._delivery
        self.life: LinkListener | None = None       # set by the Lifecycle that owns us
        self.stream = stream
        self._messenger = messenger
        cfg = messenger.config
        self._batch_bytes = cfg.ms_send_batch_bytes
        # reactor thread only, from here on
        self.transport = None
        self.machine = None
        self.mask = 0
        self.out: list = []             # framed buffers the kernel has not taken yet
        self.intake = Intake(self, self.delivery, conn, throttles, cfg.ms_reply_flush_msgs,
                             self._on_event, self._write_early, self.resume_read)
        self.write_soon = False         # a flush_direct is queued for this loop iteration
        self.direct_t0 = 0.0            # when this iteration's direct sends began (histograms)
        self.deadline = None            # the machine's ready/idle timer

    def __repr__(self) -> str:
        return repr(self.conn)

    def _on_internal_error(self, error: Exception) -> None:
        self.life.internal_error(error)

    # ---------------------------------------------------------------- from the handle
    def send_direct(self, msg: Message) -> None:
        """A send on this reactor's own thread (inline or fast dispatch): straight into
        the queue; one write at the end of the loop iteration."""
        if not self.write_soon:
            self.write_soon = True
            self.direct_t0 = _monotonic() if _counters.HISTOGRAMS_ENABLED else 0.0
            self.reactor.call_soon(self.flush_direct)
        msg._queued_at = self.direct_t0
        self.stream.out.push(msg)

    @guarded
    def flush_pending(self) -> None:
        """Takes what other threads sent (the handle's pending list) and writes it."""
        msgs, t0 = self.conn._take_pending()
        if self.life.state is _CLOSED:
            self.delivery.count_dropped(len(msgs))
            return
        if t0:
            for m in msgs:
                m._queued_at = t0
        self.stream.out.push_all(msgs)
        self._kick()

    @guarded
    def flush_direct(self) -> None:
        """End of a loop iteration: write what reactor-thread sends queued (often
        a write after the read that led to them has framed them already)."""
        self.write_soon = False
        if self.life.state is not _CLOSED and self.stream.out.count:
            self._kick()

    def _kick(self) -> None:
        """Something was queued: write it if READY, or tell the lifecycle."""
        m = self.machine
        if m is not None:
            if m.is_ready:
                self.write()
        else:
            self.life.want_send()

    @guarded
    def keepalive(self) -> None:
        """Sends a KEEPALIVE2 now, or asks the lifecycle for a transport to send it on."""
        if self.life.state is _CLOSED:
            return
        m = self.machine
        if m is None:
            self.life.want_keepalive()
            return
        m.send_keepalive(wall_stamp())
        self.write()

    @guarded
    def resume_halt(self) -> None:
        """An interceptor BLOCK was lifted: go on reading and writing."""
        m = self.machine
        if m is None or self.life.state is _CLOSED:
            return
        m.resume()
        if self.process() and self.machine is m:
            self.write()

    # ---------------------------------------------------------------- from the lifecycle
    def dial(self, transport) -> None:
        """A connecting transport: the handshake starts once it is writable."""
        self.transport = transport
        self._set_mask(EVENT_WRITE)

    def run(self, machine, arm: bool) -> None:
        """Starts ``machine`` on the current transport (``arm``: its deadline too)."""
        self.machine = machine
        machine.owner = self.conn
        machine.start(self.reactor.time)
        if arm:
            self.arm_deadline(machine.next_deadline())
        self._set_mask(EVENT_READ)
        self.write()

    def attach(self, handoff: Handoff) -> None:
        """Takes over an adopted socket (what waits in the intake still goes first)."""
        self.machine, self.transport, self.mask = handoff.machine, handoff.transport, 0
        handoff.machine.owner = self.conn
        self._set_mask(EVENT_READ)
        self.arm_deadline(handoff.machine.next_deadline())

    def park(self) -> Handoff:
        """Stops polling and gives the transport and machine away, as one value."""
        self._set_mask(0)
        self._cancel_deadline()
        h = Handoff(self.machine, self.transport)
        self.machine = self.transport = None
        self.mask = 0
        return h

    def drop(self, flush_delay: bool = True):
        """The transport goes, with its unwritten buffers (a fault, an adoption); returns
        its machine. ``flush_delay`` delivers held messages now.

        What waits in the intake stays: those messages were decoded and count in
        the session's ``in_seq``, so the peer will not send them again. They go as
        soon as the throttle has room (:meth:`resume_read`), before anything a next
        transport brings.
        """
        self._drop_transport()
        if flush_delay:
            self.intake.flush_delayed()
        m, self.machine = self.machine, None
        return m

    def shut(self) -> None:
        """The connection closes: transport, timer, machine, waiting and held messages go."""
        self._drop_transport()
        if self.machine is not None:
            self.machine.close()
            self.machine = None
        self.intake.discard()

    def _drop_transport(self) -> None:
        if self.transport is not None:
            self._set_mask(0)
            self.transport.close()
            self.transport = None
        self._cancel_deadline()
        self.out.clear()

    def ready(self, ev: Established) -> None:
        """The session is READY: the intake learns the peer's type; the idle timer runs."""
        self.intake.peer_known(ev.peer_name.type, ev.accepted)
        self.arm_deadline(self.machine.next_deadline())

    def _set_mask(self, mask: int) -> None:
        if mask == self.mask or self.transport is None:
            return
        fd = self.transport.fileno()
        if not self.mask:
            self.reactor.register(fd, mask, self.on_io)
        elif not mask:
            self.reactor.unregister(fd)
        else:
            self.reactor.modify(fd, mask, self.on_io)
        self.mask = mask

    # ---------------------------------------------------------------- reading
    @guarded
    def on_io(self, mask: int) -> None:
        if self.conn._closed:   # mark_down() etc. from another thread: its close is
            return              # queued; reading on would ack messages it then discards
        if self.machine is None:
            self._on_connected()
            return
        if mask & EVENT_READ:
            self._on_readable()
        if mask & EVENT_WRITE and self.machine is not None and self.transport is not None:
            self.write()

    def _on_connected(self) -> None:
        try:
            self.transport.finish_connect()
        except TransportError as e:
            self.life.on_fault(Faulted(e, False))
            return
        self.life.on_connected()

    def _on_readable(self) -> None:
        m, t, counters = self.machine, self.transport, self.counters
        try:
            for _ in range(_READ_BURST):
                buf = m.get_recv_buffer()
                n = t.recv_into(buf)
                if n is None:
                    break
                m.commit_recv(n, self.reactor.time)
                counters.bytes_received += n
                if not self.process():
                    return
                if n < len(buf):
                    break
        except TransportError as e:
            self._set_mask(0)       # the socket is dead, whenever its fault gets handled
            m.fault(e)
            self.process()
            return
        self.write()

    # ---------------------------------------------------------------- events
    def process(self) -> bool:
        """Takes the machine's events into the intake; False when reading must stop
        (messages wait behind a full throttle, a fault, a hand-off).

        While messages wait and the machine is READY, nothing more is decoded: the
        reading stops until the throttle calls back (:meth:`resume_read`). A machine
        that is not READY (a fault to report, a handshake on a new transport) still
        gives its events: they change the connection's state at once, and any
        message or notice they bring waits its turn in the intake.
        """
        m, intake = self.machine, self.intake
        while m is self.machine and m is not None:
            if intake.backlog is not None and m.is_ready:
                self._set_mask(self.mask & ~EVENT_READ)     # read no more until it drains
                return False
            evs = m.next_events()
            if not evs:
                return True
            if not intake.handle(evs, m.last_batch_bytes):
                if m is not self.machine:       # a fault or a hand-off took the transport
                    return False
                if m.is_ready:                  # messages wait: read no more until they drain
                    self._set_mask(self.mask & ~EVENT_READ)
                    return False
                # not READY: a handshake goes on whatever waits, and a machine that
                # faulted mid-batch (in an early write) still has its fault to give
        return False

    def _write_early(self) -> None:
        """Mid-burst (the intake's runs): write the replies queued so far, if any."""
        m = self.machine
        if self.stream.out.count and m is not None and m.is_ready:
            self.counters.early_reply_writes += 1
            self.write(process_faults=False)

    @guarded
    def resume_read(self) -> None:
        """A throttle has room again: hand over what waits, then read on."""
        if self.life.state is _CLOSED or self.intake.backlog is None:
            return
        if not self.intake.drain():
            return                          # still full: it calls again
        m = self.machine
        if m is not None and m.is_ready and self.process() and self.machine is not None:
            self._set_mask(self.mask | EVENT_READ)
            if self.out or self.machine.has_pending_output():
                self.write()

    def notify(self, kind) -> None:
        """Tells the dispatchers about the connection, after the messages that wait."""
        self.intake.notify(kind)

    def _on_event(self, ev) -> bool:
        """A machine event other than a message; False when the transport stops reading."""
        kind = type(ev)
        if kind is Established:
            self.ready(ev)
            self.life.on_established(ev)
        elif kind is Faulted:
            self.life.on_fault(ev)
            return False
        elif kind is SessionRequest:
            return self.life.on_session_request(ev)
        elif kind is KeepaliveAck:
            self.conn.last_keepalive_ack = self.reactor.time
        elif kind is AddrLearned:
            self._messenger._learned_addr(ev.addr)
        elif kind is RemoteReset:
            self.life.on_remote_reset(ev.dropped)
        return True

    # ---------------------------------------------------------------- writing
    def write(self, process_faults: bool = True) -> None:
        """Frames and sends what the machine has, until the kernel pushes back.

        ``process_faults=False`` (a write in the middle of delivering a burst)
        leaves a transport fault's event to the caller's event loop.
        """
        m, out = self.machine, self.out
        if m is None or self.transport is None:
            return
        counters, stream, framed = self.counters, self.stream, False
        queue = stream.out
        try:
            while True:
                if not out:
                    # after one data_to_send only messages over its budget can be left
                    more = queue.count > 0 if framed else m.has_pending_output()
                    if not more:
                        break
                    framed = True
                    seq0 = stream.out_seq
                    if _counters.HISTOGRAMS_ENABLED and queue.count:
                        now, hist = _monotonic(), counters.send_queue_latency   # one read per batch
                    else:
                        now, hist = self.reactor.time, None
                    out.extend(m.data_to_send(now, self._batch_bytes, hist))
                    if m.invalid_dropped:
                        self.delivery.count_dropped(m.invalid_dropped)
                        m.invalid_dropped = 0
                    sent = stream.out_seq - seq0
                    if sent > 0:
                        counters.messages_sent += sent
                    if not out:
                        break
                n = self.transport.send(out)
                if not n:
                    break
                counters.bytes_sent += n
                consume(out, n)
        except TransportError as e:
            self._set_mask(0)       # no busy loop on a dead socket behind a throttled backlog
            m.fault(e)
            if process_faults:
                self.process()
            return
        want = EVENT_READ | EVENT_WRITE if out else EVENT_READ
        if self.intake.backlog is not None and m.is_ready:
            want &= ~EVENT_READ
        self._set_mask(want)

    # ---------------------------------------------------------------- time
    def arm_deadline(self, deadline: float) -> None:
        """(Re)arms this transport's one timer: its connect, ready or idle timeout."""
        self._cancel_deadline()
        self.deadline = self.reactor.call_at(deadline, self.on_deadline)

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    @guarded
    def on_deadline(self) -> None:
        """The connect, ready or idle timeout may have passed: fault if it has."""
        self.deadline = None
        state = self.life.state
        if state is _CLOSED or state is _HANDED_OFF:
            return
        m = self.machine
        if m is None:
            if self.transport is not None:
                self.counters.ready_timeouts += 1
                self.life.on_fault(Faulted(TransportError(
                    "connect timed out (ms_connection_ready_timeout)"), False))
            return
        if not m.done:                  # (a machine that is done waits for its fault's turn)
            m.on_tick(self.reactor.time)
            if m.done:
                if m.was_ready:
                    self.counters.idle_timeouts += 1
                else:
                    self.counters.ready_timeouts += 1
        if m.done:
            self.process()
        elif self.life.state is not _CLOSED:
            self.arm_deadline(m.next_deadline())


def wall_stamp() -> tuple:
    """Now as a ``utime_t`` (seconds, nanoseconds) for KEEPALIVE2."""
    ns = time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000
