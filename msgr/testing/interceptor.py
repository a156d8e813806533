"""Interceptor: named breakpoints that drive failover tests (crimson's ``Interceptor.h``).

A :class:`Breakpoint` is a frame tag read or written, or a custom step
(banner read/write, socket connecting/accepted). Rules say what happens on the
n-th hit of a breakpoint on one connection: ``CONTINUE``, ``FAULT`` (the
connection faults right there, as if the socket broke), ``BLOCK`` (the
connection halts, reading and writing nothing, until :meth:`Interceptor.unblock`)
or ``STALL`` (halts for good; only a timeout or mark_down ends it).

Hits are counted per connection (the user's Connection object, which stays the
same across reconnects and socket replacement), so tests can assert exact
step counts. Set ``messenger.interceptor = Interceptor()`` before connecting.
Thread-safe: hits come from reactor threads, rules and waits from the test.
"""
from __future__ import annotations

import threading
from collections import defaultdict

from ..protocol.intercept import (BANNER_READ, BANNER_WRITE, SOCKET_ACCEPTED, SOCKET_CONNECTING,
                                  Action, Breakpoint, Direction, tag_bp)

__all__ = ["Action", "Breakpoint", "Direction", "Interceptor", "BANNER_WRITE", "BANNER_READ",
           "SOCKET_CONNECTING", "SOCKET_ACCEPTED", "tag_bp"]


class Interceptor:
    """Breakpoint rules, per-connection hit counters, and blocked connections."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._rules: dict = {}
        self._counts: dict = defaultdict(int)
        self._halted: dict = {}

    # ------------------------------------------------------------ test side
    def make(self, bp: Breakpoint, action: Action, round: int = 1, times: int = 1) -> None:
        """On the ``round``-th hit of ``bp`` on a connection, do ``action``.

        The rule fires for at most ``times`` connections in all (0: every one),
        so a retried attempt on a fresh connection object is not caught again.
        """
        with self._lock:
            self._rules[(bp, round)] = [action, times]

    def make_fault(self, bp: Breakpoint, round: int = 1, times: int = 1) -> None:
        self.make(bp, Action.FAULT, round, times)

    def make_block(self, bp: Breakpoint, round: int = 1, times: int = 1) -> None:
        self.make(bp, Action.BLOCK, round, times)

    def make_stall(self, bp: Breakpoint, round: int = 1, times: int = 1) -> None:
        self.make(bp, Action.STALL, round, times)

    def count(self, conn, bp: Breakpoint) -> int:
        """How many times ``conn`` hit ``bp``."""
        with self._lock:
            return self._counts[(id(conn), bp)]

    def total(self, bp: Breakpoint) -> int:
        """Hits of ``bp`` over all connections."""
        with self._lock:
            return sum(n for (_, b), n in self._counts.items() if b == bp)

    def wait_blocked(self, bp: Breakpoint | None = None, timeout: float = 10.0):
        """Waits until some connection is blocked (at ``bp``); returns it, or None."""
        def found():
            for conn, (b, action) in self._halted.items():
                if action is Action.BLOCK and (bp is None or b == bp):
                    return conn
            return None
        with self._lock:
            self._lock.wait_for(lambda: found() is not None, timeout)
            return found()

    def unblock(self, conn=None) -> None:
        """Releases the blocked connection ``conn`` (all blocked ones if None)."""
        with self._lock:
            conns = [c for c, (_, a) in self._halted.items()
                     if a is Action.BLOCK and (conn is None or c is conn)]
            for c in conns:
                del self._halted[c]
        for c in conns:
            c._reactor.submit(c._io.resume_halt)

    # ------------------------------------------------------------ reactor side
    def intercept(self, conn, bp: Breakpoint) -> Action:
        """Counts a hit of ``bp`` on ``conn`` and returns the action for it."""
        with self._lock:
            key = (id(conn), bp)
            self._counts[key] += 1
            rule = self._rules.get((bp, self._counts[key]))
            if rule is None or rule[1] < 0:
                return Action.CONTINUE
            action = rule[0]
            if rule[1] > 0:
                rule[1] -= 1
                if rule[1] == 0:
                    rule[1] = -1                  # spent
            if action in (Action.BLOCK, Action.STALL):
                self._halted[conn] = (bp, action)
                self._lock.notify_all()
            return action

    def forget(self, conn) -> None:
        """Drops ``conn``'s halt (it closed)."""
        with self._lock:
            self._halted.pop(conn, None)
