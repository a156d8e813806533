"""BusyPoll: polls at every wake-up while windows find work; backs off on runs of misses."""
from msgr.reactor.busypoll import MAX_SKIP, MISS_RUN, BusyPoll


def polls_in(bp: BusyPoll, wakeups: int, found_work: bool) -> int:
    """Simulates ``wakeups`` wake-ups; returns how many polled."""
    n = 0
    for _ in range(wakeups):
        if bp.should_poll():
            n += 1
            bp.hit() if found_work else bp.miss()
    return n


def test_request_reply_keeps_polling():
    assert polls_in(BusyPoll(1e-4), 1000, True) == 1000


def test_sparse_traffic_backs_off_and_hits_restore():
    bp = BusyPoll(1e-4)
    assert polls_in(bp, MISS_RUN, False) == MISS_RUN          # the first run of misses
    assert not bp.should_poll()                                # ... skips one wake-up
    steady = polls_in(bp, 10_000, False)
    assert steady <= 10_000 * MISS_RUN / MAX_SKIP * 1.2        # few windows wasted
    assert steady >= 10_000 * MISS_RUN / (MAX_SKIP + MISS_RUN) * 0.8   # still probing
    while not bp.should_poll():                                # wait out the back-off
        pass
    bp.hit()                                                   # work came back
    assert polls_in(bp, 100, True) == 100
