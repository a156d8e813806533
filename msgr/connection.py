"""Connection: the user's stable handle on one peer.

Theory of operation. A Connection lives on one reactor (its *worker*) from
birth to death. Its user-facing methods may be called from any thread: they
touch only ``_lock``-protected fields (the pending list, the closed flag) and
submit work to the reactor. Everything else (transport, ProtocolMachine,
Session, timers) is owned by the reactor thread: the I/O driving is in
``conn_io.py``, what the machine's events lead to (delivery, throttling) in
``conn_events.py``, what happens after a fault (reconnect, standby, replace) in
``failover.py``. One machine runs per transport; the Session outlives
transports on lossless policies, so a reconnect continues the same ordered
stream, and a replacing socket is moved into this object, so the user's
handle never changes.
"""
from __future__ import annotations

import threading
from os import sched_yield as _sched_yield
from threading import get_ident as _get_ident
from time import monotonic as _monotonic

from . import counters as _counters
from .conn_events import ConnectionEvents
from .conn_io import ConnectionIO
from .entity import EntityAddr, EntityType
from .failover import Failover
from .message import Message
from .protocol.machine import ProtocolMachine
from .protocol.session import Session

__all__ = ["Connection"]

# A thread sending faster than its connection's reactor gets the GIL yields once
# per this many messages waiting (send_message). Kept under the cyclic GC's
# youngest-generation threshold (700) so that backlog is framed, and freed,
# before a collection has to traverse it: one-way 64 B 468k -> 497k msg/s
# (medians of 6 runs of a one-way 64 B sender against one receiver).
_YIELD_EVERY = 512


class Connection(ConnectionIO, ConnectionEvents, Failover):
    """A connection to one peer (see the module docstring).

    Attributes (API.md): ``peer_addr``, ``peer_name``, ``peer_type``,
    ``features``, ``policy``, ``priv``, ``is_lossy``, ``last_keepalive_ack``.
    """

    _direct = True      # reactor-thread sends may bypass the pending list
    _pooled = True      # picked through ReactorPool.pick (its load is released on close)

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
        self._producer = None
        self._lock = threading.Lock()
        self._pending: list = []
        self._flush_scheduled = False
        self._pending_t0 = 0.0          # when the pending batch began (0: histograms off)
        self._direct_t0 = 0.0           # the same for this iteration's reactor-thread sends
        self._closed = False
        self._connected = False
        # reactor-owned from here on
        self._can_dial = outgoing
        self._session = Session(policy.lossy)
        self._machine: ProtocolMachine | None = None
        self._transport = None
        self._mask = 0
        self._out: list = []
        self._timer = None
        self._backoff = 0.0
        self._backlog: list | None = None
        self._dead = False
        self._standby = False
        self._announced = False
        self._handed_off = False
        self._keepalive_wanted = False
        self._delay = None
        self._write_soon = False
        self._disposable = False          # mark_disposable() was called (set by any thread)
        self._flush_every = msgr.config.ms_reply_flush_msgs
        self._throttles = msgr._throttles_for(self.peer_type) if outgoing else None

    def _attach(self, producer) -> None:
        """Pins this connection to a dispatch ring (before it starts)."""
        self._producer = producer

    # ================================================================ any thread
    def send_message(self, msg: Message) -> None:
        """Queues ``msg``; never blocks. Dropped (and counted) if the connection is closed.

        From the connection's own reactor thread (inline or fast dispatch) the
        message goes straight into the session queue and one write runs at the
        end of the loop iteration; from any other thread it goes through the
        locked pending list and a submitted flush. Every ``_YIELD_EVERY``-th
        message still waiting for that flush, the sending thread yields its CPU
        (and the GIL) once, so the reactor frames the backlog instead of
        waiting out a GIL switch interval (5 ms, thousands of messages).

        Raises:
            TypeError: ``msg`` is not a :class:`Message`.
        """
        if type(msg) is not Message and not isinstance(msg, Message):
            raise TypeError(f"send_message() takes a msgr.Message, not {type(msg).__name__}")
        if self._direct and self._reactor._tid == _get_ident():
            if self._closed or self._dead:
                self.msgr._count_dropped(1)
                return
            if not self._write_soon:
                self._write_soon = True
                self._direct_t0 = _monotonic() if _counters.HISTOGRAMS_ENABLED else 0.0
                self._reactor.call_soon(self._flush_direct)
            msg._queued_at = self._direct_t0
            self._session.out.push(msg)
            return
        with self._lock:
            if self._closed:
                dropped = True
            else:
                dropped = False
                pending = self._pending
                pending.append(msg)
                if self._flush_scheduled:
                    if len(pending) % _YIELD_EVERY:
                        return
                    backlog = True
                else:
                    backlog = False
                    self._flush_scheduled = True
                    self._pending_t0 = _monotonic() if _counters.HISTOGRAMS_ENABLED else 0.0
        if dropped:
            self.msgr._count_dropped(1)
        elif backlog:
            _sched_yield()          # releases the GIL: the reactor takes the backlog now
        else:
            self._reactor.submit(self._flush_pending)

    def send_keepalive(self) -> None:
        """Sends a KEEPALIVE2 at the next write; the ack sets ``last_keepalive_ack``."""
        if not self._closed:
            self._reactor.submit(self._do_keepalive)

    def mark_down(self) -> None:
        """Closes now and discards the queue; no notification on this side."""
        self._begin_close(reset=False)

    def _begin_close(self, reset: bool) -> None:
        """Any thread: refuse new sends now; the reactor closes (``reset``: notify)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._connected = False
            dropped = len(self._pending)
            self._pending.clear()
        if dropped:
            self.msgr._count_dropped(dropped)
        self._reactor.submit(self._close_now, reset)

    def mark_disposable(self) -> None:
        """Makes the connection lossy from now on (``is_lossy`` is True on return; the
        I/O thread switches the session over)."""
        self._disposable = True
        if not self._closed:
            self._reactor.submit(self._make_lossy)

    def is_connected(self) -> bool:
        """True once the handshake is done and the connection can write."""
        return self._connected

    @property
    def is_lossy(self) -> bool:
        return self._disposable or self.policy.lossy

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        m = self._machine
        if m is not None:
            state = m.state.name
        else:
            state = "CLOSED" if self._dead else "STANDBY" if self._standby else "NONE"
        name = self.peer_name or self.peer_type.label
        return f"conn({id(self):#x} peer {name} {self.peer_addr} state {state})"
