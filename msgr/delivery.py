"""Delivery to dispatchers: the chain, fast dispatch, rings or inline, throttles.

Mixed into :class:`~msgr.messenger.Messenger`. Runs on three kinds of
thread: ``_deliver_*`` on the connection's reactor, ``_dispatch_one`` and the
event calls on a dispatch thread (or inline on the reactor when
``dispatch_threads=0``). The dispatcher lists are replaced, never mutated
(copy-on-write under ``_lock``), so readers need no lock.
"""
from __future__ import annotations

import logging

from . import counters as _counters
from .checks import as_int
from .dispatch.pool import DispatchPool
from .dispatch.throttle import Throttle, ThrottleSet
from .dispatcher import Dispatcher
from .errors import ConfigError, LocalProtocolError
from .policy import peer_type_of

__all__ = ["DeliveryMixin"]
log = logging.getLogger(__name__)
_BROADCAST = {"ms_handle_connect", "ms_handle_accept", "ms_handle_remote_reset"}


def _check_dispatcher(d) -> None:
    if not isinstance(d, Dispatcher):
        raise TypeError(f"a dispatcher must be a msgr.Dispatcher (subclass it), "
                        f"not {type(d).__name__}")


class DeliveryMixin:
    """See the module docstring."""

    def _init_delivery(self) -> None:
        self._dispatchers: tuple = ()
        self._fast: tuple = ()
        self._fast_fns: tuple = ()   # (ms_can_fast_dispatch, ms_fast_dispatch) bound, per _fast
        self._dispatch: DispatchPool | None = None
        self._dropped = 0
        self._policy_throttles: dict = {}
        self._dispatch_throttle = Throttle("dispatch", self.config.ms_dispatch_throttle_bytes)
        self._throttle_sets: dict = {}
        self._loopback = None
        self._event_fns = {name: self._event_caller(name) for name in (
            "ms_handle_connect", "ms_handle_accept", "ms_handle_remote_reset",
            "ms_handle_reset", "ms_handle_refused")}

    # ------------------------------------------------------------ dispatchers
    def add_dispatcher_head(self, d: Dispatcher) -> None:
        """Puts ``d`` first in the chain. Raises TypeError if it is not a Dispatcher."""
        _check_dispatcher(d)
        with self._lock:
            self._dispatchers = (d,) + self._dispatchers
            self._refresh_fast()

    def add_dispatcher_tail(self, d: Dispatcher) -> None:
        """Puts ``d`` last in the chain. Raises TypeError if it is not a Dispatcher."""
        _check_dispatcher(d)
        with self._lock:
            self._dispatchers = self._dispatchers + (d,)
            self._refresh_fast()

    def _refresh_fast(self) -> None:
        fast = tuple(d for d in self._dispatchers
                     if type(d).ms_can_fast_dispatch is not Dispatcher.ms_can_fast_dispatch)
        self._fast_fns = tuple((d.ms_can_fast_dispatch, d.ms_fast_dispatch) for d in fast)
        self._fast = fast

    # ------------------------------------------------------------ throttles
    def set_policy_throttlers(self, peer_type, *, max_bytes: int | None = None,
                              max_messages: int | None = None) -> None:
        """Receive-side throttles for messages from ``peer_type`` (before start()).

        None or 0 means no throttle. Raises TypeError (not an int) or ConfigError
        (negative), and ValueError if ``peer_type`` is not an EntityType.
        """
        if self._started:
            raise LocalProtocolError("set_policy_throttlers() must come before start()")
        limits = []
        for name, value in (("max_bytes", max_bytes), ("max_messages", max_messages)):
            value = 0 if value is None else as_int(value, f"set_policy_throttlers: {name}")
            if value < 0:
                raise ConfigError(name, f"must be >= 0, got {value}")
            limits.append(value)
        max_bytes, max_messages = limits
        peer_type = peer_type_of(peer_type, "set_policy_throttlers")
        self._policy_throttles[int(peer_type)] = (
            Throttle(f"policy-bytes-{int(peer_type)}", max_bytes) if max_bytes else None,
            Throttle(f"policy-msgs-{int(peer_type)}", max_messages) if max_messages else None)

    def _throttles_for(self, peer_type) -> ThrottleSet:
        key = int(peer_type)
        ts = self._throttle_sets.get(key)
        if ts is None:
            pb, pm = self._policy_throttles.get(key, (None, None))
            ts = ThrottleSet((pb, self._dispatch_throttle), pm)
            self._throttle_sets[key] = ts
        return ts

    # ------------------------------------------------------------ threads
    def _start_dispatch(self, cfg) -> None:
        if cfg.dispatch_threads:
            self._dispatch = DispatchPool(cfg.dispatch_threads, cfg.io_threads,
                                          cfg.ms_ring_capacity, self._dispatch_one,
                                          _release_all, prefix=f"msgr-dispatch-{self.name}")
            self._dispatch.start()

    def _flusher(self, worker):
        producers = worker.producers
        reactor = worker.reactor

        def flush() -> None:
            for p in producers:
                if p.flush():
                    reactor.call_later(0.001, _noop)
        return flush

    # ------------------------------------------------------------ reactor side
    def _deliver_batch(self, conn, msgs: list, th=None, total: int = 0) -> None:
        """Hands received messages (in order) to fast dispatch, the ring, or inline dispatch.

        ``th``/``total``: a throttle share taken for the whole batch. What is
        dispatched here (fast or inline) gives its part back in one call after
        the dispatch loop; each message handed to a dispatch thread carries its
        own share (``_throttle``) and gives it back when dispatched. Without
        ``th``, messages may carry their own shares (taken one by one).
        """
        p = conn._producer
        n = len(msgs)
        done = msgs
        if self._fast:
            msgs, done = self._fast_dispatch(msgs)
        if p is None:
            self._dispatch_inline(conn, msgs)
            if th is not None:
                th.put_batch(total, n)
            else:
                _release_all(done)
                if done is not msgs:
                    _release_all(msgs)
            return
        if th is not None:
            queued = 0
            for m in msgs:
                m._throttle = th
                queued += len(m.front) + len(m.middle) + len(m.data)
            if len(msgs) < n:
                th.put_batch(total - queued, n - len(msgs))
        elif done is not msgs:
            _release_all(done)
        conn._worker.counters.enqueued += len(msgs)
        put = p.put
        for m in msgs:
            put(m)

    def _dispatch_inline(self, conn, msgs: list) -> None:
        """Dispatches ``msgs`` right here on the reactor (``dispatch_threads=0``)."""
        if _counters.HISTOGRAMS_ENABLED and msgs:
            _observe_batch(conn, msgs)
        dispatch = self._dispatch_one
        for m in msgs:
            dispatch(m)

    def _fast_dispatch(self, msgs: list) -> tuple:
        """Runs ``ms_fast_dispatch`` for those a fast dispatcher claims.

        Returns ``(rest, done)``: the messages left for ``ms_dispatch`` and those
        fast-dispatched. Throttle shares are the caller's business (``_deliver_batch``).
        Never raises: a dispatcher's exception is logged, as ``ms_dispatch``'s are
        (from ``ms_can_fast_dispatch``, the answer is taken as False).
        """
        rest, done = [], []
        fns = self._fast_fns            # read once: _refresh_fast may replace it meanwhile
        for m in msgs:
            for can, fast in fns:
                try:
                    claimed = can(m)
                except Exception:
                    log.exception("ms_can_fast_dispatch failed for %r (taken as False)", m)
                    claimed = False
                if claimed:
                    try:
                        fast(m)
                    except Exception:
                        log.exception("ms_fast_dispatch failed for %r", m)
                    done.append(m)
                    break
            else:
                rest.append(m)
        if done and _counters.HISTOGRAMS_ENABLED:
            _observe_batch(done[0].connection, done)
        return rest, done

    def _deliver_event(self, conn, name: str) -> None:
        p = conn._producer
        if p is None:
            self._event_fns[name](conn)
        else:
            conn._worker.counters.enqueued += 1
            p.put((self._event_fns[name], conn))

    def _on_established(self, conn, ev) -> None:
        self._deliver_event(conn, "ms_handle_accept" if ev.accepted else "ms_handle_connect")

    def _delay_for(self, conn):
        """A DelayedDelivery for ``conn`` if ``ms_inject_delay_*`` names its peer type."""
        cfg = self.config
        if not cfg.ms_inject_delay_probability or \
                conn.peer_type.label not in cfg.ms_inject_delay_type.split():
            return None
        from .delay import DelayedDelivery
        return DelayedDelivery(conn._reactor, conn._deliver_now, cfg.ms_inject_delay_max,
                               cfg.ms_inject_delay_probability, self._inject_rng)

    @staticmethod
    def _release_message(msg) -> None:
        _release(msg)

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self._dropped += n

    # ------------------------------------------------------------ dispatch side
    def _dispatch_one(self, msg) -> None:
        """The dispatcher chain for one message (first True wins); never raises.

        A message whose connection has been closed meanwhile (``mark_down``, a
        lossy fault, shutdown) is dropped and counted, as Ceph's
        ``discard_queue`` drops a stopped connection's queued messages.
        """
        conn = msg.connection
        if conn is not None and conn._closed:
            self._count_dropped(1)
            return
        try:
            for d in self._dispatchers:
                if d.ms_dispatch(msg):
                    return
            log.warning("no dispatcher handled %r from %s", msg, msg.source)
        except Exception:
            log.exception("ms_dispatch failed for %r", msg)

    def _event_caller(self, name: str):
        broadcast = name in _BROADCAST

        def call(conn) -> None:
            for d in self._dispatchers:
                try:
                    handled = getattr(d, name)(conn)
                except Exception:
                    log.exception("%s failed", name)
                    continue
                if handled and not broadcast:
                    return
        return call

    def get_dispatch_queue_len(self) -> int:
        """Messages and events handed to dispatch threads and not yet dispatched."""
        if self._dispatch is None:
            return 0
        enq = sum(w.counters.enqueued for w in getattr(self, "_workers", ()))
        return max(0, enq - sum(self._dispatch.done))

    def get_loopback_connection(self):
        """A connection to ourselves: messages sent on it are dispatched locally.

        One while it is open; after a ``mark_down()`` of it, the next call makes a new one.
        """
        from .loopback import LoopbackConnection
        with self._lock:
            if self._loopback is None or self._loopback.is_closed and not self._stopped:
                if not self._started:
                    raise LocalProtocolError("get_loopback_connection() needs start()")
                worker = self._workers[0]
                self._loopback = LoopbackConnection(self, worker)
                self._attach(self._loopback, worker)
            return self._loopback


def _release(msg) -> None:
    th = msg._throttle
    if th is not None:
        msg._throttle = None
        th.put_batch(msg.size, 1)


def _release_all(msgs) -> None:
    """Releases the throttle shares of ``msgs`` with one call per throttle set."""
    acc: dict = {}
    for m in msgs:
        th = m._throttle
        if th is not None:
            m._throttle = None
            got = acc.get(th)
            size = len(m.front) + len(m.middle) + len(m.data)
            acc[th] = (got[0] + size, got[1] + 1) if got else (size, 1)
    for th, (nbytes, nmsgs) in acc.items():
        th.put_batch(nbytes, nmsgs)


def _noop() -> None:
    pass


def _observe_batch(conn, msgs: list) -> None:
    """Dispatch latency of messages dispatched on the reactor (inline or fast): one
    observation per run of equal ``recv_stamp`` (loop time, no clock read)."""
    conn._worker.counters.dispatch_latency.observe_batch(conn._reactor.time, msgs, _counters.RECV_STAMP)
