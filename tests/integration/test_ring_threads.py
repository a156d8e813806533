"""The SPSC ring set across threads: wake-ups, close, two producers under stress.

Every behavioural test runs against both backends (the ``nat`` fixture: ``pure``
and ``cffi_backend``); the cffi one is skipped when the extension is not built,
unless CI=true.
"""
from __future__ import annotations

import os
import random
import threading
import time


def test_ring_wait_timeout(nat):
    rs = nat.RingSet(2, 8)
    t0 = time.monotonic()
    assert rs.wait([0, 0], 0.05) == [0, 0]
    assert time.monotonic() - t0 >= 0.045


def _wait_until_sleeping(rs):
    deadline = time.monotonic() + 10
    while not rs._consumer_sleeping():
        assert time.monotonic() < deadline, "consumer never went to sleep"
        os.sched_yield()


def _start_consumer(rs, heads, result):
    def run():
        result.append(rs.wait(heads, None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_ring_consumer_woken_by_one_publish(nat):
    rs = nat.RingSet(3, 8)
    result = []
    thread = _start_consumer(rs, [0, 0, 0], result)
    try:
        _wait_until_sleeping(rs)
        rs.slots[2][0] = "item"
        rs.publish(2, 1)
        thread.join(10)
        assert not thread.is_alive()
        assert result == [[0, 0, 1]]
        assert rs.slots[2][0] == "item"
    finally:
        rs.close()
        thread.join(10)


def test_ring_close_wakes_waiting_consumer(nat):
    rs = nat.RingSet(2, 8)
    result = []
    thread = _start_consumer(rs, [0, 0], result)
    try:
        _wait_until_sleeping(rs)
        rs.close()
        thread.join(10)
        assert not thread.is_alive()
        assert result == [None]
    finally:
        rs.close()
        thread.join(10)


def _producer(rs, ring, count, seed, errors):
    rnd = random.Random(seed)
    slots, mask, cap = rs.slots[ring], rs.mask, rs.capacity
    tail = cached_head = 0
    try:
        while tail < count:
            batch = min(rnd.randint(1, 300), count - tail)
            while batch:
                if tail - cached_head >= cap:
                    cached_head = rs.head(ring)
                    if tail - cached_head >= cap:
                        os.sched_yield()  # full: back off, retry
                        continue
                room = min(batch, cap - (tail - cached_head))
                for _ in range(room):
                    slots[tail & mask] = (ring, tail)
                    tail += 1
                batch -= room
                rs.publish(ring, tail)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def test_ring_two_producers_stress(nat):
    count, nprod = 200_000, 2
    rs = nat.RingSet(nprod, 1024)
    errors = []
    producers = [threading.Thread(target=_producer,
                                  args=(rs, i, count, 100 + i, errors),
                                  daemon=True) for i in range(nprod)]
    expected = [0] * nprod
    bad = []

    def consume():
        heads = [0] * nprod
        mask = rs.mask
        while (tails := rs.wait(heads, None)) is not None:
            for i in range(nprod):
                ring = rs.slots[i]
                for s in range(heads[i], tails[i]):
                    item = ring[s & mask]
                    ring[s & mask] = None
                    if item != (i, expected[i]):
                        bad.append((i, s, item))
                    expected[i] += 1
            heads = tails

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    for p in producers:
        p.start()
    try:
        for p in producers:
            p.join(120)
            assert not p.is_alive()
    finally:
        rs.close()
        consumer.join(120)
    assert not consumer.is_alive()
    assert errors == []
    assert bad == []
    assert expected == [count] * nprod
    assert all(x is None for ring in rs.slots for x in ring)
