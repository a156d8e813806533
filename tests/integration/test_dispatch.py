"""Dispatcher chain rules, fast dispatch, and receive throttles."""
import threading

import pytest

from msgr import Dispatcher, EntityType, Message, Policy
from tests.helpers import Recorder, wait_for


class Fast(Recorder):
    """Fast-dispatches even tids on the I/O thread; odd ones go the normal way."""

    def __init__(self):
        super().__init__()
        self.fast_threads = set()

    def ms_can_fast_dispatch(self, msg):
        return msg.tid % 2 == 0

    def ms_fast_dispatch(self, msg):
        self.fast_threads.add(threading.current_thread().name)
        self.ms_dispatch(msg)


@pytest.mark.parametrize("dispatch_threads", [0, 1])
def test_fast_dispatch_runs_on_io_thread(messengers, dispatch_threads):
    """Mixed fast and normal dispatch; every throttle share comes back."""
    fast = Fast()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=fast,
                   dispatch_threads=dispatch_threads)
    s_throttles = s._delivery.throttles_for(EntityType.CLIENT)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(200):
        conn.send_message(Message(1, tid=i, data=bytes(i)))
    assert wait_for(lambda: len(fast.msgs) == 200)
    assert fast.fast_threads and all(n.startswith("msgr-io") for n in fast.fast_threads)
    assert sorted(m.tid for m in fast.msgs) == list(range(200))
    assert s.get_dispatch_queue_len() == 0
    assert wait_for(lambda: all(t.current == 0 for t, _ in s_throttles.throttles))
    assert s._delivery.dispatch_throttle.current == 0


class Buggy(Fast):
    """Raises from every callback for some tids: 3 in ms_can_fast_dispatch, 4 in
    ms_fast_dispatch, 5 in ms_dispatch, and from ms_handle_accept."""

    def ms_can_fast_dispatch(self, msg):
        if msg.tid == 3:
            raise RuntimeError("user bug in ms_can_fast_dispatch")
        return super().ms_can_fast_dispatch(msg)

    def ms_fast_dispatch(self, msg):
        super().ms_fast_dispatch(msg)
        if msg.tid == 4:
            raise RuntimeError("user bug in ms_fast_dispatch")

    def ms_dispatch(self, msg):
        super().ms_dispatch(msg)
        if msg.tid == 5:
            raise RuntimeError("user bug in ms_dispatch")
        return True

    def ms_handle_accept(self, conn):
        super().ms_handle_accept(conn)
        raise RuntimeError("user bug in ms_handle_accept")


@pytest.mark.parametrize("dispatch_threads", [0, 1])
def test_a_dispatcher_that_raises_loses_nothing_else(messengers, dispatch_threads):
    """Each exception is logged; the other messages arrive and the session stays up."""
    bug = Buggy()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=bug,
                   dispatch_threads=dispatch_threads)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(10):
        conn.send_message(Message(1, tid=i))
    assert wait_for(lambda: len(bug.msgs) == 10)
    assert sorted(m.tid for m in bug.msgs) == list(range(10))      # tid 3 went the normal way
    assert s.perf_dump()["connection_faults"] == 0 and c.perf_dump()["connection_faults"] == 0
    assert conn.is_connected()


def test_dispatch_chain_first_true_wins_and_events_broadcast(messengers):
    class Declines(Recorder):
        def ms_dispatch(self, msg):
            super().ms_dispatch(msg)
            return False

    first, second, third = Declines(), Recorder(), Recorder()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True)
    s.add_dispatcher_tail(second)
    s.add_dispatcher_head(first)
    s.add_dispatcher_tail(third)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    c.connect_to(EntityType.OSD, s.bound).send_message(Message(1))
    assert wait_for(lambda: len(second.msgs) == 1)
    assert len(first.msgs) == 1 and len(third.msgs) == 0
    assert wait_for(lambda: all(d.count("accept") == 1 for d in (first, second, third)))
    c.mark_down_all()
    assert wait_for(lambda: first.count("reset") == 1)
    # reset is first-True-wins: Recorder returns True, so only the first sees it
    assert second.count("reset") == 0 and third.count("reset") == 0


def test_policy_message_throttle_applies_back_pressure(messengers):
    release = threading.Event()
    seen = []
    in_flight = []

    class Slow(Dispatcher):
        def ms_dispatch(self, msg):
            seen.append(msg.tid)
            in_flight.append(s.perf_dump()["throttle_waits"])
            release.wait(10)
            return True

    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, start=False)
    s.add_dispatcher_tail(Slow())
    s.set_policy_throttlers(EntityType.CLIENT, max_messages=2)
    s.start()
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(50):
        conn.send_message(Message(1, tid=i, data=b"x" * 1000))
    try:
        assert wait_for(lambda: s.perf_dump()["throttle_waits"] >= 1)
        # at most the throttle's worth of messages handed over (+ the accept event)
        assert s.get_dispatch_queue_len() <= 3
    finally:
        release.set()
    assert wait_for(lambda: len(seen) == 50)
    assert seen == list(range(50))


def test_dispatch_throttle_bytes(messengers):
    gate = threading.Event()

    class Gate(Recorder):
        def ms_dispatch(self, msg):
            gate.wait(10)
            return super().ms_dispatch(msg)

    g = Gate()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=g,
                   ms_dispatch_throttle_bytes=100_000)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(40):
        conn.send_message(Message(1, tid=i, data=bytes(30_000)))
    try:
        assert wait_for(lambda: s.perf_dump()["throttle_waits"] >= 1)
        assert s._delivery.dispatch_throttle.current <= 100_000
    finally:
        gate.set()
    assert wait_for(lambda: len(g.msgs) == 40)
    assert [m.tid for m in g.msgs] == list(range(40))
    assert wait_for(lambda: s._delivery.dispatch_throttle.current == 0)


def test_mark_down_discards_messages_still_queued_for_dispatch(messengers):
    first = threading.Event()

    class MarkDownOnFirst(Recorder):
        def ms_dispatch(self, msg):
            super().ms_dispatch(msg)
            if not first.is_set():
                first.set()
                import time
                time.sleep(0.2)                 # let the rest queue up behind us
                msg.connection.mark_down()
            return True

    sd = MarkDownOnFirst()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=sd)
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(500):
        conn.send_message(Message(1, tid=i))
    assert first.wait(10)
    assert wait_for(lambda: s.perf_dump()["messages_dropped"] > 0 or len(sd.msgs) == 500)
    assert len(sd.msgs) < 500                   # queued ones were discarded with the connection
    assert wait_for(lambda: len(sd.msgs) + s.perf_dump()["messages_dropped"]
                    == s.perf_dump()["messages_received"])
