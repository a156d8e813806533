"""The metric table, the Histogram, the collector over fake messengers, the metrics/ assets
(names only; promtool and a live exporter are in tests/integration), and msgr.log.

No sockets, no threads: the collector is fed objects shaped like a Messenger.
"""
from __future__ import annotations

import gc
import io
import json
import logging
import math
import re
from operator import attrgetter
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from msgr import counters, metrics
from msgr.counters import (COUNTER_NAMES, HISTOGRAM_NAMES, LATENCY_BOUNDS, Counters, Histogram,
                           HistogramSnapshot)
from msgr.linkstate import LinkState
from msgr.log import ConnAdapter, conn_debug, conn_log, conn_state
from msgr.metrics import METRICS
from tests.helpers import dashboard_exprs, metric_names_in, record_names, rule_exprs

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "metrics"

# The names API.md ("Metrics (Prometheus)") promises.
API_NAMES = {
    "msgr_messages_sent_total", "msgr_messages_received_total", "msgr_bytes_sent_total",
    "msgr_bytes_received_total", "msgr_connections", "msgr_connection_faults_total",
    "msgr_reconnects_total", "msgr_session_resets_total", "msgr_bad_frames_total",
    "msgr_dispatch_queue_length", "msgr_dispatch_latency_seconds",
    "msgr_send_queue_latency_seconds",
}


# ---------------------------------------------------------------- the table
def test_table_has_every_api_name_once():
    names = [d.name for d in METRICS]
    assert len(names) == len(set(names))
    assert API_NAMES <= set(names)


@pytest.mark.parametrize("d", METRICS, ids=lambda d: d.name)
def test_each_definition_is_well_formed(d):
    assert re.fullmatch(r"msgr_[a-z0-9_]+", d.name)
    assert d.kind in ("counter", "gauge", "histogram")
    assert d.help and d.help[0].isupper() and d.unit
    assert d.labels[0] == "entity" and len(set(d.labels)) == len(d.labels)
    if d.kind == "counter":
        assert d.name.endswith("_total")
    else:
        assert not d.name.endswith("_total")
    if d.kind == "histogram":
        assert d.unit == "seconds" and d.name.endswith("_seconds")
        assert d.source in HISTOGRAM_NAMES and d.labels == ("entity",)
    if d.per_worker:
        assert d.source in COUNTER_NAMES and d.kind == "counter"


def test_api_labels():
    by = {d.name: d for d in METRICS}
    for name in ("msgr_messages_sent_total", "msgr_messages_received_total",
                 "msgr_bytes_sent_total", "msgr_bytes_received_total",
                 "msgr_connection_faults_total", "msgr_bad_frames_total"):
        assert by[name].labels == ("entity", "worker")
    for name in ("msgr_connections", "msgr_dispatch_queue_length"):
        assert by[name].labels == ("entity",)


def test_metrics_doc_is_up_to_date():
    from tools import gen_metrics_doc
    assert (ASSETS / "METRICS.md").read_text(encoding="utf-8") == gen_metrics_doc.render(), \
        "metrics/METRICS.md is stale: run python -m tools.gen_metrics_doc"
    for d in METRICS:
        assert f"`{d.name}`" in gen_metrics_doc.render()


# ---------------------------------------------------------------- Histogram
def test_bounds_are_log_spaced_1us_to_10s():
    b = LATENCY_BOUNDS
    assert b[0] == 1e-6 and b[-1] == 10.0 and list(b) == sorted(set(b))
    ratios = [y / x for x, y in zip(b, b[1:])]
    assert all(2.0 <= r <= 2.5 + 1e-9 for r in ratios)
    assert math.isclose(math.prod(ratios), 1e7)


def test_observe_puts_values_in_le_buckets():
    h = Histogram()
    for v in (0.0, 1e-6, 1.5e-6, 0.002, 0.0021, 10.0, 11.0, -1e-7):
        h.observe(v)
    c = h.counts
    assert c[0] == 3                        # 0.0, exactly 1e-6 (le is inclusive), and -1e-7
    assert c[1] == 1                        # 1.5e-6 <= 2e-6
    assert c[LATENCY_BOUNDS.index(0.002)] == 1 and c[LATENCY_BOUNDS.index(0.005)] == 1
    assert c[LATENCY_BOUNDS.index(10.0)] == 1 and c[-1] == 1     # 11 s: +Inf
    assert h.count == 8 and math.isclose(h.sum, 0.0 + 1e-6 + 1.5e-6 + 0.0041 + 21.0 - 1e-7)


def test_observe_n_equals_n_observations():
    a, b = Histogram(), Histogram()
    a.observe_n(0.0003, 5)
    for _ in range(5):
        b.observe(0.0003)
    assert a.counts == b.counts and math.isclose(a.sum, b.sum)


class _Stamped:
    def __init__(self, t):
        self.t = t


def test_observe_batch_equals_one_observation_per_stamped_message():
    stamps = [0.0, 0.5, 0.5, 0.2, 0.9]          # unsorted (priorities), a zero (a replay)
    for batch in ([0.5], [0.0], stamps, stamps[1:3], [0.0, 0.0], [0.2, 0.2, 0.2, 0.0]):
        a, b = Histogram(), Histogram()
        a.observe_batch(1.0, [_Stamped(t) for t in batch], attrgetter("t"))
        for t in batch:
            if t:
                b.observe(1.0 - t)
        assert a.counts == b.counts and math.isclose(a.sum, b.sum), batch


def test_merge_sums_and_buckets_are_cumulative():
    hs = [Histogram() for _ in range(3)]
    for i, h in enumerate(hs):
        for k in range(10 * (i + 1)):
            h.observe(k * 1e-4)
    snap = Histogram.merge(hs)
    assert snap.count == 60 and math.isclose(snap.sum, sum(h.sum for h in hs))
    buckets = snap.buckets()
    assert [le for le, _ in buckets] == [repr(b) for b in LATENCY_BOUNDS] + ["+Inf"]
    values = [v for _, v in buckets]
    assert values == sorted(values) and values[-1] == snap.count
    d = snap.as_dict()
    assert d["avgcount"] == 60 and math.isclose(d["avgtime"], snap.sum / 60)
    assert d["buckets"]["+Inf"] == 60
    assert HistogramSnapshot([0] * (len(LATENCY_BOUNDS) + 1), 0.0).as_dict()["avgtime"] == 0.0


def test_counters_keep_their_names_and_gain_histograms():
    c = Counters()
    assert set(c.as_dict()) == set(COUNTER_NAMES)
    for n in HISTOGRAM_NAMES:
        assert isinstance(getattr(c, n), Histogram)
    c.messages_sent += 3
    c.dispatch_latency.observe(0.001)
    total = Counters.total([c, Counters()])
    assert total["messages_sent"] == 3 and set(total) == set(COUNTER_NAMES)
    hs = Counters.histograms([c, Counters()])
    assert hs["dispatch_latency"].count == 1 and hs["send_queue_latency"].count == 0


def test_switch():
    old = metrics.set_histograms_enabled(False)
    try:
        assert counters.HISTOGRAMS_ENABLED is False and not metrics.histograms_enabled()
    finally:
        metrics.set_histograms_enabled(old)
    assert counters.HISTOGRAMS_ENABLED is old


# ---------------------------------------------------------------- the collector (fake messengers)
class FakeMessenger:
    """Shaped like a started Messenger for the collector: name, _workers, perf_dump(),
    _counter_owners() and _connections()."""

    def __init__(self, name: str, nworkers: int = 2, ndispatch: int = 1) -> None:
        self.name = name
        self._started, self._stopped = True, False
        self._workers = [SimpleNamespace(reactor=SimpleNamespace(name=f"msgr-io-{name}-{i}"),
                                         counters=Counters()) for i in range(nworkers)]
        self._dispatch = SimpleNamespace(
            counters=[Counters() for _ in range(ndispatch)],
            _threads=[SimpleNamespace(name=f"msgr-dispatch-{name}-{i}") for i in range(ndispatch)])
        self._all_conns = set()
        self._dispatch_throttle = SimpleNamespace(current=123)

    def perf_dump(self) -> dict:
        out = Counters.total(c for _, c in metrics.owners(self))
        out["connections"] = len(self._all_conns)
        out["dispatch_queue_length"] = 4
        out["dispatch_throttle_bytes"] = self._dispatch_throttle.current
        return out

    def _counter_owners(self) -> list:
        return ([(w.reactor.name, w.counters) for w in self._workers]
                + [(t.name, c) for t, c in zip(self._dispatch._threads, self._dispatch.counters)])

    def _connections(self) -> list:
        return list(self._all_conns)


class FakeConn:
    def __init__(self, state: LinkState = LinkState.NONE):
        self.state = state


@pytest.fixture
def fakes():
    made = []

    def make(*a, **kw):
        m = FakeMessenger(*a, **kw)
        metrics.register_messenger(m)
        made.append(m)
        return m
    yield make
    for m in made:
        m._stopped = True
    made.clear()
    gc.collect()


def scrape() -> dict:
    text = metrics.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, family, suffix="", **labels):
    return [s for s in fams[family].samples if s.name == family + suffix
            and all(s.labels.get(k) == v for k, v in labels.items())]


def test_collector_sums_threads_and_same_named_messengers(fakes):
    a = fakes("osd.91")
    b = fakes("osd.91", nworkers=1)                  # same entity: summed, never duplicated
    c = fakes("client.9100")
    a._workers[0].counters.messages_received = 5
    a._workers[1].counters.messages_received = 7
    b._workers[0].counters.messages_received = 1
    a._dispatch.counters[0].messages_dropped = 2      # dispatch threads count too
    c._workers[1].counters.bytes_sent = 4096
    a._all_conns.update({FakeConn(LinkState.READY), FakeConn(LinkState.READY),
                         FakeConn(LinkState.CLOSED)})
    c._all_conns.update({FakeConn(LinkState.STANDBY), FakeConn(), FakeConn(LinkState.READY)})
    a._workers[0].counters.dispatch_latency.observe(0.0004)
    a._dispatch.counters[0].dispatch_latency.observe_n(0.03, 3)
    c._workers[0].counters.send_queue_latency.observe(2e-6)
    fams = scrape()
    recv = samples(fams, "msgr_messages_received", "_total", entity="osd.91")
    assert {s.labels["worker"]: s.value for s in recv} == {"msgr-io-osd.91-0": 6,
                                                           "msgr-io-osd.91-1": 7}
    for f in fams.values():                           # no duplicate label sets anywhere
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in f.samples]
        assert len(keys) == len(set(keys)), f.name
    assert samples(fams, "msgr_messages_dropped", "_total", entity="osd.91")[0].value == 2
    assert [s.value for s in samples(fams, "msgr_bytes_sent", "_total", entity="client.9100")
            if s.labels["worker"].endswith("-1")] == [4096]
    assert samples(fams, "msgr_connections", entity="osd.91")[0].value == 3
    states = {s.labels["state"]: s.value for s in samples(fams, "msgr_connections_by_state",
                                                           entity="osd.91")}
    assert states["READY"] == 2 and states["CLOSED"] == 1 and sum(states.values()) == 3
    states = {s.labels["state"]: s.value for s in samples(fams, "msgr_connections_by_state",
                                                           entity="client.9100")}
    assert (states["STANDBY"], states["NONE"], states["READY"]) == (1, 1, 1)
    assert samples(fams, "msgr_dispatch_throttle_bytes", entity="osd.91")[0].value == 246
    assert samples(fams, "msgr_dispatch_queue_length", entity="osd.91")[0].value == 8
    assert fams["msgr_dispatch_latency_seconds"].type == "histogram"
    units = {f.name: f.unit for f in metrics.MessengerCollector().collect()}
    assert units["msgr_dispatch_latency_seconds"] == "seconds"      # OpenMetrics UNIT
    count = samples(fams, "msgr_dispatch_latency_seconds", "_count", entity="osd.91")[0].value
    total = samples(fams, "msgr_dispatch_latency_seconds", "_sum", entity="osd.91")[0].value
    assert count == 4 and math.isclose(total, 0.0004 + 0.09)
    le = {s.labels["le"]: s.value for s in samples(fams, "msgr_dispatch_latency_seconds",
                                                    "_bucket", entity="osd.91")}
    assert le["0.0002"] == 0 and le["0.0005"] == 1 and le["0.05"] == 4 and le["+Inf"] == 4
    sq = samples(fams, "msgr_send_queue_latency_seconds", "_count", entity="client.9100")
    assert sq[0].value == 1


def test_stopped_messengers_are_not_exported(fakes):
    m = fakes("mon.77")
    assert samples(scrape(), "msgr_connections", entity="mon.77")
    m._stopped = True
    assert not samples(scrape(), "msgr_connections", entity="mon.77")


def test_every_family_is_described_and_typed(fakes):
    fakes("osd.92")
    fams = scrape()
    for d in METRICS:
        assert d.family in fams, d.name
        assert fams[d.family].type == d.kind
    described = {f.name for f in metrics.MessengerCollector().describe()}
    assert described == {d.family for d in METRICS}


# ---------------------------------------------------------------- metrics/ assets: names
def table_sample_names() -> set:
    out = set()
    for d in METRICS:
        if d.kind == "histogram":
            out |= {d.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            out.add(d.name)
    return out


def test_rules_and_dashboard_name_only_table_metrics_or_recorded_ones():
    rules = (ASSETS / "rules.yml").read_text(encoding="utf-8")
    recorded = record_names(rules)
    assert recorded and all(r.startswith("msgr:") for r in recorded)
    exprs = rule_exprs(rules)
    assert len(exprs) >= len(recorded) + 5
    known = table_sample_names() | recorded
    used = set()
    for e in exprs + dashboard_exprs():
        names = metric_names_in(e)
        assert names <= known, (e, names - known)
        used |= names
    for must in ("msgr_reconnects_total", "msgr_dispatch_latency_seconds_bucket",
                 "msgr_dispatch_queue_length", "msgr_bad_frames_total"):
        assert must in used
    alerts = set(re.findall(r"^\s*- alert:\s*(\S+)", rules, re.M))
    assert {"MsgrReconnectStorm", "MsgrDispatchLatencyRising", "MsgrDispatchQueueGrowing",
            "MsgrBadFrames"} <= alerts


def test_dashboard_is_grafana_json():
    dash = json.loads((ASSETS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(graphs) >= 10 and all(p["targets"] and p["gridPos"]["w"] <= 24 for p in graphs)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job", "instance", "entity"} <= variables


def test_scrape_config_names_node_and_loadgen_jobs():
    text = (ASSETS / "prometheus.yml").read_text(encoding="utf-8")
    jobs = set(re.findall(r"job_name:\s*(\S+)", text))
    assert {"msgr-node", "msgr-loadgen"} <= jobs
    assert "rules.yml" in text


# ---------------------------------------------------------------- msgr.log
class _Conn:
    reprs = 0

    def __repr__(self):
        _Conn.reprs += 1
        return "conn(0x1 peer osd.1 v2:127.0.0.1:6800/7 state READY)"


@pytest.fixture
def logger():
    lg = logging.getLogger("msgr.test_metrics_table")
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(logging.Formatter("%(levelname)s %(funcName)s %(message)s"))
    lg.addHandler(h)
    lg.propagate = False
    yield lg, buf
    lg.removeHandler(h)
    lg.setLevel(logging.NOTSET)
    lg.propagate = True


def test_conn_log_prefixes_like_ceph(logger):
    lg, buf = logger
    lg.setLevel(logging.DEBUG)
    c = _Conn()
    conn_debug(lg, c, "sent %d messages", 3)
    conn_log(lg, logging.WARNING, c, "fault: %s", "bad crc")
    conn_state(lg, c, SimpleNamespace(name="HELLO_CONNECTING"), "AUTH_CONNECTING", "hello done")
    ConnAdapter(lg, c).info("%d%% done", 50)
    lines = buf.getvalue().splitlines()
    prefix = "conn(0x1 peer osd.1 v2:127.0.0.1:6800/7 state READY)"
    assert lines == [
        f"DEBUG test_conn_log_prefixes_like_ceph {prefix} sent 3 messages",
        f"WARNING test_conn_log_prefixes_like_ceph {prefix} fault: bad crc",
        f"DEBUG test_conn_log_prefixes_like_ceph {prefix} state HELLO_CONNECTING -> "
        "AUTH_CONNECTING: hello done",
        f"INFO test_conn_log_prefixes_like_ceph {prefix} 50% done",
    ]


def test_nothing_is_formatted_when_the_level_is_off(logger):
    lg, buf = logger
    lg.setLevel(logging.INFO)
    _Conn.reprs = 0
    c = _Conn()
    conn_debug(lg, c, "x %s", "y")
    conn_state(lg, c, "A", "B")
    conn_log(lg, logging.DEBUG, c, "x")
    ConnAdapter(lg, c).debug("x")
    assert _Conn.reprs == 0 and buf.getvalue() == ""


def test_readme_module_map_is_up_to_date():
    """README.md's module map is generated from the modules' docstrings; it must follow them."""
    from tools import gen_module_map
    current = gen_module_map.README.read_text(encoding="utf-8")
    assert gen_module_map.updated(current) == current, "run python -m tools.gen_module_map"
