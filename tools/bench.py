"""bench.py: msgr against a raw-socket baseline, measured in ONE run on this machine.

    python tools/bench.py [--quick] [--json FILE]

Measures (a) msgr one-way 4 KiB messages/s on one connection (client -> server,
the server counts; delivery inline and on 1 dispatch thread), (b) msgr 64 B round
trip latency (one in flight; median and p99), and (c) the same two workloads over
plain blocking sockets with the same bytes on the wire as a msgr2 frame of that
payload (a 4-byte length prefix + preamble 32 + header 41 + crc 4 + payload +
epilogue 13): batched ``sendmsg`` and a 4 MiB ``recv_into`` for one-way, one
send/recv per message for the round trip. The receiving side always runs in a
second process ("spawn"); as in reference/perf.md the receiver is pinned to the first
allowed CPU and the sender to the second (``--no-pin``: the scheduler chooses, and a round
trip on one core skips this VM's ~25 us cross-core wake-ups). Every run stops at a count
or a time limit.
Per-message CPU comes from ``time.process_time()`` of each process over its run.
Absolute numbers drift between runs and machines: read the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not __package__ and os.path.isdir(os.path.join(ROOT, "msgr")):
    sys.path.insert(0, ROOT)                       # run by path from a checkout: the in-tree msgr

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy  # noqa: E402

if __package__:
    from .loadgen_fleet import Fleet
else:
    from tools.loadgen_fleet import Fleet  # noqa: E402

FRAME_OVERHEAD = 32 + 41 + 4 + 13                 # msgr2 rev1 crc mode, one segment
MSG_PLAIN, MSG_ACKME, MSG_ACK, MSG_ECHO = 0x7200, 0x7201, 0x7202, 0x7203
WINDOW, ACK_EVERY, WARMUP = 8192, 1024, 200
LIMIT_S = 15.0                                    # any one run stops after this long
PIN = {"server": None, "client": None}             # CPU numbers, set by main()


def _pin(role: str) -> None:
    if PIN[role] is not None:
        os.sched_setaffinity(0, {PIN[role]})


def _stats(lat_ns: list) -> dict:
    """Median, p99 and min (nearest rank) of latencies in ns, in microseconds."""
    s = sorted(lat_ns) or [0]

    def pick(p: float) -> float:
        return s[min(len(s) - 1, max(0, -(-len(s) * p // 100) - 1))] / 1e3
    return {"n": len(lat_ns), "median_us": pick(50), "p99_us": pick(99), "min_us": s[0] / 1e3}


# ---------------------------------------------------------------- raw sockets
def _listen() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv


def _accept(srv: socket.socket) -> socket.socket:
    srv.settimeout(LIMIT_S)
    conn, _ = srv.accept()
    conn.settimeout(None)                           # blocking: the peer's close ends every wait
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=LIMIT_S)
    s.settimeout(None)                              # blocking: sendmsg sends whole batches
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _raw_sink(pin: dict, pipe) -> None:
    """Counts length-prefixed frames read into a 4 MiB buffer; answers an empty frame with b"k"."""
    Fleet.child_setup()
    PIN.update(pin)
    _pin("server")
    srv = _listen()
    pipe.send(("port", 0, srv.getsockname()[1]))
    conn, buf, unpack = _accept(srv), bytearray(4 << 20), struct.Struct("<I").unpack_from
    cpu0, count, have, view = time.process_time(), 0, 0, memoryview(buf)
    while n := conn.recv_into(view[have:]):
        have, off = have + n, 0
        while have - off >= 4:
            size = unpack(buf, off)[0]
            if have - off < 4 + size:
                break
            off += 4 + size
            if size:
                count += 1
            else:
                conn.sendall(b"k")                  # the end marker
        buf[:have - off], have = bytes(view[off:have]), have - off   # the partial frame: a copy
    pipe.send(("result", 0, (count, time.process_time() - cpu0)))


def _raw_echo(pin: dict, pipe) -> None:
    """Echoes each frame with one recv (until whole) and one send."""
    Fleet.child_setup()
    PIN.update(pin)
    _pin("server")
    srv = _listen()
    pipe.send(("port", 0, srv.getsockname()[1]))
    conn, buf = _accept(srv), bytearray(1 << 16)
    cpu0, view = time.process_time(), memoryview(buf)
    while True:
        have = conn.recv_into(buf)
        if not have:
            break
        while have < 4 or have < 4 + int.from_bytes(buf[:4], "little"):
            have += conn.recv_into(view[have:])
        conn.sendall(view[:have])
    pipe.send(("result", 0, (0, time.process_time() - cpu0)))


def raw_oneway(n: int, payload: int) -> dict:
    """Sends ``n`` frames in batches of 512 per sendmsg; the sink counts them."""
    frame = struct.pack("<I", FRAME_OVERHEAD + payload) + bytes(FRAME_OVERHEAD + payload)
    fleet = Fleet()
    pipe = fleet.spawn(_raw_sink, PIN)
    try:
        sock = _connect(Fleet.expect(pipe, "port", 30.0))
        batch, sent = [frame] * 512, 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        while sent < n and time.perf_counter() - t0 < LIMIT_S:
            k = min(512, n - sent)
            _sendmsg_all(sock, batch[:k] if k < 512 else batch)
            sent += k
        sock.sendall(bytes(4))                      # the end marker: an empty frame
        sock.recv(1)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        sock.close()
        count, server_cpu = Fleet.expect(pipe, "result", 30.0)
    finally:
        fleet.end_all(10.0)
    return _oneway_figures(sent, count, elapsed, cpu, server_cpu)


def _sendmsg_all(sock: socket.socket, bufs: list) -> None:
    total, done = sum(len(b) for b in bufs), sock.sendmsg(bufs)
    if done < total:                                # rare on a blocking socket: finish the rest
        sock.sendall(b"".join(bufs)[done:])


def raw_roundtrip(n: int, payload: int) -> dict:
    frame = struct.pack("<I", FRAME_OVERHEAD + payload) + bytes(FRAME_OVERHEAD + payload)
    fleet = Fleet()
    pipe = fleet.spawn(_raw_echo, PIN)
    try:
        sock = _connect(Fleet.expect(pipe, "port", 30.0))
        buf, lat = bytearray(len(frame)), []
        view, clock = memoryview(buf), time.perf_counter_ns
        cpu0, end = time.process_time(), time.monotonic() + LIMIT_S
        for _ in range(n + WARMUP):
            t0 = clock()
            sock.sendall(frame)
            have = sock.recv_into(buf)
            while have < len(frame):
                have += sock.recv_into(view[have:])
            lat.append(clock() - t0)
            if time.monotonic() > end:
                break
        cpu = time.process_time() - cpu0
        sock.close()
        _, server_cpu = Fleet.expect(pipe, "result", 30.0)
    finally:
        fleet.end_all(10.0)
    return _rt_figures(lat[WARMUP:], cpu, server_cpu, len(lat))


def _oneway_figures(sent, count, elapsed, cpu, server_cpu) -> dict:
    return {"sent": sent, "received": count, "elapsed_s": elapsed, "msgs_per_s": count / elapsed,
            "client_cpu_us_per_msg": cpu / max(1, count) * 1e6,
            "server_cpu_us_per_msg": server_cpu / max(1, count) * 1e6}


def _rt_figures(lat, cpu, server_cpu, total) -> dict:
    out = _stats(lat)
    out.update(client_cpu_us_per_rt=cpu / max(1, total) * 1e6,
               server_cpu_us_per_rt=server_cpu / max(1, total) * 1e6)
    return out


# ---------------------------------------------------------------- msgr
class _Server(Dispatcher):
    """Counts messages; acks MSG_ACKME; echoes MSG_ECHO."""

    def __init__(self) -> None:
        self.count = 0

    def ms_dispatch(self, msg) -> bool:
        self.count += 1
        if msg.type == MSG_ACKME:
            msg.connection.send_message(Message(MSG_ACK, tid=msg.tid))
        elif msg.type == MSG_ECHO:
            msg.connection.send_message(Message(MSG_ECHO, front=msg.front, tid=msg.tid))
        return True


def _msgr_server(dispatch_threads: int, pin: dict, pipe) -> None:
    Fleet.child_setup()
    PIN.update(pin)
    _pin("server")
    m = Messenger(EntityName(EntityType.OSD, 0), config=_config(dispatch_threads))
    m.set_default_policy(Policy.stateless_server())
    disp = _Server()
    m.add_dispatcher_tail(disp)
    addr = m.bind("v2:127.0.0.1:0")
    m.start()
    pipe.send(("addr", 0, str(addr)))
    cpu0 = time.process_time()
    if pipe.poll(4 * LIMIT_S):
        pipe.recv()                                 # "stop"
    cpu = time.process_time() - cpu0
    m.shutdown()
    stopped = m.wait(10.0)
    pipe.send(("result", 0, (disp.count, cpu, stopped)))


def _config(dispatch_threads: int) -> Config:
    return Config.from_env(dispatch_threads=dispatch_threads)


class _Client(Dispatcher):
    """One-way: tracks the highest acked tid. Round trip: sends the next echo from ms_dispatch."""

    def __init__(self, n: int = 0, payload: bytes = b"") -> None:
        self.cv, self.connected, self.done = threading.Condition(), threading.Event(), threading.Event()
        self.acked, self.n, self.payload, self.lat, self.t0, self.conn = 0, n, payload, [], 0, None
        self.end = time.monotonic() + LIMIT_S

    def ms_handle_connect(self, conn) -> None:
        self.connected.set()

    def ms_dispatch(self, msg) -> bool:
        if msg.type == MSG_ACK:
            with self.cv:
                self.acked = msg.tid
                self.cv.notify()
            return True
        self.lat.append(time.perf_counter_ns() - self.t0)
        if len(self.lat) >= self.n or time.monotonic() > self.end:
            self.done.set()
        else:
            self.echo()
        return True

    def echo(self) -> None:
        self.t0 = time.perf_counter_ns()
        self.conn.send_message(Message(MSG_ECHO, front=self.payload, tid=len(self.lat) + 1))


def _with_msgr(dispatch_threads: int, client: _Client, body):
    """Starts a server process and a client messenger, runs ``body(conn)``, tears down."""
    fleet = Fleet()
    pipe = fleet.spawn(_msgr_server, dispatch_threads, PIN)
    m = Messenger(EntityName(EntityType.CLIENT, -1), config=_config(dispatch_threads))
    m.set_default_policy(Policy.lossy_client())
    m.add_dispatcher_tail(client)
    m.start()
    try:
        client.conn = m.connect_to(EntityType.OSD, Fleet.expect(pipe, "addr", 30.0))
        if not client.connected.wait(10.0):
            raise RuntimeError("msgr: no session with the bench server within 10 s")
        out = body(client.conn)
        pipe.send("stop")
        count, server_cpu, stopped = Fleet.expect(pipe, "result", 30.0)
    finally:
        m.shutdown()
        client_stopped = m.wait(10.0)
        fleet.end_all(10.0)
    if not (stopped and client_stopped):
        print("warning: a msgr messenger did not stop within 10 s", file=sys.stderr)
    return out, count, server_cpu


def msgr_oneway(n: int, size: int, dispatch_threads: int) -> dict:
    """Streams ``n`` messages with at most WINDOW unacked; the last one is always acked."""
    client, payload = _Client(), bytes(size)

    def body(conn):
        sent, cpu0, t0 = 0, time.process_time(), time.perf_counter()
        while sent < n and time.perf_counter() - t0 < LIMIT_S:
            with client.cv:
                client.cv.wait_for(lambda: sent - client.acked < WINDOW, timeout=1.0)
                room = min(n - sent, WINDOW - (sent - client.acked))
            for _ in range(room):
                sent += 1
                last = sent == n or sent % ACK_EVERY == 0
                conn.send_message(Message(MSG_ACKME if last else MSG_PLAIN, data=payload, tid=sent))
        if sent % ACK_EVERY and sent != n:          # stopped by the time limit: one acked marker
            sent += 1
            conn.send_message(Message(MSG_ACKME, data=payload, tid=sent))
        with client.cv:
            client.cv.wait_for(lambda: client.acked >= sent, timeout=LIMIT_S)
        return sent, time.perf_counter() - t0, time.process_time() - cpu0

    (sent, elapsed, cpu), count, server_cpu = _with_msgr(dispatch_threads, client, body)
    if count != sent:
        print(f"warning: msgr one-way sent {sent} but the server counted {count}", file=sys.stderr)
    return _oneway_figures(sent, count, elapsed, cpu, server_cpu)


def msgr_roundtrip(n: int, size: int, dispatch_threads: int) -> dict:
    client = _Client(n + WARMUP, bytes(size))

    def body(conn):
        cpu0 = time.process_time()
        client.echo()
        if not client.done.wait(LIMIT_S + 5.0):
            print(f"warning: msgr round trips stalled after {len(client.lat)}", file=sys.stderr)
        return time.process_time() - cpu0

    cpu, count, server_cpu = _with_msgr(dispatch_threads, client, body)
    return _rt_figures(client.lat[WARMUP:], cpu, server_cpu, len(client.lat))


# ---------------------------------------------------------------- driver
def run(quick: bool) -> dict:
    n_oneway, n_rt = (50_000, 5_000) if quick else (200_000, 20_000)
    res = {"quick": quick, "cpus": os.cpu_count(), "python": sys.version.split()[0], "pinned": PIN}
    _pin("client")
    steps = [("raw_oneway_4k", lambda: raw_oneway(n_oneway, 4096)),
             ("msgr_oneway_4k_inline", lambda: msgr_oneway(n_oneway, 4096, 0)),
             ("msgr_oneway_4k_1dispatch", lambda: msgr_oneway(n_oneway, 4096, 1)),
             ("raw_rt_64", lambda: raw_roundtrip(n_rt, 64)),
             ("msgr_rt_64_inline", lambda: msgr_roundtrip(n_rt, 64, 0)),
             ("msgr_rt_64_1dispatch", lambda: msgr_roundtrip(n_rt, 64, 1))]
    for name, step in steps:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        res[name] = step()
    return res


_LABELS = {"raw_oneway_4k": "one-way 4 KiB, raw sockets", "raw_rt_64": "round trip 64 B, raw sockets",
           "msgr_oneway_4k_inline": "one-way 4 KiB, msgr inline",
           "msgr_oneway_4k_1dispatch": "one-way 4 KiB, msgr 1 dispatch thread",
           "msgr_rt_64_inline": "round trip 64 B, msgr inline",
           "msgr_rt_64_1dispatch": "round trip 64 B, msgr 1 dispatch thread"}


def table(r: dict) -> str:
    """The results as a text table with the msgr/baseline ratios."""
    base_ow, base_rt = r["raw_oneway_4k"], r["raw_rt_64"]
    rows = [("workload", "result", "CPU us/msg client + server", "msgr/baseline")]
    for name in ("raw_oneway_4k", "msgr_oneway_4k_inline", "msgr_oneway_4k_1dispatch"):
        x = r[name]
        rows.append((_LABELS[name], f"{x['msgs_per_s']:,.0f} msgs/s",
                     f"{x['client_cpu_us_per_msg']:.2f} + {x['server_cpu_us_per_msg']:.2f}",
                     f"{x['msgs_per_s'] / base_ow['msgs_per_s']:.3f} of the rate"))
    for name in ("raw_rt_64", "msgr_rt_64_inline", "msgr_rt_64_1dispatch"):
        x = r[name]
        rows.append((_LABELS[name], f"median {x['median_us']:,.1f} p99 {x['p99_us']:,.1f} us",
                     f"{x['client_cpu_us_per_rt']:.2f} + {x['server_cpu_us_per_rt']:.2f}",
                     f"{x['median_us'] / base_rt['median_us']:.2f}x the median"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer messages (about 4x shorter)")
    p.add_argument("--json", metavar="FILE", help="save every figure as JSON")
    p.add_argument("--no-pin", action="store_true", help="do not pin receiver/sender to CPUs 0/1")
    opts = p.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if not opts.no_pin and len(cpus) >= 2:
        PIN.update(server=cpus[0], client=cpus[1])
    results = run(opts.quick)
    print(table(results))
    print("raw sockets: blocking, the same bytes per message as a msgr2 frame of that payload;"
          " round trips are one in flight; CPU is process_time() per message (per round trip)")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
