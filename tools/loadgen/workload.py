"""msgr-loadgen: a load generator for msgr, after Ceph's ceph_perf_msgr_client/server.

Theory of operation. ``local`` (the default) spawns one server and ``--jobs`` client
processes ("spawn": no fork after threads exist); ``server``/``client`` run the halves apart.
A job is one Messenger with one connection. ``reqreply`` keeps ``--concurrency`` requests
(type 42, ``--msg-size`` bytes of one reused buffer) in flight, sending the next from
``ms_dispatch`` of each reply (type 43, empty, same tid). ``oneway`` streams with at most
``--window`` unacked; every ``window/8``-th asks for an ack (the latency recorded), and a
final REPORT fetches the server's count. Jobs send progress and histogram buckets over a
pipe; the parent merges them. Children end with their pipe (and PR_SET_PDEATHSIG).

    python -m tools.loadgen [local|server|client] [options]    (installed: msgr-loadgen)
"""
from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as mp_wait

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy

from .._proc import Fleet
from .cli import parse_args
from .report import (LatencyHistogram, ProgressLine, finish, serve_metrics, sparse_delta,
                     summarize)

__all__ = ["main", "parse_args", "ClientJob", "LoadServer"]

MSG_OP, MSG_OPREPLY = 42, 43          # CEPH_MSG_OSD_OP / CEPH_MSG_OSD_OPREPLY, as perf_msgr
MSG_ONEWAY, MSG_ONEWAY_ACKME, MSG_ACK, MSG_REPORT, MSG_REPORT_REPLY = range(0x7100, 0x7105)
TICK = 0.5

def _config(opts) -> Config:
    kw = {"ms_inject_socket_failures": opts.inject_socket_failures}
    for name in ("io_threads", "dispatch_threads"):
        if getattr(opts, name) is not None:
            kw[name] = getattr(opts, name)
    if opts.busy_poll_us is not None:
        kw["ms_busy_poll_us"] = opts.busy_poll_us
    return Config.from_env(**kw)


# ---------------------------------------------------------------- server
class LoadServer(Dispatcher):
    """The server messenger (osd.0): replies to requests (inline or from op threads),
    counts one-way messages per connection (in ``conn.priv``) and reports the count."""

    def __init__(self, opts) -> None:
        self.opts, self.queue = opts, queue.SimpleQueue()
        self.workers = [threading.Thread(target=self._work, name=f"loadgen-op-{i}", daemon=True)
                        for i in range(opts.server_op_threads)]
        self.msgr = Messenger(EntityName(EntityType.OSD, 0), config=_config(opts))
        self.msgr.set_default_policy(Policy.stateless_server() if opts.policy == "lossy"
                                     else Policy.stateful_server())
        self.msgr.add_dispatcher_tail(self)

    def start(self):
        """Binds ``--addr`` (default 127.0.0.1, any port), starts; returns the bound address."""
        self.cpu0 = time.process_time()
        addr = self.msgr.bind(self.opts.addr or "v2:127.0.0.1:0")
        for w in self.workers:
            w.start()
        self.msgr.start()
        return addr

    def ms_can_fast_dispatch(self, msg) -> bool:
        """Like ceph_perf_msgr_server: ops are handled inline on the I/O thread
        (Ceph's OSD fast-dispatches client ops), unless op threads are asked for."""
        return not self.workers and msg.type != MSG_REPORT

    def ms_fast_dispatch(self, msg) -> None:
        self.ms_dispatch(msg)

    def ms_dispatch(self, msg) -> bool:
        t, conn = msg.type, msg.connection
        if t == MSG_OP:
            if self.workers:
                self.queue.put(msg)
            else:
                conn.send_message(Message(MSG_OPREPLY, tid=msg.tid))
        elif t == MSG_ONEWAY or t == MSG_ONEWAY_ACKME:
            conn.priv = (conn.priv or 0) + 1
            if t == MSG_ONEWAY_ACKME:
                conn.send_message(Message(MSG_ACK, tid=msg.tid))
        elif t == MSG_REPORT:
            conn.send_message(Message(MSG_REPORT_REPLY, front=b"%d" % (conn.priv or 0), tid=msg.tid))
        else:
            return False
        return True

    def _work(self) -> None:
        while (msg := self.queue.get()) is not None:
            msg.connection.send_message(Message(MSG_OPREPLY, tid=msg.tid))

    def stop(self) -> dict:
        """Shuts down; returns the final ``perf_dump()`` plus ``stopped_cleanly`` and
        ``cpu_s`` (this process's CPU time since ``start()``)."""
        perf = self.msgr.perf_dump()
        perf["cpu_s"] = time.process_time() - self.cpu0
        self.msgr.shutdown()
        perf["stopped_cleanly"] = self.msgr.wait(10.0)
        for _ in self.workers:
            self.queue.put(None)
        for w in self.workers:
            w.join(5.0)
        return perf


def cmd_server(opts) -> int:
    srv = LoadServer(opts)
    print(f"listening on {srv.start()}", flush=True)
    serve_metrics(opts.metrics_port, opts.metrics_addr)
    signal.signal(signal.SIGTERM, signal.default_int_handler)    # SIGTERM, SIGINT: stop
    try:
        time.sleep(opts.duration if opts.duration is not None else 1e9)
    except KeyboardInterrupt:
        pass
    perf = srv.stop()
    print(f"server: received {perf['messages_received']:,} messages, sent {perf['messages_sent']:,},"
          f" faults {perf['connection_faults']}, stopped cleanly: {perf['stopped_cleanly']}")
    return 0 if perf["stopped_cleanly"] else 1


# ---------------------------------------------------------------- client job
class ClientJob(Dispatcher):
    """One client messenger with one connection, driven from ``ms_dispatch``.

    Counters change under ``lock``; ``done`` counts replies (reqreply) or
    messages the server has confirmed (oneway).
    """

    def __init__(self, opts, addr: str, job: int, pipe) -> None:
        self.opts, self.addr, self.job, self.pipe = opts, addr, job, pipe
        self.oneway, self.payload = opts.mode == "oneway", bytes(opts.msg_size)
        self.window = opts.window if self.oneway else opts.concurrency
        self.ack_every, self.think_s = max(1, opts.window // 8), opts.think_time_us / 1e6
        self.hist, self.lock, self.connected = LatencyHistogram(), threading.Lock(), threading.Event()
        self.stamps: dict = {}
        self.sent = self.done = self.lost = self.unexpected = self.acked = 0
        self.base_sent = self.base_done = self.t_first = self.t_last = 0
        self.stopping = self.report_sent = self.report_done = False
        self.error = self.conn = self.start_mono = None
        self.cpu0 = self.cpu_s = 0.0

    def _fill(self) -> None:
        """Sends until the window is full (``lock`` held)."""
        stamps, payload, conn, limit = self.stamps, self.payload, self.conn, self.opts.ops
        if not self.oneway:
            sent, window, clock = self.sent, self.window, time.perf_counter_ns
            while not self.stopping and sent < limit and len(stamps) < window:
                sent += 1
                self.sent = sent
                stamps[sent] = clock()
                conn.send_message(Message(MSG_OP, data=payload, tid=sent))
            return
        while not self.stopping and self.sent < limit and self.sent - self.acked < self.window:
            self.sent += 1
            if self.sent % self.ack_every:
                conn.send_message(Message(MSG_ONEWAY, data=payload, tid=self.sent))
            else:
                stamps[self.sent] = time.perf_counter_ns()
                conn.send_message(Message(MSG_ONEWAY_ACKME, data=payload, tid=self.sent))

    def ms_can_fast_dispatch(self, msg) -> bool:
        """Replies drive the next request inline on the I/O thread, as
        ceph_perf_msgr_client does, unless a think time must be slept."""
        return not self.think_s and (msg.type == MSG_OPREPLY or msg.type == MSG_ACK)

    def ms_fast_dispatch(self, msg) -> None:
        self.ms_dispatch(msg)

    def ms_dispatch(self, msg) -> bool:
        now, t = time.perf_counter_ns(), msg.type
        if t == MSG_REPORT_REPLY:             # the server's count on this connection: the end
            count = int(bytes(msg.front) or b"0")
            with self.lock:
                diff = self.sent - self.base_sent - count
                self.done, self.t_last, self.report_done = self.base_done + count, now, True
                self.lost, self.unexpected = self.lost + max(0, diff), self.unexpected + max(0, -diff)
            return True
        if t != MSG_OPREPLY and t != MSG_ACK:
            return False
        if self.think_s:
            time.sleep(self.think_s)
        with self.lock:
            t0 = self.stamps.pop(msg.tid, None)
            if t0 is None:
                self.unexpected += 1
                return True
            self.hist.record(now - t0)
            self.t_last = now
            self.done += 1 if t == MSG_OPREPLY else msg.tid - self.acked
            self.acked = msg.tid
            self._fill()
        return True

    def ms_handle_connect(self, conn) -> None:
        self.connected.set()

    def ms_handle_reset(self, conn) -> bool:
        """A lossy session died: what was in flight is lost; reconnect and go on."""
        with self.lock:
            if conn is not self.conn:
                return False
            self.lost += (self.sent - self.acked) if self.oneway else len(self.stamps)
            self.stamps.clear()
            self.acked = self.base_sent = self.sent
            self.base_done, self.report_sent = self.done, False
            self.conn = self.msgr.connect_to(EntityType.OSD, self.addr)
            self._fill()
        return True

    def ms_handle_refused(self, conn) -> bool:
        self.error, self.stopping = self.error or f"connection to {self.addr} refused", True
        self.connected.set()
        return True

    def run(self) -> dict:
        """Connects, runs until the limits, shuts down; returns the job's result dict."""
        self.msgr = m = Messenger(EntityName(EntityType.CLIENT, -1), config=_config(self.opts))
        m.set_default_policy(Policy.lossy_client() if self.opts.policy == "lossy"
                             else Policy.lossless_client())
        m.add_dispatcher_tail(self)
        m.start()
        try:
            self.conn = m.connect_to(EntityType.OSD, self.addr)
            if not self.connected.wait(self.opts.stall_timeout):
                self.error = f"no session with {self.addr} after {self.opts.stall_timeout:g} s"
            elif not self.error:
                self._drive()
        finally:
            perf = m.perf_dump()
            m.shutdown()
            if not m.wait(10.0):
                self.error = (self.error or "") + " (msgr: Messenger.wait(10) returned False)"
        start, span = self.start_mono, (self.t_last - self.t_first) / 1e9
        return {"job": self.job, "done": self.done, "sent": self.sent, "lost": self.lost,
                "unexpected": self.unexpected, "start": start,
                "end": start + span if start and self.t_last else start,
                "hist": self.hist.to_dict(), "perf": perf, "cpu_s": self.cpu_s, "error": self.error}

    def _drive(self) -> None:
        self.cpu0 = time.process_time()
        start = self.start_mono = time.monotonic()
        self.t_first = time.perf_counter_ns()
        with self.lock:
            self._fill()
        snap, prev_done, last_change = self.hist.snapshot(), 0, start
        while True:
            try:
                if self.pipe.poll(TICK):
                    self.pipe.recv()              # "stop"
                    self.stopping = True
            except (EOFError, OSError):           # the parent is gone
                self.stopping = True
            now = time.monotonic()
            self.stopping = self.stopping or now >= start + self.opts.duration
            snap = self._progress(snap)
            if self.done != prev_done or self.report_done:
                prev_done, last_change = self.done, now
            if self._finished():
                self.cpu_s = time.process_time() - self.cpu0
                return
            if now - last_change > self.opts.stall_timeout:
                self.error = (f"stalled: no progress for {self.opts.stall_timeout:g} s (sent "
                              f"{self.sent}, done {self.done}, awaiting {len(self.stamps)})")
                return

    def _finished(self) -> bool:
        with self.lock:
            if not (self.stopping or self.sent >= self.opts.ops):
                return False
            self.stopping = True
            if not self.oneway:
                return not self.stamps
            if not self.report_sent:
                self.report_sent = True
                self.conn.send_message(Message(MSG_REPORT, tid=self.sent))
            return self.report_done

    def _progress(self, snap: list) -> list:
        now_snap, perf = self.hist.snapshot(), self.msgr.perf_dump()
        report = {"start": self.start_mono, "t": time.monotonic(), "done": self.done,
                  "faults": perf["connection_faults"], "hist": sparse_delta(now_snap, snap)}
        Fleet.send(self.pipe, ("progress", self.job, report))
        return now_snap


# ---------------------------------------------------------------- processes
def _client_proc(opts, addr: str, job: int, pipe) -> None:
    Fleet.child_setup()
    if job == 0 and opts.command == "client":
        serve_metrics(opts.metrics_port, opts.metrics_addr)
    result = ClientJob(opts, addr, job, pipe).run()
    Fleet.send(pipe, ("result", job, result))
    sys.exit(1 if result["error"] else 0)


def _server_proc(opts, pipe) -> None:
    Fleet.child_setup()
    srv = LoadServer(opts)
    pipe.send(("listening", -1, str(srv.start())))
    serve_metrics(opts.metrics_port, opts.metrics_addr)
    pipe.poll(opts.duration + 2 * opts.stall_timeout + 120.0)   # "stop", or the parent is gone
    Fleet.send(pipe, ("result", -1, srv.stop()))


def _run_clients(opts, addr: str, fleet: Fleet, progress: ProgressLine) -> dict:
    """Spawns the jobs and collects their progress and results (Ctrl-C: stop and report)."""
    pipes = {fleet.spawn(_client_proc, opts, addr, job): job for job in range(opts.jobs)}
    results, interrupted = {}, 0
    deadline = time.monotonic() + opts.duration + 2 * opts.stall_timeout + 60.0
    while pipes and time.monotonic() < deadline:
        try:
            ready = mp_wait(list(pipes), timeout=TICK)
        except KeyboardInterrupt:
            interrupted += 1
            if interrupted > 1:
                raise
            for c in pipes:
                Fleet.send(c, "stop")
            continue
        for c in ready:
            try:
                kind, job, data = c.recv()
            except (EOFError, OSError):
                kind, job, data = "result", pipes[c], {"job": pipes[c], "error": "exited, no result"}
            if kind == "progress":
                progress.update(job, data)
            else:
                results[job] = data
                del pipes[c]
                progress.rates.pop(job, None)
        progress.tick()
    results.update({j: {"job": j, "error": "no result before the deadline"} for j in pipes.values()})
    return results


def cmd_clients(opts) -> int:
    """``local`` and ``client``: runs the jobs (and for ``local`` the server), then reports."""
    fleet, progress, server, addr = Fleet(), ProgressLine(opts.msg_size, opts.quiet), None, opts.addr
    try:
        spipe = fleet.spawn(_server_proc, opts) if opts.command == "local" else None
        addr = Fleet.expect(spipe, "listening", 60.0) if spipe else addr
        results = _run_clients(opts, addr, fleet, progress)
        if spipe:
            spipe.send("stop")
            server = Fleet.expect(spipe, "result", 20.0)
    finally:
        progress.close()
        forced = fleet.end_all(grace=15.0)
    summary = summarize(dict(vars(opts), addr=addr), [results[j] for j in sorted(results)],
                        server, progress.timeline)
    summary["errors"] += [f"child pid {pid} had to be terminated" for pid in forced]
    return finish(summary, lossless=opts.policy == "lossless", json_path=opts.json,
                  injected=bool(opts.inject_socket_failures), plot_path=opts.plot)


def main(argv=None) -> int:
    """The ``msgr-loadgen`` entry point; returns the exit status."""
    opts = parse_args(argv)
    try:
        return cmd_server(opts) if opts.command == "server" else cmd_clients(opts)
    except RuntimeError as e:                 # a child process failed to start or answer
        print(f"msgr-loadgen: {e}", file=sys.stderr)
        return 1
