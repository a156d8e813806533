"""tools.bench.instructions: user-space instructions per round trip, counted by callgrind.

    python -m tools.bench.instructions [--peers msgr,uvloop,asyncio] [--n 2000]
    python -m tools.bench.instructions --workload reqreply [--side server|client] [--n 2000]

Wall-clock round trips on a shared VM drift by 1.5x within minutes; instruction
counts do not. For each peer an echo server runs under ``valgrind
--tool=callgrind`` twice, for ``n`` and ``2n`` round trips of a 64 B message
(one in flight) driven by a client outside valgrind; the difference of the two
totals over ``n`` is the server's cost per round trip, without its start-up.
Printed: instructions per round trip and each peer's ratio to msgr.

* msgr: a ``Messenger`` (stateless server, ``io_threads=1``, inline dispatch)
  echoing ``front`` from ``ms_dispatch``; the client is a msgr lossy client.
* uvloop / asyncio: a ``BufferedProtocol`` echoing what it reads; the client
  is a blocking socket.

Needs ``valgrind`` (Debian package); uvloop comes with the ``peers`` extra.
The count covers user space only (the interpreter, msgr's C, libc), not the kernel.

``--workload reqreply`` (msgr only) is msgr-loadgen's default op instead: a 4 KiB
request answered by an empty reply, 16 in flight, fast-dispatched on both sides
(``io_threads=1``). ``--workload reqreply-default`` is the same op as a user
who changes nothing writes it: a server with the default ``Config()`` that
replies from an ordinary ``ms_dispatch`` (on its dispatch thread); the client is
the same. ``--side`` picks the process counted: the server (the client runs
outside valgrind) or the client (the server runs in this process). The first
line printed names msgr's backend (native, or the pure-Python twins).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

# The callgrind child runs this module again with -m, under the package name it was imported
# as (tools.bench from the repository root, or the name the package is installed under).
MODULE = f"{__package__}.instructions"

PEERS = ("msgr", "uvloop", "asyncio")
WORKLOADS = ("echo64", "reqreply", "reqreply-default")
SIZE = 64
RR_SIZE, RR_WINDOW = 4096, 16     # the reqreply workload: msgr-loadgen's defaults
START_S = 300.0        # valgrind start-up plus imports can take a minute on a slow machine
_COLLECTED = re.compile(r"Collected\s*:\s*([\d,]+)")


# ---------------------------------------------------------------- servers (under valgrind)
def serve(peer: str, n: int, port_file: str, workload: str = "echo64") -> None:
    """Answers ``n`` round trips, writing the address to ``port_file`` once listening."""
    if workload.startswith("reqreply"):
        _serve_msgr_reqreply(n, port_file, default=workload == "reqreply-default")
    elif peer == "msgr":
        _serve_msgr(n, port_file)
    else:
        _serve_asyncio(peer, n, port_file)


def _publish(port_file: str, text: str) -> None:
    with open(port_file + ".tmp", "w") as f:
        f.write(text)
    os.replace(port_file + ".tmp", port_file)


def _run_msgr_server(dispatcher, done: threading.Event, port_file: str, **config) -> None:
    """A stateless osd.0 messenger with ``dispatcher``, until ``done`` (or START_S)."""
    from msgr import Config, EntityName, EntityType, Messenger, Policy

    m = Messenger(EntityName(EntityType.OSD, 0), config=Config(**config))
    m.set_default_policy(Policy.stateless_server())
    m.add_dispatcher_tail(dispatcher)
    addr = m.bind("v2:127.0.0.1:0")
    m.start()
    _publish(port_file, str(addr))
    done.wait(START_S)
    time.sleep(0.2)                                # the last answer's write
    m.shutdown()
    m.wait(10)


def _serve_msgr(n: int, port_file: str) -> None:
    from msgr import Dispatcher, Message

    done = threading.Event()

    class Echo(Dispatcher):
        count = 0

        def ms_dispatch(self, msg) -> bool:
            msg.connection.send_message(Message(msg.type, front=msg.front, tid=msg.tid))
            self.count += 1
            if self.count >= n:
                done.set()
            return True

    _run_msgr_server(Echo(), done, port_file, io_threads=1, dispatch_threads=0)


def _serve_msgr_reqreply(n: int, port_file: str, default: bool = False) -> None:
    from msgr import Dispatcher, Message

    done = threading.Event()

    class Replier(Dispatcher):
        """msgr-loadgen's server: fast-dispatched, an empty reply per request."""
        count = 0

        def ms_can_fast_dispatch(self, msg) -> bool:
            return True

        def ms_fast_dispatch(self, msg) -> None:
            msg.connection.send_message(Message(2, tid=msg.tid))
            self.count += 1
            if self.count >= n:
                done.set()

        def ms_dispatch(self, msg) -> bool:
            return False

    class PlainReplier(Dispatcher):
        """What a user writes: an empty reply per request, from ms_dispatch."""
        count = 0

        def ms_dispatch(self, msg) -> bool:
            msg.connection.send_message(Message(2, tid=msg.tid))
            self.count += 1
            if self.count >= n:
                done.set()
            return True

    if default:
        _run_msgr_server(PlainReplier(), done, port_file)
    else:
        _run_msgr_server(Replier(), done, port_file, io_threads=1)


def _serve_asyncio(peer: str, n: int, port_file: str) -> None:
    import asyncio
    if peer == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    class Echo(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf, self.got = bytearray(65536), 0

        def connection_made(self, transport) -> None:
            self.transport = transport

        def get_buffer(self, sizehint: int):
            return self.buf

        def buffer_updated(self, nbytes: int) -> None:
            self.transport.write(bytes(self.buf[:nbytes]))
            self.got += nbytes
            if self.got >= n * SIZE:
                loop.call_later(0.2, loop.stop)

    server = loop.run_until_complete(loop.create_server(Echo, "127.0.0.1", 0))
    _publish(port_file, str(server.sockets[0].getsockname()[1]))
    loop.run_forever()
    server.close()


# ---------------------------------------------------------------- clients (outside valgrind)
def drive(peer: str, addr: str, n: int, workload: str = "echo64") -> None:
    """``n`` round trips: of SIZE bytes, one in flight (echo64), or reqreply's."""
    if workload.startswith("reqreply"):
        _drive_msgr_reqreply(addr, n)
        return
    if peer == "msgr":
        _drive_msgr(addr, n)
        return
    with socket.create_connection(("127.0.0.1", int(addr)), timeout=START_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg, buf = b"x" * SIZE, bytearray(SIZE)
        for _ in range(n):
            s.sendall(msg)
            got = 0
            while got < SIZE:
                k = s.recv_into(memoryview(buf)[got:])
                if not k:
                    raise RuntimeError("the echo server closed the connection")
                got += k


def _drive_msgr(addr: str, n: int) -> None:
    from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy

    done, connected = threading.Event(), threading.Event()

    class Ping(Dispatcher):
        count = 0

        def ms_handle_connect(self, conn) -> None:
            connected.set()

        def ms_dispatch(self, msg) -> bool:
            self.count += 1
            if self.count >= n:
                done.set()
            else:
                msg.connection.send_message(Message(1, front=bytes(SIZE), tid=self.count))
            return True

    m = Messenger(EntityName(EntityType.CLIENT, -1), config=Config(io_threads=1, dispatch_threads=0))
    m.set_default_policy(Policy.lossy_client())
    m.add_dispatcher_tail(Ping())
    m.start()
    try:
        conn = m.connect_to(EntityType.OSD, addr)
        if not connected.wait(START_S):
            raise RuntimeError("could not connect to the msgr echo server")
        conn.send_message(Message(1, front=bytes(SIZE), tid=0))
        if not done.wait(START_S):
            raise RuntimeError("the round trips did not finish")
    finally:
        m.shutdown()
        m.wait(10)


def _drive_msgr_reqreply(addr: str, n: int) -> None:
    from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy

    done, connected = threading.Event(), threading.Event()
    payload = bytes(RR_SIZE)

    class Requester(Dispatcher):
        """msgr-loadgen's client: each reply sends the next request, fast-dispatched."""
        sent = replies = 0
        conn = None
        lock = threading.Lock()

        def ms_handle_connect(self, conn) -> None:
            connected.set()

        def ms_can_fast_dispatch(self, msg) -> bool:
            return True

        def ms_fast_dispatch(self, msg) -> None:
            with self.lock:           # the first window goes out from the main thread
                self.replies += 1
                if self.replies >= n:
                    done.set()
                elif self.sent < n:
                    self.send()

        def ms_dispatch(self, msg) -> bool:
            return False

        def send(self) -> None:
            self.sent += 1
            self.conn.send_message(Message(1, data=payload, tid=self.sent))

    r = Requester()
    m = Messenger(EntityName(EntityType.CLIENT, -1), config=Config(io_threads=1))
    m.set_default_policy(Policy.lossy_client())
    m.add_dispatcher_tail(r)
    m.start()
    try:
        r.conn = m.connect_to(EntityType.OSD, addr)
        if not connected.wait(START_S):
            raise RuntimeError("could not connect to the msgr server")
        with r.lock:
            for _ in range(min(RR_WINDOW, n)):
                r.send()
        if not done.wait(START_S):
            raise RuntimeError("the requests did not finish")
    finally:
        m.shutdown()
        m.wait(10)


def _backend() -> str:
    """Which msgr the counts are of: the compiled pieces, or the pure-Python twins."""
    from msgr import _native
    if getattr(_native, "NATIVE", False):
        return "native (cffi kernels, Cython message core)"
    return f"kernels {_native.BACKEND}, message core {getattr(_native, 'CORE', 'python')}"


# ---------------------------------------------------------------- the measurement
def count_run(peer: str, n: int, tmp: str, workload: str = "echo64", side: str = "server") -> int:
    """Total instructions of one run of ``n`` round trips, ``side`` under callgrind."""
    port_file, log = os.path.join(tmp, f"{peer}.{n}.addr"), os.path.join(tmp, f"{peer}.{n}.log")
    cmd = ["valgrind", "--tool=callgrind", f"--log-file={log}",
           f"--callgrind-out-file={os.path.join(tmp, f'{peer}.{n}.out')}",
           sys.executable, "-m", MODULE, "--n", str(n), "--workload", workload]
    server = None
    if side == "client":      # the server here, the client under valgrind
        server = threading.Thread(target=serve, args=(peer, n, port_file, workload), daemon=True)
        server.start()
        _wait_for(port_file, None, peer)
        with open(port_file) as f:
            cmd += ["--drive", peer, "--addr", f.read().strip()]
    else:
        cmd += ["--serve", peer, "--port-file", port_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if server is None:
            _wait_for(port_file, proc, peer)
            with open(port_file) as f:
                drive(peer, f.read().strip(), n, workload)
        proc.wait(START_S)
        if server is not None:
            server.join(START_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(log) as f:
        m = _COLLECTED.search(f.read())
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"{peer} server under callgrind failed (exit {proc.returncode})")
    return int(m.group(1).replace(",", ""))


def _wait_for(port_file: str, proc, peer: str) -> None:
    """Waits until the server has published its address (``proc``: its valgrind, or None)."""
    deadline = time.monotonic() + START_S
    while not os.path.exists(port_file):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc is not None else ""
            raise RuntimeError(f"{peer} server did not start: {err}")
        time.sleep(0.1)


def per_round_trip(peer: str, n: int, workload: str = "echo64", side: str = "server") -> float:
    """Instructions per round trip: (count(2n) - count(n)) / n."""
    with tempfile.TemporaryDirectory(prefix="msgr-instr-") as tmp:
        counts = [count_run(peer, k, tmp, workload, side) for k in (2 * n, n)]
        return (counts[0] - counts[1]) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {PEERS}")
    p.add_argument("--n", type=int, default=2000, help="round trips of the shorter run")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--workload", choices=WORKLOADS, default="echo64",
                   help="echo64 (every peer), reqreply (msgr-loadgen's op, msgr only) or "
                        "reqreply-default (the same op, default Config, ms_dispatch)")
    p.add_argument("--side", choices=("server", "client"), default="server",
                   help="the process counted (client: msgr only)")
    p.add_argument("--serve", choices=PEERS, help=argparse.SUPPRESS)
    p.add_argument("--drive", choices=PEERS, help=argparse.SUPPRESS)
    p.add_argument("--addr", help=argparse.SUPPRESS)
    p.add_argument("--port-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.n, args.port_file, args.workload)
        return 0
    if args.drive:
        drive(args.drive, args.addr, args.n, args.workload)
        return 0
    peers = [x for x in args.peers.split(",") if x]
    print(f"msgr backend: {_backend()}", flush=True)
    if args.workload.startswith("reqreply") or args.side == "client":
        peers = [x for x in peers if x == "msgr"] or ["msgr"]
    bad = set(peers) - set(PEERS)
    if bad or args.n < 1:
        p.error(f"unknown peers {sorted(bad)}" if bad else "--n must be >= 1")
    figures = {}
    for peer in peers:
        figures[peer] = per_round_trip(peer, args.n, args.workload, args.side)
        print(f"{peer:8} {figures[peer]:>12,.0f} instructions per round trip "
              f"({args.workload}, {args.side} side)", flush=True)
    if "msgr" in figures:
        for peer, v in figures.items():
            if peer != "msgr":
                print(f"msgr / {peer}: {figures['msgr'] / v:.1f}x the instructions")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "workload": args.workload, "side": args.side,
                       "instructions_per_rt": figures}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
