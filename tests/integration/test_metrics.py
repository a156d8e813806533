"""The Prometheus exporter on real messengers: exact counters, faults, histograms, promtool.

Everything is scraped over HTTP from ``msgr.metrics.serve(0)`` and parsed with
prometheus_client's parser. ``promtool`` (Debian's ``prometheus`` package) checks the
exposition and the rules; without it these tests skip, except under CI=true, where
they fail.
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from msgr import ConfigError, EntityType, Message, Policy, TransportError, metrics
from msgr.counters import LATENCY_BOUNDS
from msgr.metrics import METRICS
from tests.helpers import (ASSETS, ROOT, Recorder, dashboard_exprs, metric_names_in, need,
                           record_names, rule_exprs, wait_for)

N = 2000
HISTOGRAMS = ("msgr_dispatch_latency_seconds", "msgr_send_queue_latency_seconds")


@pytest.fixture
def exporter():
    """An exporter port; request it AFTER ``messengers`` so it is closed before the leak check."""
    port = metrics.serve(0)
    yield port
    metrics.stop_servers()


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def scrape(port: int) -> dict:
    return {f.name: f for f in text_string_to_metric_families(scrape_text(port))}


def total(fams: dict, family: str, entity: str, suffix: str = "_total") -> float:
    return sum(s.value for s in fams[family].samples
               if s.name == family + suffix and s.labels.get("entity") == entity)


def echo_pair(messengers, server="osd.7", client="client.-1", **cfg):
    s = messengers(server, policy=Policy.stateless_server(), bind=True,
                   dispatcher=Recorder(reply=True), **cfg)
    cd = Recorder()
    c = messengers(client, policy=Policy.lossy_client(), dispatcher=cd, **cfg)
    return s, c, cd


def send_and_wait(c, s, cd, n: int) -> None:
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(n):
        conn.send_message(Message(1, front=b"f%d" % i, data=b"d" * (i % 300), tid=i))
    assert wait_for(lambda: len(cd.msgs) == n, 30), len(cd.msgs)
    assert wait_for(lambda: s.perf_dump()["messages_sent"] == n
                    and c.perf_dump()["messages_received"] == n, 10)


def stable_scrape(port: int, ms: list) -> tuple:
    """A scrape taken while every perf_dump() stayed the same around it."""
    for _ in range(50):
        before = [m.perf_dump() for m in ms]
        fams = scrape(port)
        if before == [m.perf_dump() for m in ms]:
            return fams, before
        time.sleep(0.1)
    raise AssertionError("the counters never settled")


# ---------------------------------------------------------------- exact counters
def test_counters_are_exact_on_both_sides_and_equal_perf_dump(messengers, exporter):
    s, c, cd = echo_pair(messengers)
    send_and_wait(c, s, cd, N)
    fams, perfs = stable_scrape(exporter, [s, c])
    for m, perf in zip((s, c), perfs):
        e = str(m.name)
        assert total(fams, "msgr_messages_sent", e) == N
        assert total(fams, "msgr_messages_received", e) == N
        for d in METRICS:                        # the exporter and perf_dump() agree on all
            if d.kind == "counter":
                assert total(fams, d.family, e) == perf[d.source], d.name
            elif d.kind == "gauge" and "state" not in d.labels:
                assert total(fams, d.name, e, "") == perf.get(d.source, 0), d.name
        states = {x.labels["state"]: x.value for x in fams["msgr_connections_by_state"].samples
                  if x.labels["entity"] == e}
        assert states["READY"] == 1 and sum(states.values()) == perf["connections"] == 1
        workers = {x.labels["worker"] for x in fams["msgr_messages_received"].samples
                   if x.labels["entity"] == e}
        assert {f"msgr-io-{e}-{i}" for i in range(m.config.io_threads)} <= workers
    for a, b in (("client.-1", "osd.7"), ("osd.7", "client.-1")):
        assert total(fams, "msgr_bytes_sent", a) == total(fams, "msgr_bytes_received", b)
    assert total(fams, "msgr_connection_faults", "osd.7") == 0


def test_faults_injected_show_up_in_connection_faults(messengers, exporter):
    cfg = dict(ms_inject_socket_failures=25, ms_inject_seed=11, ms_initial_backoff=0.005,
               ms_max_backoff=0.05, io_threads=2)
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.8", policy=Policy.stateful_server(), bind=True, dispatcher=sd, **cfg)
    c = messengers("client.-1", policy=Policy.lossless_client(), dispatcher=cd, **cfg)
    conn = c.connect_to(EntityType.OSD, s.bound)
    for wave in range(0, 400, 20):
        for i in range(wave, wave + 20):
            conn.send_message(Message(2, front=b"%d" % i, tid=i))
        assert wait_for(lambda: len(cd.msgs) >= wave + 20, 30), (wave, len(cd.msgs))
    fams, (sp, cp) = stable_scrape(exporter, [s, c])
    faults = total(fams, "msgr_connection_faults", "osd.8") + \
        total(fams, "msgr_connection_faults", "client.-1")
    assert faults == sp["connection_faults"] + cp["connection_faults"] >= 2
    assert total(fams, "msgr_reconnects", "client.-1") == cp["reconnects"]
    assert total(fams, "msgr_messages_received", "osd.8") == sp["messages_received"] >= 400
    assert [m.tid for m in cd.msgs] == list(range(400))        # lossless: exactly once


# ---------------------------------------------------------------- histograms
def test_latency_histograms_are_exported_with_fixed_buckets(messengers, exporter):
    s, c, cd = echo_pair(messengers)
    send_and_wait(c, s, cd, 200)
    text = scrape_text(exporter)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    want_le = [repr(b) for b in LATENCY_BOUNDS] + ["+Inf"]
    for name in HISTOGRAMS:
        assert f"# TYPE {name} histogram" in text
        assert fams[name].type == "histogram"
        for e in ("osd.7", "client.-1"):
            buckets = [x for x in fams[name].samples
                       if x.name == name + "_bucket" and x.labels["entity"] == e]
            assert [x.labels["le"] for x in buckets] == want_le
            values = [x.value for x in buckets]
            assert values == sorted(values)
            count = total(fams, name, e, "_count")
            assert count >= 0 and count == values[-1]
            assert total(fams, name, e, "_sum") >= 0


@pytest.mark.parametrize("dispatch_threads", [1, 0])
def test_latency_histograms_count_every_message(messengers, exporter, dispatch_threads):
    """Every message is observed once per side: dispatch (a dispatch thread, or inline on
    the reactor, where the echo's send_message takes the reactor's direct path) and send
    queue. An expected failure until the hot-path hooks are wired."""
    s, c, cd = echo_pair(messengers, dispatch_threads=dispatch_threads)
    send_and_wait(c, s, cd, N)
    fams, (sp, cp) = stable_scrape(exporter, [s, c])
    for e, perf in (("osd.7", sp), ("client.-1", cp)):
        assert total(fams, "msgr_dispatch_latency_seconds", e, "_count") == N
        assert total(fams, "msgr_send_queue_latency_seconds", e, "_count") == N
        assert perf["dispatch_latency"]["avgcount"] == N
        assert perf["send_queue_latency"]["avgcount"] == N
        dsum = total(fams, "msgr_dispatch_latency_seconds", e, "_sum")
        assert (0 < dsum if dispatch_threads else 0 <= dsum) and dsum < N * 10  # inline: ~0
        assert 0 < total(fams, "msgr_send_queue_latency_seconds", e, "_sum") < N * 10


def test_histogram_switch_stops_observations(messengers, exporter):
    s, c, cd = echo_pair(messengers)
    send_and_wait(c, s, cd, 50)
    before = scrape(exporter)
    old = metrics.set_histograms_enabled(False)
    try:
        conn = c.connect_to(EntityType.OSD, s.bound)
        for i in range(50):
            conn.send_message(Message(1, tid=i))
        assert wait_for(lambda: len(cd.msgs) == 100, 10)
        after = scrape(exporter)
    finally:
        metrics.set_histograms_enabled(old)
    for name in HISTOGRAMS:
        for e in ("osd.7", "client.-1"):
            assert total(after, name, e, "_count") == total(before, name, e, "_count")
    assert total(after, "msgr_messages_received", "osd.7") == 100      # counters stay on


# ---------------------------------------------------------------- promtool and the assets
def test_exposition_passes_promtool_check_metrics(messengers, exporter):
    promtool = need("promtool")
    s, c, cd = echo_pair(messengers)
    send_and_wait(c, s, cd, 100)
    text = scrape_text(exporter)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        (r.returncode, r.stdout, r.stderr)


def test_rules_and_config_pass_promtool():
    promtool = need("promtool")
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"],
                 ["check", "config", "prometheus.yml"]):
        r = subprocess.run([promtool, *args], cwd=ASSETS, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert "SUCCESS" in r.stdout + r.stderr


def test_rules_and_dashboard_name_metrics_the_exporter_exports(messengers, exporter):
    s, c, cd = echo_pair(messengers)
    send_and_wait(c, s, cd, 20)
    exported = {x.name for f in scrape(exporter).values() for x in f.samples}
    rules = (ASSETS / "rules.yml").read_text(encoding="utf-8")
    recorded = record_names(rules)
    for expr in rule_exprs(rules) + dashboard_exprs():
        names = metric_names_in(expr)
        assert {n for n in names if n.startswith("msgr_")} <= exported, (expr, names - exported)
        assert {n for n in names if n.startswith("msgr:")} <= recorded, expr


# ---------------------------------------------------------------- msgr-loadgen --metrics-port
def test_loadgen_serves_metrics_while_it_runs():
    proc = subprocess.Popen([sys.executable, "-m", "tools.loadgen", "local", "--duration", "3",
                             "--metrics-port", "0", "--quiet", "--io-threads", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        port, end = None, time.monotonic() + 30
        while port is None and time.monotonic() < end:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"metrics on http://[\d.]+:(\d+)/metrics", line)
            if m:
                port = int(m.group(1))
        assert port, "msgr-loadgen did not announce its metrics port"
        seen = []                                # positive values: rising while it runs
        for _ in range(100):
            fams = scrape(port)
            v = sum(x.value for x in fams["msgr_messages_received"].samples
                    if x.name == "msgr_messages_received_total")
            if v > 0:
                seen.append(v)
            if len(seen) >= 2 and seen[-1] > seen[0]:
                break
            time.sleep(0.1)
        assert len(seen) >= 2 and seen[-1] > seen[0] > 0, seen
        assert "msgr_dispatch_latency_seconds" in fams
    finally:
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_the_exporter_reports_bad_ports_and_addresses_as_msgr_errors():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(TransportError, match="metrics exporter on 127.0.0.1"):
            metrics.serve(port=taken.getsockname()[1])
    finally:
        taken.close()
    with pytest.raises(TransportError, match="metrics exporter"):
        metrics.serve(0, addr="999.1.1.1")
    with pytest.raises(ConfigError, match="port"):
        metrics.serve(65536)
    with pytest.raises(TypeError):
        metrics.serve("9100")
