"""What ``python -m tools.bench.peers`` runs: the workloads, the peer variants, and the targets.

Workloads (every one bounded by a message count and by ``limit_s`` seconds):
- ``ow64``, ``ow4k``, ``ow1m``: one-way on one connection, the client streams 64 B / 4 KiB /
  1 MiB payloads as fast as the peer lets it, the server counts whole messages; the figure is
  messages received per second from the client's first send to the server's receipt of the last
  (MB/s for 1 MiB).
- ``ow16``: the same at 4 KiB over 16 connections from one client process to one server process;
  the figure is the total messages per second over all 16.
- ``rt``: 64 B request, 64 B echo, one in flight, server and client pinned to different CPUs;
  the figures are the median and p99 round trip in microseconds, measured by the client.
- ``rt_same``: the same with both processes pinned to one CPU (the software cost without this
  VM's cross-core wake-ups); only with ``--same-core``.
"""
from __future__ import annotations

import dataclasses
import importlib.util

from .common import Spec

KiB, MiB = 1024, 1 << 20
POLL_US = 200               # ms_busy_poll_us of the "msgr_poll" variant (both ends)


@dataclasses.dataclass(frozen=True)
class Workload:
    key: str
    label: str
    workload: str
    size: int
    n: int
    conns: int = 1
    same_core: bool = False

    def spec(self, scale: float, limit_s: float, **variant) -> Spec:
        n = max(self.conns, int(self.n * scale))
        warmup = min(200, n // 4) if self.workload == "rt" else 0
        return Spec(self.workload, self.size, n, self.conns, limit_s, warmup=warmup, **variant)


WORKLOADS = [
    Workload("ow64", "64 B msg/s", "oneway", 64, 2_000_000),
    Workload("ow4k", "4 KiB msg/s", "oneway", 4 * KiB, 500_000),
    Workload("ow1m", "1 MiB MB/s", "oneway", MiB, 5_000),
    Workload("ow16", "16 conn 4 KiB msg/s", "oneway", 4 * KiB, 500_000, conns=16),
    Workload("rt", "RT x-core us", "rt", 64, 20_000),
    Workload("rt_same", "RT same-core us", "rt", 64, 20_000, same_core=True),
]
ONEWAY = {"ow64", "ow4k", "ow1m", "ow16"}
ALL = ONEWAY | {"rt", "rt_same"}


@dataclasses.dataclass(frozen=True)
class Variant:
    key: str
    peer: str                   # the --peers name
    label: str
    module: str                 # in tools.bench.peers
    options: dict
    workloads: frozenset


VARIANTS = [
    Variant("msgr", "msgr", "msgr (io 1, inline dispatch)", "msgr_peer", {"dispatch_threads": 0},
            frozenset(ALL)),
    Variant("msgr_d1", "msgr", "msgr (io 1, 1 dispatch thread)", "msgr_peer",
            {"dispatch_threads": 1}, frozenset({"ow4k"})),
    Variant("msgr_default", "msgr", "msgr (default Config)", "msgr_peer",
            {"dispatch_threads": 1, "variant": "default"}, frozenset({"ow64", "ow4k", "rt"})),
    Variant("msgr_poll", "msgr", f"msgr (inline, busy poll {POLL_US} us)", "msgr_peer",
            {"dispatch_threads": 0, "variant": "busy_poll"}, frozenset({"rt", "rt_same"})),
    Variant("blocking_batched", "blocking", "blocking, batched sendmsg", "blocking",
            {"variant": "batched"}, frozenset(ONEWAY)),
    Variant("blocking_sendall", "blocking", "blocking, sendall per msg", "blocking",
            {"variant": "sendall"}, frozenset(ALL)),
    Variant("asyncio_streams", "asyncio", "asyncio streams", "aio",
            {"variant": "streams", "loop": "asyncio"}, frozenset(ALL)),
    Variant("asyncio_protocol", "asyncio", "asyncio BufferedProtocol", "aio",
            {"variant": "protocol", "loop": "asyncio"}, frozenset(ALL)),
    Variant("uvloop_streams", "uvloop", "uvloop streams", "aio",
            {"variant": "streams", "loop": "uvloop"}, frozenset(ALL)),
    Variant("uvloop_protocol", "uvloop", "uvloop BufferedProtocol", "aio",
            {"variant": "protocol", "loop": "uvloop"}, frozenset(ALL)),
    Variant("pyzmq", "pyzmq", "pyzmq PUSH/PULL (rt: REQ/REP)", "zmq_peer", {}, frozenset(ALL)),
]
PEERS = ("msgr", "blocking", "asyncio", "uvloop", "pyzmq")
_NEEDS = {"uvloop": "uvloop", "pyzmq": "zmq"}


def missing(peer: str) -> str | None:
    """Why ``peer`` cannot run here (its module is not installed), or None."""
    mod = _NEEDS.get(peer)
    if mod and importlib.util.find_spec(mod) is None:
        return f"{peer}: '{mod}' is not installed (pip install {peer}); skipped"
    return None


@dataclasses.dataclass(frozen=True)
class Target:
    """msgr's figure over ``peer``'s in ``workload`` must be >= ``bound`` (<= for latency)."""

    label: str
    workload: str
    msgr: str
    peer: str
    bound: float
    lower_is_better: bool = False


TARGETS = [
    # issue 13 (native message core): what a user who changes nothing gets
    Target("default Config: one-way 4 KiB >= 1.2x pyzmq", "ow4k", "msgr_default", "pyzmq", 1.2),
    Target("default Config: one-way 64 B >= 0.8x pyzmq", "ow64", "msgr_default", "pyzmq", 0.8),
    Target("default Config: RT 64 B <= 1.3x uvloop BufferedProtocol", "rt", "msgr_default",
           "uvloop_protocol", 1.3, lower_is_better=True),
    # issue 4
    Target("one-way 4 KiB >= 1.0x pyzmq PUSH/PULL", "ow4k", "msgr", "pyzmq", 1.0),
    Target("one-way 4 KiB >= 1.0x pyzmq PUSH/PULL", "ow4k", "msgr_d1", "pyzmq", 1.0),
    Target("one-way 64 B >= 0.5x pyzmq PUSH/PULL", "ow64", "msgr", "pyzmq", 0.5),
    Target("one-way 1 MiB >= 0.8x blocking batched", "ow1m", "msgr", "blocking_batched", 0.8),
    Target("RT 64 B <= 1.5x uvloop BufferedProtocol", "rt", "msgr", "uvloop_protocol", 1.5,
           lower_is_better=True),
    Target("RT 64 B <= 1.5x uvloop BufferedProtocol", "rt", "msgr_poll", "uvloop_protocol", 1.5,
           lower_is_better=True),
]
