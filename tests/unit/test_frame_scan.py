"""The frame scanner and the frame filler, on both backends, against the spec's bytes.

Every behavioural test runs against both backends (the ``nat`` fixture: ``pure``
and ``cffi_backend``); the cffi one is skipped when the extension is not built,
unless CI=true.
"""
from __future__ import annotations

import random

import pytest

from msgr._native import pure
from msgr.protocol import frames

try:
    from msgr._native import cffi_backend
except ImportError:  # extension not built
    cffi_backend = None
from tests.frame_builder import (HELLO_PAYLOAD, HELLO_REV0, HELLO_REV1, WAIT_REV0, WAIT_REV1,
                               build_frame, build_stream, expected_record, frame_size,
                               make_preamble, new_out, sample_frames, scan)
from tests.helpers import need_cffi


def _laid_out(msgs, rev1):
    """A batch as the send side lays it out: zeroed placeholders around the segments."""
    buf, lens = bytearray(), []
    for header, front, middle, data in msgs:
        buf += bytes(32) + header + (bytes(4) if rev1 else b"") + front + middle + data
        if front or middle or data or not rev1:
            buf += bytes(13 if rev1 else 17)
        lens += [len(front), len(middle), len(data)]
    return buf, lens


@pytest.mark.parametrize("rev1", [True, False])
def test_fill_message_frames_matches_message_frame(nat, rev1):
    rnd = random.Random(5)
    msgs = [(bytes(rnd.randrange(256) for _ in range(41)), f, m, d)
            for f, m, d in [(b"", b"", b""), (b"front", b"", b""), (b"", b"mid", b""),
                            (b"", b"", b"d" * 100), (b"f" * 7, b"m" * 3, b"d" * 4097)]]
    buf, lens = _laid_out(msgs, rev1)
    nat.fill_message_frames(buf, lens, len(msgs), rev1)
    want = b"".join(bytes(b) for h, f, m, d in msgs
                    for b in frames.message_frame(h, f, m, d, rev1))
    assert bytes(buf) == want


@pytest.mark.parametrize("rev1", [True, False])
def test_fill_message_frames_rejects_bad_layouts(nat, rev1):
    buf, lens = _laid_out([(bytes(41), b"abc", b"", b"")], rev1)
    before = bytes(buf)
    nat.fill_message_frames(buf, lens, 0, rev1)            # nothing to fill
    assert buf == before
    with pytest.raises(ValueError):
        nat.fill_message_frames(buf[:-1], lens, 1, rev1)   # one byte short
    with pytest.raises(ValueError):
        nat.fill_message_frames(buf + b"x", lens, 1, rev1)  # a length short: frames end early
    with pytest.raises(ValueError):
        nat.fill_message_frames(buf, lens[:2], 1, rev1)    # too few lengths
    with pytest.raises(ValueError):
        nat.fill_message_frames(buf, [-1, 4, 0], 1, rev1)  # a negative length
    with pytest.raises(ValueError):
        nat.fill_message_frames(buf, [1 << 32, 0, 0], 1, rev1)
    for lens_bad in ([1 << 63, 0, 0], [1 << 64, 0, 0], ["3", 0, 0], [3.0, 0, 0]):
        with pytest.raises(ValueError):
            nat.fill_message_frames(buf, lens_bad, 1, rev1)
    frozen = bytes(buf)
    with pytest.raises(ValueError):
        nat.fill_message_frames(frozen, lens, 1, rev1)     # read-only: never written
    assert frozen == before


def test_header2_size_agrees():
    assert pure.HEADER2_SIZE == frames.HEADER2_SIZE
    if cffi_backend is not None:
        assert cffi_backend.lib.MSGR_HEADER2_SIZE == frames.HEADER2_SIZE


def test_builder_matches_spec_vectors():
    assert build_frame(0x01, [HELLO_PAYLOAD], True) == HELLO_REV1
    assert len(HELLO_REV1) == 72
    assert build_frame(0x01, [HELLO_PAYLOAD], False) == HELLO_REV0
    assert len(HELLO_REV0) == 85
    assert build_frame(0x10, [b""], True) == WAIT_REV1
    assert build_frame(0x10, [b""], False) == WAIT_REV0


@pytest.mark.parametrize("rev1,frame,tag,lens", [
    (True, HELLO_REV1, 1, [36]),
    (False, HELLO_REV0, 1, [36]),
    (True, WAIT_REV1, 0x10, [0]),
    (False, WAIT_REV0, 0x10, [0]),
])
def test_scan_spec_vectors(nat, rev1, frame, tag, lens):
    res, recs = scan(nat, frame, rev1)
    assert res == (1, nat.SCAN_OK, len(frame), 0)
    assert recs == [[0, tag, 1, *lens, 0, 0, 0, 0]]


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_every_prefix(nat, rev1):
    buf, layout = build_stream(rev1)
    assert len(layout) == len(sample_frames())
    for end in range(len(buf) + 1):
        complete = [f for f in layout if f[0] + f[1] <= end]
        pos = complete[-1][0] + complete[-1][1] if complete else 0
        rest = layout[len(complete):]
        need = rest[0][1] if rest and end - pos >= 32 else 0
        for obj in (buf, bytes(buf[:end])):
            res, recs = scan(nat, obj, rev1, end=end)
            assert res == (len(complete), 0, pos, need), end
            assert recs == [f[2] for f in complete]


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_buffer_kinds_and_start(nat, rev1):
    buf, layout = build_stream(rev1)
    junk = b"\xAA" * 13
    data = junk + buf
    shifted = [[r[0] + len(junk), *r[1:]] for _, _, r in layout]
    for obj in (data, bytearray(data), memoryview(data),
                memoryview(bytearray(data)).toreadonly()):
        res, recs = scan(nat, obj, rev1, start=len(junk))
        assert res == (len(layout), 0, len(data), 0)
        assert recs == shifted
    # a memoryview that starts at a non-zero offset of its base buffer
    res, recs = scan(nat, memoryview(b"zz" + buf)[2:], rev1)
    assert res == (len(layout), 0, len(buf), 0)
    assert recs == [r for _, _, r in layout]


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_max_frames(nat, rev1):
    buf, layout = build_stream(rev1)
    res, recs = scan(nat, buf, rev1, max_frames=0)
    assert res == (0, 0, 0, 0) and recs == []
    res, recs = scan(nat, buf, rev1, max_frames=3)
    pos = layout[2][0] + layout[2][1]
    assert res == (3, 0, pos, 0)
    assert recs == [f[2] for f in layout[:3]]
    res, recs = scan(nat, buf, rev1, start=pos, max_frames=64)
    assert res == (len(layout) - 3, 0, len(buf), 0)
    assert recs == [f[2] for f in layout[3:]]


def _region_status(nat, rev1, segments, index, bit):
    """Expected (status, flags) after flipping ``bit`` of byte ``index``."""
    lens = [len(s) for s in segments]
    n = len(lens)
    if index < 32:
        return nat.SCAN_BAD_PREAMBLE_CRC, 0
    off = index - 32
    if rev1:
        first = lens[0] + (4 if lens[0] else 0)
        if off < first + sum(lens[1:]):
            return nat.SCAN_BAD_SEGMENT_CRC, 0
        epi = off - first - sum(lens[1:])
        if epi == 0:
            late = 0x0E ^ (1 << bit)
            if late & 0x0F == 0x0E:
                return nat.SCAN_OK, 0
            return (nat.SCAN_OK, nat.FLAG_ABORTED) if late & 0x0F == 1 else \
                (nat.SCAN_BAD_LATE_STATUS, 0)
        used = (epi - 1) // 4 + 1 < n
        return (nat.SCAN_BAD_SEGMENT_CRC if used else nat.SCAN_OK), 0
    if off < sum(lens):
        return nat.SCAN_BAD_SEGMENT_CRC, 0
    epi = off - sum(lens)
    if epi == 0:
        return nat.SCAN_OK, (nat.FLAG_ABORTED if bit == 0 else 0)
    used = (epi - 1) // 4 < n
    return (nat.SCAN_BAD_SEGMENT_CRC if used else nat.SCAN_OK), 0


@pytest.mark.parametrize("rev1", [True, False])
@pytest.mark.parametrize("segments", [
    [HELLO_PAYLOAD],
    [b""],
    [b"abc", b"defgh"],
    [b"ab", b"", b"", b"xyz"],
    [b"", b"q", b"", b"r"],
])
def test_scan_every_bit_flip(nat, rev1, segments):
    good = build_frame(0x11, [b"ok"], rev1)
    frame = build_frame(0x22, segments, rev1)
    assert len(frame) == frame_size([len(s) for s in segments], rev1)
    for index in range(len(frame)):
        for bit in (range(8) if index < 40 or index >= len(frame) - 17
                    else (0, 5)):
            bad = bytearray(frame)
            bad[index] ^= 1 << bit
            status, flags = _region_status(nat, rev1, segments, index, bit)
            res, recs = scan(nat, good + bytes(bad) + good, rev1)
            if status == nat.SCAN_OK:
                assert res[:2] == (3, 0), (index, bit, res)
                assert recs[1][7] == flags, (index, bit)
            else:
                assert res == (1, status, len(good), 0), (index, bit, res)
                assert recs == [expected_record(0, 0x11, [b"ok"])]


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_bad_preamble_reported_before_body(nat, rev1):
    frame = build_frame(0x11, [b"x" * 100, b"y" * 50], rev1)
    corrupt = bytearray(frame[:32])
    corrupt[3] ^= 0x40
    assert scan(nat, bytes(corrupt), rev1)[0] == (0, 1, 0, 0)
    # a valid preamble alone reports the needed size
    assert scan(nat, frame[:32], rev1)[0] == (0, 0, 0, len(frame))
    assert scan(nat, frame[:31], rev1)[0] == (0, 0, 0, 0)


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_segment_counts(nat, rev1):
    for nseg, lens in ((0, []), (5, [1, 1, 1, 1]), (255, [1, 1, 1, 1]),
                       (2, [4, 0]), (4, [1, 2, 3, 0])):
        pre = make_preamble(0x11, nseg, lens)
        assert scan(nat, pre, rev1)[0] == (0, 2, 0, 0), (nseg, lens)
        assert scan(nat, pre + b"\0" * 200, rev1)[0] == (0, 2, 0, 0)
    # a single empty segment is fine (e.g. WAIT)
    assert scan(nat, make_preamble(0x10, 1, [0]), rev1)[0][1] == 0


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_segment_too_large(nat, rev1):
    frame = build_frame(0x11, [b"a" * 10, b"b" * 300], rev1)
    assert scan(nat, frame, rev1, max_segment=300)[0] == (1, 0, len(frame), 0)
    assert scan(nat, frame, rev1, max_segment=299)[0] == (0, 3, 0, 0)
    assert scan(nat, frame[:32], rev1, max_segment=299)[0] == (0, 3, 0, 0)
    huge = make_preamble(0x11, 1, [0xFFFFFFFF])
    assert scan(nat, huge, rev1, max_segment=1 << 20)[0] == (0, 3, 0, 0)
    size = frame_size([0xFFFFFFFF], rev1)
    assert scan(nat, huge, rev1, max_segment=1 << 40)[0] == (0, 0, 0, size)


def test_scan_late_status_values(nat):
    segs = [b"front", b"middle"]
    for late, want in ((0x0E, (0, 0)), (0xFE, (0, 0)), (0x01, (0, 1)),
                       (0x71, (0, 1)), (0x00, (5, None)), (0x0F, (5, None)),
                       (0x05, (5, None)), (0xE0, (5, None))):
        frame = build_frame(0x11, segs, True, late=late)
        res, recs = scan(nat, frame, True)
        assert res[1] == want[0], hex(late)
        if want[1] is not None:
            assert recs[0][7] == want[1]
    for flags, aborted in ((0, 0), (1, 1), (0xFE, 0), (0xFF, 1)):
        frame = build_frame(0x11, segs, False, late=flags)
        res, recs = scan(nat, frame, False)
        assert res[1] == 0 and recs[0][7] == aborted


def test_scan_crc_checked_before_late_status(nat):
    frame = build_frame(0x11, [b"front", b"middle"], True, late=0x33)
    frame = bytearray(frame)
    frame[32 + 5 + 4] ^= 1  # first byte of segment 1
    assert scan(nat, bytes(frame), True)[0] == (0, 4, 0, 0)


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_ignores_unused_descriptors(nat, rev1):
    frame = build_frame(0x11, [b"abc", b"de"], rev1,
                        tail_descs=[(999999999, 7), (123, 4096)])
    res, recs = scan(nat, frame, rev1, max_segment=100)
    assert res == (1, 0, len(frame), 0)
    assert recs == [[0, 0x11, 2, 3, 2, 0, 0, 0]]


@pytest.mark.parametrize("rev1", [True, False])
def test_scan_empty_middle_segments(nat, rev1):
    segs = [b"F" * 7, b"", b"", b"D" * 4096]
    frame = build_frame(0x11, segs, rev1)
    res, recs = scan(nat, frame, rev1)
    assert res == (1, 0, len(frame), 0)
    assert recs == [[0, 0x11, 4, 7, 0, 0, 4096, 0]]


def test_scan_argument_checks(nat):
    out = new_out(4)
    with pytest.raises(ValueError):
        nat.scan_frames(HELLO_REV1, 0, 73, True, 1 << 20, out, 4)
    with pytest.raises(ValueError):
        nat.scan_frames(HELLO_REV1, 10, 5, True, 1 << 20, out, 4)
    with pytest.raises(ValueError):
        nat.scan_frames(HELLO_REV1, -1, 5, True, 1 << 20, out, 4)
    with pytest.raises(ValueError):
        nat.scan_frames(HELLO_REV1, 0, 72, True, 1 << 20, out, 5)
    with pytest.raises(ValueError):
        nat.scan_frames(HELLO_REV1, 0, 72, True, 1 << 20, out, -1)
    with pytest.raises(TypeError):
        nat.scan_frames(HELLO_REV1, 0, 72, True, 1 << 20, bytes(64), 1)
    assert nat.scan_frames(HELLO_REV1, 72, 72, True, 1 << 20, out, 4) == \
        (0, 0, 72, 0)


def test_scan_backends_agree_on_random_streams():
    cffi_mod = need_cffi()
    rnd = random.Random(2024)
    for case in range(300):
        rev1 = bool(case & 1)
        frames = []
        for _ in range(rnd.randrange(1, 6)):
            n = rnd.randrange(1, 5)
            segs = [bytes(rnd.randrange(256) for _ in range(rnd.choice(
                (0, 1, 3, 8, 40)))) for _ in range(n)]
            if n > 1 and not segs[-1]:
                segs[-1] = b"z"
            frames.append((rnd.randrange(256), segs, rnd.random() < 0.2))
        buf = bytearray(build_stream(rev1, frames)[0])
        for _ in range(rnd.randrange(3)):
            buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
        end = rnd.randrange(len(buf) + 1) if rnd.random() < 0.3 else len(buf)
        max_segment = rnd.choice((1 << 20, 30))
        max_frames = rnd.choice((64, 2))
        results = []
        for mod in (pure, cffi_mod):
            out = new_out(max_frames)
            res = mod.scan_frames(bytes(buf), 0, end, rev1, max_segment, out,
                                  max_frames)
            results.append((res, list(out[:8 * res[0]])))
        assert results[0] == results[1], case


def test_scanner_matches_scan_frames(nat):
    """The Scanner form gives scan_frames' results and records, over rescans
    of one buffer rewritten in place, a longer range, and another buffer."""
    rnd = random.Random(7)
    sc = nat.Scanner(4)
    assert len(sc.recs) == 4 * 8
    buf = bytearray(4096)
    for case in range(200):
        rev1 = bool(case & 1)
        frames = [(rnd.randrange(256), [bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 8, 40))))],
                   False) for _ in range(rnd.randrange(1, 7))]
        stream = build_stream(rev1, frames)[0]
        if rnd.random() < 0.2:
            stream = bytearray(stream)
            stream[rnd.randrange(len(stream))] ^= 1
        target = buf if case % 3 else bytearray(len(stream) + 5)
        target[:len(stream)] = stream
        end = rnd.randrange(len(stream) + 1) if rnd.random() < 0.3 else len(stream)
        got = sc.scan(target, 0, end, rev1, 1 << 20)
        out = new_out(4)
        want = nat.scan_frames(bytes(target), 0, end, rev1, 1 << 20, out, 4)
        assert got == want, case
        assert list(sc.recs[:8 * got[0]]) == list(out[:8 * want[0]]), case


def test_scanner_forget_releases_the_buffer(nat):
    sc = nat.Scanner(2)
    buf = bytearray(HELLO_REV1)
    assert sc.scan(buf, 0, len(buf), True, 1 << 20)[:2] == (1, 0)
    sc.forget()
    buf.append(0)                         # no export left: the buffer may resize again
    assert sc.scan(buf, 0, len(buf) - 1, True, 1 << 20)[:2] == (1, 0)


def test_scanner_argument_checks(nat):
    sc = nat.Scanner(2)
    with pytest.raises(ValueError):
        sc.scan(HELLO_REV1, 0, 73, True, 1 << 20)
    with pytest.raises(ValueError):
        sc.scan(HELLO_REV1, 10, 5, True, 1 << 20)
    with pytest.raises(ValueError):
        sc.scan(HELLO_REV1, -1, 5, True, 1 << 20)
    with pytest.raises(ValueError):
        nat.Scanner(-1)
    assert sc.scan(HELLO_REV1, 0, 72, True, 1 << 20)[:2] == (1, 0)
