"""Helpers the test modules share (imported as ``tests.helpers``; fixtures live in conftest.py)."""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from msgr import Dispatcher, Message

__all__ = ["ROOT", "ASSETS", "wait_for", "Recorder", "need", "need_cffi", "rule_exprs",
           "record_names", "dashboard_exprs", "metric_names_in"]

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "metrics"


def wait_for(pred, timeout: float = 10.0, interval: float = 0.005) -> bool:
    """Polls ``pred()`` until true or ``timeout``; returns its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


class Recorder(Dispatcher):
    """Records every callback; messages go to a queue and a list."""

    def __init__(self, reply: bool = False) -> None:
        self.q: queue.Queue = queue.Queue()
        self.msgs: list = []
        self.events: list = []
        self.reply = reply
        self.lock = threading.Lock()

    def ms_dispatch(self, msg):
        with self.lock:
            self.msgs.append(msg)
        if self.reply:
            msg.connection.send_message(Message(msg.type, front=msg.front, tid=msg.tid))
        self.q.put(msg)
        return True

    def _ev(self, name, conn):
        with self.lock:
            self.events.append((name, conn))

    def ms_handle_connect(self, conn):
        self._ev("connect", conn)

    def ms_handle_accept(self, conn):
        self._ev("accept", conn)

    def ms_handle_reset(self, conn):
        self._ev("reset", conn)
        return True

    def ms_handle_remote_reset(self, conn):
        self._ev("remote_reset", conn)

    def ms_handle_refused(self, conn):
        self._ev("refused", conn)
        return True

    def count(self, name, conn=None) -> int:
        with self.lock:
            return sum(1 for n, c in self.events if n == name and (conn is None or c is conn))

    def get(self, timeout: float = 10.0) -> Message:
        return self.q.get(timeout=timeout)


def need(tool: str) -> str:
    """The tool's path; skip when missing, but fail under CI=true (CI installs it)."""
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not installed (Debian package 'prometheus'; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path



def rule_exprs(text: str) -> list:
    """Every ``expr:`` of a rules file (plain or folded ``>`` blocks), without a YAML library."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", line)
        if not m:
            continue
        if m.group(2) not in (">", "|", ">-", "|-"):
            out.append(m.group(2).strip().strip("'\""))
            continue
        indent, body = len(m.group(1)), []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt.strip())
        out.append(" ".join(body).strip())
    return out


def record_names(text: str) -> set:
    return set(re.findall(r"^\s*- record:\s*(\S+)\s*$", text, re.M))


def dashboard_exprs() -> list:
    dash = json.loads((ASSETS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    out = []
    for p in dash["panels"]:
        out += [t["expr"] for t in p.get("targets", ())]
        for sub in p.get("panels", ()):
            out += [t["expr"] for t in sub.get("targets", ())]
    out += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def metric_names_in(expr: str) -> set:
    """Series names an expression selects: msgr_* (exported) and msgr:* (recorded)."""
    expr = re.sub(r'"[^"]*"', '""', expr)              # not inside label values
    return set(re.findall(r"\bmsgr[_:][a-zA-Z0-9_:]*", expr))


def need_cffi():
    """The cffi backend of msgr._native; skips (fails when CI=true) if it is not built."""
    try:
        from msgr._native import cffi_backend
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("cffi extension missing: run python cffi_build/build_native.py")
        pytest.skip("cffi extension not built")
    return cffi_backend
