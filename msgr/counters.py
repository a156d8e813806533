"""Plain per-thread counters: the hot path bumps ints, scrapes sum them.

Each reactor and each dispatch thread owns one :class:`Counters`; only its
owner writes it (so no lock is needed, also without the GIL), and readers sum
the values at scrape time, accepting a value that is a moment old.
"""
from __future__ import annotations

__all__ = ["Counters", "COUNTER_NAMES"]

COUNTER_NAMES = (
    "messages_sent", "messages_received", "bytes_sent", "bytes_received",
    "connection_faults", "reconnects", "session_resets", "bad_frames",
    "messages_dropped", "connections_opened", "connections_closed",
    "dispatched", "enqueued", "throttle_waits", "ready_timeouts", "idle_timeouts",
)


class Counters:
    """One owner's counters (attributes named as in ``COUNTER_NAMES``)."""

    __slots__ = COUNTER_NAMES

    def __init__(self) -> None:
        for n in COUNTER_NAMES:
            setattr(self, n, 0)

    def as_dict(self) -> dict:
        return {n: getattr(self, n) for n in COUNTER_NAMES}

    @staticmethod
    def total(many) -> dict:
        """Sums a list of Counters into a dict."""
        out = dict.fromkeys(COUNTER_NAMES, 0)
        for c in many:
            for n in COUNTER_NAMES:
                out[n] += getattr(c, n)
        return out
