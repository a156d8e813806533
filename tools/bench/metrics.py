"""tools.bench.metrics: what the latency histograms cost msgr's throughput (a benchmark, not a test).

    python -m tools.bench.metrics [--rounds 10] [--messages 50000] [--dispatch-threads 1]

One process, one server and one client Messenger on 127.0.0.1, one connection,
one-way 4 KiB messages (at most ``--window`` unacked; every ``--ack-every``-th
asks for an ack). The same connection runs ``--rounds`` pairs of runs with the
histogram observations off and on (``msgr.counters.HISTOGRAMS_ENABLED``), in
alternating order (off-on, on-off, ...) so drift hits both sides alike. It
prints each run, the medians, the on/off throughput ratio (median of the pairs,
with a 95 % bootstrap interval) and the cost; the target is under 2 %. Plain
counters are always on (they are ints) and so are not part of the comparison.

Run to run, this VM's throughput varies by several percent (GIL hand-offs, batch
sizes, other load), so read the interval: on a busy machine use more rounds.
``--control`` runs the same pairs with histograms off on both sides, which
measures that noise floor. As a noise-free cross-check it also times the
statements the hooks add per message on their own (a model without threads or
I/O) against the CPU per message.

It also checks that the hooks are wired: with histograms on, the server's
``dispatch_latency`` and the client's ``send_queue_latency`` counts must grow;
if they do not, the ratio measures nothing and the script says so (exit 2).
Every run stops at ``--messages`` or ``--time-limit`` seconds; the whole
benchmark at ``2 x rounds x time-limit`` plus setup.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import timeit
from operator import attrgetter

from msgr import (Config, Dispatcher, EntityName, EntityType, Message, Messenger,
                  Policy, counters)
from msgr.counters import RECV_STAMP, Counters, Histogram

MSG_PLAIN, MSG_ACKME, MSG_ACK = 0x7300, 0x7301, 0x7302


class _Server(Dispatcher):
    def __init__(self) -> None:
        self.count = 0

    def ms_dispatch(self, msg) -> bool:
        self.count += 1
        if msg.type == MSG_ACKME:
            msg.connection.send_message(Message(MSG_ACK, tid=msg.tid))
        return True


class _Client(Dispatcher):
    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.acked = 0
        self.connected = threading.Event()

    def ms_handle_connect(self, conn) -> None:
        self.connected.set()

    def ms_dispatch(self, msg) -> bool:
        if msg.type == MSG_ACK:
            with self.cv:
                self.acked = msg.tid
                self.cv.notify()
        return True


def one_run(conn, client: _Client, first_tid: int, n: int, payload: bytes, window: int,
            ack_every: int, limit: float) -> tuple:
    """Streams up to ``n`` messages; returns (messages, seconds, CPU seconds, last tid)."""
    sent, tid, t0, cpu0 = 0, first_tid, time.perf_counter(), time.process_time()
    while sent < n and time.perf_counter() - t0 < limit:
        with client.cv:
            client.cv.wait_for(lambda: tid - client.acked < window, timeout=1.0)
            room = min(n - sent, window - (tid - client.acked))
        for _ in range(room):
            tid += 1
            sent += 1
            last = sent == n or sent % ack_every == 0
            conn.send_message(Message(MSG_ACKME if last else MSG_PLAIN, data=payload, tid=tid))
    if sent % ack_every and sent != n:            # stopped by the time limit: one acked marker
        tid += 1
        sent += 1
        conn.send_message(Message(MSG_ACKME, data=payload, tid=tid))
    with client.cv:
        if not client.cv.wait_for(lambda: client.acked >= tid, timeout=limit + 10.0):
            raise RuntimeError(f"acks stalled at {client.acked} of {tid}")
    return sent, time.perf_counter() - t0, time.process_time() - cpu0, tid


def _hist_counts(m: Messenger) -> tuple:
    from msgr import metrics
    own = [c for _, c in metrics.owners(m)]
    h = Counters.histograms(own)
    return h["dispatch_latency"].count, h["send_queue_latency"].count


def observe_cost_ns(n: int = 200_000) -> float:
    """Nanoseconds per ``Histogram.observe`` call (bound method, as the hot path uses it)."""
    obs = Histogram().observe
    t = min(timeit.repeat(lambda: obs(0.000123), number=n, repeat=5))
    base = min(timeit.repeat(lambda: None, number=n, repeat=5))
    return (t - base) / n * 1e9


def _bootstrap_median(xs: list, n: int = 2000) -> tuple:
    """The median of ``xs`` and a 95 % bootstrap interval of it."""
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return statistics.median(xs), meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


# ---------------------------------------------------------------- the model (no threads)
_QUEUED_AT = attrgetter("_queued_at")


def _model_stamp(msgs: list, t0: float) -> None:
    """``_flush_pending`` with the hook: stamp each message of a send batch."""
    out = []
    append = out.append
    if t0:
        for m in msgs:
            m._queued_at = t0
            append(m)
    else:
        for m in msgs:
            append(m)


def _model_frame(msgs: list, hist, now: float = 1.0) -> None:
    """``_frame_messages`` with the hook: the batch's stamps observed (replays are
    unstamped when requeued, not here)."""
    if hist is not None:
        hist.observe_batch(now, msgs, _QUEUED_AT)


def _model_dispatch(msgs: list, hist, on: bool) -> None:
    """The dispatch thread's loop with the hook: one clock read per batch."""
    now = time.monotonic() if on else 0.0
    if now:
        hist.observe_batch(now, msgs, RECV_STAMP)


def hook_model(n: int = 4096) -> dict:
    """ns per message of the statements the hooks add (a model: no threads, no I/O).

    Mirrors the hook code handed to the lead (send batch stamp, framing run check,
    dispatch run check), each timed against the same loop with histograms off.
    """
    msgs, h = [Message(1) for _ in range(n)], Histogram()
    for m in msgs:
        m.recv_stamp = 0.5

    def ns(fn) -> float:
        return min(timeit.repeat(fn, number=50, repeat=7)) / 50 / n * 1e9
    out = {"stamp": ns(lambda: _model_stamp(msgs, 0.5)) - ns(lambda: _model_stamp(msgs, 0.0)),
           "frame": ns(lambda: (_model_stamp(msgs, 0.5), _model_frame(msgs, h)))
           - ns(lambda: (_model_stamp(msgs, 0.5), _model_frame(msgs, None))),
           "dispatch": ns(lambda: _model_dispatch(msgs, h, True))
           - ns(lambda: _model_dispatch(msgs, h, False))}
    return {k: max(0.0, v) for k, v in out.items()}


# ---------------------------------------------------------------- the end-to-end runs
def _start_pair(opts) -> tuple:
    """A started server and client messenger and the client's connected Connection."""
    cfg = Config.from_env(dispatch_threads=opts.dispatch_threads, io_threads=opts.io_threads)
    s = Messenger(EntityName(EntityType.OSD, 0), config=cfg)
    s.set_default_policy(Policy.stateless_server())
    s.add_dispatcher_tail(_Server())
    addr = s.bind("v2:127.0.0.1:0")
    c, cd = Messenger(EntityName(EntityType.CLIENT, -1), config=cfg), _Client()
    c.set_default_policy(Policy.lossy_client())
    c.add_dispatcher_tail(cd)
    s.start()
    c.start()
    conn = c.connect_to(EntityType.OSD, addr)
    if not cd.connected.wait(10.0):
        raise RuntimeError("no session within 10 s")
    return s, c, cd, conn


def _rounds(opts, s, c, cd, conn, results: dict) -> None:
    payload = bytes(opts.size)
    counters.set_histograms_enabled(True)       # warm-up: both sides' code paths run once
    tid = one_run(conn, cd, 0, min(5000, opts.messages), payload, opts.window,
                  opts.ack_every, opts.time_limit)[3]
    for r in range(opts.rounds):
        for side in (("off", "on") if r % 2 == 0 else ("on", "off")):
            counters.set_histograms_enabled(side == "on" and not opts.control)
            before = _hist_counts(s)[0], _hist_counts(c)[1]
            n, secs, cpu, tid = one_run(conn, cd, tid, opts.messages, payload, opts.window,
                                        opts.ack_every, opts.time_limit)
            if side == "on":
                results["wired"]["dispatch"] += _hist_counts(s)[0] - before[0]
                results["wired"]["send_queue"] += _hist_counts(c)[1] - before[1]
            rate, cpu_us = n / secs, cpu / n * 1e6
            results[side].append(rate)
            results["cpu_" + side].append(cpu_us)
            results["runs"].append({"round": r, "histograms": side, "messages": n,
                                    "seconds": secs, "msgs_per_s": rate, "cpu_us_per_msg": cpu_us})
            print(f"round {r} histograms {side:3}: {n:>7,} msgs in {secs:6.3f} s "
                  f"= {rate:>9,.0f} msgs/s, {cpu_us:6.2f} CPU us/msg", file=sys.stderr, flush=True)


def run(opts) -> dict:
    """Every figure: the runs, medians, the pair ratios with their interval, the model."""
    results = {"on": [], "off": [], "cpu_on": [], "cpu_off": [], "runs": [],
               "wired": {"dispatch": 0, "send_queue": 0}}
    was = counters.HISTOGRAMS_ENABLED
    s, c, cd, conn = _start_pair(opts)
    try:
        _rounds(opts, s, c, cd, conn, results)
    finally:
        counters.set_histograms_enabled(was)
        c.shutdown()
        s.shutdown()
        c.wait(10.0)
        s.wait(10.0)
    for side in ("on", "off"):
        results["median_" + side] = statistics.median(results[side])
        results["median_cpu_" + side] = statistics.median(results["cpu_" + side])
    results["ratio_on_off"] = results["median_on"] / results["median_off"]
    results["pair_ratios"] = [a / b for a, b in zip(results["on"], results["off"])]
    results["pair_median"], results["pair_lo"], results["pair_hi"] = \
        _bootstrap_median(results["pair_ratios"])
    results["observe_ns"] = observe_cost_ns()
    results["model_ns"] = hook_model()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__package__}.metrics",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="off/on pairs (default 10)")
    p.add_argument("--messages", type=int, default=50_000, help="messages per run")
    p.add_argument("--size", type=int, default=4096, help="data bytes per message")
    p.add_argument("--window", type=int, default=4096, help="unacked messages at most")
    p.add_argument("--ack-every", type=int, default=512, help="every Nth message asks for an ack")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per run at most")
    p.add_argument("--dispatch-threads", type=int, default=1, help="0: dispatch inline")
    p.add_argument("--io-threads", type=int, default=1, help="reactors per messenger")
    p.add_argument("--control", action="store_true",
                   help="A/A control: histograms off on both sides (the noise floor)")
    p.add_argument("--json", metavar="FILE", help="save every figure as JSON")
    opts = p.parse_args(argv)
    res = run(opts)
    res["options"] = vars(opts)
    report(opts, res)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
    if opts.control:
        print("control run: both sides had histograms off; the cost above is noise")
    elif not (res["wired"]["dispatch"] and res["wired"]["send_queue"]):
        print("warning: the histogram hooks are not wired into the hot path; the ratio "
              "measures nothing", file=sys.stderr)
        return 2
    return 0


def report(opts, res: dict) -> None:
    """Prints the summary (the per-run lines went to stderr as they came)."""
    cost = (1.0 - res["pair_median"]) * 100.0
    model = res["model_ns"]
    model_ns = sum(model.values())
    print(f"one-way {opts.size} B, one connection, one process, dispatch_threads="
          f"{opts.dispatch_threads}, io_threads={opts.io_threads}, {opts.rounds} off/on pairs")
    for side in ("off", "on"):
        print(f"histograms {side + ':':4} median {res['median_' + side]:>9,.0f} msgs/s, "
              f"{res['median_cpu_' + side]:.2f} CPU us/msg (process, all threads)")
    pairs = res["pair_ratios"]
    shown = ", ".join(f"{x:.3f}" for x in pairs[:12]) + (", ..." if len(pairs) > 12 else "")
    print(f"throughput on/off: median of pairs {res['pair_median']:.4f} (95 % CI "
          f"{res['pair_lo']:.4f}..{res['pair_hi']:.4f}); ratio of medians "
          f"{res['ratio_on_off']:.4f}; pairs: {shown}")
    print(f"metrics cost: {cost:+.2f} % of throughput (target < 2 %)")
    print(f"hook statements (model): stamp {model['stamp']:.0f} + frame {model['frame']:.0f} + "
          f"dispatch {model['dispatch']:.0f} = {model_ns:.0f} ns/msg = "
          f"{model_ns / 1e3 / res['median_cpu_off'] * 100:.2f} % of the CPU per message; "
          f"Histogram.observe {res['observe_ns']:.0f} ns")
    print(f"observations while on: dispatch {res['wired']['dispatch']:,}, "
          f"send queue {res['wired']['send_queue']:,}")


if __name__ == "__main__":
    sys.exit(main())
