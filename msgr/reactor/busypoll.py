"""BusyPoll: when a reactor should poll before sleeping (``Config.ms_busy_poll_us``).

Polling pays when work comes back within the window (a request/reply
exchange): the reply is picked up without a wake-up. It burns the window for
nothing when traffic is sparse. So polling backs off by itself: after
``MISS_RUN`` windows in a row that found nothing, the next ``skip`` wake-ups
sleep at once, and ``skip`` doubles (up to ``MAX_SKIP``) on every further run
of misses; one window that finds work restores polling at every wake-up.
With sparse traffic about ``MISS_RUN`` of every ``MAX_SKIP + MISS_RUN``
wake-ups still poll, so a change of pattern is noticed.

Owned by one reactor thread; no locks.
"""
from __future__ import annotations

__all__ = ["BusyPoll", "MISS_RUN", "MAX_SKIP"]

MISS_RUN = 4
MAX_SKIP = 64


class BusyPoll:
    """Args: window: seconds to poll before sleeping (> 0)."""

    __slots__ = ("window", "_misses", "_skip", "_backoff")

    def __init__(self, window: float) -> None:
        self.window = window
        self._misses = 0
        self._skip = 0
        self._backoff = 1

    def should_poll(self) -> bool:
        """True if this wake-up should poll first; counts down a back-off."""
        if self._skip:
            self._skip -= 1
            return False
        return True

    def hit(self) -> None:
        """A window found work: poll at every wake-up again."""
        self._misses = 0
        self._backoff = 1

    def miss(self) -> None:
        """A window ran out: after MISS_RUN in a row, sleep at once for a while."""
        self._misses += 1
        if self._misses >= MISS_RUN:
            self._misses = 0
            self._skip = self._backoff
            self._backoff = min(2 * self._backoff, MAX_SKIP)
