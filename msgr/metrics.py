"""Prometheus metrics: one counter table, summed at scrape time.

The hot path never calls prometheus_client: each reactor bumps plain ints in
its own :class:`~msgr.counters.Counters`. :class:`MessengerCollector` walks
the live messengers when Prometheus scrapes and yields metric families built
from :data:`METRICS`. ``serve()`` starts the HTTP exporter.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

__all__ = ["METRICS", "MetricDef", "MessengerCollector", "register_messenger", "serve",
           "stop_servers"]


@dataclass(frozen=True)
class MetricDef:
    """One exported metric: Prometheus name, kind, help text, and its source counter."""

    name: str
    kind: str           # "counter" or "gauge"
    help: str
    source: str         # Counters attribute, or a perf_dump key for gauges
    per_worker: bool = True


METRICS = (
    MetricDef("msgr_messages_sent_total", "counter", "Messages framed and sent.", "messages_sent"),
    MetricDef("msgr_messages_received_total", "counter", "Messages received and accepted.",
              "messages_received"),
    MetricDef("msgr_bytes_sent_total", "counter", "Bytes written to transports.", "bytes_sent"),
    MetricDef("msgr_bytes_received_total", "counter", "Bytes read from transports.", "bytes_received"),
    MetricDef("msgr_connection_faults_total", "counter", "Transport or protocol faults.",
              "connection_faults"),
    MetricDef("msgr_reconnects_total", "counter", "Reconnect attempts scheduled.", "reconnects"),
    MetricDef("msgr_session_resets_total", "counter", "Sessions reset (local or remote).",
              "session_resets"),
    MetricDef("msgr_bad_frames_total", "counter", "Frames rejected (crc, format, state).",
              "bad_frames"),
    MetricDef("msgr_throttle_waits_total", "counter", "Times a throttle stopped reading.",
              "throttle_waits"),
    MetricDef("msgr_messages_dropped_total", "counter", "Messages sent on closed connections.",
              "messages_dropped", per_worker=False),
    MetricDef("msgr_connections", "gauge", "Open connections.", "connections", per_worker=False),
    MetricDef("msgr_dispatch_queue_length", "gauge", "Items waiting for a dispatch thread.",
              "dispatch_queue_length", per_worker=False),
)

_messengers: "weakref.WeakSet" = weakref.WeakSet()
_lock = threading.Lock()


def register_messenger(m) -> None:
    """Makes ``m`` visible to every MessengerCollector (done by ``Messenger.start``)."""
    with _lock:
        _messengers.add(m)


def _live() -> list:
    with _lock:
        return [m for m in _messengers if getattr(m, "_started", False)]


class MessengerCollector:
    """A prometheus_client collector over every started Messenger of this process."""

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        live = _live()
        for d in METRICS:
            labels = ["entity", "worker"] if d.per_worker else ["entity"]
            family = (CounterMetricFamily if d.kind == "counter" else GaugeMetricFamily)(
                d.name[:-6] if d.kind == "counter" else d.name, d.help, labels=labels)
            for m in live:
                self._add(family, d, m)
            yield family

    @staticmethod
    def _add(family, d: MetricDef, m) -> None:
        entity = str(m.name)
        if d.per_worker:
            for w in getattr(m, "_workers", ()):
                family.add_metric([entity, w.reactor.name], getattr(w.counters, d.source))
        else:
            family.add_metric([entity], m.perf_dump()[d.source])


_collector = None
_servers: list = []


def serve(port: int = 0, addr: str = "127.0.0.1") -> int:
    """Starts the HTTP exporter (once per process); returns its port."""
    global _collector
    from prometheus_client import REGISTRY, start_http_server
    with _lock:
        if _collector is None:
            _collector = MessengerCollector()
            REGISTRY.register(_collector)
    server, _thread = start_http_server(port, addr)
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
