"""msgr-loadgen: a load generator for msgr, after Ceph's ceph_perf_msgr_client/server.

    python -m tools.loadgen [local|server|client] [options]    # from the repository root
    msgr-loadgen [local|server|client] [options]               # once installed (pip install .)

``workload`` holds the server, the client jobs and ``main``; ``cli`` the options;
``report`` the latency histogram, summary, table, JSON and plots.
"""
from .cli import parse_args
from .workload import ClientJob, LoadServer, main

__all__ = ["main", "parse_args", "ClientJob", "LoadServer"]
