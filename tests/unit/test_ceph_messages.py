"""Ceph message front encodings (msgr.ceph_messages).

Byte vectors come from Pacific's own tools (the MonMap written by
``monmaptool --create`` 16.2.15) or are spelled out field by field from the
message headers in ceph/ceph. The oracle tests run the real ``monmaptool``.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid

import pytest

from msgr import ceph_messages as cm
from msgr.entity import EntityAddr
from msgr.protocol.encoding import DecodeError

FSID = uuid.UUID("11111111-2222-3333-4444-555555555555")
A_ADDR = EntityAddr("v2", "127.0.0.1", 40300, 0)
CREATED = (1795697654, 56518127)

# `monmaptool --create --fsid 11111111-2222-3333-4444-555555555555
#  --addv a [v2:127.0.0.1:40300] FILE` (Pacific 16.2.15), contents of FILE.
MONMAPTOOL_ONE_MON = bytes.fromhex(
    "0906a0000000" "11111111222233334444555555555555" "00000000"
    "f62b086bef655e03" "f62b086bef655e03"
    "0101080000000000000000000000" "0101080000000000000000000000"
    "01000000" "0100000061"
    "050135000000" "0100000061"
    "020100000001"
    "01011c000000020000000000000010000000" "02009d6c7f0000010000000000000000"
    "0000" "0000" "00000000"
    "010000000100000061" "00" "00000000" "01" "00000000" "00" "00000000" "00000000")


def _monmaptool() -> str:
    """Path of the real monmaptool; skip (or fail under CI=true) without it."""
    path = shutil.which("monmaptool")
    if path is None:
        reason = "monmaptool not installed (Debian package ceph-mon)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; required under CI=true")
        pytest.skip(reason)
    return path


def _prefixes(data: bytes):
    return (data[:n] for n in range(len(data)))


# --------------------------------------------------------------------------- constants

def test_message_type_numbers_match_ceph_headers():
    assert (cm.CEPH_MSG_PING, cm.CEPH_MSG_MON_MAP, cm.CEPH_MSG_MON_GET_MAP) == (2, 4, 5)
    assert (cm.CEPH_MSG_MON_SUBSCRIBE, cm.CEPH_MSG_MON_SUBSCRIBE_ACK) == (15, 16)
    assert (cm.CEPH_MSG_AUTH, cm.CEPH_MSG_AUTH_REPLY) == (17, 18)
    assert (cm.CEPH_MSG_MON_GET_VERSION, cm.CEPH_MSG_MON_GET_VERSION_REPLY) == (19, 20)
    assert (cm.MSG_MON_COMMAND, cm.MSG_MON_COMMAND_ACK) == (50, 51)
    assert (cm.MSG_CONFIG, cm.MSG_GET_CONFIG) == (62, 63)


def test_header_versions_follow_pacific_message_classes():
    assert cm.HEADER_VERSIONS[cm.CEPH_MSG_MON_GET_VERSION_REPLY] == (2, 0)
    assert cm.HEADER_VERSIONS[cm.CEPH_MSG_MON_SUBSCRIBE] == (3, 1)
    assert cm.HEADER_VERSIONS[cm.MSG_CONFIG] == (1, 1)


# --------------------------------------------------------------------------- MonMap

def test_encode_monmap_is_byte_exact_with_monmaptool():
    got = cm.encode_monmap(FSID, 0, [("a", A_ADDR)], created=CREATED)
    assert got == MONMAPTOOL_ONE_MON


def test_decode_monmap_of_monmaptool_output():
    info = cm.decode_monmap(MONMAPTOOL_ONE_MON)
    assert info.fsid == FSID and info.epoch == 0 and info.struct_v == 9
    assert dict(info.mons) == {"a": (A_ADDR,)}
    assert info.ranks == ("a",)
    assert info.created == info.last_changed == CREATED
    assert info.persistent_features == info.optional_features == info.min_mon_release == 0


def test_monmap_round_trip_several_mons():
    v1 = EntityAddr("v1", "10.0.0.2", 6789, 0)
    v2 = EntityAddr("v2", "10.0.0.2", 3300, 0)
    mons = [("c", "v2:10.0.0.1:3300/0"), ("b", (v2, v1)), ("a", EntityAddr("v2", "::1", 3300, 0))]
    data = cm.encode_monmap(FSID, 7, mons, created=(5, 6), last_changed=(7, 8),
                            persistent_features=cm.MON_FEATURES_PACIFIC, optional_features=2,
                            min_mon_release=cm.CEPH_RELEASE_PACIFIC)
    info = cm.decode_monmap(data)
    assert info.epoch == 7 and info.ranks == ("c", "b", "a")
    assert info.mons["b"] == (v2, v1)
    assert info.mons["c"] == (EntityAddr.parse("v2:10.0.0.1:3300/0"),)
    assert info.mons["a"][0].host == "::1"
    assert (info.created, info.last_changed) == ((5, 6), (7, 8))
    assert (info.persistent_features, info.optional_features) == (0xFF, 2)
    assert info.min_mon_release == 16


def test_monmap_mon_info_map_is_sorted_by_name():
    data = cm.encode_monmap(FSID, 1, [("zz", A_ADDR), ("a", A_ADDR.with_port(1))])
    assert data.index(b"\x02\x00\x00\x00zz") > data.index(b"\x01\x00\x00\x00a\x05")


def test_encode_monmap_rejects_duplicate_names():
    with pytest.raises(ValueError):
        cm.encode_monmap(FSID, 1, [("a", A_ADDR), ("a", A_ADDR)])


def _bump_struct(data: bytes, at: int, version: int, extra: bytes) -> bytes:
    """Re-stamps the struct header at ``at`` as ``version`` and appends ``extra`` to its body."""
    length = int.from_bytes(data[at + 2:at + 6], "little")
    end = at + 6 + length
    new_len = (length + len(extra)).to_bytes(4, "little")
    return data[:at] + bytes([version, data[at + 1]]) + new_len + data[at + 6:end] + extra + data[end:]


def test_decode_monmap_skips_unknown_trailing_fields():
    newer = _bump_struct(MONMAPTOOL_ONE_MON, 0, 10, b"future fields")
    info = cm.decode_monmap(newer)
    assert info.struct_v == 10 and dict(info.mons) == {"a": (A_ADDR,)}


def test_decode_monmap_skips_unknown_mon_info_fields():
    mon_info_at = MONMAPTOOL_ONE_MON.index(bytes.fromhex("050135000000"))
    newer = _bump_struct(MONMAPTOOL_ONE_MON, mon_info_at, 6, b"\x99" * 5)
    newer = newer[:2] + (int.from_bytes(newer[2:6], "little") + 5).to_bytes(4, "little") + newer[6:]
    info = cm.decode_monmap(newer)
    assert info.mons["a"] == (A_ADDR,) and info.ranks == ("a",)


def test_decode_monmap_rejects_newer_compat():
    with pytest.raises(DecodeError, match="compat"):
        cm.decode_monmap(bytes([9, 10]) + MONMAPTOOL_ONE_MON[2:])


def test_decode_monmap_rejects_pre_nautilus_encoding():
    with pytest.raises(DecodeError, match="pre-Nautilus"):
        cm.decode_monmap(bytes([5, 3]) + MONMAPTOOL_ONE_MON[2:])


def test_decode_monmap_truncated_always_raises_decode_error():
    for prefix in _prefixes(MONMAPTOOL_ONE_MON):
        with pytest.raises(DecodeError):
            cm.decode_monmap(prefix)


def test_decode_monmap_garbage_raises_only_decode_error():
    rng = random.Random(1234)
    for _ in range(500):
        data = bytearray(MONMAPTOOL_ONE_MON)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            cm.decode_monmap(bytes(data))
        except DecodeError:
            pass


def test_mmonmap_front_is_a_bufferlist():
    front = cm.encode_mmonmap_front(MONMAPTOOL_ONE_MON)
    assert front[:4] == len(MONMAPTOOL_ONE_MON).to_bytes(4, "little")
    assert cm.decode_mmonmap_front(front) == MONMAPTOOL_ONE_MON
    assert cm.decode_mmonmap_front(memoryview(front)) == MONMAPTOOL_ONE_MON
    for prefix in _prefixes(front):
        with pytest.raises(DecodeError):
            cm.decode_mmonmap_front(prefix)


# --------------------------------------------------------------------------- MPing

def test_ping_reply_front_is_a_string_of_json():
    front = cm.encode_ping_reply_front('{"health": {"status": "HEALTH_OK"}}')
    assert front == b"\x23\x00\x00\x00" + b'{"health": {"status": "HEALTH_OK"}}'
    assert cm.decode_ping_reply_front(front) == {"health": {"status": "HEALTH_OK"}}


def test_ping_reply_round_trip_and_empty_front():
    obj = {"health": {"status": "HEALTH_OK", "checks": {}}, "mon_status": {"name": "a"}}
    assert cm.decode_ping_reply_front(cm.encode_ping_reply_front(obj)) == obj
    assert cm.decode_ping_reply_front(b"") == {}


@pytest.mark.parametrize("front", [
    b"\x05\x00\x00\x00{bad}",         # not JSON
    b"\x02\x00\x00\x00[]",            # not an object
    b"\x02\x00\x00\x00\xff\xfe",      # not UTF-8
    b"\x10\x00\x00\x00{}",            # truncated
    b"\x01\x00",                      # truncated length
])
def test_ping_reply_bad_input_raises_decode_error(front):
    with pytest.raises(DecodeError):
        cm.decode_ping_reply_front(front)


# --------------------------------------------------------------------------- MMonGetVersion(Reply)

def test_mon_get_version_front_bytes():
    front = cm.encode_mon_get_version_front(7, "osdmap")
    assert front == bytes.fromhex("0700000000000000" "06000000") + b"osdmap"
    assert cm.decode_mon_get_version_front(front) == cm.MonGetVersion(7, "osdmap")
    for prefix in _prefixes(front):
        with pytest.raises(DecodeError):
            cm.decode_mon_get_version_front(prefix)


def test_mon_get_version_reply_front_bytes():
    front = cm.encode_mon_get_version_reply_front(7, 12, 1)
    assert front == bytes.fromhex("0700000000000000" "0c00000000000000" "0100000000000000")
    assert cm.decode_mon_get_version_reply_front(front) == cm.MonGetVersionReply(7, 12, 1)
    for prefix in _prefixes(front):
        with pytest.raises(DecodeError):
            cm.decode_mon_get_version_reply_front(prefix)


def test_mon_get_version_reply_v1_has_no_oldest_version():
    reply = cm.decode_mon_get_version_reply_front(bytes(16), header_version=1)
    assert reply == cm.MonGetVersionReply(0, 0, 0)


# --------------------------------------------------------------------------- MConfig

def test_config_front_empty_and_round_trip():
    assert cm.encode_config_front() == b"\x00\x00\x00\x00"
    values = {"mon_host": "v2:127.0.0.1:3300", "debug_ms": "0/5"}
    front = cm.encode_config_front(values)
    assert front.index(b"debug_ms") < front.index(b"mon_host")
    assert cm.decode_config_front(front) == values
    for prefix in _prefixes(front):
        with pytest.raises(DecodeError):
            cm.decode_config_front(prefix)


# --------------------------------------------------------------------------- MMonSubscribe

def test_mon_subscribe_front_bytes_and_round_trip():
    front = cm.encode_mon_subscribe_front({"monmap": (0, 0), "config": (0, 0)}, "host1")
    assert front[:4] == b"\x02\x00\x00\x00"
    assert front[4:8 + 6] == b"\x06\x00\x00\x00config"
    sub = cm.decode_mon_subscribe_front(front)
    assert sub.what == {"config": (0, 0), "monmap": (0, 0)} and sub.hostname == "host1"
    for prefix in _prefixes(front):
        with pytest.raises(DecodeError):
            cm.decode_mon_subscribe_front(prefix)


def test_mon_subscribe_v2_has_no_hostname_and_v1_is_refused():
    front = cm.encode_mon_subscribe_front({"osdmap": (5, cm.CEPH_SUBSCRIBE_ONETIME)})[:-4]
    assert cm.decode_mon_subscribe_front(front, header_version=2).what == {"osdmap": (5, 1)}
    with pytest.raises(DecodeError):
        cm.decode_mon_subscribe_front(front, header_version=1)


# --------------------------------------------------------------------------- oracle: monmaptool

def _print_monmap(tool: str, path) -> str:
    proc = subprocess.run([tool, "--print", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_oracle_monmaptool_prints_our_monmap(tmp_path):
    tool = _monmaptool()
    fsid = uuid.uuid4()
    b_addrs = (EntityAddr("v2", "127.0.0.1", 3300, 0), EntityAddr("v1", "127.0.0.1", 6789, 0))
    data = cm.encode_monmap(fsid, 3, [("a", A_ADDR), ("b", b_addrs)], created=CREATED,
                            persistent_features=cm.MON_FEATURES_PACIFIC,
                            min_mon_release=cm.CEPH_RELEASE_PACIFIC)
    path = tmp_path / "monmap"
    path.write_bytes(data)
    out = _print_monmap(tool, path)
    assert f"fsid {fsid}\n" in out
    assert "epoch 3\n" in out
    assert "0: v2:127.0.0.1:40300/0 mon.a\n" in out
    assert "1: [v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0] mon.b\n" in out
    assert "min_mon_release 16 (pacific)" in out


def test_oracle_decode_monmap_written_by_monmaptool(tmp_path):
    tool = _monmaptool()
    fsid = uuid.uuid4()
    path = tmp_path / "monmap"
    cmd = [tool, "--create", "--fsid", str(fsid), "--enable-all-features",
           "--addv", "a", "[v2:127.0.0.1:40300]",
           "--addv", "b", "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    info = cm.decode_monmap(path.read_bytes())
    assert info.fsid == fsid and info.epoch == 0
    assert dict(info.mons) == {
        "a": (A_ADDR,),
        "b": (EntityAddr("v2", "127.0.0.1", 3300, 0), EntityAddr("v1", "127.0.0.1", 6789, 0)),
    }
    assert sorted(info.ranks) == ["a", "b"]
    assert info.persistent_features & cm.MON_FEATURES_PACIFIC == cm.MON_FEATURES_PACIFIC
