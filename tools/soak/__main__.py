"""tools.soak: Ceph's SyntheticInjectTest workload against msgr, for minutes, with an oracle.

    python -m tools.soak --minutes N [--seed S]
        [--policy lossless_peer|lossless_client|lossless_peer_reuse]
        [--failures 30] [--peers 4] [--drain 60] [--json FILE]

Not run in CI. Theory of operation. ``--peers`` echo servers (``osd.N``) and as
many clients on 127.0.0.1, all with ``ms_inject_socket_failures=--failures``, as
in Ceph's SyntheticInjectTest family (``src/test/msgr/test_msgr.cc``):
lossless_client to stateful_server with unbound clients; lossless_peer(_reuse)
on both sides with bound clients, so servers may redial them. One seeded driver
thread sends requests from random clients to random servers (data 32 B..256 KiB,
log-uniform; ``front`` carries sender, server, connection id, sequence number,
incarnation, length and the data's crc32), marks random client connections down
(the next send dials anew) and restarts random servers (shutdown, wait, a new
Messenger with the same name and nonce bound on the same port). Servers echo.

The oracle (:class:`Tracker`) follows each request and its echo: received once,
in order per connection, intact. A lossless session may drop messages only
across an event the user saw after sending them: its own ``mark_down`` of that
connection or restart of that server, or ``ms_handle_remote_reset`` /
``ms_handle_reset`` on the client connection or on the server-side connection
that carried the echo. A close excuses nothing older than a message of the same
connection that arrived, and a restart nothing older than one the same server
incarnation got (echoed): a gap inside one session's stream is a loss. Excused
drops are "dropped by reported reset"; other missing messages are "lost". A
second copy is excused only if the connection that got the first one was marked
down or reset after it was sent (:meth:`Tracker._duplicate`). After
``--minutes`` the run drains (at most ``--drain`` s) and shuts every messenger
down. Exit status 0 only if nothing was lost, duplicated, reordered or corrupt
and every messenger stopped. ``SOAK_DEBUG=1`` prints each unexcused duplicate.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import random
import struct
import sys
import time
import zlib
from collections import Counter, defaultdict

from msgr import (Config, Dispatcher, EntityName, EntityType, Message, Messenger,
                  Policy)

from .oracle import Tracker

MSG_REQ, MSG_ECHO = 0x7300, 0x7301
HDR = struct.Struct("<IBHHIQIII")     # magic kind sender server conn_id seq inc length crc
MAGIC = 0x534F414B                    # "SOAK"
MIN_SIZE, MAX_SIZE = 32, 256 * 1024
REPORT_EVERY, STOP_TIMEOUT = 10.0, 30.0
POLICIES = {  # name: (server policy, client policy, clients bound)
    "lossless_client": (Policy.stateful_server(), Policy.lossless_client(), False),
    "lossless_peer": (Policy.lossless_peer(), Policy.lossless_peer(), True),
    "lossless_peer_reuse": (Policy.lossless_peer_reuse(), Policy.lossless_peer_reuse(), True),
}
FIGURES = ("requests_sent", "echoes_sent", "req_received", "echo_received", "awaiting_echo",
           "duplicated", "duplicated_req", "duplicated_echo", "out_of_order", "corrupt",
           "resets", "remote_resets", "mark_downs", "restarts")
_COUNTED = ("connection_faults", "early_reply_writes")   # perf_dump counters reported


def parse(msg, kind: int):
    """The header of ``msg`` and whether its data matches it (None: unparsable)."""
    front = bytes(msg.front)
    if len(front) != HDR.size:
        return None, False
    hdr = HDR.unpack(front)
    ok = hdr[0] == MAGIC and hdr[1] == kind and hdr[7] == len(msg.data) \
        and hdr[8] == zlib.crc32(msg.data)
    return hdr, ok


class EchoServer(Dispatcher):
    """Echoes each request on its connection (tagged as a path); reports resets."""

    def __init__(self, tracker: Tracker, index: int, inc: int) -> None:
        self.tracker, self.index, self.inc = tracker, index, inc
        self.tags = itertools.count(1)

    def ms_dispatch(self, msg) -> bool:
        hdr, ok = parse(msg, 0)
        if hdr is None:
            self.tracker.bump("corrupt")
            return True
        conn = msg.connection
        if conn.priv is None:
            conn.priv = (self.index, self.inc, next(self.tags))
        if self.tracker.on_request(hdr, ok, self.inc, conn.priv):
            echo = HDR.pack(MAGIC, 1, *hdr[2:6], self.inc, *hdr[7:9])
            conn.send_message(Message(MSG_ECHO, front=echo, data=msg.data))
        return True

    def ms_handle_remote_reset(self, conn) -> None:
        self.tracker.event(conn.priv, "remote_reset")

    def ms_handle_reset(self, conn) -> bool:
        self.tracker.event(conn.priv, "reset")
        return True


class SoakClient(Dispatcher):
    """Checks echoes; reports resets on the client side."""

    def __init__(self, tracker: Tracker, index: int) -> None:
        self.tracker, self.index = tracker, index

    def ms_dispatch(self, msg) -> bool:
        hdr, ok = parse(msg, 1)
        if hdr is None:
            self.tracker.bump("corrupt")
        else:
            self.tracker.on_echo(hdr, ok, self.stream_of(msg.connection))
        return True

    def ms_handle_remote_reset(self, conn) -> None:
        self.tracker.event(self.stream_of(conn), "remote_reset")

    def ms_handle_reset(self, conn) -> bool:
        self.tracker.event(self.stream_of(conn), "reset")
        return True

    def stream_of(self, conn):
        """The stream a client connection carries (None: the driver never sent on it)."""
        return None if conn.priv is None else (self.index, conn.priv)


class Soak:
    """The fleet, the driver loop and the reports."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.rng, self.tracker = args, random.Random(args.seed), Tracker()
        self.server_policy, self.client_policy, self.bind_clients = POLICIES[args.policy]
        nonces = self.rng.sample(range(1, 1 << 32), 2 * args.peers)
        self.server_nonces, self.client_nonces = nonces[:args.peers], nonces[args.peers:]
        self.servers: list = [None] * args.peers
        self.server_addrs: list = [None] * args.peers
        self.incarnations = [0] * args.peers
        self.clients: list = []
        self.conn_ids = itertools.count(1)
        self.stream_seq: dict = defaultdict(int)
        self.dead = Counter()           # perf_dump counters of stopped servers
        self.timeline = []
        self.blob = random.Random(args.seed).randbytes(2 * MAX_SIZE)

    def _config(self) -> Config:
        return Config(io_threads=1, dispatch_threads=self.args.dispatch_threads,
                      ms_inject_socket_failures=self.args.failures,
                      ms_inject_seed=self.rng.randrange(1, 1 << 31), ms_initial_backoff=0.05,
                      ms_max_backoff=1.0)

    def start_server(self, i: int) -> None:
        m = Messenger(EntityName(EntityType.OSD, i), nonce=self.server_nonces[i],
                      config=self._config())
        m.set_default_policy(self.server_policy)
        m.add_dispatcher_tail(EchoServer(self.tracker, i, self.incarnations[i]))
        port, deadline = self.server_addrs[i].port if self.server_addrs[i] else 0, \
            time.monotonic() + 10.0
        while True:
            try:
                self.server_addrs[i] = m.bind(f"v2:127.0.0.1:{port}")
                break
            except Exception:                     # the old listener's port is not free yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        m.start()
        self.servers[i] = m

    def start_client(self, i: int) -> None:
        name = EntityName(EntityType.OSD, 100 + i) if self.bind_clients else \
            EntityName(EntityType.CLIENT, i)
        m = Messenger(name, nonce=self.client_nonces[i], config=self._config())
        m.set_default_policy(self.client_policy)
        m.add_dispatcher_tail(SoakClient(self.tracker, i))
        if self.bind_clients:
            m.bind("v2:127.0.0.1:0")
        m.start()
        self.clients.append(m)

    def restart_server(self, i: int) -> None:
        old = self.servers[i]
        old.shutdown()
        if not old.wait(STOP_TIMEOUT):
            raise RuntimeError(f"{old} did not stop within {STOP_TIMEOUT}s")
        self.tracker.restart(i, self.incarnations[i])   # stamped once it has stopped
        dump = old.perf_dump()
        self.dead.update({k: dump[k] for k in _COUNTED})
        self.incarnations[i] += 1
        self.start_server(i)

    def _pick(self):
        ci, si = self.rng.randrange(len(self.clients)), self.rng.randrange(len(self.servers))
        return ci, si, self.clients[ci].connect_to(EntityType.OSD, self.server_addrs[si])

    def send_one(self) -> bool:
        ci, si, conn = self._pick()
        if self.tracker.window_full((ci, si)):
            return False
        if conn.priv is None:
            conn.priv = next(self.conn_ids)
        self.stream_seq[(ci, conn.priv)] += 1
        seq = self.stream_seq[(ci, conn.priv)]
        size = int(MIN_SIZE * 2 ** (self.rng.random() * math.log2(MAX_SIZE // MIN_SIZE)))
        off = self.rng.randrange(len(self.blob) - size + 1)
        data = memoryview(self.blob)[off:off + size]
        key = (ci, conn.priv, seq)
        self.tracker.on_send(key, si, size)
        conn.send_message(Message(MSG_REQ, data=data, front=HDR.pack(
            MAGIC, 0, ci, si, conn.priv, seq, 0, size, zlib.crc32(data))))
        if conn.is_closed:
            self.tracker.closed_at_send(key)
        return True

    def mark_down_one(self) -> None:
        ci, _, conn = self._pick()
        self.tracker.event(None if conn.priv is None else (ci, conn.priv), "mark_down")
        conn.mark_down()

    def run(self) -> int:
        for i in range(self.args.peers):
            self.start_server(i)
        for i in range(self.args.peers):
            self.start_client(i)
        t0 = time.monotonic()
        try:
            self._drive(t0, t0 + self.args.minutes * 60.0)
            self._drain(t0, time.monotonic() + self.args.drain)
        finally:
            stopped = self._stop_all()
        return self._final(t0, stopped)

    def _drive(self, t0: float, end: float) -> None:
        rng, a, next_report = self.rng, self.args, t0 + REPORT_EVERY
        md_rate, rs_rate = a.markdowns_per_s, 1.0 / a.restart_every if a.restart_every else 0.0
        next_md = t0 + rng.expovariate(md_rate) if md_rate else math.inf
        next_rs = t0 + rng.expovariate(rs_rate) if rs_rate else math.inf
        while (now := time.monotonic()) < end:
            if now >= next_md:
                self.mark_down_one()
                next_md = now + rng.expovariate(md_rate)
            elif now >= next_rs:
                self.restart_server(rng.randrange(len(self.servers)))
                next_rs = time.monotonic() + rng.expovariate(rs_rate)
            elif not self.send_one():
                time.sleep(0.001)
            if now >= next_report:
                self.report(now - t0, "run")
                next_report += REPORT_EVERY

    def _drain(self, t0: float, end: float) -> None:
        next_report = time.monotonic() + REPORT_EVERY
        while time.monotonic() < end and self.tracker.snapshot()["awaiting_echo"]:
            time.sleep(0.05)
            if time.monotonic() >= next_report:
                self.report(time.monotonic() - t0, "drain")
                next_report += REPORT_EVERY

    def _stop_all(self) -> bool:
        fleet = [m for m in self.servers + self.clients if m is not None]
        self.final_counts = self.counts()
        for m in fleet:
            m.shutdown()
        stuck = [m for m in fleet if not m.wait(STOP_TIMEOUT)]
        for m in stuck:
            print(f"soak: {m} did not stop within {STOP_TIMEOUT}s", file=sys.stderr)
        return not stuck

    def counts(self) -> dict:
        """The ``_COUNTED`` perf_dump counters over every messenger, stopped ones included."""
        total = Counter(self.dead)
        for m in self.servers + self.clients:
            if m is not None:
                dump = m.perf_dump()
                total.update({k: dump[k] for k in _COUNTED})
        return {k: total[k] for k in _COUNTED}

    def figures(self, counts: dict | None = None) -> dict:
        c = self.tracker.snapshot()
        f = {"sent": c["requests_sent"] + c["echoes_sent"],
             "received": c["req_received"] + c["echo_received"]}
        f.update({k: c[k] for k in FIGURES + ("duplicated_after_reported_reset",)})
        counts = self.counts() if counts is None else counts
        f["faults"] = counts["connection_faults"]
        f["early_reply_writes"] = counts["early_reply_writes"]
        return f

    def report(self, elapsed: float, phase: str) -> None:
        f = self.figures()
        self.timeline.append({"t": round(elapsed, 1), "phase": phase, **f})
        print(f"[{elapsed:6.0f}s {phase:5}] sent {f['sent']} received {f['received']} "
              f"awaiting {f['awaiting_echo']} dup {f['duplicated']} ooo {f['out_of_order']} "
              f"corrupt {f['corrupt']} resets {f['resets']} remote_resets {f['remote_resets']} "
              f"faults {f['faults']} mark_downs {f['mark_downs']} restarts {f['restarts']} "
              f"early_writes {f['early_reply_writes']}",
              flush=True)

    def _final(self, t0: float, stopped: bool) -> int:
        f, v = self.figures(self.final_counts), self.tracker.verdicts(self.incarnations)
        dropped = {k[len("dropped_"):]: n for k, n in v.items() if k.startswith("dropped_")}
        f.update(lost=v["lost_requests"] + v["lost_echoes"], lost_requests=v["lost_requests"],
                 lost_echoes=v["lost_echoes"], dropped_by_reported_reset=sum(dropped.values()),
                 dropped_by=dropped, all_stopped=stopped,
                 seconds=round(time.monotonic() - t0, 1))
        self.timeline.append({"t": f["seconds"], "phase": "final", **f})
        print("final: " + " ".join(f"{k} {val}" for k, val in f.items()), flush=True)
        bad = f["lost"] or f["duplicated"] or f["out_of_order"] or f["corrupt"] or not stopped
        if self.args.json:
            with open(self.args.json, "w") as fh:
                json.dump({"args": vars(self.args), "final": f, "ok": not bad,
                           "timeline": self.timeline}, fh, indent=2)
        print("soak: " + ("FAILED" if bad else "OK"), flush=True)
        return 1 if bad else 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {__package__}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True, help="how long to send")
    p.add_argument("--seed", type=int, default=1, help="seeds the driver and socket failures")
    p.add_argument("--policy", choices=sorted(POLICIES), default="lossless_peer")
    p.add_argument("--failures", type=int, default=30, help="ms_inject_socket_failures (1 in N)")
    p.add_argument("--peers", type=int, default=4, help="servers, and as many clients")
    p.add_argument("--markdowns-per-s", type=float, default=2.0,
                   help="client mark_down()s per second on average (0: none)")
    p.add_argument("--restart-every", type=float, default=8.0,
                   help="mean seconds between server restarts (0: none)")
    p.add_argument("--drain", type=float, default=60.0, help="max seconds to drain at the end")
    p.add_argument("--dispatch-threads", type=int, default=1,
                   help="per messenger; 0 dispatches on the reactor, so echoes take the direct "
                        "send path and long bursts get early reply writes (ms_reply_flush_msgs)")
    p.add_argument("--json", help="write the figures and the timeline to this file")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.peers < 1 or min(
            args.failures, args.drain, args.markdowns_per_s, args.restart_every) < 0:
        p.error("--minutes must be > 0, --peers >= 1, the other numbers >= 0")
    return args


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    print(f"soak: policy {args.policy}, {args.peers} servers + {args.peers} clients, "
          f"1-in-{args.failures} socket failures, {args.minutes:g} min, seed {args.seed}",
          flush=True)
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
