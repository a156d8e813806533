"""Prometheus metrics: one metric table, summed at scrape time.

The hot path never calls prometheus_client: each reactor and each dispatch
thread bumps plain ints and bucket lists in its own
:class:`~msgr.counters.Counters`. :class:`MessengerCollector` walks the live
messengers when Prometheus scrapes and yields metric families built from
:data:`METRICS`, the one table of every exported metric (name, kind, help,
unit, source, labels); ``metrics/METRICS.md`` is generated from it
(``python tools/gen_metrics_doc.py``). :func:`serve` starts the HTTP exporter.

Messengers of one process that share an entity name are summed into one
series (a scrape never carries duplicate label sets).

Example::

    port = msgr.metrics.serve(0)            # http://127.0.0.1:<port>/metrics
    ...
    msgr.metrics.stop_servers()
"""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

from .checks import as_int
from .counters import HISTOGRAM_NAMES, Histogram, HistogramSnapshot
from .errors import ConfigError
from .linkstate import LinkState

__all__ = ["METRICS", "MetricDef", "MessengerCollector", "register_messenger", "serve",
           "stop_servers", "exposition", "owners", "connection_states", "snapshot",
           "set_histograms_enabled", "histograms_enabled"]
log = logging.getLogger(__name__)

_W = ("entity", "worker")
_E = ("entity",)


@dataclass(frozen=True)
class MetricDef:
    """One exported metric.

    Attributes:
        name: the Prometheus name (counters end in ``_total``).
        kind: ``counter``, ``gauge`` or ``histogram``.
        help: the HELP text.
        unit: the unit of the value (``bytes``, ``seconds``, ``messages``, ...); a base
            unit (seconds, bytes) the name ends in is also the OpenMetrics UNIT.
        source: a :class:`~msgr.counters.Counters` attribute for per-worker counters and
            histograms, else a ``perf_dump()`` key or a figure computed at scrape time.
        labels: the label names.
    """

    name: str
    kind: str
    help: str
    unit: str
    source: str
    labels: tuple = _W

    @property
    def per_worker(self) -> bool:
        return "worker" in self.labels

    @property
    def family(self) -> str:
        """The family name prometheus_client uses (a counter's without ``_total``)."""
        return self.name[:-6] if self.kind == "counter" else self.name


METRICS = (
    MetricDef("msgr_messages_sent_total", "counter",
              "Messages framed for the wire (replays after a reconnect count again).",
              "messages", "messages_sent"),
    MetricDef("msgr_messages_received_total", "counter",
              "Messages received and accepted (duplicates dropped before).",
              "messages", "messages_received"),
    MetricDef("msgr_bytes_sent_total", "counter", "Bytes written to transports.",
              "bytes", "bytes_sent"),
    MetricDef("msgr_bytes_received_total", "counter", "Bytes read from transports.",
              "bytes", "bytes_received"),
    MetricDef("msgr_connection_faults_total", "counter",
              "Transport or protocol faults (each drops a socket).", "faults", "connection_faults"),
    MetricDef("msgr_reconnects_total", "counter", "Reconnect attempts scheduled.",
              "reconnects", "reconnects"),
    MetricDef("msgr_session_resets_total", "counter", "Sessions reset (local or remote).",
              "resets", "session_resets"),
    MetricDef("msgr_bad_frames_total", "counter",
              "Frames rejected (bad crc, bad format or tag, too large, bad banner).",
              "frames", "bad_frames"),
    MetricDef("msgr_throttle_waits_total", "counter",
              "Times a full throttle stopped a connection's reading.", "waits", "throttle_waits"),
    MetricDef("msgr_busy_poll_hits_total", "counter",
              "Busy polls (ms_busy_poll_us) that found work before the window ran out.",
              "polls", "busy_poll_hits"),
    MetricDef("msgr_busy_poll_misses_total", "counter",
              "Busy polls whose window ran out, so the reactor slept after all.",
              "polls", "busy_poll_misses"),
    MetricDef("msgr_early_reply_writes_total", "counter",
              "Replies written in the middle of a received burst (ms_reply_flush_msgs), "
              "while the CPUs had headroom.", "writes", "early_reply_writes"),
    MetricDef("msgr_connections_opened_total", "counter",
              "Connections created (dialled or accepted).", "connections", "connections_opened"),
    MetricDef("msgr_connections_closed_total", "counter", "Connections closed for good.",
              "connections", "connections_closed"),
    MetricDef("msgr_ready_timeouts_total", "counter",
              "Handshakes that did not finish within ms_connection_ready_timeout.",
              "timeouts", "ready_timeouts"),
    MetricDef("msgr_idle_timeouts_total", "counter",
              "Connections closed after ms_connection_idle_timeout without traffic.",
              "timeouts", "idle_timeouts"),
    MetricDef("msgr_messages_dropped_total", "counter",
              "Messages discarded before the peer acknowledged them: sent on a closed "
              "connection, queued or unacknowledged when the connection closed or the peer "
              "reset the session, or not frameable.", "messages", "messages_dropped",
              _E),
    MetricDef("msgr_connections", "gauge", "Open connections.", "connections", "connections", _E),
    MetricDef("msgr_connections_by_state", "gauge",
              "Open connections by lifecycle state (NONE, CONNECTING, ACCEPTING, READY, "
              "STANDBY, WAIT, HANDED_OFF, CLOSED).",
              "connections", "connections_by_state", ("entity", "state")),
    MetricDef("msgr_dispatch_queue_length", "gauge",
              "Messages and events waiting for a dispatch thread.", "items",
              "dispatch_queue_length", _E),
    MetricDef("msgr_dispatch_throttle_bytes", "gauge",
              "Bytes of received messages held by the dispatch throttle "
              "(ms_dispatch_throttle_bytes).", "bytes", "dispatch_throttle_bytes", _E),
    MetricDef("msgr_dispatch_latency_seconds", "histogram",
              "Time from a message's receipt (reactor loop time) to the start of its dispatch.",
              "seconds", "dispatch_latency", _E),
    MetricDef("msgr_send_queue_latency_seconds", "histogram",
              "Time from Connection.send_message to the message being framed for the socket.",
              "seconds", "send_queue_latency", _E),
)

_BASE_UNITS = ("seconds", "bytes")      # passed on as the OpenMetrics UNIT (name ends in it)

_messengers: "weakref.WeakSet" = weakref.WeakSet()
_lock = threading.Lock()


def register_messenger(m) -> None:
    """Makes ``m`` visible to every MessengerCollector (done by ``Messenger.start``)."""
    with _lock:
        _messengers.add(m)


def _live() -> list:
    """Started and not yet shut down messengers."""
    with _lock:
        ms = list(_messengers)
    return [m for m in ms if getattr(m, "_started", False) and not getattr(m, "_stopped", False)]


def set_histograms_enabled(on: bool) -> bool:
    """Turns latency histogram observations on or off; returns the old value."""
    from . import counters
    return counters.set_histograms_enabled(on)


def histograms_enabled() -> bool:
    from . import counters
    return counters.HISTOGRAMS_ENABLED


# ---------------------------------------------------------------- figures of one messenger
def owners(m) -> list:
    """``(thread name, Counters)`` of every thread of ``m`` that owns counters:
    reactors first, then dispatch threads (``Messenger._counter_owners``)."""
    return m._counter_owners()


_STATE_NAMES = tuple(s.name for s in LinkState)


def connection_states(m) -> dict:
    """Open connections of ``m`` per :class:`~msgr.linkstate.LinkState` name (every
    state present, zeros included).

    Read from the scraping thread without the reactors' help: each connection's
    state is one attribute read, a moment old at worst.
    """
    out = dict.fromkeys(_STATE_NAMES, 0)
    for c in m._connections():
        out[c.state.name] += 1
    return out


def snapshot(m) -> dict:
    """Every figure of ``m`` the collector exports, read once.

    Returns a dict with ``perf`` (``m.perf_dump()`` plus the figures computed
    here), ``workers`` (``[(thread name, {counter: value}, is_reactor)]``), ``histograms``
    (``{source: HistogramSnapshot}`` summed over all threads) and ``states``.
    """
    own = owners(m)
    nreactors = len(getattr(m, "_workers", ()))
    perf = dict(m.perf_dump())
    return {"perf": perf,
            "workers": [(name, c.as_dict(), i < nreactors) for i, (name, c) in enumerate(own)],
            "histograms": {n: Histogram.merge(getattr(c, n) for _, c in own)
                           for n in HISTOGRAM_NAMES},
            "states": perf.get("connections_by_state") or connection_states(m)}


# ---------------------------------------------------------------- the collector
class MessengerCollector:
    """A prometheus_client collector over every started Messenger of this process."""

    def describe(self):
        for d in METRICS:
            yield _family(d)

    def collect(self):
        snaps = []
        for m in _live():
            try:
                snaps.append((str(m.name), snapshot(m)))
            except Exception:                # a messenger shutting down under us: skip it
                log.debug("metrics: skipping %r", m, exc_info=True)
        for d in METRICS:
            yield self._build(d, snaps)

    @staticmethod
    def _build(d: MetricDef, snaps: list):
        fam = _family(d)
        if d.kind == "histogram":
            merged: dict = {}
            for entity, s in snaps:
                h = s["histograms"].get(d.source)
                if h is not None:
                    merged[entity] = _add_hist(merged.get(entity), h)
            for entity, h in merged.items():
                fam.add_metric([entity], h.buckets(), h.sum)
            return fam
        values: dict = {}
        for entity, s in snaps:
            if d.per_worker:
                for worker, c, is_reactor in s["workers"]:
                    v = c.get(d.source, 0)
                    if v or is_reactor:          # dispatch threads: only once they count it
                        key = (entity, worker)
                        values[key] = values.get(key, 0) + v
            elif "state" in d.labels:
                for state, v in s["states"].items():
                    values[(entity, state)] = values.get((entity, state), 0) + v
            else:
                values[(entity,)] = values.get((entity,), 0) + s["perf"].get(d.source, 0)
        for key, v in values.items():
            fam.add_metric(list(key), v)
        return fam


def _add_hist(a: HistogramSnapshot | None, b: HistogramSnapshot) -> HistogramSnapshot:
    if a is None:
        return b
    return HistogramSnapshot([x + y for x, y in zip(a.counts, b.counts)], a.sum + b.sum)


def _family(d: MetricDef):
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)
    cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
           "histogram": HistogramMetricFamily}[d.kind]
    unit = d.unit if d.unit in _BASE_UNITS and d.family.endswith("_" + d.unit) else ""
    return cls(d.family, d.help, labels=list(d.labels), unit=unit)


# ---------------------------------------------------------------- the exporter
_collector = None
_servers: list = []


def _ensure_registered():
    global _collector
    from prometheus_client import REGISTRY
    with _lock:
        if _collector is None:
            _collector = MessengerCollector()
            REGISTRY.register(_collector)
    return REGISTRY


def serve(port: int = 0, addr: str = "127.0.0.1") -> int:
    """Starts an HTTP exporter on ``addr:port`` (0: any free port); returns its port.

    Serves ``/metrics`` from prometheus_client's default registry, to which the
    :class:`MessengerCollector` is added once per process.

    Raises:
        TypeError: ``port`` is not an int.
        ConfigError: ``port`` is outside 0..65535.
        TransportError: the address cannot be bound (in use, not local, not an address).
    """
    from prometheus_client import start_http_server

    from .transports.base import translate_os_errors
    port = as_int(port, "metrics port")
    if not 0 <= port <= 65535:
        raise ConfigError("port", f"{port} out of range 0..65535")
    registry = _ensure_registered()
    with translate_os_errors(f"metrics exporter on {addr}:{port}"):
        server, _thread = start_http_server(port, addr, registry=registry)
    with _lock:
        _servers.append(server)
    return server.server_port


def stop_servers() -> None:
    """Stops every exporter started by :func:`serve` (closes their sockets)."""
    with _lock:
        servers, _servers[:] = list(_servers), []
    for s in servers:
        s.shutdown()
        s.server_close()


def exposition() -> bytes:
    """The text exposition (format 0.0.4) of msgr's metrics alone, without HTTP."""
    from prometheus_client import CollectorRegistry, generate_latest
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MessengerCollector())
    return generate_latest(reg)
