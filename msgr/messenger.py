"""Messenger: policies, dispatchers, the connection registry, listeners, start and shutdown.

Theory of operation. ``start()`` builds ``io_threads`` reactors (each a
*worker* with its own counters and one ring producer per dispatch thread)
and the :class:`~msgr.dispatch.chain.Delivery`'s dispatch threads. Listeners
live on reactor 0; an accepted socket becomes a Connection on the
least-loaded reactor. Outgoing connections are registered by peer address
(``connect_to`` returns the existing one). The registry, the listeners and
global_seq are guarded by ``_lock``; the dispatcher chain and throttles are
the Delivery's; everything per connection belongs to its reactor. What a
connection's reactor side may ask of the messenger is one marked section
("for connections").
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
from dataclasses import dataclass

from .auth import AuthNoneClient, AuthNoneServer
from .config import Config
from .connection import Connection
from .counters import Counters
from .dispatch.chain import Delivery
from .entity import EntityAddr, EntityName, EntityType
from .dispatcher import Dispatcher
from .errors import ConfigError, LocalProtocolError, MsgrError
from .policy import Policy, PolicySet, check_policy
from .bufpool import BufferPool
from .protocol.params import FEATURES_ALL, MachineParams
from .reactor.loop import EVENT_READ
from .reactor.pool import ReactorPool
from .transports.base import create_transport

__all__ = ["Messenger"]
log = logging.getLogger(__name__)


@dataclass
class Worker:
    """One reactor plus what its thread owns: counters and ring producers."""

    reactor: object
    counters: Counters
    producers: list


class Messenger:
    """One entity's endpoint: it dials peers, accepts them, and hands received
    messages to its dispatchers (Ceph's ``AsyncMessenger``).

    Configure it (policies, dispatchers, throttles, ``bind``), then ``start()``;
    ``connect_to`` returns a :class:`Connection` that connects in the background.
    ``shutdown()`` then ``wait()`` stop it (``with Messenger(...) as m:`` does
    ``start``, then both). A messenger runs once.

    Args:
        name: this entity's name (``EntityName`` or ``"osd.0"``).
        nonce: the instance nonce in our addresses (random non-zero if None);
            peers tell a restarted entity apart by it.
        config: options (:class:`Config`); the defaults follow Ceph.
        transport: the transport kind (``"tcp"``).

    Raises:
        ConfigError: ``name`` or ``nonce`` is invalid, or no such ``transport``.
        TypeError: ``config`` is not a :class:`Config`.
    """

    def __init__(self, name: EntityName | str, *, nonce: int | None = None,
                 config: Config | None = None, transport: str = "tcp") -> None:
        self.name = name if isinstance(name, EntityName) else EntityName.parse(name)
        self.nonce = random.SystemRandom().randrange(1, 1 << 32) if nonce is None else nonce
        if not 0 <= self.nonce < 1 << 32:
            raise ConfigError("nonce", f"{self.nonce} out of range 0..2**32-1")
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a msgr.Config (Config(**options) or "
                            f"Config.from_env()), not {type(config).__name__}")
        self.config = config or Config()
        self.addr: EntityAddr | None = None
        self._factory = create_transport(transport)
        self._policies = PolicySet()
        self._lock = threading.Lock()
        self._buffer_pool = BufferPool()        # large receive buffers, shared by all machines
        self._conns: dict = {}
        self._global_seq = 0
        self._global_ids = itertools.count(4096 + (self.nonce & 0xFFFF))
        self._listeners: list = []
        self._started = self._stopped = False
        self._learned: EntityAddr | None = None
        self._all_conns: set = set()
        self._inject_rng = random.Random(self.config.ms_inject_seed or None)
        self.interceptor = None
        self._delivery = Delivery(self.config, str(self.name), self._inject_rng)
        self._loopback = None

    # ------------------------------------------------------------ configuration
    def set_default_policy(self, policy: Policy) -> None:
        """The policy for peers of a type without its own (``set_policy``), and for
        accepted peers until their HELLO names their type.

        Raises:
            TypeError: ``policy`` is not a Policy.
        """
        self._policies.default = check_policy(policy, "set_default_policy")

    def set_policy(self, peer_type: EntityType | int, policy: Policy) -> None:
        """The policy for connections to ``peer_type`` made from now on.

        Raises:
            ValueError: ``peer_type`` is not an EntityType (or its value).
            TypeError: ``policy`` is not a Policy.
        """
        self._policies.set(peer_type, policy)

    def get_policy(self, peer_type: EntityType | int) -> Policy:
        """The policy connections to ``peer_type`` get (its own, else the default).

        Raises:
            ValueError: ``peer_type`` is not an EntityType (or its value).
        """
        return self._policies.get(peer_type)

    def add_dispatcher_head(self, d: Dispatcher) -> None:
        """Puts ``d`` first in the chain. Raises TypeError if it is not a Dispatcher."""
        self._delivery.add_head(d)

    def add_dispatcher_tail(self, d: Dispatcher) -> None:
        """Puts ``d`` last in the chain. Raises TypeError if it is not a Dispatcher."""
        self._delivery.add_tail(d)

    def set_policy_throttlers(self, peer_type, *, max_bytes: int | None = None,
                              max_messages: int | None = None) -> None:
        """Receive-side throttles for messages from ``peer_type`` (before start()).

        None or 0 means no throttle. A message holds its share until its dispatch returns.

        Raises:
            LocalProtocolError: after ``start()``.
            TypeError: a limit is not an int.
            ConfigError: a limit is negative.
            ValueError: ``peer_type`` is not an EntityType.
        """
        if self._started:
            raise LocalProtocolError("set_policy_throttlers() must come before start()")
        self._delivery.set_policy_throttlers(peer_type, max_bytes, max_messages)

    def bind(self, addr: EntityAddr | str) -> EntityAddr:
        """Binds a listener (port 0: any free port); returns the bound address with our
        nonce, the one peers must dial. The first bound address is ``addr``.

        Raises:
            LocalProtocolError: after ``start()``.
            ConfigError: ``addr`` is not an address.
            TransportError: the address cannot be bound (in use, not ours).
        """
        if self._started:
            raise LocalProtocolError("bind() must come before start()")
        a = EntityAddr.parse(addr)
        listener = self._factory.listen(a, nodelay=self.config.ms_tcp_nodelay,
                                        rcvbuf=self.config.ms_tcp_rcvbuf)
        self._listeners.append(listener)
        bound = EntityAddr("v2", listener.addr.host, listener.addr.port, self.nonce)
        self.addr = self.addr or bound
        return bound

    def rebind(self, avoid_ports=()) -> EntityAddr:
        """Moves the listener to a new port not in ``avoid_ports`` and takes a new nonce,
        as Ceph does (peers must see a new instance); every connection is marked down.
        Returns the new address.

        Raises:
            LocalProtocolError: nothing was bound, or after ``shutdown()``.
            MsgrError: no free port outside ``avoid_ports`` was found.
            TransportError: no listener could be bound.
        """
        if self.addr is None:
            raise LocalProtocolError("rebind() needs a bound messenger")
        if self._stopped:
            raise LocalProtocolError("rebind() after shutdown()")
        avoid = set(avoid_ports) | {self.addr.port}
        old = self.addr
        for _ in range(64):
            listener = self._factory.listen(EntityAddr("v2", old.host, 0),
                                            nodelay=self.config.ms_tcp_nodelay,
                                            rcvbuf=self.config.ms_tcp_rcvbuf)
            if listener.addr.port not in avoid:
                break
            listener.close()
        else:
            raise MsgrError("rebind: no free port outside avoid_ports")
        self.mark_down_all()
        with self._lock:            # against shutdown(): it closes the listeners it sees
            if self._stopped:
                listener.close()
                raise LocalProtocolError("rebind() after shutdown()")
            self.nonce = (self.nonce + 1_000_000) % (1 << 32) or 1
            self.addr = EntityAddr("v2", listener.addr.host, listener.addr.port, self.nonce)
            if self._loopback is not None:
                self._loopback.peer_addr = self.addr
            old_listeners, self._listeners = self._listeners, [listener]
            if self._started:
                r = self._pool.reactors[0]
                for lst in old_listeners:
                    r.submit(self._close_listener, lst)
                r.submit(self._add_listener, listener)
                return self.addr
        for lst in old_listeners:
            lst.close()
        return self.addr

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Starts the I/O and dispatch threads and the listeners.

        Raises:
            LocalProtocolError: called twice, or after ``shutdown()``.
        """
        if self._started:
            raise LocalProtocolError("start() called twice")
        if self._stopped:
            raise LocalProtocolError("start() after shutdown(): a Messenger runs once")
        self._started = True
        cfg = self.config
        self._pool = ReactorPool(cfg.io_threads, prefix=f"msgr-io-{self.name}",
                                 busy_poll=cfg.ms_busy_poll_us / 1e6)
        self._delivery.start(cfg.io_threads)
        self._workers = []
        for r in self._pool:
            w = Worker(r, Counters(), self._delivery.producers(r.index))
            r.counters = w.counters
            r.add_end_hook(Delivery.flusher(w.producers, r))
            self._workers.append(w)
        self._pool.start()
        from . import metrics
        metrics.register_messenger(self)
        for lst in self._listeners:
            self._pool.reactors[0].submit(self._add_listener, lst)

    def shutdown(self) -> None:
        """Stops everything: closes every connection and listener and asks the threads
        to end (``wait`` joins them). Idempotent; from any thread, also a dispatcher."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
            conns, listeners = list(self._all_conns), list(self._listeners)
        for c in conns:
            c.mark_down()
        r0 = self._pool.reactors[0]
        for lst in listeners:
            r0.submit(self._close_listener, lst)
        self._pool.stop()
        self._delivery.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until fully stopped (threads joined, sockets closed); True when so,
        False if ``timeout`` (seconds) ran out first.

        Raises:
            LocalProtocolError: called from one of this messenger's own threads
                (it would wait for itself).
        """
        if not self._started:
            return True
        if self._delivery.is_dispatch_thread() or any(r.in_thread() for r in self._pool):
            raise LocalProtocolError("wait() called from one of this messenger's own threads")
        ok = self._pool.join(timeout)
        return self._delivery.join(timeout) and ok

    def __enter__(self) -> "Messenger":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.wait()

    # ------------------------------------------------------------ connections
    def connect_to(self, peer_type: EntityType | int, addr: EntityAddr | str, *,
                   anon: bool = False) -> Connection:
        """The connection to ``addr`` (existing, or new and connecting in the background).

        Our own address (nonce included) gives the loopback connection, as in Ceph,
        unless ``anon``. Never blocks.

        Raises:
            LocalProtocolError: the messenger is not started, or is shut down.
            ConfigError: ``addr`` is not an address.
        """
        a = EntityAddr.parse(addr)
        if not self._started or self._stopped:
            raise LocalProtocolError("connect_to() needs a started, running messenger")
        if not anon and a == self.addr:
            return self.get_loopback_connection()
        with self._lock:
            if self._stopped:                   # shutdown() came in meanwhile
                raise LocalProtocolError("connect_to() needs a started, running messenger")
            if not anon:
                existing = self._conns.get(a)
                if existing is not None and not existing.is_closed:
                    return existing
            conn = self._new_connection(peer_type, a, self.get_policy(peer_type),
                                        outgoing=True, anon=anon)
            if not anon:
                self._conns[a] = conn
            conn._reactor.submit(conn._life.start_connect)   # before any close shutdown() sends
        return conn

    def get_loopback_connection(self) -> Connection:
        """A connection to ourselves: messages sent on it are dispatched locally.

        One while it is open; after a ``mark_down()`` of it, the next call makes a new one.

        Raises:
            LocalProtocolError: before ``start()``.
        """
        with self._lock:
            if self._loopback is None or self._loopback.is_closed and not self._stopped:
                if not self._started:
                    raise LocalProtocolError("get_loopback_connection() needs start()")
                addr = self.addr or EntityAddr("any", "0.0.0.0", 0, self.nonce)
                lb = Connection(self, self._workers[0], self.name.type, addr,
                                Policy.lossy_client(), outgoing=False, loopback=True)
                lb.peer_name = self.name
                lb.features = FEATURES_ALL
                self._all_conns.add(lb)
                self._workers[0].counters.connections_opened += 1
                self._loopback = lb
            return self._loopback

    def mark_down_all(self) -> None:
        """Closes every connection; each gets ``ms_handle_reset`` and drops what it had
        queued. The loopback connection is not a peer's and stays (as Ceph's
        ``local_connection``)."""
        with self._lock:
            conns = [c for c in self._all_conns if c is not self._loopback]
        for c in conns:
            c._begin_close(reset=True)

    def _new_connection(self, peer_type, addr: EntityAddr, policy: Policy, *, outgoing: bool,
                        anon: bool = False) -> Connection:
        """A Connection on the least-loaded reactor, counted as open (under ``_lock``)."""
        worker = self._workers[self._pool.pick().index]
        conn = Connection(self, worker, peer_type, addr, policy, outgoing=outgoing, anon=anon)
        self._all_conns.add(conn)
        worker.counters.connections_opened += 1
        return conn

    # ------------------------------------------------------------ for connections
    # The interface a connection's Lifecycle and IOHandler use, and nothing else
    # does (crimson's "SocketMessenger public interfaces"). Each is safe from any
    # reactor thread. They also read ``config``, ``interceptor`` and ``_delivery``.
    def _register_if_absent(self, addr: EntityAddr, conn: Connection, register: bool = True):
        """The live connection registered for ``addr``, or None after registering ``conn``."""
        with self._lock:
            ex = self._conns.get(addr)
            if ex is not None and ex is not conn and not ex.is_closed:
                return ex
            if register:
                self._conns[addr] = conn
            return None

    def _replace_registration(self, addr: EntityAddr, new: Connection, old: Connection) -> None:
        """``new`` takes over ``addr`` from ``old`` (or from a closed or missing entry)."""
        with self._lock:
            if self._conns.get(addr) in (old, None) or self._conns[addr].is_closed:
                self._conns[addr] = new

    def _closed(self, conn: Connection) -> None:
        """``conn`` has ended: it leaves the registry and its reactor's load."""
        with self._lock:
            self._all_conns.discard(conn)
            if self._conns.get(conn.peer_addr) is conn:
                del self._conns[conn.peer_addr]
        if conn._pooled:
            self._pool.release(conn._reactor)

    def _learned_addr(self, addr: EntityAddr) -> None:
        """A peer told us the address it sees us at (kept: the first one)."""
        with self._lock:
            self._learned = self._learned or addr

    def _my_addrs(self) -> tuple:
        """The addresses we advertise: bound, else learned, else a blank one with our nonce."""
        if self.addr is not None:
            return (self.addr,)
        learned = self._learned
        if learned is not None:
            return (learned,)
        return (EntityAddr("any", "0.0.0.0", 0, self.nonce),)

    def _connect_params(self, conn: Connection) -> MachineParams:
        """A connecting machine's params for ``conn`` (a fresh global_seq each)."""
        return MachineParams(policy=conn.policy, peer_type=int(conn.peer_type),
                             target_addr=conn.peer_addr,
                             auth_client=AuthNoneClient(int(self.name.type), self._auth_id()),
                             global_seq=self.next_global_seq(), **self._common_params())

    def _accept_params(self, peer_socket_addr: EntityAddr) -> MachineParams:
        """An accepting machine's params for a socket from ``peer_socket_addr``."""
        return MachineParams(policy=self._policies.default, policy_for=self._policies.get,
                             auth_server=AuthNoneServer(lambda: next(self._global_ids)),
                             peer_socket_addr=peer_socket_addr,
                             global_seq=self.next_global_seq(), **self._common_params())

    def _make_transport(self, addr: EntityAddr):
        """A connecting transport to ``addr``. Raises TransportError."""
        cfg = self.config
        t = self._factory.connect(addr, nodelay=cfg.ms_tcp_nodelay, rcvbuf=cfg.ms_tcp_rcvbuf)
        return self._wrap_transport(t)

    def _inject_internal_delay(self) -> None:
        """``ms_inject_internal_delays``: sleep at race-prone points (tests only)."""
        d = self.config.ms_inject_internal_delays
        if d and self._inject_rng.random() < 0.5:
            import time
            time.sleep(d * self._inject_rng.random())

    # ------------------------------------------------------------ transports
    def _wrap_transport(self, t):
        """Adds fault injection (``ms_inject_socket_failures``) when configured."""
        n = self.config.ms_inject_socket_failures
        if not n:
            return t
        from .transports.inject import FailureInjector
        return FailureInjector(t, n, self._inject_rng)

    # ------------------------------------------------------------ listeners
    def _add_listener(self, listener) -> None:
        self._pool.reactors[0].register(listener.fileno(), EVENT_READ,
                                        lambda _m, lst=listener: self._on_accept(lst))

    def _close_listener(self, listener) -> None:
        self._pool.reactors[0].unregister(listener.fileno())
        listener.close()

    def _on_accept(self, listener) -> None:
        for _ in range(64):
            try:
                t = listener.accept()
            except MsgrError as e:
                log.warning("accept failed: %s", e)
                return
            if t is None:
                return
            with self._lock:
                if self._stopped:
                    t.close()
                    continue
                conn = self._new_connection(EntityType.ANY, t.peer_addr, self._policies.default,
                                            outgoing=False)
                # queued under the lock: a close from mark_down_all / shutdown comes after it
                conn._reactor.submit(conn._life.start_accept, self._wrap_transport(t))

    # ------------------------------------------------------------ machine params
    def next_global_seq(self, above: int = 0) -> int:
        """A global_seq greater than both ``above`` and every one handed out."""
        with self._lock:
            self._global_seq = max(self._global_seq, above) + 1
            return self._global_seq

    def _auth_id(self) -> str:
        if self.config.auth_name:
            return self.config.auth_name
        return "admin" if self.name.num < 0 else str(self.name.num)

    def _common_params(self) -> dict:
        cfg = self.config
        return dict(my_name=self.name, my_addrs=self._my_addrs(), rev1_allowed=cfg.ms_msgr2_rev1,
                    recv_buffer_bytes=cfg.ms_recv_buffer_bytes,
                    max_segment_bytes=cfg.ms_max_segment_bytes,
                    ready_timeout=cfg.ms_connection_ready_timeout,
                    idle_timeout=cfg.ms_connection_idle_timeout,
                    next_global_seq=self.next_global_seq, interceptor=self.interceptor,
                    buffer_pool=self._buffer_pool)

    # ------------------------------------------------------------ introspection
    def get_dispatch_queue_len(self) -> int:
        """Messages and events handed to dispatch threads and not yet dispatched."""
        return self._delivery.queue_len(getattr(self, "_workers", ()))

    def perf_dump(self) -> dict:
        """Counters as plain numbers (Ceph's ``perf dump`` analogue): the per-thread
        counters summed, ``connections``, ``connections_by_state``, the dispatch queue
        and throttle, and each histogram as a dict."""
        from . import metrics
        owners = [c for _, c in self._counter_owners()]     # reactors, then dispatch threads
        out = Counters.total(owners)
        out["messages_dropped"] += self._delivery.dropped
        out["connections"] = len(self._all_conns)
        out["dispatch_queue_length"] = self.get_dispatch_queue_len()
        out["dispatch_throttle_bytes"] = self._delivery.dispatch_throttle.current
        out["connections_by_state"] = metrics.connection_states(self)
        for name, snap in Counters.histograms(owners).items():
            out[name] = snap.as_dict()     # avgcount, sum, avgtime, buckets (cumulative)
        return out

    def _counter_owners(self) -> list:
        """``(thread name, Counters)`` of every thread that owns counters: the
        reactors, then the dispatch threads (for metrics and ``perf_dump``)."""
        out = [(w.reactor.name, w.counters) for w in getattr(self, "_workers", ())]
        pool = self._delivery.pool
        if pool is not None:
            out += [(t.name, c) for t, c in zip(pool.threads, pool.counters)]
        return out

    def _connections(self) -> list:
        """The open connections, a snapshot (for metrics)."""
        with self._lock:
            return list(self._all_conns)

    def __repr__(self) -> str:
        return f"Messenger({self.name} {self.addr or '-'} nonce={self.nonce})"
