"""Message: the compiled type and its pure-Python twin behave alike.

Every test runs on both classes (the ``cls`` fixture); a Hypothesis test throws
any field values at both and wants the same outcome: the same exception type and
words, or the same attributes.
"""
from __future__ import annotations

import array
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgr._native import message as message_py

try:
    from msgr._native import _message as message_cy
except ImportError:                 # not built
    message_cy = None

FIELDS = ("type", "priority", "tid", "version", "compat_version", "data_off")
ATTRS = ("type", "front", "middle", "data", "priority", "tid", "version", "compat_version",
         "data_off", "seq", "connection", "source", "recv_stamp")


def compiled():
    if message_cy is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled Message (msgr._native._message) is not built")
        pytest.skip("the compiled Message is not built")
    return message_cy.Message


@pytest.fixture(params=["python", "cython"])
def cls(request):
    return message_py.Message if request.param == "python" else compiled()


def outcome(cls, args, kwargs):
    """What building a message gives: ('ok', attrs) or ('raise', type, words)."""
    try:
        m = cls(*args, **kwargs)
    except Exception as e:          # noqa: BLE001 - the outcome is compared
        return ("raise", type(e).__name__, str(e))
    return ("ok", tuple((a, getattr(m, a)) for a in ATTRS), m.size, repr(m))


def test_defaults_and_received_fields(cls):
    m = cls(42, front=b"f")
    assert (m.type, m.front, m.middle, m.data, m.priority, m.tid, m.version,
            m.compat_version, m.data_off) == (42, b"f", b"", b"", 127, 0, 1, 1, 0)
    assert (m.seq, m.connection, m.source, m.recv_stamp) == (0, None, None, 0.0)
    assert (cls.PRIO_LOW, cls.PRIO_DEFAULT, cls.PRIO_HIGH, cls.PRIO_HIGHEST) == (64, 127, 196, 255)
    assert m.size == 1
    assert repr(m) == "Message(type=42, seq=0, tid=0, prio=127, front=1B, middle=0B, data=0B)"


def test_fields_can_be_set_and_are_checked_at_framing_not_here(cls):
    """Like the pure class's slots: any value may be set after construction (the
    framer refuses what does not fit the wire); no other attribute may."""
    m = cls(1)
    m.tid, m.priority = -1, "x"
    assert (m.tid, m.priority) == (-1, "x")


def test_no_new_attributes_but_subclasses_may_have_them(cls):
    m = cls(1)
    with pytest.raises(AttributeError):
        m.something_else = 1

    class Typed(cls):
        TYPE = 77

        def __init__(self, payload: bytes):
            super().__init__(self.TYPE, front=payload)
            self.extra = len(payload)

    t = Typed(b"abc")
    assert isinstance(t, cls) and t.type == 77 and t.extra == 3 and t.size == 3


@pytest.mark.parametrize("kw,err,words", [
    ({"tid": -1}, ValueError, "message tid -1 out of range 0..18446744073709551615"),
    ({"priority": 256}, ValueError, "message priority 256 out of range 0..255"),
    ({"version": 1.5}, TypeError, "message version must be an int, not float"),
    ({"data_off": "3"}, TypeError, "message data_off must be an int, not str"),
    ({"front": "text"}, TypeError, "message front: str is not bytes-like"),
    ({"data": memoryview(array.array("i", [1, 2]))}, TypeError,
     "message data: a memoryview object whose len() (2) is not its size in bytes (8)"),
])
def test_bad_arguments_raise_the_same_words(cls, kw, err, words):
    with pytest.raises(err, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        cls(1, **kw)


def test_big_tids_bools_and_int_likes_pass(cls):
    class Index:
        def __index__(self):
            return 5
    assert cls(1, tid=(1 << 64) - 1).tid == (1 << 64) - 1
    assert cls(True, priority=False).type is True
    assert cls(Index()).type.__index__() == 5
    assert cls(1, front=bytearray(b"ab"), data=memoryview(b"xyz")).size == 5


def test_pickles(cls):
    m = cls(3, front=b"a", tid=9)
    m2 = pickle.loads(pickle.dumps(m))
    assert type(m2) is cls and (m2.type, m2.front, m2.tid) == (3, b"a", 9)


_values = st.one_of(st.integers(-3, 1 << 65), st.sampled_from([0, 1, 255, 256, 65535, 65536,
                                                                (1 << 63), (1 << 64) - 1, 1 << 64]),
                    st.booleans(), st.floats(allow_nan=False), st.text(max_size=3), st.none())
_segments = st.one_of(st.binary(max_size=8), st.text(max_size=3),
                      st.binary(max_size=8).map(bytearray), st.binary(max_size=8).map(memoryview),
                      st.integers(0, 3))


@settings(max_examples=400, deadline=None)
@given(fields=st.fixed_dictionaries({}, optional={f: _values for f in FIELDS[1:]}),
       type_=_values, front=_segments, data=_segments)
def test_both_classes_agree_on_any_input(fields, type_, front, data):
    cy = compiled()
    args, kwargs = (type_,), dict(fields, front=front, data=data)
    assert outcome(message_py.Message, args, kwargs) == outcome(cy, args, kwargs)
