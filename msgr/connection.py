"""Connection: the user's stable handle on one peer, and its I/O driver.

Theory of operation. A Connection lives on one reactor (its *worker*) from
birth to death. Its user-facing methods (``send_message``, ``mark_down``, ...)
may be called from any thread: they touch only ``_lock``-protected fields
(the pending list, the closed flag) and submit work to the reactor. Everything
else (transport, ProtocolMachine, Session, timers) is owned by the reactor
thread. One machine runs per transport; the Session outlives transports for
lossless policies, so a reconnect continues the same ordered stream.

Faults follow Ceph's ``ProtocolV2::_fault``:

* lossy, once READY: close, ``ms_handle_reset`` (exactly once);
* our own connect handshake failed (or the peer said WAIT): retry after a
  backoff (``ms_initial_backoff`` doubling to ``ms_max_backoff``; WAIT waits
  the maximum); ``ECONNREFUSED`` also reports ``ms_handle_refused``;
* lossless, once READY, connecting side: unacked messages are requeued with
  their seqs and we reconnect at once;
* accepting side before READY: the half-open connection just goes away.
"""
from __future__ import annotations

import logging
import threading
import time

from .entity import EntityAddr, EntityType
from .errors import ConnectionRefused, MsgrError, RemoteProtocolError, TransportError
from .message import Message
from .protocol.events import NEED_DATA, AddrLearned, Established, Faulted, KeepaliveAck, RemoteReset
from .protocol.machine import ProtocolMachine
from .protocol.session import Session
from .reactor.loop import EVENT_READ, EVENT_WRITE

__all__ = ["Connection"]
log = logging.getLogger(__name__)
_READ_BURST = 16
_BAD_FRAME_REASONS = {"bad_crc", "bad_frame", "bad_tag", "decode", "too_large", "bad_banner"}


class Connection:
    """A connection to one peer (see the module docstring).

    Attributes (API.md): ``peer_addr``, ``peer_name``, ``peer_type``,
    ``features``, ``policy``, ``priv``, ``is_lossy``, ``last_keepalive_ack``.
    """

    def __init__(self, msgr, worker, peer_type: int, peer_addr: EntityAddr, policy,
                 outgoing: bool, anon: bool = False) -> None:
        self.msgr = msgr
        self.peer_type = EntityType(peer_type)
        self.peer_addr = peer_addr
        self.peer_name = None
        self.features = 0
        self.policy = policy
        self.priv = None
        self.anon = anon
        self.last_keepalive_ack = None
        self._worker = worker
        self._reactor = worker.reactor
        self._lock = threading.Lock()
        self._pending: list = []
        self._flush_scheduled = False
        self._closed = False
        self._connected = False
        self._outgoing = outgoing
        self._session = Session(policy.lossy)
        self._machine: ProtocolMachine | None = None
        self._transport = None
        self._mask = 0
        self._out: list = []
        self._timer = None
        self._backoff = 0.0
        self._blocked: Message | None = None
        self._dead = False
        self._throttles = msgr._throttles_for(self.peer_type) if outgoing else None
        self._producer = None

    # ================================================================ any thread
    def send_message(self, msg: Message) -> None:
        """Queues ``msg``; never blocks. Dropped (and counted) if the connection is closed."""
        with self._lock:
            if self._closed:
                dropped = True
            else:
                dropped = False
                self._pending.append(msg)
                if self._flush_scheduled:
                    return
                self._flush_scheduled = True
        if dropped:
            self.msgr._count_dropped(1)
            return
        self._reactor.submit(self._flush_pending)

    def send_keepalive(self) -> None:
        """Sends a KEEPALIVE2 at the next write; the ack sets ``last_keepalive_ack``."""
        if not self._closed:
            self._reactor.submit(self._do_keepalive)

    def mark_down(self) -> None:
        """Closes now and discards the queue; no notification on this side."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._connected = False
            self._pending.clear()
        self._reactor.submit(self._close_now, False)

    def mark_disposable(self) -> None:
        """Makes the connection lossy from now on."""
        self._reactor.submit(self._make_lossy)

    def is_connected(self) -> bool:
        """True once the handshake is done and the connection can write."""
        return self._connected

    @property
    def is_lossy(self) -> bool:
        return self.policy.lossy

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        m = self._machine
        state = m.state.name if m is not None else ("CLOSED" if self._dead else "NONE")
        return f"conn({id(self):#x} peer {self.peer_name or self.peer_type.label} {self.peer_addr} state {state})"

    # ================================================================ reactor thread
    def _attach(self, producer) -> None:
        self._producer = producer

    def _make_lossy(self) -> None:
        self.policy = self.policy.as_lossy()
        self._session.lossy = True
        self._session.sent.clear()
        if self._machine is not None:
            self._machine.policy = self._machine.policy.as_lossy()

    def _do_keepalive(self) -> None:
        m = self._machine
        if m is not None and not self._dead:
            now = time.time()
            m.send_keepalive((int(now), int((now % 1) * 1e9)))
            self._write()

    def _flush_pending(self) -> None:
        with self._lock:
            msgs, self._pending = self._pending, []
            self._flush_scheduled = False
        if self._dead:
            self.msgr._count_dropped(len(msgs))
            return
        push = self._session.out.push
        for m in msgs:
            push(m)
        if self._machine is not None and self._machine.is_ready:
            self._write()

    # ---------------------------------------------------------------- connect / accept
    def _start_connect(self) -> None:
        self._timer = None
        if self._dead:
            return
        self._arm_timer(self._reactor.time + self.msgr.config.ms_connection_ready_timeout)
        try:
            self._transport = self.msgr._factory.connect(
                self.peer_addr, nodelay=self.msgr.config.ms_tcp_nodelay,
                rcvbuf=self.msgr.config.ms_tcp_rcvbuf)
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
        self._machine.start(self._reactor.time)
        self._set_mask(EVENT_READ)
        self._write()

    def _start_accept(self, transport) -> None:
        self._transport = transport
        self._machine = ProtocolMachine(self.msgr._accept_params(transport.peer_addr), False,
                                        self._session)
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

    # ---------------------------------------------------------------- I/O
    def _on_io(self, mask: int) -> None:
        if self._machine is None:
            self._on_connected()
            return
        if mask & EVENT_READ:
            self._on_readable()
        if mask & EVENT_WRITE and self._machine is not None:
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
            m.fault(e)
            self._process()
            return
        if self._out or m.has_pending_output():
            self._write()

    def _process(self) -> bool:
        """Drains machine events; False when reading must stop (paused, faulted)."""
        m = self._machine
        while True:
            ev = m.next_event()
            if ev is NEED_DATA:
                return True
            if type(ev) is Message:
                if not self._on_message(ev):
                    return False
            elif not self._on_event(ev):
                return False

    def _on_message(self, msg: Message) -> bool:
        msg.connection = self
        msg.recv_stamp = self._reactor.time
        self._worker.counters.messages_received += 1
        th = self._throttles
        if th is not None:
            size = msg.size
            if not th.try_get(size, self._throttle_released):
                self._blocked = msg
                self._worker.counters.throttle_waits += 1
                self._set_mask(self._mask & ~EVENT_READ)
                return False
            msg._throttle = (th, size)
        self.msgr._deliver_message(self, msg)
        return True

    def _throttle_released(self) -> None:
        self._reactor.submit(self._resume_read)

    def _resume_read(self) -> None:
        msg, self._blocked = self._blocked, None
        if msg is None or self._dead or self._machine is None:
            return
        th, size = self._throttles, msg.size
        if not th.try_get(size, self._throttle_released):
            self._blocked = msg
            return
        msg._throttle = (th, size)
        self.msgr._deliver_message(self, msg)
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
        elif kind is KeepaliveAck:
            self.last_keepalive_ack = self._reactor.time
        elif kind is AddrLearned:
            self.msgr._learned_addr(ev.addr)
        elif kind is RemoteReset:
            self._worker.counters.session_resets += 1
            self.msgr._deliver_event(self, "ms_handle_remote_reset")
        return True

    def _on_established(self, ev: Established) -> None:
        m = self._machine
        self.peer_name = ev.peer_name
        self.peer_type = ev.peer_name.type
        self.features = ev.features
        self.policy = m.policy
        if ev.accepted:
            if ev.peer_addrs:
                self.peer_addr = ev.peer_addrs[0]
            self._throttles = self.msgr._throttles_for(self.peer_type)
        self._backoff = 0.0
        self._connected = True
        self._arm_timer(m.next_deadline())
        self.msgr._on_established(self, ev)

    def _write(self) -> None:
        m, out = self._machine, self._out
        if m is None or self._transport is None:
            return
        counters = self._worker.counters
        try:
            while True:
                if not out:
                    seq0 = self._session.out_seq
                    out.extend(m.data_to_send(self._reactor.time, self.msgr.config.ms_send_batch_bytes))
                    counters.messages_sent += self._session.out_seq - seq0
                    if not out:
                        break
                n = self._transport.send(out)
                if not n:
                    break
                counters.bytes_sent += n
                _consume(out, n)
        except TransportError as e:
            m.fault(e)
            self._process()
            return
        want = EVENT_READ | EVENT_WRITE if out else EVENT_READ
        if self._blocked is not None:
            want &= ~EVENT_READ
        self._set_mask(want)

    # ---------------------------------------------------------------- time
    def _arm_timer(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._reactor.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        m = self._machine
        if self._dead:
            return
        if m is None:
            if self._transport is not None:
                self._worker.counters.ready_timeouts += 1
                self._on_fault(Faulted(TransportError("connect timed out (ms_connection_ready_timeout)"), False))
            return
        m.on_tick(self._reactor.time)
        if m.done:
            self._count_timeout(m)
            self._process()
        elif not self._dead:
            self._arm_timer(m.next_deadline())

    def _count_timeout(self, m: ProtocolMachine) -> None:
        if m.was_ready:
            self._worker.counters.idle_timeouts += 1
        else:
            self._worker.counters.ready_timeouts += 1

    # ---------------------------------------------------------------- faults
    def _drop_transport(self) -> None:
        if self._transport is not None:
            self._set_mask(0)
            self._transport.close()
            self._transport = None
        self._out.clear()
        self._connected = False
        if self._blocked is not None:
            self._blocked = None

    def _on_fault(self, ev: Faulted) -> None:
        counters = self._worker.counters
        counters.connection_faults += 1
        err = ev.error
        if isinstance(err, RemoteProtocolError) and err.reason in _BAD_FRAME_REASONS:
            counters.bad_frames += 1
        log.debug("%r fault: %s", self, err)
        self._drop_transport()
        m, self._machine = self._machine, None
        if self._dead:
            return
        lossy = (m.policy if m is not None else self.policy).lossy
        if not self._outgoing:
            self._close_now(reset=ev.was_ready and lossy)
        elif ev.was_ready and lossy:
            self._close_now(reset=True)
        elif ev.was_ready:
            self._session.requeue_sent()
            self._session.connect_seq += 1
            self._session.global_seq = 0
            counters.reconnects += 1
            self._start_connect()
        else:
            if isinstance(err, ConnectionRefused):
                self.msgr._deliver_event(self, "ms_handle_refused")
            self._retry_later(ev.wait)

    def _retry_later(self, wait: bool) -> None:
        cfg = self.msgr.config
        if wait:
            self._backoff = cfg.ms_max_backoff
        elif not self._backoff:
            self._backoff = cfg.ms_initial_backoff
        else:
            self._backoff = min(2 * self._backoff, cfg.ms_max_backoff)
        if self._session.server_cookie:
            self._session.connect_seq += 1
        self._session.global_seq = 0
        self._worker.counters.reconnects += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._reactor.call_later(self._backoff, self._start_connect)

    def _close_now(self, reset: bool = False) -> None:
        """Closes on the reactor thread; ``reset`` delivers ``ms_handle_reset``."""
        if self._dead:
            return
        self._dead = True
        with self._lock:
            self._closed = True
            self._pending.clear()
        self._drop_transport()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._machine is not None:
            self._machine.close()
            self._machine = None
        self._session.out.clear()
        self._session.sent.clear()
        self._worker.counters.connections_closed += 1
        self.msgr._on_closed(self)
        if reset:
            self._worker.counters.session_resets += 1
            self.msgr._deliver_event(self, "ms_handle_reset")


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
