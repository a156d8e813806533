"""tools.bench.rx: the receive path without sockets, A/B in ONE process.

    python -m tools.bench.rx [--rounds N]

A client ProtocolMachine frames a stream of messages once; a fresh server
machine then receives it in 256 KiB reads (copied in, as ``recv_into`` would)
and decodes every message (``next_events``), dropping each at once as a
dispatcher that is done with it would. Reported per message, median of
``--rounds`` alternating runs:

* 64 B messages: the decode cost per message (no baseline: the figure to steer by);
* 1 MiB messages: with the messenger's :class:`~msgr.bufpool.BufferPool`
  against a fresh buffer per large frame (the baseline, run alternately in the
  same process), and their ratio.

Needs no network and no second process, so its ratios are far steadier than
end-to-end figures on a shared machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from msgr import Message
from msgr.bufpool import BufferPool
from msgr.testing.pair import MachinePair

READ = 256 * 1024


def stream(n: int, size: int, pool) -> tuple:
    """A READY server machine (with ``pool``) and the wire bytes of ``n`` messages for it."""
    p = MachinePair.create(server_kw={"buffer_pool": pool} if pool is not None else {})
    p.start()
    p.pump()
    payload, chunks = bytes(size), []
    for k in range(0, n, 64):
        for i in range(k, min(n, k + 64)):
            p.client.send_message(Message(0x7300, data=payload, tid=i))
        chunks.append(b"".join(bytes(b) for b in p.client.data_to_send(0.0, 1 << 30, None)))
    return p.server, b"".join(chunks)


def receive(server, wire: bytes, n: int) -> float:
    """Feeds ``wire`` in READ-byte reads and decodes it; ns per message."""
    mv, pos, got = memoryview(wire), 0, 0
    t0 = time.perf_counter_ns()
    while pos < len(wire):
        buf = server.get_recv_buffer()
        k = min(len(buf), len(wire) - pos, READ)
        buf[:k] = mv[pos:pos + k]
        pos += k
        server.commit_recv(k, 0.0)
        while evs := server.next_events():
            got += len(evs)
    elapsed = time.perf_counter_ns() - t0
    if got != n:
        raise RuntimeError(f"decoded {got} of {n} messages")
    return elapsed / n


def run(rounds: int) -> dict:
    small, large = {"decode": []}, {"pool": [], "fresh": []}
    for _ in range(rounds):
        small["decode"].append(receive(*stream(64_000, 64, None), 64_000))
        for key in ("pool", "fresh"):
            server, wire = stream(200, 1 << 20, BufferPool() if key == "pool" else None)
            large[key].append(receive(server, wire, 200))
    med = {k: statistics.median(v) for d in (small, large) for k, v in d.items()}
    med["pool_over_fresh"] = med["pool"] / med["fresh"]
    return med


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__package__}.rx",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="alternating runs per figure (median)")
    opts = p.parse_args(argv)
    r = run(max(1, opts.rounds))
    print(f"64 B messages: decode {r['decode']:,.0f} ns per message")
    print(f"1 MiB messages: {r['pool'] / 1000:,.1f} us with the buffer pool, {r['fresh'] / 1000:,.1f} us"
          f" with a fresh buffer each (baseline): {r['pool_over_fresh']:.2f}x the baseline's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
