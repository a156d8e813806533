"""CRC32C: the pure twin and every native path agree (vectors, lengths, alignments, chaining).

Every behavioural test runs against both backends (the ``nat`` fixture: ``pure``
and ``cffi_backend``); the cffi one is skipped when the extension is not built,
unless CI=true.
"""
from __future__ import annotations

import array
import os
import pathlib
import random
import re
import struct
import subprocess
import sys

import pytest

import msgr._native as native
from msgr._native import pure

try:
    from msgr._native import cffi_backend
except ImportError:  # extension not built
    cffi_backend = None
from tests.frame_builder import CRC_SEED, HELLO_PAYLOAD, HELLO_PREAMBLE
from tests.helpers import need_cffi


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
