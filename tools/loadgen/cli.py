"""msgr-loadgen's command line: the options (named after Ceph's perf_msgr) and their limits."""
from __future__ import annotations

import argparse
import sys

from .report import check_plot_available

__all__ = ["parse_args", "DEFAULT_DURATION", "DEFAULT_OP_CAP", "OPS_ONLY_TIME_CAP"]

DEFAULT_DURATION, DEFAULT_OP_CAP, OPS_ONLY_TIME_CAP = 5.0, 100_000_000, 3600.0
DESCRIPTION = "a load generator for msgr, after Ceph's ceph_perf_msgr_client/server"

_OPTIONS = (  # flag, type, default, help[, choices]
    ("--jobs", int, 1, "client processes, one messenger + one connection each"),
    ("--concurrency", int, 16, "reqreply: ops in flight per job"),
    ("--window", int, None, "oneway: unacked messages per job (default 4096, at most 64 MiB)"),
    ("--ops", int, None, "ops per job (default: bounded by --duration)"),
    ("--duration", float, None, f"seconds (default {DEFAULT_DURATION:g}; server: until a signal)"),
    ("--think-time-us", int, 0, "pause before each next op (in ms_dispatch)"),
    ("--msg-size", int, 4096, "bytes of data per request"),
    ("--mode", str, "reqreply", "reqreply | oneway", ("reqreply", "oneway")),
    ("--policy", str, "lossy", "lossy_client/stateless_server | lossless_client/stateful_server", ("lossy", "lossless")),
    ("--io-threads", int, None, "Config.io_threads"),
    ("--dispatch-threads", int, None, "Config.dispatch_threads; 0 = inline on the I/O thread"),
    ("--inject-socket-failures", int, 0, "Config.ms_inject_socket_failures (1 in N)"),
    ("--busy-poll-us", int, None, "Config.ms_busy_poll_us: poll this long before sleeping (latency for CPU)"),
    ("--server-op-threads", int, 0, "server replies from N worker threads (0: in ms_dispatch)"),
    ("--addr", str, None, "server bind address / client target, v2:HOST:PORT/NONCE"),
    ("--json", str, None, "write every figure to this file"),
    ("--plot", str, None, "write throughput and latency plots to this PNG (needs matplotlib)"),
    ("--metrics-port", int, None, "serve Prometheus metrics (msgr.metrics) on this port"),
    ("--metrics-addr", str, "127.0.0.1", "metrics bind address"),
    ("--stall-timeout", float, 10.0, "a job with no progress for this long fails"),
)


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the command line (``local`` when no subcommand is given) and fills in limits."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("server", "client", "local", "-h", "--help"):
        argv.insert(0, "local")
    p = argparse.ArgumentParser(prog="msgr-loadgen", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("local", "a server and --jobs clients on 127.0.0.1 (the default)"),
                       ("server", "a server; prints 'listening on ADDR'"),
                       ("client", "--jobs clients against --addr")):
        sp = sub.add_parser(name, help=text)
        for flag, typ, default, help_, *choices in _OPTIONS:
            sp.add_argument(flag, type=typ, default=default, help=help_, choices=(choices or [None])[0])
        sp.add_argument("--quiet", action="store_true", help="no progress line")
    opts = p.parse_args(argv)
    if opts.command == "client" and not opts.addr:
        p.error("client needs --addr (the server's full address, with its nonce)")
    if opts.plot and check_plot_available():
        p.error(check_plot_available())
    for name in ("jobs", "concurrency", "window", "ops", "msg_size", "busy_poll_us"):
        value, may_be_zero = getattr(opts, name), name in ("msg_size", "busy_poll_us")
        if (value or 0) < 0 or value == 0 and not may_be_zero:
            p.error(f"--{name.replace('_', '-')} must be {'>= 0' if may_be_zero else 'positive'}")
    if opts.command != "server" and opts.duration is None:
        opts.duration = DEFAULT_DURATION if opts.ops is None else OPS_ONLY_TIME_CAP
    opts.ops = opts.ops or DEFAULT_OP_CAP
    opts.window = opts.window or max(2, min(4096, (64 << 20) // max(1, opts.msg_size)))
    return opts
