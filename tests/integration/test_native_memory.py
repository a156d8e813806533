"""The compiled message path leaks nothing and never hands out a buffer still in use.

* 1,000,000 messages go one way through the compiled path (layout, frames,
  decode, Message, inline dispatch) after a warm-up; the process's RSS and
  tracemalloc's count of live Python memory must stay flat.
* Large messages arrive as views of receive buffers that the messenger reuses
  once the user drops every view of them: views the user keeps must keep their
  bytes while the others' buffers go round again, and memory stays bounded.
"""
from __future__ import annotations

import gc
import hashlib
import os
import threading
import tracemalloc

import pytest

from msgr import Dispatcher, EntityType, Message, Policy
from msgr import _native
from tests.helpers import wait_for

pytestmark = pytest.mark.slow
ASAN = os.environ.get("MSGR_ASAN") == "1"        # under tools/asan.py


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Counter(Dispatcher):
    def __init__(self):
        self.n = 0
        self.cond = threading.Condition()

    def ms_dispatch(self, msg):
        with self.cond:
            self.n += 1
            if self.n % 5000 == 0:
                self.cond.notify_all()
        return True

    def wait(self, n, timeout=60):
        with self.cond:
            return self.cond.wait_for(lambda: self.n >= n, timeout)


def need_native():
    if not _native.NATIVE:
        if os.environ.get("CI") == "true":
            pytest.fail("the native pieces are not built")
        pytest.skip("the native pieces are not built")


def test_a_million_messages_leave_memory_flat(messengers):
    need_native()
    rec = Counter()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec,
                   io_threads=1, dispatch_threads=0)
    c = messengers(policy=Policy.lossy_client(), io_threads=1, dispatch_threads=0)
    conn = c.connect_to(EntityType.OSD, s.bound)
    front = bytes(64)

    def send(upto, sent):
        while sent < upto:              # a window of 20,000: bounded queues on both sides
            for i in range(sent, min(sent + 20_000, upto)):
                conn.send_message(Message(1, front=front, tid=i))
            sent = min(sent + 20_000, upto)
            assert rec.wait(sent), (rec.n, sent)
        return sent

    sent = send(200_000, 0)                                 # warm-up: pools, caches, arenas
    gc.collect()
    tracemalloc.start(1)
    base_py, base_rss = tracemalloc.get_traced_memory()[0], rss()
    sent = send(1_200_000, sent)                            # the million
    gc.collect()
    grown_py, grown_rss = tracemalloc.get_traced_memory()[0] - base_py, rss() - base_rss
    tracemalloc.stop()
    assert rec.n == 1_200_000
    assert grown_py < 1 << 20, f"live Python memory grew by {grown_py} bytes over 1M messages"
    if not ASAN:                # ASan's quarantine holds freed memory back by design
        assert grown_rss < 16 << 20, f"RSS grew by {grown_rss} bytes over 1M messages"


def test_kept_views_keep_their_bytes_while_buffers_are_reused(messengers):
    need_native()
    size, n, keep_every = 200 * 1024, 300, 10

    class Keeper(Dispatcher):
        def __init__(self):
            self.kept, self.count, self.bad = [], 0, 0
            self.done = threading.Event()

        def ms_dispatch(self, msg):
            data = msg.data
            if type(data) is not memoryview:
                self.bad += 1           # a large segment comes as a view, not a copy
            if hashlib.sha256(data).digest() != msg.front:
                self.bad += 1
            if msg.tid % keep_every == 0:
                self.kept.append((msg.front, data))     # held by the user: must not change
            self.count += 1
            if self.count == n:
                self.done.set()
            return True

    rec = Keeper()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec,
                   io_threads=1, dispatch_threads=0)
    c = messengers(policy=Policy.lossy_client(), io_threads=1, dispatch_threads=0)
    conn = c.connect_to(EntityType.OSD, s.bound)
    before = rss()
    for i in range(n):
        data = os.urandom(size)
        conn.send_message(Message(1, front=hashlib.sha256(data).digest(), data=data, tid=i))
        if i % 20 == 19:
            assert wait_for(lambda: rec.count > i - 20, 20)
    assert rec.done.wait(30) and rec.bad == 0
    assert all(hashlib.sha256(d).digest() == f for f, d in rec.kept)
    # 60 MB went through; what stays is what the user keeps (30 x 200 KiB) and the pool
    if not ASAN:
        assert rss() - before < 40 << 20
