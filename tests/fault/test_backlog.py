"""Faults while messages wait behind a full receive throttle (the intake's backlog).

The client's dispatch is stuck, so its throttle fills and the messages it decodes
after that wait in the backlog. They count in the session's in_seq (the peer will
not resend them), so whatever happens to the transport they must be dispatched,
once and in order, and the dispatchers' callbacks must not overtake them. A fault
meanwhile is handled at once (the connection redials or goes to STANDBY; it does
not sit on a dead socket until the application drains), and a reconnect is READY
as soon as its handshake is.
"""
import socket
import threading
import time

import pytest

from msgr import Dispatcher, EntityType, Message, Policy
from msgr.protocol.frames import Tag
from msgr.testing.interceptor import Interceptor, tag_bp
from tests.helpers import wait_for

FAST = dict(ms_initial_backoff=0.01, ms_max_backoff=0.2)
MSG_READ = tag_bp(Tag.MESSAGE, "read")


class Log(Dispatcher):
    """Records messages and callbacks in one list, in the order dispatch saw them;
    ``gate``: ms_dispatch waits for it (the stuck application)."""

    def __init__(self, gate=None):
        self.log, self.gate, self.lock = [], gate, threading.Lock()

    def _add(self, item):
        with self.lock:
            self.log.append(item)

    def ms_dispatch(self, msg):
        if self.gate is not None:
            self.gate.wait(20)
        self._add(("msg", msg.tid))
        return True

    def ms_handle_connect(self, conn):
        self._add(("connect",))

    def ms_handle_remote_reset(self, conn):
        self._add(("remote_reset",))

    def ms_handle_refused(self, conn):
        self._add(("refused",))
        return True

    def tids(self):
        with self.lock:
            return [e[1] for e in self.log if e[0] == "msg"]


class Burst(Log):
    """The server: answers tid 100 with ``n`` messages of ``size`` bytes."""

    def __init__(self, n, size):
        super().__init__()
        self.n, self.size, self.conn = n, size, None

    def ms_dispatch(self, msg):
        if msg.tid == 100:
            self.conn = msg.connection
            for i in range(self.n):
                msg.connection.send_message(Message(2, data=bytes(self.size), tid=i))
        return super().ms_dispatch(msg)


def throttled(messengers, n=40, size=4096, max_messages=0, **client_cfg):
    """A stateful server bursting ``n`` messages at a client whose dispatch is stuck
    and whose throttle is full (messages wait): the dispatch throttle (32 KiB), or a
    policy throttle of ``max_messages``. Returns (server, client, conn, gate, server
    log, client log)."""
    gate = threading.Event()
    sd, cd = Burst(n, size), Log(gate)
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd, **FAST)
    cfg = dict(dispatch_threads=1, ms_dispatch_throttle_bytes=32 * 1024, **FAST)
    cfg.update(client_cfg)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, start=False, **cfg)
    if max_messages:
        c.set_policy_throttlers(EntityType.OSD, max_messages=max_messages)
    c.start()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=100))
    stream = conn._life.session.stream      # read off the reactor: a test's peek
    assert wait_for(lambda: c.perf_dump()["throttle_waits"] >= 1
                    and stream.in_seq > c.perf_dump()["messages_received"], 10)   # they wait
    return s, c, conn, gate, sd, cd


def break_socket(conn):
    """The client's socket breaks under it; a keepalive's write finds out."""
    conn._io.transport._sock.shutdown(socket.SHUT_RDWR)
    conn.send_keepalive()


def test_what_waits_survives_a_fault_in_the_next_transports_first_batch(messengers):
    """After a fault, the next transport faults too, in the batch that made it READY:
    the messages that waited from the first transport are not lost or overtaken."""
    n = 200
    s, c, conn, gate, sd, cd = throttled(messengers, n=n, size=200, max_messages=8)
    ic = Interceptor()
    c.interceptor = ic
    hits = ic.count(conn, MSG_READ)
    ic.make_fault(MSG_READ, round=hits + 2)     # the 2nd message read on the next transport
    break_socket(conn)
    assert wait_for(lambda: ic.count(conn, MSG_READ) >= hits + 2, 10)   # the fault came at once
    gate.set()
    assert wait_for(lambda: len(cd.tids()) >= n, 20), cd.tids()
    assert cd.tids() == list(range(n))


def test_a_write_fault_between_runs_is_handled_at_once(messengers):
    """Replies written early (between runs of a burst) fail; a later run of the same
    burst fills the throttle: the fault is still handled at once."""
    gate = threading.Event()

    class Client(Log):
        def ms_can_fast_dispatch(self, msg):
            return msg.tid % 2 == 0

        def ms_fast_dispatch(self, msg):
            self._add(("msg", msg.tid))
            msg.connection.send_message(Message(3, tid=1000 + msg.tid))   # a direct reply

    class Spare:
        def spare(self, now):
            return True

    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True,
                   dispatcher=Burst(24, 512), **FAST)
    cd = Client(gate)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, dispatch_threads=1,
                   ms_dispatch_throttle_bytes=4096, ms_reply_flush_msgs=2, **FAST)
    for r in c._pool.reactors:
        r.submit(setattr, r, "headroom", Spare())   # early writes on, set by each reactor
    ic = Interceptor()
    ic.make_fault(tag_bp(Tag.MESSAGE, "write"), round=2)    # round 1 is our tid 100
    c.interceptor = ic
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=100))
    assert wait_for(lambda: c.perf_dump()["throttle_waits"] >= 1, 10)
    assert wait_for(lambda: c.perf_dump()["reconnects"] >= 1, 10), conn
    gate.set()
    assert wait_for(lambda: sorted(cd.tids()) == list(range(24)), 20), cd.tids()


def test_a_fault_in_the_batch_that_fills_the_throttle_is_handled_at_once(messengers):
    """A bad frame right after messages that fill the throttle: the fault does not
    wait behind them, and the dead transport is no longer read (memory stays bounded)."""
    gate = threading.Event()
    sd, cd = Burst(400, 4096), Log(gate)
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd, **FAST)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, dispatch_threads=1,
                   ms_dispatch_throttle_bytes=32 * 1024, **FAST)
    ic = Interceptor()
    ic.make_fault(MSG_READ, round=10)
    c.interceptor = ic
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=100))
    assert wait_for(lambda: c.perf_dump()["throttle_waits"] >= 1, 10)
    assert wait_for(lambda: c.perf_dump()["reconnects"] >= 1, 5), conn
    received = c.perf_dump()["bytes_received"]
    time.sleep(0.3)
    assert c.perf_dump()["bytes_received"] - received < 1 << 20      # no reading while full
    gate.set()
    assert wait_for(lambda: len(cd.tids()) >= 400, 20)
    assert cd.tids() == list(range(400))


@pytest.mark.parametrize("how", ["remote_reset", "refused"])
def test_callbacks_wait_behind_the_messages(messengers, how):
    """The server forgets the session (remote reset) or is gone (refused): the
    callback comes after the messages that waited, as they were received first."""
    s, c, conn, gate, sd, cd = throttled(messengers)
    received = conn._life.session.stream.in_seq          # tids 0 .. received-1 came in
    if how == "remote_reset":
        sd.conn.mark_down()
    else:
        s.shutdown()
        s.wait()
    break_socket(conn)
    assert wait_for(lambda: c.perf_dump()["reconnects"] >= 1, 10)       # handled at once
    gate.set()
    assert wait_for(lambda: (how,) in cd.log, 10), cd.log
    assert wait_for(lambda: len(cd.tids()) >= received, 10), (cd.log, received)
    first = cd.log.index((how,))
    assert [e[1] for e in cd.log[:first] if e[0] == "msg"] == list(range(received)), cd.log


def test_the_reconnect_is_ready_while_messages_wait(messengers):
    """The new transport's session is READY at once (is_connected, the state); only
    ms_handle_connect waits for the messages received before it."""
    s, c, conn, gate, sd, cd = throttled(messengers)
    received = conn._life.session.stream.in_seq          # tids 0 .. received-1 came in
    break_socket(conn)
    assert wait_for(lambda: c.perf_dump()["reconnects"] >= 1, 10)
    conn.send_message(Message(1, tid=200))
    assert wait_for(lambda: ("msg", 200) in sd.log, 10)   # the session is up again
    assert wait_for(conn.is_connected, 10) and conn.state.name == "READY"
    assert cd.log.count(("connect",)) == 1                 # the reconnect's waits its turn
    gate.set()
    assert wait_for(lambda: cd.log.count(("connect",)) == 2, 10)
    second = len(cd.log) - 1 - cd.log[::-1].index(("connect",))
    assert [e[1] for e in cd.log[:second] if e[0] == "msg"] == list(range(received))
    assert wait_for(lambda: len(cd.tids()) >= 40, 10) and cd.tids() == list(range(40))
