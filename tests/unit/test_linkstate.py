"""What a connection does after a fault (Ceph's ProtocolV2::_fault), rule by rule, without sockets."""
from dataclasses import replace
from itertools import product

import pytest

from msgr.linkstate import FaultFacts, Handoff, LinkState, Next, after_fault, next_backoff
from msgr.policy import Policy

# a lossless client whose READY session broke, with nothing queued
BASE = FaultFacts(lossy=False, server=False, standby=False, announced=True, can_dial=True,
                  was_ready=True, peer_wait=False, has_output=False)


def facts(policy: Policy, **kw) -> FaultFacts:
    return replace(BASE, lossy=policy.lossy, server=policy.server, standby=policy.standby, **kw)


def test_lossy_rules():
    lossy = replace(BASE, lossy=True)
    assert after_fault(lossy) is Next.CLOSE_RESET                       # announced: reset
    assert after_fault(replace(lossy, announced=False)) is Next.BACKOFF  # dialler: retry
    assert after_fault(replace(lossy, announced=False, can_dial=False)) is Next.CLOSE


def test_lossless_rules_in_order():
    assert after_fault(replace(BASE, announced=False, can_dial=False)) is Next.CLOSE
    standby = replace(BASE, standby=True)
    assert after_fault(standby) is Next.STANDBY                         # nothing to send
    assert after_fault(replace(standby, has_output=True)) is Next.REDIAL
    assert after_fault(replace(standby, peer_wait=True, was_ready=False)) is Next.BACKOFF
    assert after_fault(replace(BASE, server=True, has_output=True)) is Next.STANDBY
    assert after_fault(replace(BASE, can_dial=False, has_output=True)) is Next.STANDBY
    assert after_fault(replace(BASE, has_output=True)) is Next.REDIAL   # a READY session broke
    assert after_fault(replace(BASE, was_ready=False)) is Next.BACKOFF  # a handshake failed


@pytest.mark.parametrize("policy", [Policy.lossy_client(), Policy.stateless_server(),
                                    Policy.lossless_client(), Policy.stateful_server(),
                                    Policy.lossless_peer(), Policy.lossless_peer_reuse()])
def test_every_policy_and_fact_gives_a_sensible_answer(policy):
    for announced, can_dial, was_ready, wait, out in product((False, True), repeat=5):
        if can_dial and policy.server:            # never: a server does not dial its peers
            continue
        f = facts(policy, announced=announced, can_dial=can_dial, was_ready=was_ready,
                  peer_wait=wait, has_output=out)
        nxt = after_fault(f)
        if policy.lossy:                          # a lossy session is never kept
            assert nxt not in (Next.STANDBY, Next.REDIAL)
        if nxt in (Next.REDIAL, Next.BACKOFF):    # only a side that may dial redials
            assert can_dial and not policy.server
        if nxt is Next.CLOSE_RESET:               # only an announced session is reset
            assert announced
        if not policy.lossy and announced:        # a lossless session survives any fault
            assert nxt is not Next.CLOSE and nxt is not Next.CLOSE_RESET


def test_backoff_doubles_up_to_the_maximum_and_wait_takes_the_maximum():
    b, seen = 0.0, []
    for _ in range(6):
        b = next_backoff(b, False, 0.2, 1.5)
        seen.append(b)
    assert seen == [0.2, 0.4, 0.8, 1.5, 1.5, 1.5]
    assert next_backoff(0.2, True, 0.2, 15.0) == 15.0


def test_states_are_crimsons_and_handoff_closes_both_halves():
    assert [s.name for s in LinkState] == ["NONE", "CONNECTING", "ACCEPTING", "READY",
                                           "STANDBY", "WAIT", "HANDED_OFF", "CLOSED"]
    closed = []

    class Part:
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)
    Handoff(Part("machine"), Part("transport")).close()
    assert sorted(closed) == ["machine", "transport"]
