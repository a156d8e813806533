"""Benchmarks: ``python -m tools.bench.<name>`` for peers, instructions, rx, metrics, idle_conns."""
