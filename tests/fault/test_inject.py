"""Seeded random socket failures (ms_inject_socket_failures) under every policy.

A stricter oracle than Ceph's SyntheticInjectTest: on a lossless session every
message arrives exactly once, in order, intact, with no reset and no remote
reset, however often the sockets break underneath.
"""
import random

import pytest

from msgr import EntityType, Message, Policy
from tests.helpers import Recorder, wait_for

N = 600


class Echo(Recorder):
    def ms_dispatch(self, msg):
        with self.lock:
            self.msgs.append(msg)
        msg.connection.send_message(Message(msg.type, front=msg.front, data=msg.data, tid=msg.tid))
        return True


def payloads(seed):
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([0, 16, 300, 4096, 20000])) for _ in range(N)]


def cfg(seed, failures=30):
    return dict(ms_inject_socket_failures=failures, ms_inject_seed=seed,
                ms_initial_backoff=0.005, ms_max_backoff=0.05, io_threads=2)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("policies,bind", [
    ((Policy.stateful_server(), Policy.lossless_client()), False),
    ((Policy.lossless_peer(), Policy.lossless_peer()), True),
    ((Policy.lossless_peer_reuse(), Policy.lossless_peer_reuse()), True),
])
def test_lossless_exactly_once_in_order_under_failures(messengers, seed, policies, bind):
    sd, cd = Echo(), Recorder()
    s = messengers("osd.0", policy=policies[0], bind=True, dispatcher=sd, **cfg(seed))
    c = messengers("osd.1" if bind else "client.-1", policy=policies[1], bind=bind,
                   dispatcher=cd, **cfg(seed + 100))
    conn = c.connect_to(EntityType.OSD, s.bound)
    data = payloads(seed)
    for wave in range(0, N, 25):            # waves: many small batches, many socket ops
        for i in range(wave, wave + 25):
            conn.send_message(Message(3, front=b"%d" % i, data=data[i], tid=i))
        assert wait_for(lambda: len(cd.msgs) >= wave + 25, 30), (wave, len(cd.msgs), c.perf_dump())
    assert [m.tid for m in cd.msgs] == list(range(N))
    assert all(bytes(m.data) == data[m.tid] for m in cd.msgs)
    assert [m.tid for m in sd.msgs] == list(range(N))
    for rec in (sd, cd):
        assert rec.count("reset") == 0 and rec.count("remote_reset") == 0
    faults = c.perf_dump()["connection_faults"] + s.perf_dump()["connection_faults"]
    assert faults >= 2, "the injection must really have broken sockets"


class _Spare:
    """A reactor headroom that always answers yes: early reply writes on every burst."""

    def spare(self, now):
        return True


@pytest.mark.parametrize("seed", [4, 5])
def test_early_reply_writes_keep_lossless_exactly_once(messengers, seed):
    """Inline dispatch writing replies every 2 requests (ms_reply_flush_msgs) while
    sockets break: a write fault in the middle of a burst is handled after the
    burst, and every message still arrives exactly once, in order, both ways."""
    sd, cd = Echo(), Recorder()
    early = dict(dispatch_threads=0, ms_reply_flush_msgs=2)
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd,
                   **cfg(seed), **early)
    c = messengers("client.-1", policy=Policy.lossless_client(), dispatcher=cd,
                   **cfg(seed + 100), **early)
    swapped = []
    for m in (s, c):
        for r in m._pool.reactors:      # each reactor owns its headroom: swap it there
            r.submit(lambda r=r: swapped.append(setattr(r, "headroom", _Spare())))
    assert wait_for(lambda: len(swapped) == 4)
    conn = c.connect_to(EntityType.OSD, s.bound)
    data = payloads(seed)
    for wave in range(0, N, 100):
        for i in range(wave, wave + 100):
            conn.send_message(Message(3, front=b"%d" % i, data=data[i], tid=i))
        assert wait_for(lambda: len(cd.msgs) >= wave + 100, 30), (wave, len(cd.msgs))
    assert [m.tid for m in cd.msgs] == list(range(N))
    assert all(bytes(m.data) == data[m.tid] for m in cd.msgs)
    assert [m.tid for m in sd.msgs] == list(range(N))
    assert sd.count("reset") == 0 and cd.count("reset") == 0
    assert s.perf_dump()["early_reply_writes"] > 0
    assert c.perf_dump()["connection_faults"] + s.perf_dump()["connection_faults"] >= 2


def test_lossy_under_failures_never_hangs_and_resets_cleanly(messengers):
    sd, cd = Echo(), Recorder()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=sd, **cfg(7, 20))
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd, **cfg(8, 20))
    sent = 0
    for _ in range(100):                    # bounded: waves until sockets have broken
        conn = c.connect_to(EntityType.OSD, s.bound)
        for _ in range(10):
            conn.send_message(Message(1, tid=sent))
            sent += 1
        last = sent - 1
        assert wait_for(lambda: any(m.tid == last for m in cd.msgs[-10:]) or conn.is_closed, 10)
        if c.perf_dump()["connection_faults"] >= 3:
            break
    assert c.perf_dump()["connection_faults"] + s.perf_dump()["connection_faults"] >= 3
    assert wait_for(lambda: all(cd.count("reset", k) <= 1 for _, k in cd.events), 5)
    tids = [m.tid for m in cd.msgs]
    assert len(tids) == len(set(tids))                      # at most once
    per_conn = {}
    for m in cd.msgs:
        per_conn.setdefault(m.connection, []).append(m.tid)
    assert all(t == sorted(t) for t in per_conn.values())   # in order per connection
    assert cd.count("reset") >= 1                           # lossy: faults are reported
    assert wait_for(lambda: s.get_dispatch_queue_len() == 0 and c.get_dispatch_queue_len() == 0)


def test_delay_injection_keeps_order_and_delivers_everything(messengers):
    sd, cd = Echo(), Recorder()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd,
                   ms_inject_delay_type="client", ms_inject_delay_probability=0.5,
                   ms_inject_delay_max=0.05, **cfg(11, 40))
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, **cfg(12, 40))
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(200):
        conn.send_message(Message(1, tid=i))
    assert wait_for(lambda: len(cd.msgs) == 200, 30), len(cd.msgs)
    assert [m.tid for m in sd.msgs] == list(range(200))
    assert [m.tid for m in cd.msgs] == list(range(200))
    held = [k._io.intake.delay for k in s._connections() if k._io.intake.delay is not None]
    assert held and sum(d.delayed for d in held) > 0


@pytest.mark.parametrize("seed", [6, 7])
def test_one_message_object_broadcast_to_two_lossless_peers(messengers, seed):
    """Each Message object goes to two servers while sockets break under both sessions:
    both get every message exactly once, in order. (The unit tests in
    test_shared_message.py pin the race this guards; here it is end to end.)"""
    recs = [Recorder(), Recorder()]
    servers = [messengers(f"osd.{k}", policy=Policy.stateful_server(), bind=True,
                          dispatcher=recs[k], **cfg(seed + k)) for k in (0, 1)]
    c = messengers("client.-1", policy=Policy.lossless_client(), dispatcher=Recorder(),
                   **cfg(seed + 100, failures=20))
    conns = [c.connect_to(EntityType.OSD, s.bound) for s in servers]
    for wave in range(0, N, 25):
        for i in range(wave, wave + 25):
            msg = Message(3, front=b"%d" % i, tid=i)
            for conn in conns:
                conn.send_message(msg)
        assert wait_for(lambda: all(len(r.msgs) >= wave + 25 for r in recs), 30), wave
    assert all([m.tid for m in r.msgs] == list(range(N)) for r in recs)
    assert c.perf_dump()["connection_faults"] >= 2
