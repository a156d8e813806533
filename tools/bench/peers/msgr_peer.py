"""msgr: a ``Messenger`` per process, lossy_client to stateless_server.

``Config(io_threads=1, dispatch_threads=spec.dispatch_threads)`` (other options from ``MSGR_*``);
the ``busy_poll`` variant adds ``ms_busy_poll_us=POLL_US`` on both ends; the ``default``
variant is ``Config()`` as it comes (io_threads=3, dispatch_threads=1).

One-way: the payload travels as the message's ``data`` segment. ``send_message`` never blocks, so
the sender keeps a window per connection (at most 65536 messages unacked, and 32 MiB over all
connections: 2 MiB each for 16): every window/8-th message asks the server for an ack. (With an
8192-message window, 64 B messages ran at ~250-290k/s instead of ~370-440k/s: the sending thread
fills the whole window while holding the GIL before the I/O thread gets to send, so the ack round
trip serialises the pipeline; the payload bytes in flight stay far below 32 MiB either way.) An END message (acked too) closes each
connection's stream; the client waits for its ack before shutting down, so a lossy shutdown
cannot drop queued messages. Several connections are ``connect_to(..., anon=True)`` from one
messenger. Round trip: the client sends the next 64 B ``front`` from ``ms_dispatch`` as soon as
the echo arrives; the server echoes from ``ms_dispatch``.
"""
from __future__ import annotations

import threading
import time

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy

from .common import SETUP_S, now_ns, rt_result
from .plan import POLL_US

MSG_PLAIN, MSG_ACKME, MSG_ACK, MSG_ECHO, MSG_END = 0x7300, 0x7301, 0x7302, 0x7303, 0x7304
WINDOW_BYTES, WINDOW_MSGS = 32 << 20, 65536


def _messenger(name: EntityName, spec, policy: Policy, dispatcher: Dispatcher) -> Messenger:
    if spec.variant == "default":           # what a user who changes nothing gets
        config = Config.from_env()
    else:
        extra = {"ms_busy_poll_us": POLL_US} if spec.variant == "busy_poll" else {}
        config = Config.from_env(io_threads=1, dispatch_threads=spec.dispatch_threads, **extra)
    m = Messenger(name, config=config)
    m.set_default_policy(policy)
    m.add_dispatcher_tail(dispatcher)
    return m


class _Server(Dispatcher):
    """Counts PLAIN/ACKME messages, acks ACKME and END, echoes ECHO; stamps the last END."""

    def __init__(self, conns: int) -> None:
        self.count, self.ends, self.conns, self.t_end = 0, 0, conns, None
        self.done = threading.Event()

    def ms_dispatch(self, msg) -> bool:
        t = msg.type
        if t == MSG_PLAIN:
            self.count += 1
        elif t == MSG_ACKME:
            self.count += 1
            msg.connection.send_message(Message(MSG_ACK, tid=msg.tid))
        elif t == MSG_ECHO:
            msg.connection.send_message(Message(MSG_ECHO, front=msg.front, tid=msg.tid))
        elif t == MSG_END:
            self.ends += 1
            if self.ends == self.conns:
                self.t_end = now_ns()
                self.done.set()
            msg.connection.send_message(Message(MSG_ACK, tid=msg.tid))
        return True


def serve(spec, ctl) -> dict:
    disp = _Server(spec.conns)
    m = _messenger(EntityName(EntityType.OSD, 0), spec, Policy.stateless_server(), disp)
    addr = m.bind("v2:127.0.0.1:0")
    m.start()
    try:
        ctl.ready(str(addr))
        cpu0 = time.process_time()
        disp.done.wait(spec.limit_s + 2 * SETUP_S)
        cpu = time.process_time() - cpu0
        ctl.wait_stop(SETUP_S)                    # the client has the ack of its END
    finally:
        m.shutdown()
        stopped = m.wait(10.0)
    return {"count": disp.count, "ends": disp.ends, "t_end": disp.t_end, "cpu_s": cpu,
            "stopped": stopped}


class _Client(Dispatcher):
    """Counts sessions; records the highest acked tid per connection (``conn.priv`` is its index);
    for round trips, times each echo and sends the next one."""

    def __init__(self, spec, conns: int) -> None:
        self.cv, self.connected, self.acked = threading.Condition(), 0, [0] * conns
        self.spec, self.lat, self.t0, self.conn = spec, [], 0, None
        self.payload, self.done = bytes(spec.size), threading.Event()
        self.stop = 0.0

    def ms_handle_connect(self, conn) -> None:
        with self.cv:
            self.connected += 1
            self.cv.notify_all()

    def ms_dispatch(self, msg) -> bool:
        if msg.type == MSG_ACK:
            with self.cv:
                self.acked[msg.connection.priv] = msg.tid
                self.cv.notify_all()
            return True
        self.lat.append(time.perf_counter_ns() - self.t0)
        if len(self.lat) >= self.spec.n + self.spec.warmup or time.monotonic() > self.stop:
            self.done.set()
        else:
            self.echo()
        return True

    def echo(self) -> None:
        self.t0 = time.perf_counter_ns()
        self.conn.send_message(Message(MSG_ECHO, front=self.payload, tid=len(self.lat) + 1))


def client(spec, addr: str) -> dict:
    disp = _Client(spec, spec.conns)
    m = _messenger(EntityName(EntityType.CLIENT, -1), spec, Policy.lossy_client(), disp)
    m.start()
    try:
        conns = []
        for i in range(spec.conns):
            c = m.connect_to(EntityType.OSD, addr, anon=spec.conns > 1)
            c.priv = i
            conns.append(c)
        with disp.cv:
            if not disp.cv.wait_for(lambda: disp.connected >= spec.conns, SETUP_S):
                raise RuntimeError(f"msgr: {disp.connected} of {spec.conns} sessions within {SETUP_S:g} s")
        if spec.workload == "rt":
            return _roundtrips(spec, disp, conns[0])
        return _oneway(spec, disp, conns)
    finally:
        m.shutdown()
        m.wait(10.0)


def _roundtrips(spec, disp: _Client, conn) -> dict:
    disp.conn, disp.stop = conn, time.monotonic() + spec.limit_s
    cpu0 = time.process_time()
    disp.echo()
    if not disp.done.wait(spec.limit_s + SETUP_S):
        raise RuntimeError(f"msgr round trips stalled after {len(disp.lat)}")
    cpu = time.process_time() - cpu0
    conn.send_message(Message(MSG_END, tid=1))
    with disp.cv:                                 # shutting down at once could drop the END
        disp.cv.wait_for(lambda: disp.acked[0] >= 1, SETUP_S)
    return rt_result(disp.lat, spec.warmup, cpu)


def _oneway(spec, disp: _Client, conns: list) -> dict:
    """Fills each connection's window in turn; waits for an ack only when every window is full."""
    window = max(2, min(WINDOW_MSGS, WINDOW_BYTES // (max(1, spec.size) * len(conns))))
    every, payload, acked = max(1, window // 8), bytes(spec.size), disp.acked
    left, sent, total = spec.per_conn(), [0] * len(conns), 0
    cpu0, t0 = time.process_time(), now_ns()
    stop = t0 + int(spec.limit_s * 1e9)

    def room(i: int) -> int:
        return min(left[i], window - (sent[i] - acked[i]))

    while total < spec.n and now_ns() < stop:
        progress = 0
        for i, conn in enumerate(conns):
            send, tid = conn.send_message, sent[i]
            for _ in range(room(i)):
                tid += 1
                send(Message(MSG_ACKME if tid % every == 0 else MSG_PLAIN, data=payload, tid=tid))
            progress += tid - sent[i]
            left[i] -= tid - sent[i]
            sent[i] = tid
        total += progress
        if not progress:
            with disp.cv:
                disp.cv.wait_for(lambda: any(room(i) > 0 for i in range(len(conns))), 1.0)
    for i, conn in enumerate(conns):
        conn.send_message(Message(MSG_END, tid=sent[i] + 1))
    with disp.cv:
        if not disp.cv.wait_for(lambda: all(acked[i] > sent[i] for i in range(len(conns))), SETUP_S):
            raise RuntimeError(f"msgr: END not acked within {SETUP_S:g} s (acked {acked}, sent {sent})")
    return {"sent": total, "t_start": t0, "cpu_s": time.process_time() - cpu0}
