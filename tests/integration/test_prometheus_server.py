"""A real Prometheus server (Debian's ``prometheus``) scrapes a messenger under load.

The test starts ``prometheus`` on loopback with a temporary config (scrape interval
1 s, the project's ``metrics/rules.yml``) and data dir, points it at
``msgr.metrics.serve(0)``, drives a few thousand messages from a client messenger to
a server messenger in this process, and asks Prometheus's HTTP API for ``up`` and a
rising ``msgr_messages_received_total``; it also checks that every rule loads and
evaluates and that every dashboard expression is valid PromQL. Every wait is bounded
(30 s); Prometheus is stopped by its PID. Without ``prometheus`` the test skips, except
under CI=true, where it fails.
"""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from msgr import EntityType, Message, Policy, metrics
from tests.helpers import Recorder, dashboard_exprs, need, record_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "metrics" / "rules.yml"
WAIT = 30.0
BURST, TOTAL = 25, 15_000         # 500 messages/s while Prometheus scrapes; at most 30 s of it

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromServer:
    """A prometheus process we own: started on 127.0.0.1, stopped by PID."""

    def __init__(self, binary: str, tmp: Path, target_port: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {json.dumps(str(RULES))}\n"
            "scrape_configs:\n  - job_name: msgr-test\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n", encoding="utf-8")
        self.log = open(tmp / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp)
        self.log_path = tmp / "prometheus.log"

    def get(self, path: str, **params) -> dict:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def query(self, expr: str) -> list:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_ready(self) -> None:
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus not ready within 30 s: "
                             + self.log_path.read_text(errors="replace")[-2000:])

    def wait_value(self, expr: str, pred, what: str) -> float:
        """Polls an instant query until one of its samples satisfies ``pred``."""
        end, seen = time.monotonic() + WAIT, None
        while time.monotonic() < end:
            for r in self.query(expr):
                seen = float(r["value"][1])
                if pred(seen):
                    return seen
            time.sleep(0.25)
        raise AssertionError(f"{what}: {expr} never satisfied the condition (last {seen})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class Load(threading.Thread):
    """Sends a burst of messages every 50 ms until stopped or TOTAL is reached."""

    def __init__(self, conn) -> None:
        super().__init__(name="test-load", daemon=True)
        self.conn, self.sent, self.halt = conn, 0, threading.Event()

    def run(self) -> None:
        while self.sent < TOTAL and not self.halt.wait(0.05):
            for _ in range(BURST):
                self.sent += 1
                self.conn.send_message(Message(1, data=b"x" * 512, tid=self.sent))


def check_rules(prom: PromServer) -> None:
    """Every rule of rules.yml is loaded and evaluates without error."""
    def rules() -> list:
        return [r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
    got = rules()
    assert record_names(RULES.read_text(encoding="utf-8")) <= {r["name"] for r in got}
    end = time.monotonic() + WAIT
    while any(r.get("health") != "ok" for r in got) and time.monotonic() < end:
        time.sleep(0.5)
        got = rules()
    bad = [(r["name"], r.get("health"), r.get("lastError")) for r in got if r.get("health") != "ok"]
    assert not bad


def check_dashboard(prom: PromServer) -> None:
    """Every dashboard expression is valid PromQL (Grafana's variables filled in)."""
    for expr in dashboard_exprs():
        if expr.startswith("label_values("):
            continue                                   # a Grafana function, not PromQL
        q = expr.replace("$__rate_interval", "1m")
        for var in ("$job", "$instance", "$entity"):
            q = q.replace(var, ".*")
        prom.query(q)


def test_prometheus_scrapes_a_messenger_under_load(messengers, tmp_path):
    binary = need("prometheus")
    server = messengers("osd.5", policy=Policy.stateless_server(), bind=True,
                        dispatcher=Recorder(reply=True))
    client = messengers("client.-1", policy=Policy.lossy_client(), dispatcher=Recorder())
    port = metrics.serve(0)
    prom = load = None
    try:
        prom = PromServer(binary, tmp_path, port)
        load = Load(client.connect_to(EntityType.OSD, server.bound))
        load.start()
        prom.wait_ready()
        prom.wait_value('up{job="msgr-test"}', lambda v: v == 1, "target up")
        recv = 'sum(msgr_messages_received_total{job="msgr-test", entity="osd.5"})'
        first = prom.wait_value(recv, lambda v: v > 0, "messages received")
        prom.wait_value(recv, lambda v: v > first, "messages received rising")
        prom.wait_value('msgr:messages_received:rate1m{entity="osd.5"}', lambda v: v > 0,
                        "recording rule")
        prom.wait_value('msgr_connections{job="msgr-test", entity="osd.5"}', lambda v: v == 1,
                        "connections gauge")
        check_rules(prom)
        check_dashboard(prom)
        assert prom.query('up{job="msgr-test"}')[0]["value"][1] == "1"
    finally:
        if load is not None:
            load.halt.set()
            load.join(10)
        if prom is not None:
            prom.stop()
        metrics.stop_servers()
