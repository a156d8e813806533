"""The compiled frame layout and its pure twin give the same bytes and the same numbering.

Batches of messages (any segment kinds, header fields changed after construction
to anything, segments over COPY_LIMIT among them) are laid out by both
``lay_out`` twins; the buffers, lengths, seqs, ``sent`` lists and where each
stopped (and why) must agree. Valid messages must also frame as the protocol's
reference encoder (``frames.message_frame``) does.
"""
from __future__ import annotations

import array
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msgr._native import fill_message_frames
from msgr._native import layout as layout_py
from msgr._native import message as message_py
from msgr.protocol.frames import HEADER2, message_frame

try:
    from msgr._native import _layout as layout_cy
    from msgr._native import _message as message_cy
except ImportError:                 # not built
    layout_cy = message_cy = None


def compiled():
    if layout_cy is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the compiled layout (msgr._native._layout) is not built")
        pytest.skip("the compiled layout is not built")
    return layout_cy, message_cy.Message


def build(cls, spec):
    """A message of class ``cls`` from ``spec``: constructor args, then fields set after."""
    m = cls(spec["type"], front=spec["front"], middle=spec["middle"], data=spec["data"],
            tid=spec["tid"], priority=spec["prio"])
    for name, value in spec["after"].items():
        setattr(m, name, value)
    return m


def run(mod, cls, specs, rev1, lossy, hit_each=False):
    batch = [build(cls, sp) for sp in specs]
    buf, lens, sent, steps = bytearray(), [], [], []
    i, seq = 0, 10
    while i < len(batch):
        stop = i + 1 if hit_each else len(batch)
        i, seq, err = mod.lay_out(batch, i, stop, buf, lens, seq, 7, lossy, sent, rev1)
        steps.append((i, seq, err is not None))
        if err is not None or i < stop:
            break
    return (bytes(buf), lens, [(s, batch.index(m)) for s, m in sent], steps,
            [m.seq for m in batch])


def seg_value(kind, data):
    return {"bytes": data, "bytearray": bytearray(data), "view": memoryview(data),
            "ints": memoryview(array.array("i", data[: len(data) // 4 * 4])),
            "strided": memoryview(data)[::2], "str": data.decode("latin-1")}[kind]


_seg = st.tuples(st.sampled_from(["bytes", "bytes", "bytearray", "view", "ints", "strided", "str"]),
                 st.binary(max_size=24))
_bad = st.sampled_from([-1, 1 << 70, 70000, 1.5, "x", None, True, 300])
_spec = st.fixed_dictionaries({
    "type": st.integers(0, 65535), "tid": st.integers(0, (1 << 64) - 1),
    "prio": st.integers(0, 255), "front": st.binary(max_size=30), "middle": st.binary(max_size=8),
    "data": st.binary(max_size=30),
    "after": st.dictionaries(st.sampled_from(["type", "tid", "priority", "version",
                                              "compat_version", "data_off", "front", "data"]),
                             st.one_of(_bad, _seg), max_size=2)})


def _normalise(spec):
    after = {}
    for k, v in spec["after"].items():
        if k in ("front", "data"):
            after[k] = seg_value(*v) if isinstance(v, tuple) else v
        elif not isinstance(v, tuple):
            after[k] = v
    return dict(spec, after=after)


@settings(max_examples=600, deadline=None)
@given(specs=st.lists(_spec, min_size=1, max_size=6), rev1=st.booleans(), lossy=st.booleans(),
       hit_each=st.booleans())
def test_both_layouts_agree(specs, rev1, lossy, hit_each):
    mod, cls = compiled()
    specs = [_normalise(s) for s in specs]
    py = run(layout_py, message_py.Message, specs, rev1, lossy, hit_each)
    cy = run(mod, cls, specs, rev1, lossy, hit_each)
    assert [s[2] for s in py[3]] == [s[2] for s in cy[3]]       # refused alike
    if py[3][-1][2]:            # refused: where, and what came before (the rest is undone)
        i = py[3][-1][0]
        assert i == cy[3][-1][0] and py[4][:i] == cy[4][:i]
        assert [e for e in py[2] if e[1] < i] == [e for e in cy[2] if e[1] < i]
    else:
        assert py == cy


@pytest.mark.parametrize("rev1", [True, False])
def test_valid_messages_frame_as_the_reference_encoder(rev1):
    mod, cls = compiled()
    msgs = [cls(7, front=b"front", tid=3), cls(8), cls(9, middle=b"m", data=bytes(range(200)),
                                                      priority=200, version=3, data_off=4)]
    for lay in (layout_py.lay_out, mod.lay_out):
        buf, lens, sent = bytearray(), [], []
        assert lay(msgs, 0, 3, buf, lens, 0, 5, False, sent, rev1)[:2] == (3, 3)
        fill_message_frames(buf, lens, 3, rev1)
        ref = b""
        for seq, m in enumerate(msgs, 1):
            hdr = HEADER2.pack(seq, m.tid, m.type, m.priority, m.version, 0, m.data_off, 5, 3,
                               m.compat_version, 0)
            ref += b"".join(bytes(x) for x in message_frame(hdr, m.front, m.middle, m.data, rev1))
        assert bytes(buf) == ref
        assert [s for s, _ in sent] == [1, 2, 3] and [m.seq for m in msgs] == [1, 2, 3]


def test_a_large_segment_stops_the_layout_unnumbered():
    mod, cls = compiled()
    for lay, c in ((layout_py.lay_out, message_py.Message), (mod.lay_out, cls)):
        msgs = [c(1, front=b"a"), c(2, data=bytes(64 * 1024 + 1)), c(3)]
        buf, lens, sent = bytearray(), [], []
        assert lay(msgs, 0, 3, buf, lens, 0, 0, False, sent, True) == (1, 1, None)
        assert msgs[1].seq == 0 and len(sent) == 1
