"""Delivery: the dispatcher chain and the road from a reactor to it.

Theory of operation. A :class:`Delivery` belongs to one Messenger and is
shared by its connections (crimson's ``ChainedDispatchers`` plus Ceph's
``DispatchQueue``). It holds the dispatcher chain, the fast dispatchers, the
dispatch threads (:class:`~msgr.dispatch.pool.DispatchPool`, when
``dispatch_threads`` > 0), the receive throttles and the count of messages
dropped. It runs on three kinds of thread:

* a connection's reactor: :meth:`deliver_batch` (fast dispatch, then the ring
  or inline dispatch) and :meth:`deliver_event`;
* a dispatch thread (or the reactor itself when ``dispatch_threads=0``):
  :meth:`dispatch_one` and the event callers;
* any thread: adding dispatchers, :meth:`count_dropped`, :meth:`queue_len`.

The dispatcher tuples are replaced, never mutated (copy-on-write under
``_lock``), so the readers on the hot path take no lock.

A delivery *endpoint* is what a connection's reactor side passes in: an
object with ``producer`` (its ring producer, or None for inline dispatch),
``counters`` (its reactor's :class:`~msgr.counters.Counters`) and ``reactor``.
"""
from __future__ import annotations

import logging
import threading
from enum import Enum

from .. import counters as _counters
from ..checks import as_int
from ..dispatcher import Dispatcher
from ..errors import ConfigError
from ..policy import peer_type_of
from .pool import DispatchPool
from .throttle import Throttle, ThrottleSet

__all__ = ["Delivery", "Notify", "GiveBack", "release_all"]
log = logging.getLogger(__name__)


class Notify(Enum):
    """A connection event for the dispatchers: the callback and whether every
    dispatcher gets it (broadcast) or the first that returns True ends it."""

    CONNECT = ("ms_handle_connect", True)
    ACCEPT = ("ms_handle_accept", True)
    REMOTE_RESET = ("ms_handle_remote_reset", True)
    RESET = ("ms_handle_reset", False)
    REFUSED = ("ms_handle_refused", False)

    @property
    def method(self) -> str:
        return self.value[0]

    @property
    def broadcast(self) -> bool:
        return self.value[1]


def _check_dispatcher(d) -> None:
    if not isinstance(d, Dispatcher):
        raise TypeError(f"a dispatcher must be a msgr.Dispatcher (subclass it), "
                        f"not {type(d).__name__}")


class Delivery:
    """The dispatcher chain, dispatch threads, receive throttles and drop count.

    Args:
        config: the messenger's :class:`~msgr.Config`.
        name: the messenger's entity name (for thread names).
        rng: the messenger's fault-injection randomness (delay injection).
    """

    def __init__(self, config, name: str, rng) -> None:
        self.config = config
        self.name = name
        self._rng = rng
        self._lock = threading.Lock()         # the dispatcher tuples' writers; dropped
        self.dispatchers: tuple = ()
        self._fast: tuple = ()
        self._fast_fns: tuple = ()   # (ms_can_fast_dispatch, ms_fast_dispatch) bound, per _fast
        self.pool: DispatchPool | None = None
        self.dropped = 0
        self._policy_throttles: dict = {}
        self.dispatch_throttle = Throttle("dispatch", config.ms_dispatch_throttle_bytes)
        self._throttle_sets: dict = {}
        self._event_fns = {n: self._event_caller(n) for n in Notify}

    # ------------------------------------------------------------ dispatchers (any thread)
    def add_head(self, d: Dispatcher) -> None:
        """Puts ``d`` first in the chain. Raises TypeError if it is not a Dispatcher."""
        _check_dispatcher(d)
        with self._lock:
            self.dispatchers = (d,) + self.dispatchers
            self._refresh_fast()

    def add_tail(self, d: Dispatcher) -> None:
        """Puts ``d`` last in the chain. Raises TypeError if it is not a Dispatcher."""
        _check_dispatcher(d)
        with self._lock:
            self.dispatchers = self.dispatchers + (d,)
            self._refresh_fast()

    def _refresh_fast(self) -> None:
        fast = tuple(d for d in self.dispatchers
                     if type(d).ms_can_fast_dispatch is not Dispatcher.ms_can_fast_dispatch)
        self._fast_fns = tuple((d.ms_can_fast_dispatch, d.ms_fast_dispatch) for d in fast)
        self._fast = fast

    # ------------------------------------------------------------ throttles
    def set_policy_throttlers(self, peer_type, max_bytes, max_messages) -> None:
        """Receive throttles for messages from ``peer_type`` (None or 0: none).

        Raises:
            TypeError: a limit is not an int.
            ConfigError: a limit is negative.
            ValueError: ``peer_type`` is not an EntityType.
        """
        limits = []
        for name, value in (("max_bytes", max_bytes), ("max_messages", max_messages)):
            value = 0 if value is None else as_int(value, f"set_policy_throttlers: {name}")
            if value < 0:
                raise ConfigError(name, f"must be >= 0, got {value}")
            limits.append(value)
        max_bytes, max_messages = limits
        key = int(peer_type_of(peer_type, "set_policy_throttlers"))
        self._policy_throttles[key] = (
            Throttle(f"policy-bytes-{key}", max_bytes) if max_bytes else None,
            Throttle(f"policy-msgs-{key}", max_messages) if max_messages else None)

    def throttles_for(self, peer_type) -> ThrottleSet:
        """The throttles a message from ``peer_type`` takes (its policy's and dispatch's).

        One ThrottleSet per peer type, made on first use; called on reactors only
        after ``start()``, when the policy throttles are fixed.
        """
        key = int(peer_type)
        ts = self._throttle_sets.get(key)
        if ts is None:
            pb, pm = self._policy_throttles.get(key, (None, None))
            ts = ThrottleSet((pb, self.dispatch_throttle), pm)
            self._throttle_sets.setdefault(key, ts)
            ts = self._throttle_sets[key]
        return ts

    # ------------------------------------------------------------ dispatch threads
    def start(self, io_threads: int) -> None:
        """Starts the dispatch threads (none when ``dispatch_threads`` is 0)."""
        n = self.config.dispatch_threads
        if n:
            self.pool = DispatchPool(n, io_threads, self.config.ms_ring_capacity,
                                     self.dispatch_one, release_all,
                                     prefix=f"msgr-dispatch-{self.name}")
            self.pool.start()

    def producers(self, reactor_index: int) -> list:
        """The ring producers reactor ``reactor_index`` writes (empty: inline dispatch)."""
        return self.pool.producers(reactor_index) if self.pool is not None else []

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()

    def join(self, timeout: float | None) -> bool:
        return self.pool is None or self.pool.join(timeout)

    def is_dispatch_thread(self) -> bool:
        return self.pool is not None and self.pool.is_dispatch_thread()

    @staticmethod
    def flusher(producers: list, reactor):
        """The end-of-iteration hook of ``reactor``: publishes its ring batches."""
        def flush() -> None:
            for p in producers:
                if p.flush():
                    reactor.call_later(0.001, _noop)
        return flush

    def queue_len(self, workers) -> int:
        """Messages and events handed to dispatch threads and not yet dispatched."""
        if self.pool is None:
            return 0
        enq = sum(w.counters.enqueued for w in workers)
        return max(0, enq - sum(self.pool.done))

    # ------------------------------------------------------------ reactor side
    def deliver_batch(self, ep, msgs: list, th=None, total: int = 0) -> None:
        """Hands received messages (in order) to fast dispatch, the ring, or inline dispatch.

        ``ep`` is the connection's delivery endpoint (see the module docstring).
        ``th``/``total``: a throttle share taken for the whole batch. What is
        dispatched here (fast or inline) gives its part back in one call after
        the dispatch loop; what goes to a dispatch thread is followed on the ring
        by one :class:`GiveBack` item, which that thread calls once it has
        dispatched them. Without ``th``, messages may carry their own shares
        (``_throttle``, taken one by one), given back as each is dispatched.
        """
        p = ep.producer
        n = len(msgs)
        done = msgs
        if self._fast:
            msgs, done = self._fast_dispatch(ep, msgs)
        if p is None:
            self._dispatch_inline(ep, msgs)
            if th is not None:
                th.put_batch(total, n)
            else:
                release_all(done)
                if done is not msgs:
                    release_all(msgs)
            return
        if not msgs:
            if th is not None:
                th.put_batch(total, n)
            elif done is not msgs:
                release_all(done)
            return
        ep.counters.enqueued += len(msgs)
        if th is not None:
            queued = total
            if len(msgs) < n:           # the fast-dispatched ones give their part back now
                queued = 0
                for m in msgs:
                    queued += len(m.front) + len(m.middle) + len(m.data)
                th.put_batch(total - queued, n - len(msgs))
            # the dispatch thread gives the share back once it has dispatched them all
            p.put_many(msgs, (GiveBack(th, queued, len(msgs)), None))
        else:
            if done is not msgs:
                release_all(done)
            p.put_many(msgs)

    def _dispatch_inline(self, ep, msgs: list) -> None:
        """Dispatches ``msgs`` right here on the reactor (``dispatch_threads=0``)."""
        if _counters.HISTOGRAMS_ENABLED and msgs:
            _observe_batch(ep, msgs)
        dispatch = self.dispatch_one
        for m in msgs:
            dispatch(m)

    def _fast_dispatch(self, ep, msgs: list) -> tuple:
        """Runs ``ms_fast_dispatch`` for those a fast dispatcher claims.

        Returns ``(rest, done)``: the messages left for ``ms_dispatch`` and those
        fast-dispatched. Throttle shares are the caller's business (``deliver_batch``).
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
            _observe_batch(ep, done)
        return rest, done

    def deliver_event(self, ep, conn, kind: Notify) -> None:
        """Tells the dispatchers about ``conn`` (on the ring, or now when inline)."""
        p = ep.producer
        if p is None:
            self._event_fns[kind](conn)
        else:
            ep.counters.enqueued += 1
            p.put((self._event_fns[kind], conn))

    def delay_for(self, reactor, peer_label: str, deliver):
        """A DelayedDelivery calling ``deliver(msg)`` if ``ms_inject_delay_type`` names
        ``peer_label``, else None."""
        cfg = self.config
        if not cfg.ms_inject_delay_probability or peer_label not in cfg.ms_inject_delay_type.split():
            return None
        from ..delay import DelayedDelivery
        return DelayedDelivery(reactor, deliver, cfg.ms_inject_delay_max,
                               cfg.ms_inject_delay_probability, self._rng)

    def count_dropped(self, n: int) -> None:
        """Counts ``n`` messages dropped (``messages_dropped``); any thread."""
        with self._lock:
            self.dropped += n

    # ------------------------------------------------------------ dispatch side
    def dispatch_one(self, msg) -> None:
        """The dispatcher chain for one message (first True wins); never raises.

        A message whose connection has been closed meanwhile (``mark_down``, a
        lossy fault, shutdown) is dropped and counted, as Ceph's
        ``discard_queue`` drops a stopped connection's queued messages.
        """
        conn = msg.connection
        if conn is not None and conn._closed:      # the handle's flag: a plain read
            self.count_dropped(1)
            return
        try:
            for d in self.dispatchers:
                if d.ms_dispatch(msg):
                    return
            log.warning("no dispatcher handled %r from %s", msg, msg.source)
        except Exception:
            log.exception("ms_dispatch failed for %r", msg)

    def _event_caller(self, kind: Notify):
        name, broadcast = kind.method, kind.broadcast

        def call(conn) -> None:
            for d in self.dispatchers:
                try:
                    handled = getattr(d, name)(conn)
                except Exception:
                    log.exception("%s failed", name)
                    continue
                if handled and not broadcast:
                    return
        return call


class GiveBack:
    """A ring item after a batch of messages: gives their throttle share back in one call.

    Called by the dispatch thread with the ring's item protocol (``item[0](item[1])``).
    """

    __slots__ = ("th", "nbytes", "nmsgs")

    def __init__(self, th, nbytes: int, nmsgs: int) -> None:
        self.th, self.nbytes, self.nmsgs = th, nbytes, nmsgs

    def __call__(self, _arg) -> None:
        self.th.put_batch(self.nbytes, self.nmsgs)


def release(msg) -> None:
    """Gives back the throttle share ``msg`` holds, if any."""
    th = msg._throttle
    if th is not None:
        msg._throttle = None
        th.put_batch(msg.size, 1)


def release_all(msgs) -> None:
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


def _observe_batch(ep, msgs: list) -> None:
    """Dispatch latency of messages dispatched on the reactor (inline or fast): one
    observation per run of equal ``recv_stamp`` (loop time, no clock read)."""
    ep.counters.dispatch_latency.observe_batch(ep.reactor.time, msgs, _counters.RECV_STAMP)
