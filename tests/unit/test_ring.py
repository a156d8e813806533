"""The SPSC ring set, one thread: construction, the publish/wait protocol, close.

Every behavioural test runs against both backends (the ``nat`` fixture: ``pure``
and ``cffi_backend``); the cffi one is skipped when the extension is not built,
unless CI=true.
"""
from __future__ import annotations

import pytest


def test_ring_construction(nat):
    rs = nat.RingSet(3, 5)
    assert (rs.nrings, rs.capacity, rs.mask) == (3, 8, 7)
    assert len(rs.slots) == 3 and all(len(s) == 8 for s in rs.slots)
    assert rs.slots[0] is not rs.slots[1]
    assert nat.RingSet(1, 2).capacity == 2
    assert nat.RingSet(1, 1024).capacity == 1024
    assert nat.RingSet(1, 1025).capacity == 2048
    for bad in ((0, 8), (-1, 8), (1, 1), (1, 0)):
        with pytest.raises(ValueError):
            nat.RingSet(*bad)
    for _ in range(200):  # allocation and finalisation
        nat.RingSet(4, 16)
    assert not rs.closed


def test_ring_single_thread_protocol(nat):
    rs = nat.RingSet(2, 4)
    assert rs.wait([0, 0], 0) == [0, 0]
    assert rs.head(0) == 0 and rs.head(1) == 0
    rs.slots[1][0] = "a"
    rs.slots[1][1] = "b"
    rs.publish(1, 2)
    rs.publish(1, 2)  # no-op
    assert rs.wait([0, 0], None) == [0, 2]
    assert rs.wait([0, 0], 0.0) == [0, 2]
    assert rs.head(1) == 0
    assert rs.wait([0, 2], 0) == [0, 2]
    assert rs.head(1) == 2
    with pytest.raises(ValueError):
        rs.publish(1, 1)
    with pytest.raises(IndexError):
        rs.publish(2, 1)
    with pytest.raises(IndexError):
        rs.publish(-1, 1)
    with pytest.raises(IndexError):
        rs.head(2)
    with pytest.raises(ValueError):
        rs.wait([0], 0)


def test_ring_close_drains_first(nat):
    rs = nat.RingSet(1, 8)
    rs.slots[0][0] = 1
    rs.publish(0, 1)
    rs.close()
    rs.close()  # idempotent
    assert rs.closed
    assert rs.wait([0], None) == [1]
    assert rs.wait([1], None) is None
    assert rs.wait([1], 0) is None
