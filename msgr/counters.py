"""Plain per-thread counters: the hot path bumps ints, scrapes sum them.

Each reactor and each dispatch thread owns one :class:`Counters`; only its
owner writes it (so no lock is needed, also without the GIL), and readers sum
the values at scrape time, accepting a value that is a moment old.

Latency histograms (:class:`Histogram`) follow the same rule: the owner calls
``observe(seconds)`` (one ``bisect`` over fixed bounds, one int increment, one
float add); a scrape copies the bucket list of every owner and adds them up
(:meth:`Histogram.merge`). ``HISTOGRAMS_ENABLED`` is the switch the hot path
reads once per batch (a module attribute load) before it reads the clock.

Example::

    >>> from msgr.counters import Histogram
    >>> h1, h2 = Histogram(), Histogram()
    >>> h1.observe(0.000003); h2.observe(0.25); h2.observe(0.25)
    >>> snap = Histogram.merge([h1, h2])
    >>> snap.count, round(snap.sum, 6)
    (3, 0.500003)
    >>> snap.buckets()[2], snap.buckets()[-1]      # cumulative, Prometheus style
    (('5e-06', 1), ('+Inf', 3))
"""
from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter

__all__ = ["Counters", "COUNTER_NAMES", "HISTOGRAM_NAMES", "Histogram", "HistogramSnapshot",
           "LATENCY_BOUNDS", "HISTOGRAMS_ENABLED", "set_histograms_enabled"]

COUNTER_NAMES = (
    "messages_sent", "messages_received", "bytes_sent", "bytes_received",
    "connection_faults", "reconnects", "session_resets", "bad_frames",
    "messages_dropped", "connections_opened", "connections_closed",
    "dispatched", "enqueued", "throttle_waits", "ready_timeouts", "idle_timeouts",
    "busy_poll_hits", "busy_poll_misses", "early_reply_writes",
)

#: Histogram attributes of :class:`Counters` (each a :class:`Histogram`).
#: ``dispatch_latency``: receive (``msg.recv_stamp``) to dispatch start, observed by the
#: thread that dispatches (a dispatch thread, or the reactor when inline / fast dispatch).
#: ``send_queue_latency``: ``Connection.send_message`` to the message being framed,
#: observed by the connection's reactor.
HISTOGRAM_NAMES = ("dispatch_latency", "send_queue_latency")

#: Upper bounds (seconds) of the latency buckets: 1-2-5 steps per decade, 1 us .. 10 s
#: (log-spaced, and readable as ``le`` labels). A value above 10 s lands in ``+Inf``.
LATENCY_BOUNDS = tuple(float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2, 5)) + (10.0,)

#: ``Histogram.observe_batch``'s getter for a received message's ``recv_stamp``.
RECV_STAMP = attrgetter("recv_stamp")

#: The switch the hot path checks (once per batch) before reading the clock and
#: observing. Counters (plain ints) are always on; only histograms are switchable.
HISTOGRAMS_ENABLED = True


def set_histograms_enabled(on: bool) -> bool:
    """Turns histogram observations on or off process-wide; returns the old value."""
    global HISTOGRAMS_ENABLED
    old, HISTOGRAMS_ENABLED = HISTOGRAMS_ENABLED, bool(on)
    return old


class Histogram:
    """Fixed-bucket latency histogram written by one owner thread.

    ``counts[i]`` counts values ``<= LATENCY_BOUNDS[i]`` and above the previous
    bound (not cumulative); the last slot is ``+Inf``. ``sum`` is in seconds.
    """

    __slots__ = ("counts", "sum")
    bounds = LATENCY_BOUNDS

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.sum = 0.0

    def observe(self, value: float, _bisect=bisect_left, _bounds=LATENCY_BOUNDS) -> None:
        """Records one value in seconds (owner thread only; about 100-130 ns)."""
        self.counts[_bisect(_bounds, value)] += 1
        self.sum += value

    def observe_n(self, value: float, n: int) -> None:
        """Records ``n`` observations of the same value (a batch sharing one stamp)."""
        self.counts[bisect_left(LATENCY_BOUNDS, value)] += n
        self.sum += value * n

    def observe_batch(self, now: float, msgs: list, stamp) -> None:
        """Records ``now - stamp(m)`` for each message with a non-zero stamp
        (:meth:`observe_since`; ``stamp`` is an ``operator.attrgetter``), without
        building a list for a single message."""
        if len(msgs) == 1:
            t = stamp(msgs[0])
            if t:
                self.observe(now - t)
            return
        self.observe_since(now, list(map(stamp, msgs)))

    def observe_since(self, now: float, stamps: list) -> None:
        """Records ``now - stamp`` for each non-zero stamp, one ``observe_n`` per run
        of equal stamps (a batch stamped once costs one bucket update, and one
        ``list.count`` finds that case without a Python loop)."""
        if stamps:
            first = stamps[0]
            if stamps.count(first) == len(stamps):
                if first:
                    self.observe_n(now - first, len(stamps))
                return
        stamp, run = 0.0, 0
        for t in stamps:
            if t != stamp:
                if run:
                    self.observe_n(now - stamp, run)
                stamp, run = t, 0
            if t:
                run += 1
        if run:
            self.observe_n(now - stamp, run)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def snapshot(self) -> "HistogramSnapshot":
        return HistogramSnapshot(list(self.counts), self.sum)

    @staticmethod
    def merge(many) -> "HistogramSnapshot":
        """Sums histograms (any thread, at scrape time) into one snapshot.

        Each owner's bucket list is copied first (``list()`` of a list of ints is
        atomic under the GIL), so the count always equals the bucket total even
        while owners keep observing; ``sum`` may be a moment newer or older.
        """
        counts = [0] * (len(LATENCY_BOUNDS) + 1)
        total = 0.0
        for h in many:
            c = list(h.counts)
            total += h.sum
            for i, v in enumerate(c):
                counts[i] += v
        return HistogramSnapshot(counts, total)


class HistogramSnapshot:
    """A point-in-time (possibly summed) histogram: per-bucket counts and the sum."""

    __slots__ = ("counts", "sum")
    bounds = LATENCY_BOUNDS

    def __init__(self, counts: list, total: float) -> None:
        self.counts = counts
        self.sum = total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list:
        """Cumulative ``(le, count)`` pairs ending with ``("+Inf", count)``, as Prometheus wants."""
        out, acc = [], 0
        for le, c in zip(self.bounds, self.counts):
            acc += c
            out.append((_le(le), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out

    def as_dict(self) -> dict:
        """Ceph ``perf dump`` style: ``avgcount``, ``sum``, ``avgtime`` plus the buckets."""
        n = self.count
        return {"avgcount": n, "sum": self.sum, "avgtime": self.sum / n if n else 0.0,
                "buckets": dict(self.buckets())}

    def __repr__(self) -> str:
        return f"HistogramSnapshot(count={self.count}, sum={self.sum:.6g})"


def _le(bound: float) -> str:
    """The ``le`` label text of a bound: ``repr`` of the float, as prometheus_client writes it."""
    return repr(bound)


class Counters:
    """One owner's counters (attributes named as in ``COUNTER_NAMES``) and histograms
    (``HISTOGRAM_NAMES``)."""

    __slots__ = COUNTER_NAMES + HISTOGRAM_NAMES

    def __init__(self) -> None:
        for n in COUNTER_NAMES:
            setattr(self, n, 0)
        for n in HISTOGRAM_NAMES:
            setattr(self, n, Histogram())

    def as_dict(self) -> dict:
        return {n: getattr(self, n) for n in COUNTER_NAMES}

    @staticmethod
    def total(many) -> dict:
        """Sums a list of Counters into a dict (plain counters only)."""
        out = dict.fromkeys(COUNTER_NAMES, 0)
        for c in many:
            for n in COUNTER_NAMES:
                out[n] += getattr(c, n)
        return out

    @staticmethod
    def histograms(many) -> dict:
        """Sums the histograms of a list of Counters: ``{name: HistogramSnapshot}``."""
        many = list(many)
        return {n: Histogram.merge(getattr(c, n) for c in many) for n in HISTOGRAM_NAMES}
