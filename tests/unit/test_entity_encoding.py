"""Entity names and addresses, and Ceph encodings, without sockets."""
import pytest

from msgr import ConfigError, EntityAddr, EntityName, EntityType
from msgr.protocol.addrs import decode_addr, decode_addrvec, encode_addr, encode_addrvec
from msgr.protocol.encoding import DecodeError, Decoder, Encoder

MON_ADDR_BYTES = bytes.fromhex("010101" "1c000000" "02000000" "00000000" "10000000"
                               "0200" "0ce4" "7f000001" "0000000000000000")


def test_addr_vector():
    enc = Encoder()
    encode_addr(enc, EntityAddr.parse("v2:127.0.0.1:3300/0"))
    assert enc.getvalue() == MON_ADDR_BYTES
    assert decode_addr(Decoder(MON_ADDR_BYTES)) == EntityAddr("v2", "127.0.0.1", 3300, 0)


@pytest.mark.parametrize("text", ["v2:127.0.0.1:6800/1234", "v2:[::1]:6800/0", "any:10.0.0.1:0/7",
                                  "v1:1.2.3.4:6789/3"])
def test_addr_round_trips(text):
    a = EntityAddr.parse(text)
    assert str(a) == text
    enc = Encoder()
    encode_addrvec(enc, [a, a.with_port(1)])
    assert decode_addrvec(Decoder(enc.getvalue())) == (a, a.with_port(1))


def test_addr_parse_forms():
    assert EntityAddr.parse("127.0.0.1:6800") == EntityAddr("v2", "127.0.0.1", 6800, 0)
    assert EntityAddr.parse("v2:127.0.0.1:6800") == EntityAddr("v2", "127.0.0.1", 6800, 0)
    assert EntityAddr.parse("v2:[::1]:6800/0").host == "::1"


@pytest.mark.parametrize("bad", ["", "nonsense", "127.0.0.1", "v2:127.0.0.1:x", "v2:1.2.3.4:70000",
                                 "v2:[::1:5", "v2:host.name:80", "v2:1.2.3.4:1/-1", "zz:1.2.3.4:1"])
def test_addr_parse_errors_are_typed(bad):
    with pytest.raises(ConfigError) as ei:
        EntityAddr.parse(bad)
    assert ei.value.option == "address"


def test_addr_ordering_is_ceph_memcmp():
    a = EntityAddr("v2", "127.0.0.1", 6800, 1)
    b = EntityAddr("v2", "127.0.0.1", 6800, 256)
    # memcmp of le32 nonces: 1 = 01 00.., 256 = 00 01.. so 256 sorts first
    assert b.sort_key() < a.sort_key()
    assert EntityAddr("v2", "127.0.0.1", 1, 0).sort_key() < EntityAddr("v2", "127.0.0.1", 2, 0).sort_key()


def test_entity_name():
    assert str(EntityName(EntityType.OSD, 0)) == "osd.0"
    assert EntityName.parse("client.-1") == EntityName(EntityType.CLIENT, -1)
    for bad in ("osd", "foo.1", "osd.x"):
        with pytest.raises(ConfigError):
            EntityName.parse(bad)


def test_struct_decode_skips_newer_fields():
    enc = Encoder()
    with enc.struct(3, 1):
        enc.u32(5).u64(9)          # a newer encoder added the u64
    enc.u8(0xAB)
    d = Decoder(enc.getvalue())
    with d.struct(1) as v:
        assert v == 3 and d.u32() == 5
    assert d.u8() == 0xAB


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x01\x01\xff\xff\xff\xff", b"\x02\xff\xff\xff\x7f"])
def test_truncated_input_raises_decode_error(data):
    with pytest.raises(DecodeError):
        decode_addrvec(Decoder(data))


def test_struct_compat_too_new():
    enc = Encoder()
    with enc.struct(9, 9):
        pass
    with pytest.raises(DecodeError):
        with Decoder(enc.getvalue()).struct(1):
            pass
