"""tools.bench.peers: msgr against other Python transports, the same workloads in ONE run.

    python -m tools.bench.peers [--quick] [--json FILE] [--peers msgr,blocking,asyncio,uvloop,pyzmq]
                                [--repeat N] [--scale F] [--limit S] [--same-core] [--no-pin]

Workloads (see ``tools/bench/peers/plan.py``): one-way messages/s on one connection at 64 B, 4 KiB and
1 MiB (MB/s); 4 KiB one-way over 16 connections from one process (total messages/s); a 64 B round
trip, one in flight (median and p99 in us), with server and client on different CPUs, and with
``--same-core`` also on one CPU.

Peers (``tools/bench/peers/*.py``): msgr (``Messenger``, lossy_client -> stateless_server,
``Config(io_threads=1, dispatch_threads=0)``, and ``dispatch_threads=1`` for one-way 4 KiB);
blocking sockets (batched ``sendmsg`` + large ``recv_into``, and one ``sendall`` per message);
asyncio and uvloop, each with streams and with a ``BufferedProtocol``; pyzmq PUSH/PULL and REQ/REP.
The Python peers frame a message as a 4-byte length + payload, with TCP_NODELAY (as in
reference/perf.md); msgr sends msgr2.1 frames (crc mode).

Every run starts a server process and a client process ("spawn"), the server pinned to the first
allowed CPU and the client to the second (``--no-pin``: the scheduler chooses); every run stops
at its message count or after ``--limit`` seconds; any process still alive afterwards is
terminated by PID. Runs are repeated (``--repeat``, default 3; 1 with ``--quick``), interleaved
across peers, and each cell is the median. Peers whose package is missing are skipped with a note.
Absolute numbers drift between runs and machines: read the ratios, which come from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import common, plan, report


def _cpus(no_pin: bool) -> tuple:
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def _one(variant, wl, spec, server_cpu, client_cpu) -> dict:
    t0 = time.monotonic()
    try:
        r = common.run_pair(variant.module, spec, server_cpu, client_cpu)
    except common.PeerError as e:
        print(f"    {variant.label}: FAILED {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
        return {"error": str(e)}
    took = time.monotonic() - t0
    if wl.workload == "rt":
        shown = f"median {r['median_us']:.1f} us, p99 {r['p99_us']:.1f} us ({r['n']} round trips)"
    else:
        shown = f"{report.figure(wl.key, r):,.0f} {'MB/s' if wl.key == 'ow1m' else 'msg/s'}" \
                f" ({r['received']} msgs in {r['elapsed_s']:.2f} s)"
        if r["lost"]:
            shown += f", LOST {r['lost']}"
    if r.get("forced_pids"):
        shown += f", terminated pids {r['forced_pids']}"
    print(f"    {variant.label}: {shown} [{took:.1f} s]", file=sys.stderr, flush=True)
    return r


def run(opts, variants: list, workloads: list) -> dict:
    """Every (variant, workload) pair ``opts.repeat`` times; returns the lists of figures."""
    server_cpu, client_cpu = _cpus(opts.no_pin)
    runs: dict = {}
    for rep in range(opts.repeat):
        for wl in workloads:
            print(f"[{rep + 1}/{opts.repeat}] {wl.label}", file=sys.stderr, flush=True)
            for v in variants:
                if wl.key not in v.workloads:
                    continue
                spec = wl.spec(opts.scale, opts.limit, **v.options)
                pins = (server_cpu, server_cpu) if wl.same_core else (server_cpu, client_cpu)
                runs.setdefault((v.key, wl.key), []).append(_one(v, wl, spec, *pins))
    return runs


def parse(argv=None):
    p = argparse.ArgumentParser(prog=f"python -m {__package__}",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="10x fewer messages, 1.5 s limit, 1 repeat")
    p.add_argument("--json", metavar="FILE", help="save every run's figures and the summary as JSON")
    p.add_argument("--peers", default=",".join(plan.PEERS),
                   help=f"comma-separated, from {','.join(plan.PEERS)} (default: all)")
    p.add_argument("--repeat", type=int, help="runs per cell, the median is shown (default 3, quick 1)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every message count by this")
    p.add_argument("--limit", type=float, help="seconds per run at most (default 3, quick 1.5)")
    p.add_argument("--same-core", action="store_true", help="also the round trip with both on one CPU")
    p.add_argument("--no-pin", action="store_true", help="do not pin server/client to CPUs 0/1")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.scale *= 0.1
    opts.repeat = opts.repeat or (1 if opts.quick else 3)
    opts.limit = opts.limit or (1.5 if opts.quick else 3.0)
    peers = [x.strip() for x in opts.peers.split(",") if x.strip()]
    unknown = set(peers) - set(plan.PEERS)
    if unknown or opts.repeat < 1 or opts.scale <= 0 or opts.limit <= 0:
        p.error(f"unknown peers {sorted(unknown)}" if unknown
                else "--repeat, --scale and --limit must be > 0")
    opts.peers = peers
    return opts


def main(argv=None) -> int:
    opts = parse(argv)
    skipped = [why for peer in opts.peers if (why := plan.missing(peer))]
    variants = [v for v in plan.VARIANTS if v.peer in opts.peers and not plan.missing(v.peer)]
    workloads = [w for w in plan.WORKLOADS
                 if not w.same_core or (opts.same_core and _cpus(opts.no_pin)[0] is not None)]
    for why in skipped:
        print(f"note: {why}", file=sys.stderr)
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    runs = run(opts, variants, workloads)
    load = (load0, os.getloadavg()[0])          # other work on the box skews every figure
    summary = report.summarize(runs)
    target_text, verdicts = report.targets(summary)
    server_cpu, client_cpu = _cpus(opts.no_pin)
    print(f"bench_peers: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, server CPU {server_cpu},"
          f" client CPU {client_cpu}, {opts.repeat} repeat(s), counts x{opts.scale:g},"
          f" <= {opts.limit:g} s per run, {time.monotonic() - t0:.0f} s in all,"
          f" load average {load[0]:.2f} before / {load[1]:.2f} after")
    print(f"msgr backend: {_msgr_backend()}")
    print(report.tables(summary, variants, workloads))
    print()
    print(target_text)
    problems = report.notes(summary)
    for line in [f"note: {why}" for why in skipped] + problems:
        print(line)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump({"python": sys.version.split()[0], "cpus": os.cpu_count(),
                       "pins": {"server": server_cpu, "client": client_cpu},
                       "repeat": opts.repeat, "scale": opts.scale, "limit_s": opts.limit,
                       "skipped": skipped, "targets": verdicts, "loadavg_1m": load,
                       "summary": [{"variant": v, "workload": w, **s} for (v, w), s in summary.items()],
                       "runs": [{"variant": v, "workload": w, "figures": rs}
                                for (v, w), rs in runs.items()]}, f, indent=1)
    return 1 if problems else 0                     # a failed run or a lost message; MISS is not one


def _msgr_backend() -> str:
    """Which msgr the figures are of: the compiled pieces, or the pure-Python twins."""
    from msgr import _native
    if _native.NATIVE:
        return "native (cffi kernels, Cython message core)"
    return f"kernels {_native.BACKEND}, message core {_native.CORE}"


if __name__ == "__main__":
    sys.exit(main())
