"""Reactor: one thread, one selector, one timer heap, one wakeup fd.

Theory of operation. Everything registered with a reactor (fds, timers,
connections) is touched only by its thread. Other threads talk to it through
:meth:`Reactor.submit`, which appends to a locked queue and writes the eventfd
once per batch (``_wake_pending`` coalesces the writes); from the reactor's own
thread ``submit`` only queues (no syscall). Each loop iteration: select (with
the nearest timer as timeout), run fd callbacks, due timers, submitted calls,
then the end-of-iteration hooks (which publish dispatch-ring batches). The
loop's clock (``self.time``) is read once per iteration.

Busy polling (``busy_poll`` seconds, ``Config.ms_busy_poll_us``; off by
default): before sleeping, the loop polls without blocking for up to that
long, yielding the CPU between polls. A reply that arrives within the window
is picked up without a wake-up (on a VM about 25 us each way, plus the caches
an idle vCPU loses), at the price of that much CPU after each burst of work.
An idle reactor still sleeps: the window only follows activity, and
:class:`~msgr.reactor.busypoll.BusyPoll` backs off when windows keep running
out (sparse traffic).

A callback that raises is logged and the loop goes on; the owner of the
callback (a connection) is expected to catch its own errors.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections import deque

from .busypoll import BusyPoll
from .headroom import CpuHeadroom

__all__ = ["Reactor", "Timer", "EVENT_READ", "EVENT_WRITE"]

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE
log = logging.getLogger(__name__)


class Timer:
    """A handle to a scheduled call; ``cancel()`` is idempotent (reactor thread only)."""

    __slots__ = ("deadline", "fn", "cancelled")

    def __init__(self, deadline: float, fn) -> None:
        self.deadline = deadline
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    """An I/O thread. See the module docstring.

    Args:
        name: the thread name (``msgr-io-0``).
        index: this reactor's position in its pool (ring producer index).
        busy_poll: seconds to poll without sleeping before each sleep (0: never).
    """

    def __init__(self, name: str, index: int = 0, busy_poll: float = 0.0) -> None:
        self.name = name
        self.index = index
        self._poll = BusyPoll(busy_poll) if busy_poll > 0 else None
        self.counters = None            # the owner's Counters (busy_poll_hits / _misses), if any
        self.headroom = CpuHeadroom()   # owner-only: may a connection write replies early?
        self.load = 0
        self.time = time.monotonic()
        self._sel = selectors.DefaultSelector()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._sel.register(self._wake_fd, EVENT_READ, self._on_wake)
        self._lock = threading.Lock()
        self._submitted: deque = deque()
        self._wake_pending = False
        self._timers: list = []
        self._seq = itertools.count()
        self._end_hooks: list = []
        self._soon: list = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._tid = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Asks the loop to finish after the calls already submitted; any thread."""
        self.submit(self._set_stopping)

    def _set_stopping(self) -> None:
        self._stopping = True

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread; True when it has ended (or never started)."""
        if self._thread.ident is None:
            return True
        if self._thread is threading.current_thread():
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def in_thread(self) -> bool:
        """True when called on this reactor's own thread."""
        return self._tid == threading.get_ident()

    # ------------------------------------------------------------ cross-thread
    def submit(self, fn, *args) -> None:
        """Runs ``fn(*args)`` on the reactor thread soon; callable from any thread."""
        with self._lock:
            self._submitted.append((fn, args))
            if self._wake_pending or self._tid == threading.get_ident():
                return
            self._wake_pending = True
            # under the lock: _close() cannot close the fd (and let its number be reused
            # by another file) between the check and the write
            if self._wake_fd >= 0:
                try:
                    os.eventfd_write(self._wake_fd, 1)
                except OSError:
                    pass

    def _on_wake(self, _mask: int) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass

    # ------------------------------------------------------------ owner-only
    def register(self, fd: int, events: int, callback) -> None:
        """Calls ``callback(mask)`` when ``fd`` is ready for ``events``."""
        self._sel.register(fd, events, callback)

    def modify(self, fd: int, events: int, callback) -> None:
        self._sel.modify(fd, events, callback)

    def unregister(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_at(self, deadline: float, fn) -> Timer:
        """Runs ``fn()`` at monotonic time ``deadline`` (reactor thread only)."""
        t = Timer(deadline, fn)
        heapq.heappush(self._timers, (deadline, next(self._seq), t))
        return t

    def call_later(self, delay: float, fn) -> Timer:
        return self.call_at(self.time + delay, fn)

    def call_soon(self, fn) -> None:
        """Runs ``fn()`` at the end of this loop iteration (reactor thread only, no lock)."""
        self._soon.append(fn)

    def add_end_hook(self, fn) -> None:
        """Runs ``fn()`` at the end of every loop iteration (ring publishing)."""
        self._end_hooks.append(fn)

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        self._tid = threading.get_ident()
        try:
            while not self._stopping:
                self._iterate()
        finally:
            self._close()

    def _iterate(self) -> None:
        timeout = None
        if self._submitted or self._soon:
            timeout = 0
        elif self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        if self._poll is not None and timeout != 0 and self._poll.should_poll():
            events = self._poll_busy(timeout)
        else:
            events = self._sel.select(timeout)
        self.time = now = time.monotonic()
        for key, mask in events:
            try:                            # _call, inlined: one frame less per callback
                key.data(mask)
            except Exception:
                log.exception("%s: callback %r failed", self.name, key.data)
        timers = self._timers
        if timers and timers[0][0] <= now:
            self._run_timers()
        if self._submitted:
            self._run_submitted()
        while self._soon:
            soon, self._soon = self._soon, []
            for fn in soon:
                try:
                    fn()
                except Exception:
                    log.exception("%s: callback %r failed", self.name, fn)
        for hook in self._end_hooks:
            self._call(hook)

    def _poll_busy(self, timeout: float | None) -> list:
        """Polls for up to the BusyPoll window (never past ``timeout``), then sleeps."""
        select, now = self._sel.select, time.monotonic
        start = now()
        window = self._poll.window if timeout is None else min(self._poll.window, timeout)
        counters = self.counters
        while True:
            events = select(0)
            if events:
                self._poll.hit()
                if counters is not None:
                    counters.busy_poll_hits += 1
                return events
            spent = now() - start
            if spent >= window:
                break
            os.sched_yield()            # a task sharing this CPU (the peer, say) runs first
        self._poll.miss()
        if counters is not None:
            counters.busy_poll_misses += 1
        return select(None if timeout is None else max(0.0, timeout - spent))

    def _run_timers(self) -> None:
        now = self.time
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, t = heapq.heappop(timers)
            if not t.cancelled:
                self._call(t.fn)

    def _run_submitted(self) -> None:
        with self._lock:
            batch, self._submitted = self._submitted, deque()
            self._wake_pending = False
        for fn, args in batch:
            self._call(fn, *args)

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: callback %r failed", self.name, fn)

    def _close(self) -> None:
        self._run_submitted()
        self._sel.close()
        with self._lock:
            fd, self._wake_fd = self._wake_fd, -1
            os.close(fd)
