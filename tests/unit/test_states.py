"""The transition table: every (state, input) pair, with Hypothesis payloads.

Property: feeding any input in any state either lands in a valid state from
the table, or faults and ends terminal (CLOSED/WAIT) with one Faulted event;
nothing else escapes.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgr.protocol.events import NEED_DATA, Faulted
from msgr.protocol.machine import ProtocolMachine
from msgr.protocol.states import ACCEPTING_STATES, CONNECTING_STATES, TRANSITIONS, ConnState, Input
from msgr.testing.pair import make_params

FRAME_INPUTS = [i for i in Input if isinstance(i.value, int)]


def machine_in(state: ConnState, connecting: bool) -> ProtocolMachine:
    m = ProtocolMachine(make_params(connecting), connecting=connecting)
    m.start(0.0)
    m.data_to_send()
    m.state = state
    m._banner_done = True
    return m


@settings(max_examples=600, deadline=None)
@given(state=st.sampled_from(list(ConnState)), inp=st.sampled_from(FRAME_INPUTS),
       payload=st.binary(max_size=64), connecting=st.booleans())
def test_every_pair_lands_valid_or_faults(state, inp, payload, connecting):
    if state in (ACCEPTING_STATES if connecting else CONNECTING_STATES):
        return      # a machine never enters the other role's states
    m = machine_in(state, connecting)
    edge = TRANSITIONS.get((state, inp))
    if state is ConnState.CLOSED:
        return
    m._run(inp, payload)
    events = []
    while (ev := m.next_event()) is not NEED_DATA:
        events.append(ev)
    fs = [e for e in events if isinstance(e, Faulted)]
    if edge is None:
        assert m.state is ConnState.CLOSED and len(fs) == 1
    elif fs:
        assert len(fs) == 1 and m.state in (ConnState.CLOSED, ConnState.WAIT)
    else:
        assert m.state is edge.next or m.state in edge.alt


def test_table_names_only_real_actions():
    """Each edge's action resolves, once per role, to exactly one function: on the
    role's handshake, or on the machine (steady state and local inputs)."""
    from msgr.protocol.machine import _ACTIONS
    for connecting in (True, False):
        m = ProtocolMachine(make_params(connecting), connecting=connecting)
        others = ACCEPTING_STATES if connecting else CONNECTING_STATES
        for (state, inp), edge in TRANSITIONS.items():
            if state in others:
                continue
            on_hs = callable(getattr(m.hs, edge.action, None))
            on_machine = hasattr(m, "_a_" + edge.action)
            assert on_hs != on_machine, (connecting, state, inp, edge)
            assert _ACTIONS[connecting][edge.action] == (
                on_hs, getattr(type(m.hs) if on_hs else ProtocolMachine,
                               edge.action if on_hs else "_a_" + edge.action))


def test_a_decision_takes_the_reply_or_its_value_and_nothing_else():
    from msgr.protocol.events import Decision, Reply
    assert Decision("accept").kind is Reply.ACCEPT and Decision(Reply.WAIT).kind is Reply.WAIT
    with pytest.raises(ValueError):
        Decision("acept")


def test_every_live_state_handles_fault_and_close():
    for s in ConnState:
        assert (s, Input.CLOSE) in TRANSITIONS
        if s is not ConnState.CLOSED:
            assert (s, Input.FAULT) in TRANSITIONS


def test_state_diagram_covers_the_table():
    from tools.gen_state_diagram import edges, render
    drawn = {(a, label.split(" / ")[0]) for a, _, label in edges()}
    for (state, inp) in TRANSITIONS:
        if inp not in (Input.FAULT, Input.CLOSE, Input.TIMEOUT):
            assert (state.name, inp.name) in drawn
    assert render().startswith("digraph ProtocolV2")
