"""What every peer benchmark shares: the run spec, pinning, framing, and the server/client process pair.

Timing: the client stamps ``t_start`` (``time.monotonic_ns``, CLOCK_MONOTONIC, the same clock in
every process of this machine) just before its first message, after its connections are up; the
server stamps ``t_end`` when the end marker of the last connection arrives (all messages before it
have been received, in order). One-way rate = messages received / (t_end - t_start). Round trips
are timed in the client alone. CPU is ``time.process_time()`` of each process over its run.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import struct
import time
import traceback

from ..._proc import Fleet

LEN = struct.Struct("<I")
END = LEN.pack(0)                           # the end marker: an empty frame (no workload sends one)
SETUP_S = 30.0                              # for process start, connects, and the end of a run


@dataclasses.dataclass(frozen=True)
class Spec:
    """One run: ``workload`` "oneway" (``n`` messages in total over ``conns`` connections, the
    server counts them) or "rt" (``n`` round trips of one ``size``-byte message, one in flight,
    after ``warmup`` unrecorded ones). Every run stops at ``n`` or after ``limit_s`` seconds.
    ``variant``, ``loop`` and ``dispatch_threads`` select the flavour of a peer."""

    workload: str
    size: int
    n: int
    conns: int = 1
    limit_s: float = 3.0
    variant: str = ""
    loop: str = ""
    dispatch_threads: int = 0
    warmup: int = 200

    def per_conn(self) -> list:
        """How many messages each connection carries (they add up to ``n``)."""
        q, r = divmod(self.n, self.conns)
        return [q + (i < r) for i in range(self.conns)]


class PeerError(RuntimeError):
    """A peer process failed, hung past its bound, or died."""


def latency_stats(lat_ns: list) -> dict:
    """Median, p99 and min (nearest rank) of latencies in ns, in microseconds."""
    s = sorted(lat_ns) or [0]

    def pick(p: float) -> float:
        return s[min(len(s) - 1, max(0, -(-len(s) * p // 100) - 1))] / 1e3
    return {"n": len(lat_ns), "median_us": pick(50), "p99_us": pick(99), "min_us": s[0] / 1e3}


def now_ns() -> int:
    return time.monotonic_ns()


def pin(cpu: int | None) -> None:
    """Pins every thread of this process (and so the threads it starts later) to ``cpu``."""
    if cpu is None:
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


def frame(size: int) -> bytes:
    """A 4-byte little-endian length, then ``size`` payload bytes."""
    return LEN.pack(size) + bytes(size)


def rt_result(lat_ns: list, warmup: int, cpu: float) -> dict:
    """The client's round-trip figures: latency stats of the recorded ones, CPU per round trip."""
    out = latency_stats(lat_ns[warmup:])
    out.update(total=len(lat_ns), client_cpu_s=cpu)
    return out


class FrameCounter:
    """Counts length-prefixed frames read into one large buffer; an empty frame ends the stream.

    ``free()`` is where to read next; ``scan(n)`` takes the ``n`` bytes read there. A frame is
    only counted once it is whole in the buffer; a partial one is moved to the front only when
    the room behind it runs short (rarely: the buffer holds at least 8 of the largest frames).
    """

    def __init__(self, max_frame: int) -> None:
        self.buf = bytearray(max(4 << 20, 8 * (max_frame + 4)))
        self.view = memoryview(self.buf)
        self.start = self.have = self.count = 0
        self.missing, self.ended = 4, False

    def free(self) -> memoryview:
        if len(self.buf) - self.have < max(65536, self.missing):
            rest = self.have - self.start
            self.buf[:rest] = self.buf[self.start:self.have]
            self.start, self.have = 0, rest
        return self.view[self.have:]

    def scan(self, n: int) -> None:
        buf, unpack, off, have, count = self.buf, LEN.unpack_from, self.start, self.have + n, 0
        missing = 4
        while have - off >= 4:
            size = unpack(buf, off)[0]
            if have - off < 4 + size:
                missing = 4 + size - (have - off)
                break
            off += 4 + size
            if not size:
                self.ended = True
                break
            count += 1
        self.count += count
        self.missing = missing
        self.start, self.have = (0, 0) if off == have else (off, have)


# ---------------------------------------------------------------- the process pair
def _expect(pipe, kind: str, timeout: float, who: str):
    if not pipe.poll(timeout):
        raise PeerError(f"{who}: no '{kind}' within {timeout:g} s")
    try:
        got, _, data = pipe.recv()
    except (EOFError, OSError):
        raise PeerError(f"{who}: the process exited without a '{kind}'") from None
    if got == "error":
        raise PeerError(f"{who} failed: {data}")
    if got != kind:
        raise PeerError(f"{who}: sent '{got}', expected '{kind}'")
    return data


class Control:
    """The server's line to the driver: ``ready(addr)`` announces the address; ``wait_stop(t)``
    waits (at most ``t`` s) until the driver has the client's result, for servers that must
    stay up to answer the client's last message."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def ready(self, addr) -> None:
        self.pipe.send(("addr", 0, addr))

    def wait_stop(self, timeout: float) -> bool:
        return self.pipe.poll(timeout)


def _child(role: str, module: str, spec: Spec, cpu: int | None, pipe) -> None:
    """The body of a server or client process: pin, run the peer's side, send back its result."""
    Fleet.child_setup()
    pin(cpu)
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
        if role == "server":
            res = mod.serve(spec, Control(pipe))
        else:
            res = mod.client(spec, _expect(pipe, "addr", SETUP_S, "driver"))
        pipe.send(("result", 0, res))
    except BaseException as e:                      # reported to the driver, which decides
        Fleet.send(pipe, ("error", 0, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"))


def run_pair(module: str, spec: Spec, server_cpu: int | None, client_cpu: int | None) -> dict:
    """Runs ``spec`` with ``module``'s server and client in two new processes; returns the figures.

    Both processes start at once (the client waits for the server's address); each is bounded
    by ``spec.limit_s`` plus setup time, and any still alive at the end is terminated by PID.
    """
    fleet = Fleet()
    spipe = fleet.spawn(_child, "server", module, spec, server_cpu)
    cpipe = fleet.spawn(_child, "client", module, spec, client_cpu)
    forced: list = []
    try:
        Fleet.send(cpipe, ("addr", 0, _expect(spipe, "addr", SETUP_S, "server")))
        try:
            cres = _expect(cpipe, "result", spec.limit_s + 2 * SETUP_S, "client")
        finally:
            Fleet.send(spipe, ("stop", 0, None))
        sres = _expect(spipe, "result", SETUP_S, "server")
    finally:
        forced = fleet.end_all(10.0)
    out = _figures(spec, cres, sres)
    if forced:
        out["forced_pids"] = forced
    return out


def _figures(spec: Spec, c: dict, s: dict) -> dict:
    if spec.workload == "rt":
        out = dict(c)
        rts = max(1, c["total"])
        out.update(client_cpu_us=c["client_cpu_s"] / rts * 1e6, server_cpu_us=s["cpu_s"] / rts * 1e6)
        return out
    if s.get("t_end") is None:
        raise PeerError(f"server saw {s.get('ends', 0)} of {spec.conns} end markers "
                        f"({s['count']} messages) before its time limit")
    elapsed = (s["t_end"] - c["t_start"]) / 1e9
    count = s["count"]
    return {"sent": c["sent"], "received": count, "lost": c["sent"] - count, "elapsed_s": elapsed,
            "msgs_per_s": count / elapsed, "mb_per_s": count * spec.size / elapsed / 1e6,
            "client_cpu_us": c["cpu_s"] / max(1, count) * 1e6,
            "server_cpu_us": s["cpu_s"] / max(1, count) * 1e6}
