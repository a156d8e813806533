"""Connection: the user's stable handle on one peer.

Theory of operation. A Connection is three objects (crimson's
``SocketConnection`` / ``IOHandler`` / ``ProtocolV2``):

* this **handle**, which any thread may use. It holds the peer's identity (written
  by the reactor before ``ms_handle_connect``/``ms_handle_accept``, read
  anywhere), a **mailbox** under ``_lock`` (sends from other threads, the closed
  flag, the end claim and a parked handoff) and links fixed for its life;
* an :class:`~msgr.io_handler.IOHandler` (the transport, the machine, the
  receive path; the hot path), and
* a :class:`~msgr.lifecycle.Lifecycle` (session, state, faults, races, close),

both owned by the connection's reactor thread. The handle never touches their
fields: it submits their entry points to the reactor, or, on the reactor's own
thread, calls :meth:`~msgr.io_handler.IOHandler.send_direct`. A connection lives
on one reactor from birth to death; a lossless session outlives its
transports, and a replacing socket is moved into the existing connection, so
the user's handle never changes.
"""
from __future__ import annotations

import threading
from os import sched_yield as _sched_yield
from threading import get_ident as _get_ident
from time import monotonic as _monotonic

from . import counters as _counters
from .entity import EntityAddr, EntityType
from .io_handler import IOHandler
from .lifecycle import Lifecycle
from .linkstate import Handoff, LinkState
from .loopback import LoopbackIO
from .message import Message
from .protocol.session import Session

__all__ = ["Connection"]

# A thread sending faster than its connection's reactor gets the GIL yields once
# per this many messages waiting (send_message). Kept under the cyclic GC's
# youngest-generation threshold (700) so that backlog is framed, and freed,
# before a collection has to traverse it: one-way 64 B 468k -> 497k msg/s
# (medians of 6 runs of a one-way 64 B sender against one receiver).
_YIELD_EVERY = 512


class Connection:
    """A connection to one peer: the handle the user keeps for the connection's life.

    Made by :meth:`Messenger.connect_to`, by an accepted peer, or by
    :meth:`Messenger.get_loopback_connection`; never by the user.

    Attributes:
        peer_addr: the peer's :class:`EntityAddr`.
        peer_name: the peer's :class:`EntityName` (None until the handshake is done).
        peer_type: the peer's :class:`EntityType`.
        features: the feature bits both sides support (after the handshake).
        policy: the :class:`Policy` in force.
        priv: any value of the user's (initially None).
        last_keepalive_ack: monotonic time of the last KEEPALIVE2_ACK, or None.
    """

    def __init__(self, messenger, worker, peer_type: int, peer_addr: EntityAddr, policy, *,
                 outgoing: bool, anon: bool = False, loopback: bool = False) -> None:
        # identity: the reactor writes it before ms_handle_connect/accept; any thread reads
        self.peer_type = EntityType(peer_type)
        self.peer_addr = peer_addr
        self.peer_name = None
        self.features = 0
        self.policy = policy
        self.priv = None
        self.anon = anon
        self.last_keepalive_ack = None
        # mailbox: any thread, under _lock (``_closed`` is also read lock-free: it only turns True)
        self._lock = threading.Lock()
        self._pending: list = []        # sends from other threads, for the next flush_pending
        self._flush_scheduled = False
        self._pending_t0 = 0.0          # when the pending batch began (0: histograms off)
        self._closed = False            # no more sends: mark_down, close, adoption
        self._ended = False             # the reactor side is done (claimed: close or adoption)
        self._handoff: Handoff | None = None   # HANDED_OFF: the socket waiting for its taker
        self._disposable = False        # mark_disposable() was called
        # links, fixed for life
        self._messenger = messenger
        self._reactor = worker.reactor
        self._pooled = not loopback     # counted in the reactor pool's load
        self._direct = not loopback     # reactor-thread sends may go straight to the queue
        producers = worker.producers
        producer = producers[id(self) // 16 % len(producers)] if producers else None
        session = Session(policy.lossy)
        if loopback:
            self._io = LoopbackIO(self, messenger, worker, producer)
            self._life = Lifecycle(self, self._io, messenger, worker, session, False,
                                   LinkState.READY)
        else:
            throttles = messenger._delivery.throttles_for(peer_type) if outgoing else None
            self._io = IOHandler(self, messenger, worker, producer, session.stream, throttles)
            self._life = Lifecycle(self, self._io, messenger, worker, session, outgoing)

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
            if self._closed:
                self._messenger._delivery.count_dropped(1)
            else:
                self._io.send_direct(msg)
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
            self._messenger._delivery.count_dropped(1)
        elif backlog:
            _sched_yield()          # releases the GIL: the reactor takes the backlog now
        else:
            self._reactor.submit(self._io.flush_pending)

    def send_keepalive(self) -> None:
        """Sends a KEEPALIVE2 at the next write; the ack sets ``last_keepalive_ack``."""
        if not self._closed:
            self._reactor.submit(self._io.keepalive)

    def mark_down(self) -> None:
        """Closes now and discards the queue; no notification on this side."""
        self._begin_close(reset=False)

    def mark_disposable(self) -> None:
        """Makes the connection lossy from now on (``is_lossy`` is True on return; the
        I/O thread switches the session over)."""
        with self._lock:
            self._disposable = True
            closed = self._closed
        if not closed:
            self._reactor.submit(self._life.make_lossy)

    def is_connected(self) -> bool:
        """True once the handshake is done and the connection can write."""
        return not self._closed and self._life.state is LinkState.READY

    @property
    def is_lossy(self) -> bool:
        """True when a fault ends the session (a lossy policy, or ``mark_disposable``)."""
        return self._disposable or self.policy.lossy

    @property
    def is_closed(self) -> bool:
        """True once closed on this side (``mark_down``, a reset, shutdown): sends are dropped."""
        return self._closed

    @property
    def messenger(self):
        """The :class:`Messenger` this connection belongs to."""
        return self._messenger

    @property
    def state(self) -> LinkState:
        """Where the connection is (:class:`LinkState`); a moment old when read off its
        reactor thread."""
        return self._life.state

    def __repr__(self) -> str:
        state = self._life.state.name
        m = self._io.machine
        if m is not None and m.state.name != state:
            state = f"{state}/{m.state.name}"
        name = self.peer_name or self.peer_type.label
        return f"conn({id(self):#x} peer {name} {self.peer_addr} state {state})"

    # ================================================================ for the messenger
    def _begin_close(self, reset: bool) -> None:
        """Any thread: refuse new sends now; the reactor closes (``reset``: notify)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            dropped = len(self._pending)
            self._pending.clear()
        if dropped:
            self._messenger._delivery.count_dropped(dropped)
        self._reactor.submit(self._life.close_now, reset)

    # ================================================================ for the reactor side
    def _take_pending(self) -> tuple:
        """The messages other threads sent, and when the first was queued (0.0: not timed)."""
        with self._lock:
            msgs, self._pending = self._pending, []
            self._flush_scheduled = False
            return msgs, self._pending_t0

    def _claim_end(self):
        """Claims the end of the connection for its own reactor's close.

        Returns:
            None if the end was claimed already (closed, or adopted elsewhere);
            else ``(dropped, handoff)``: how many pending sends were discarded,
            and the parked Handoff (HANDED_OFF) that the close must shut.
        """
        with self._lock:
            if self._ended:
                return None
            self._ended = self._closed = True
            dropped = len(self._pending)
            self._pending.clear()
            handoff, self._handoff = self._handoff, None
        return dropped, handoff

    def _park(self, handoff: Handoff) -> None:
        """HANDED_OFF: the socket waits here for :meth:`claim_for_handoff` or :meth:`_unpark`."""
        with self._lock:
            self._handoff = handoff

    def _unpark(self) -> Handoff | None:
        """The parked socket back to this connection's reactor, or None if it was taken."""
        with self._lock:
            handoff, self._handoff = self._handoff, None
            return handoff

    def claim_for_handoff(self) -> Handoff | None:
        """Another reactor's connection adopts this one's parked socket: the one
        cross-reactor step. Under the lock: None if this connection ended first (or
        parks nothing); else it ends now (closed, silently) and its Handoff is the
        caller's."""
        with self._lock:
            if self._ended or self._handoff is None:
                return None
            self._ended = self._closed = True
            handoff, self._handoff = self._handoff, None
            return handoff
