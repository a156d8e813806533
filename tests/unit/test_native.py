"""Tests of msgr._native: CRC32C, the frame scanner and the ring set.

Every behavioural test runs against both backends (``pure`` and
``cffi_backend``).  The cffi one is skipped when the extension is not built,
unless CI=true, where a missing extension is a failure.
"""

from __future__ import annotations

import array
import importlib
import os
import pathlib
import random
import re
import struct
import subprocess
import sys
import threading
import time

import pytest

import msgr._native as native
from msgr._native import pure
from msgr.protocol import frames

try:
    from msgr._native import cffi_backend
except ImportError:  # extension not built
    cffi_backend = None

CRC_SEED = 0xFFFFFFFF

# ------------------------------------------------------------------ fixtures


def need_cffi():
    """The cffi backend; skips (fails when CI=true) if it is not built."""
    if cffi_backend is None:
        if os.environ.get("CI") == "true":
            pytest.fail("cffi extension missing: "
                        "run python cffi_build/build_native.py")
        pytest.skip("cffi extension not built")
    return cffi_backend


@pytest.fixture(params=["python", "cffi"])
def nat(request):
    """The backend module under test."""
    return pure if request.param == "python" else need_cffi()


# ------------------------------------------------------------- frame builder

_crc = pure.crc32c


def make_preamble(tag, nseg, lens, aligns=None, tail_descs=None):
    """32-byte preamble with a correct crc; unused descriptors are zero
    unless ``tail_descs`` supplies (len, align) pairs for them."""
    descs = b""
    for i in range(4):
        if i < len(lens):
            descs += struct.pack("<IH", lens[i], aligns[i] if aligns else 8)
        elif tail_descs:
            descs += struct.pack("<IH", *tail_descs[i - len(lens)])
        else:
            descs += struct.pack("<IH", 0, 0)
    head = struct.pack("<BB", tag, nseg) + descs + b"\0\0"
    return head + struct.pack("<I", _crc(0, head))


def build_frame(tag, segments, rev1, late=None, aborted=False, aligns=None,
                tail_descs=None):
    """Builds one crc-mode msgr2 frame.

    Args:
        tag: frame tag.
        segments: 1..4 byte strings.
        rev1: msgr2.1 framing if True, else msgr2.0.
        late: rev1 late_status byte / rev0 late_flags byte; by default
            COMPLETE (0x0E) or aborted (0x01) for rev1, 0 or 1 for rev0.
        aborted: build an aborted frame (only used when ``late`` is None).
        aligns: alignments put in the descriptors (default 8).
        tail_descs: garbage (len, align) for the unused descriptors.
    """
    n = len(segments)
    pre = make_preamble(tag, n, [len(s) for s in segments], aligns, tail_descs)
    crcs = [_crc(CRC_SEED, s) for s in segments] + [0] * (4 - n)
    if rev1:
        body = segments[0]
        if segments[0]:
            body += struct.pack("<I", crcs[0])
        body += b"".join(segments[1:])
        if n > 1:
            status = late if late is not None else (0x01 if aborted else 0x0E)
            body += bytes([status]) + struct.pack("<3I", *crcs[1:4])
    else:
        flags = late if late is not None else (1 if aborted else 0)
        body = b"".join(segments) + bytes([flags]) + struct.pack("<4I", *crcs)
    return pre + body


def frame_size(lens, rev1):
    size = 32 + sum(lens)
    if not rev1:
        return size + 17
    return size + (4 if lens[0] else 0) + (13 if len(lens) > 1 else 0)


def expected_record(offset, tag, segments, flags=0):
    lens = [len(s) for s in segments] + [0] * (4 - len(segments))
    return [offset, tag, len(segments), *lens, flags]


def new_out(max_frames):
    return array.array("q", [-1] * (max_frames * 8))


def scan(nat, buf, rev1, start=0, end=None, max_segment=1 << 30,
         max_frames=64):
    """Runs scan_frames; returns (result tuple, list of records)."""
    out = new_out(max_frames)
    end = len(buf) if end is None else end
    res = nat.scan_frames(buf, start, end, rev1, max_segment, out, max_frames)
    recs = [list(out[8 * k:8 * k + 8]) for k in range(res[0])]
    return res, recs


# msgr2 spec vectors
HELLO_PREAMBLE = bytes.fromhex("0101240000000800" + "00" * 20)
HELLO_PAYLOAD = bytes.fromhex(
    "08010101" "1c000000" "02000000" "00000000" "10000000" "0200" "0ce4"
    "7f000001" "0000000000000000")
HELLO_REV1 = (HELLO_PREAMBLE + bytes.fromhex("3fbd6b06") + HELLO_PAYLOAD
              + bytes.fromhex("7d883e07"))
HELLO_REV0 = (HELLO_PREAMBLE + bytes.fromhex("3fbd6b06") + HELLO_PAYLOAD
              + bytes.fromhex("00" "7d883e07" + "00" * 12))
WAIT_REV1 = (bytes.fromhex("1001000000000800") + b"\0" * 20
             + bytes.fromhex("c8e3aab0"))
WAIT_REV0 = WAIT_REV1 + bytes.fromhex("00" "ffffffff" + "00" * 12)


def sample_frames():
    """(tag, segments, aborted) covering the interesting shapes."""
    rnd = random.Random(7)
    blob = lambda n: bytes(rnd.randrange(256) for _ in range(n))  # noqa: E731
    return [
        (0x01, [HELLO_PAYLOAD], False),
        (0x10, [b""], False),
        (0x11, [blob(5), blob(17)], False),
        (0x11, [blob(9), b"", b"", blob(3)], False),
        (0x11, [b"", b"", b"", blob(1)], False),
        (0x11, [blob(20), blob(4), blob(33)], True),
        (0x07, [blob(64)], False),
        (0x11, [b"", blob(8)], False),
    ]


def build_stream(rev1, frames=None):
    """Concatenated frames; returns (buffer, list of (offset, size, rec))."""
    buf, layout = b"", []
    for tag, segs, aborted in frames or sample_frames():
        frame = build_frame(tag, segs, rev1, aborted=aborted)
        flags = 1 if (aborted and (len(segs) > 1 or not rev1)) else 0
        layout.append((len(buf), len(frame),
                       expected_record(len(buf), tag, segs, flags)))
        buf += frame
    return buf, layout


# ------------------------------------------------------------------ API


def test_public_lists_identical():
    cffi_mod = need_cffi()
    assert pure.__all__ == cffi_mod.__all__
    for name in pure.__all__:
        assert hasattr(pure, name) and hasattr(cffi_mod, name)
        if name.startswith(("SCAN_", "FRAME_", "FLAG_")):
            assert getattr(pure, name) == getattr(cffi_mod, name)


def test_package_exports():
    assert sorted(native.__all__) == sorted(pure.__all__)
    for name in native.__all__:
        assert hasattr(native, name)
    assert native.BACKEND in ("cffi", "python")
    assert (native.SCAN_OK, native.SCAN_BAD_PREAMBLE_CRC,
            native.SCAN_BAD_SEGMENT_COUNT, native.SCAN_SEGMENT_TOO_LARGE,
            native.SCAN_BAD_SEGMENT_CRC, native.SCAN_BAD_LATE_STATUS,
            native.FRAME_RECORD_SIZE, native.FLAG_ABORTED) == (
                0, 1, 2, 3, 4, 5, 8, 1)


def test_backend_selection(monkeypatch):
    try:
        monkeypatch.setenv("MSGR_NATIVE", "0")
        assert importlib.reload(native).BACKEND == "python"
        monkeypatch.setenv("MSGR_NATIVE", "1")
        if cffi_backend is None:
            with pytest.raises(ImportError):
                importlib.reload(native)
        else:
            assert importlib.reload(native).BACKEND == "cffi"
        monkeypatch.delenv("MSGR_NATIVE")
        expected = "python" if cffi_backend is None else "cffi"
        assert importlib.reload(native).BACKEND == expected
    finally:
        monkeypatch.undo()
        importlib.reload(native)


# ------------------------------------------------------------------ CRC32C


def test_crc32c_vectors(nat):
    for fn in (nat.crc32c, nat.crc32c_sw):
        assert fn(CRC_SEED, b"123456789") ^ CRC_SEED == 0xE3069283
        assert fn(CRC_SEED, b"") == CRC_SEED
        assert fn(0, b"") == 0
        assert fn(0, HELLO_PREAMBLE) == 0x066BBD3F
        assert fn(CRC_SEED, HELLO_PAYLOAD) == 0x073E887D
        assert struct.pack("<I", fn(0, HELLO_PREAMBLE)) == bytes.fromhex(
            "3fbd6b06")
        assert struct.pack("<I", fn(CRC_SEED, HELLO_PAYLOAD)) == bytes.fromhex(
            "7d883e07")


def test_crc32c_buffer_kinds(nat):
    data = bytes(range(256)) * 3
    want = nat.crc32c(CRC_SEED, data[5:700])
    ba = bytearray(data)
    for obj in (data[5:700], bytearray(data[5:700]), memoryview(data)[5:700],
                memoryview(ba)[5:700], memoryview(ba).toreadonly()[5:700]):
        assert nat.crc32c(CRC_SEED, obj) == want
        assert nat.crc32c_sw(CRC_SEED, obj) == want
    words = array.array("q", range(10))
    assert nat.crc32c(7, words) == nat.crc32c(7, words.tobytes())


def test_crc32c_chaining_and_seed(nat):
    data = bytes(random.Random(1).randrange(256) for _ in range(1000))
    for cut in (0, 1, 7, 8, 9, 500, 999, 1000):
        assert nat.crc32c(nat.crc32c(123, data[:cut]), data[cut:]) == \
            nat.crc32c(123, data)
    with pytest.raises(OverflowError):
        nat.crc32c(-1, b"x")
    with pytest.raises(OverflowError):
        nat.crc32c(1 << 32, b"x")
    with pytest.raises(TypeError):
        nat.crc32c(0, "text")


def test_crc32c_hw_and_table_agree_with_pure():
    cffi_mod = need_cffi()
    rnd = random.Random(42)
    raw = bytes(rnd.randrange(256) for _ in range(70000 + 16))
    lengths = list(range(0, 130)) + [255, 256, 257, 1000, 4095, 4096, 4097,
                                     65536, 70000]
    for length in lengths:
        for off in range(8):
            view = memoryview(raw)[off:off + length]
            seed = rnd.randrange(1 << 32)
            hw = cffi_mod.crc32c(seed, view)
            assert hw == cffi_mod.crc32c_sw(seed, view), (length, off)
            if length <= 4097:
                assert hw == pure.crc32c(seed, view), (length, off)


def test_crc32c_hw_flag_reported():
    cffi_mod = need_cffi()
    assert cffi_mod.lib.msgr_crc32c_hw_available() in (0, 1)


# Seeds that every exactness test draws from, besides random ones.
_CRC_EDGE_SEEDS = (0, 0xFFFFFFFF, 0x80000000, 1)


def _crc_seed(rnd):
    return rnd.choice(_CRC_EDGE_SEEDS + (rnd.randrange(1 << 32),))


def test_crc32c_every_length_agrees():
    """Every length 0..2048 (the bounds of the folding paths lie below), at
    a start alignment cycling through 0..63, against both table paths."""
    cffi_mod = need_cffi()
    rnd = random.Random(2048)
    view = memoryview(bytearray(rnd.randbytes(2048 + 64)))
    for length in range(2049):
        off = length % 64
        part = view[off:off + length]
        seed = _crc_seed(rnd)
        want = pure.crc32c(seed, part)
        assert cffi_mod.crc32c(seed, part) == want, (length, off, seed)
        assert cffi_mod.crc32c_sw(seed, part) == want, (length, off, seed)


def test_crc32c_every_alignment_agrees():
    cffi_mod = need_cffi()
    rnd = random.Random(64)
    view = memoryview(bytearray(rnd.randbytes(70000 + 64)))
    for off in range(64):
        for length in (4, 63, 64, 127, 128, 129, 255, 256, 257, 1023, 1024,
                       1025, 4096 + 13, 65536 + off, 70000):
            part = view[off:off + length]
            seed = _crc_seed(rnd)
            assert cffi_mod.crc32c(seed, part) == \
                cffi_mod.crc32c_sw(seed, part), (length, off, seed)


def test_crc32c_long_random_buffers_agree():
    cffi_mod = need_cffi()
    rnd = random.Random(4 << 20)
    view = memoryview(bytearray(rnd.randbytes((4 << 20) + 64)))
    cases = [(4 << 20, 0), (4 << 20, 63), ((1 << 20) + 77, 5)]
    cases += [(rnd.randrange(4 << 20), rnd.randrange(64)) for _ in range(8)]
    for length, off in cases:
        part = view[off:off + length]
        seed = _crc_seed(rnd)
        assert cffi_mod.crc32c(seed, part) == \
            cffi_mod.crc32c_sw(seed, part), (length, off, seed)
    part = view[3:3 + 100_003]
    assert cffi_mod.crc32c(7, part) == pure.crc32c(7, part)


def test_crc32c_chaining_across_path_bounds():
    cffi_mod = need_cffi()
    data = random.Random(3).randbytes(300_000)
    for seed in _CRC_EDGE_SEEDS:
        whole = cffi_mod.crc32c(seed, data)
        for cut in (0, 3, 4, 64, 127, 128, 1023, 1024, 65536, 299_873,
                    300_000):
            head = cffi_mod.crc32c(seed, data[:cut])
            assert cffi_mod.crc32c(head, data[cut:]) == whole, (seed, cut)


_CRC_PATH_CHECK = """
import random, sys
from msgr._native import cffi_backend as n
rnd = random.Random(7)
view = memoryview(bytearray(rnd.randbytes(70000 + 64)))
if sys.argv[1] == "table":
    assert n.lib.msgr_crc32c_hw_available() == 0
for length in list(range(1100)) + [4095, 4096, 8191, 65536, 70000]:
    off = length % 64
    seed = rnd.choice((0, 0xFFFFFFFF, rnd.randrange(1 << 32)))
    part = view[off:off + length]
    assert n.crc32c(seed, part) == n.crc32c_sw(seed, part), (length, off)
"""


@pytest.mark.parametrize("isa", ["table", "crc32", "pclmul"])
def test_crc32c_capped_paths_agree(isa):
    """MSGR_CRC32C caps the C implementation at load time, so each capped
    level runs in a fresh interpreter: this reaches the paths that the
    dispatcher skips on a CPU with a better one (the uncapped path is
    tested in-process above)."""
    need_cffi()
    root = pathlib.Path(native.__file__).resolve().parents[2]
    env = dict(os.environ, MSGR_CRC32C=isa, MSGR_NATIVE="1",
               PYTHONPATH=os.pathsep.join(
                   filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _CRC_PATH_CHECK, isa],
                          env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def _xpow_mod_castagnoli(n):
    """x^n mod P over GF(2), P = 0x11EDC6F41 (Castagnoli, unreflected)."""
    a = 1 << n
    while a.bit_length() > 32:
        a ^= 0x11EDC6F41 << (a.bit_length() - 33)
    return a


def _rev32(c):
    return int(f"{c:032b}"[::-1], 2)


_CRC_FOLD_CONST = re.compile(
    r"#define CRC32C_K(\d+)\s+0x([0-9a-f]+)u, 0x([0-9a-f]+)u")


def test_crc32c_fold_constants_rederived():
    """Each CRC32C_K<T> of crc32c.c is the pair
    rev32(x^(T+31) mod P), rev32(x^(T-33) mod P)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    src = root / "cffi_build" / "crc32c.c"
    if not src.exists():
        pytest.skip("C sources not present")
    found = _CRC_FOLD_CONST.findall(src.read_text(encoding="utf-8"))
    assert len(found) == 7
    for dist, kh, kl in found:
        t = int(dist)
        assert (int(kh, 16), int(kl, 16)) == (
            _rev32(_xpow_mod_castagnoli(t + 31)),
            _rev32(_xpow_mod_castagnoli(t - 33))), t


# ------------------------------------------------------------ frame scanner


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


# ------------------------------------------------------------------ ring set


def test_ring_construction(nat):
    rs = nat.RingSet(3, 5)
    assert (rs.nrings, rs.capacity, rs.mask) == (3, 8, 7)
    assert len(rs.slots) == 3 and all(len(s) == 8 for s in rs.slots)
    assert rs.slots[0] is not rs.slots[1]
    assert nat.RingSet(1, 2).capacity == 2
    assert nat.RingSet(1, 1024).capacity == 1024
    assert nat.RingSet(1, 1025).capacity == 2048
    for bad in ((0, 8), (-1, 8), (1, 1), (1, 0)):
        with pytest.raises(ValueError):
            nat.RingSet(*bad)
    for _ in range(200):  # allocation and finalisation
        nat.RingSet(4, 16)
    assert not rs.closed


def test_ring_single_thread_protocol(nat):
    rs = nat.RingSet(2, 4)
    assert rs.wait([0, 0], 0) == [0, 0]
    assert rs.head(0) == 0 and rs.head(1) == 0
    rs.slots[1][0] = "a"
    rs.slots[1][1] = "b"
    rs.publish(1, 2)
    rs.publish(1, 2)  # no-op
    assert rs.wait([0, 0], None) == [0, 2]
    assert rs.wait([0, 0], 0.0) == [0, 2]
    assert rs.head(1) == 0
    assert rs.wait([0, 2], 0) == [0, 2]
    assert rs.head(1) == 2
    with pytest.raises(ValueError):
        rs.publish(1, 1)
    with pytest.raises(IndexError):
        rs.publish(2, 1)
    with pytest.raises(IndexError):
        rs.publish(-1, 1)
    with pytest.raises(IndexError):
        rs.head(2)
    with pytest.raises(ValueError):
        rs.wait([0], 0)


def test_ring_wait_timeout(nat):
    rs = nat.RingSet(2, 8)
    t0 = time.monotonic()
    assert rs.wait([0, 0], 0.05) == [0, 0]
    assert time.monotonic() - t0 >= 0.045


def test_ring_close_drains_first(nat):
    rs = nat.RingSet(1, 8)
    rs.slots[0][0] = 1
    rs.publish(0, 1)
    rs.close()
    rs.close()  # idempotent
    assert rs.closed
    assert rs.wait([0], None) == [1]
    assert rs.wait([1], None) is None
    assert rs.wait([1], 0) is None


def _wait_until_sleeping(rs):
    deadline = time.monotonic() + 10
    while not rs._consumer_sleeping():
        assert time.monotonic() < deadline, "consumer never went to sleep"
        os.sched_yield()


def _start_consumer(rs, heads, result):
    def run():
        result.append(rs.wait(heads, None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_ring_consumer_woken_by_one_publish(nat):
    rs = nat.RingSet(3, 8)
    result = []
    thread = _start_consumer(rs, [0, 0, 0], result)
    try:
        _wait_until_sleeping(rs)
        rs.slots[2][0] = "item"
        rs.publish(2, 1)
        thread.join(10)
        assert not thread.is_alive()
        assert result == [[0, 0, 1]]
        assert rs.slots[2][0] == "item"
    finally:
        rs.close()
        thread.join(10)


def test_ring_close_wakes_waiting_consumer(nat):
    rs = nat.RingSet(2, 8)
    result = []
    thread = _start_consumer(rs, [0, 0], result)
    try:
        _wait_until_sleeping(rs)
        rs.close()
        thread.join(10)
        assert not thread.is_alive()
        assert result == [None]
    finally:
        rs.close()
        thread.join(10)


def _producer(rs, ring, count, seed, errors):
    rnd = random.Random(seed)
    slots, mask, cap = rs.slots[ring], rs.mask, rs.capacity
    tail = cached_head = 0
    try:
        while tail < count:
            batch = min(rnd.randint(1, 300), count - tail)
            while batch:
                if tail - cached_head >= cap:
                    cached_head = rs.head(ring)
                    if tail - cached_head >= cap:
                        os.sched_yield()  # full: back off, retry
                        continue
                room = min(batch, cap - (tail - cached_head))
                for _ in range(room):
                    slots[tail & mask] = (ring, tail)
                    tail += 1
                batch -= room
                rs.publish(ring, tail)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def test_ring_two_producers_stress(nat):
    count, nprod = 200_000, 2
    rs = nat.RingSet(nprod, 1024)
    errors = []
    producers = [threading.Thread(target=_producer,
                                  args=(rs, i, count, 100 + i, errors),
                                  daemon=True) for i in range(nprod)]
    expected = [0] * nprod
    bad = []

    def consume():
        heads = [0] * nprod
        mask = rs.mask
        while (tails := rs.wait(heads, None)) is not None:
            for i in range(nprod):
                ring = rs.slots[i]
                for s in range(heads[i], tails[i]):
                    item = ring[s & mask]
                    ring[s & mask] = None
                    if item != (i, expected[i]):
                        bad.append((i, s, item))
                    expected[i] += 1
            heads = tails

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    for p in producers:
        p.start()
    try:
        for p in producers:
            p.join(120)
            assert not p.is_alive()
    finally:
        rs.close()
        consumer.join(120)
    assert not consumer.is_alive()
    assert errors == []
    assert bad == []
    assert expected == [count] * nprod
    assert all(x is None for ring in rs.slots for x in ring)
