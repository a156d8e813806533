"""The soak tool's oracle: every message's fate and the events that may excuse a drop.

See ``tools/soak/__main__.py`` for the rules; this module only keeps the books.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import OrderedDict, defaultdict

__all__ = ["Rec", "Tracker", "PAIR_WINDOW", "TOTAL_WINDOW"]

PAIR_WINDOW, TOTAL_WINDOW = 4 << 20, 32 << 20     # bytes awaiting their echo


class Rec:
    """One request and its echo: when sent, where and how often received."""

    __slots__ = ("t", "server", "closed", "echo_t", "echo_inc", "path", "n", "first")

    def __init__(self, t: float, server: int) -> None:
        self.t, self.server, self.closed = t, server, False
        self.echo_t = self.echo_inc = self.path = None      # set when the server echoes
        self.n = {"req": 0, "echo": 0}                      # receipts
        self.first: dict = {}                               # what -> where receipt 1 came


class Tracker:
    """Every message's fate, the events that excuse drops, and the counters (thread-safe).

    A *stream* is one client Connection object, ``(client, conn_id)``; a *path*
    is one server-side Connection object, ``(server, incarnation, tag)``. Events
    (``mark_down``, ``remote_reset``, ``reset``) are kept per stream and per path.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.msgs: dict = {}                # (client, conn_id, seq) -> Rec
        self.pending: dict = defaultdict(OrderedDict)   # (client, server) -> key -> size
        self.pending_bytes: dict = defaultdict(int)
        self.last: dict = {}                # (what, stream) -> highest seq received
        self.top: dict = {}                 # (what, stream, inc) -> highest seq received
        self.events: dict = defaultdict(dict)           # stream or path -> kind -> latest time
        self.ended: dict = {}               # (server, inc) -> time it had stopped
        self.c = defaultdict(int)

    def bump(self, name: str) -> None:
        with self.lock:
            self.c[name] += 1

    # ------------------------------------------------------------ driver side
    def on_send(self, key, server: int, size: int) -> None:
        with self.lock:
            self.msgs[key] = Rec(time.monotonic(), server)
            self.pending[(key[0], server)][key] = size
            self.pending_bytes[(key[0], server)] += size
            self.c["requests_sent"] += 1

    def closed_at_send(self, key) -> None:
        """The connection was closed under the send (msgr dropped and counted it)."""
        with self.lock:
            self.msgs[key].closed = True

    def event(self, where, kind: str) -> None:
        """``kind`` reported on ``where``: a stream, a path, or None (carried nothing)."""
        t = time.monotonic()
        with self.lock:
            self.c[kind + "s"] += 1
            if where is not None:
                self.events[where][kind] = t
                side = 0 if len(where) == 2 else 1      # stream: client index; path: server
                for pair in [p for p in self.pending if p[side] == where[0]]:
                    self._release(pair, lambda k, rec: _sent_on(k, rec, where, t))

    def restart(self, server: int, inc: int) -> None:
        t = time.monotonic()
        with self.lock:
            self.ended[(server, inc)] = t
            self.c["restarts"] += 1
            for pair in [p for p in self.pending if p[1] == server]:
                self._release(pair, lambda k, rec: rec.t <= t)

    def _release(self, pair, pred) -> None:
        """Stops waiting (for the send window only) for ``pair``'s messages matching ``pred``."""
        pend = self.pending[pair]
        for key in [k for k in pend if pred(k, self.msgs[k])]:
            self.pending_bytes[pair] -= pend.pop(key)

    def window_full(self, pair) -> bool:
        with self.lock:
            return self.pending_bytes[pair] >= PAIR_WINDOW or \
                sum(self.pending_bytes.values()) >= TOTAL_WINDOW

    # ------------------------------------------------------------ receive side
    def on_request(self, hdr, ok: bool, inc: int, path) -> bool:
        """A server got a request on ``path``; True when it should be echoed."""
        with self.lock:
            rec = self._receive("req", hdr, ok, inc, path)
            if rec is None:
                return False
            rec.echo_t, rec.echo_inc, rec.path = time.monotonic(), inc, path
            self.c["echoes_sent"] += 1
            return True

    def on_echo(self, hdr, ok: bool, stream) -> None:
        """A client got an echo on a connection carrying ``stream`` (None: untracked)."""
        with self.lock:
            if self._receive("echo", hdr, ok, hdr[6], stream) is not None:
                pair = (hdr[2], hdr[3])
                size = self.pending[pair].pop((hdr[2], hdr[4], hdr[5]), None)
                self.pending_bytes[pair] -= size or 0

    def _receive(self, what: str, hdr, ok: bool, inc: int, where) -> Rec | None:
        """Records a receipt; the record if it is the first, intact one."""
        _, _, sender, _, conn_id, seq, _, _, _ = hdr
        stream, rec = (sender, conn_id), self.msgs.get((sender, conn_id, seq))
        if not ok or rec is None:
            self.c["corrupt"] += 1
            return None
        self.c[what + "_received"] += 1
        rec.n[what] += 1
        if rec.n[what] > 1:
            self._duplicate(what, rec)
            return None
        rec.first[what] = where
        if seq < self.last.get((what, stream), 0):
            self.c["out_of_order"] += 1
        self.last[(what, stream)] = max(seq, self.last.get((what, stream), 0))
        self.top[(what, stream, inc)] = max(seq, self.top.get((what, stream, inc), 0))
        return rec

    def _duplicate(self, what: str, rec: Rec) -> None:
        """A second copy: excused only if the connection that got the first one was
        marked down or reset after the copy was sent. Its ack may never have left, and
        the sender replays it: lossless_peer (no resetcheck) reuses the old session for
        the new connection, as Ceph does (``send_server_ident`` discards nothing)."""
        where, sent = rec.first[what], rec.t if what == "req" else rec.echo_t
        kinds = [k for k, when in self.events.get(where, {}).items() if when >= sent]
        if kinds:
            self.c["duplicated_after_" + kinds[0]] += 1
            return
        self.c["duplicated"] += 1
        self.c["duplicated_" + what] += 1
        if os.environ.get("SOAK_DEBUG"):
            print(f"soak: unexcused duplicate {what} first on {where}, sent {sent:.3f}, "
                  f"events there {dict(self.events.get(where, {}))}", file=sys.stderr)

    # ------------------------------------------------------------ verdicts
    def _excuse(self, wheres, t: float, server: int, what: str, stream, seq: int, incs,
                req_t: float | None = None):
        """Why a message sent at ``t`` may be missing, or None (it is lost).

        A reset discards a connection's whole queue, so it excuses nothing older
        than an arrived message of the same stream; a remote reset may spare
        messages not yet queued, so it does; so does the user's own mark_down,
        which also discards what waited for dispatch (Ceph's ``discard_queue``)
        while the peer may replay later messages of the stream on a new
        connection (lossless_peer keeps the session without resetcheck).
        The user's mark_down of the client connection also excuses the echo of any
        request sent on it before the mark_down (``req_t``), even one echoed after:
        the connection it would come back on is gone.
        """
        later_arrived = self.last.get((what, stream), 0) > seq
        for where in wheres:
            for kind, when in self.events.get(where, {}).items():
                since = req_t if (req_t is not None and kind == "mark_down"
                                  and where == stream) else t
                if when >= since and (kind in ("remote_reset", "mark_down") or not later_arrived):
                    return kind
        for inc in incs:
            end = self.ended.get((server, inc))
            if end is not None and end >= t and self.top.get((what, stream, inc), 0) < seq:
                return "peer_restart"
        return None

    def verdicts(self, incarnations: list) -> dict:
        """Counts every missing message as excused (by reason) or lost."""
        out: dict = defaultdict(int)
        with self.lock:
            for (sender, conn_id, seq), rec in self.msgs.items():
                stream = (sender, conn_id)
                if rec.n["req"] == 0:
                    why = "closed" if rec.closed else self._excuse(
                        (stream,), rec.t, rec.server, "req", stream, seq,
                        range(incarnations[rec.server] + 1))
                    out["lost_requests" if why is None else "dropped_" + why] += 1
                elif rec.echo_t is not None and rec.n["echo"] == 0:
                    why = self._excuse((stream, rec.path), rec.echo_t, rec.server, "echo",
                                       stream, seq, (rec.echo_inc,), req_t=rec.t)
                    out["lost_echoes" if why is None else "dropped_" + why] += 1
                    if why is None and os.environ.get("SOAK_DEBUG"):
                        print(f"soak: lost echo {stream} seq {seq} echo_t {rec.echo_t:.3f} inc "
                              f"{rec.echo_inc} path {rec.path} last {self.last.get(('echo', stream))}"
                              f" top {self.top.get(('echo', stream, rec.echo_inc))} ended "
                              f"{self.ended.get((rec.server, rec.echo_inc))} events "
                              f"{dict(self.events.get(stream, {}))} / "
                              f"{dict(self.events.get(rec.path, {}))}", file=sys.stderr)
        return out

    def snapshot(self) -> dict:
        with self.lock:
            c = defaultdict(int, self.c)
            c["awaiting_echo"] = sum(len(p) for p in self.pending.values())
            c["duplicated_after_reported_reset"] = sum(
                n for k, n in self.c.items() if k.startswith("duplicated_after_"))
            return c


def _sent_on(key, rec: Rec, where, t: float) -> bool:
    """Whether ``rec`` went out on ``where`` (its stream, or its echo's path) by ``t``."""
    if len(where) == 3:
        return rec.path == where and rec.echo_t <= t
    return key[:2] == where and rec.t <= t
