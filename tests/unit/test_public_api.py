"""Pins the public API of ``msgr`` (API.md): renaming a name breaks this test."""
import pytest

import msgr
from msgr import ConfigError, EntityName, EntityType, Messenger, Policy

API = {
    "Messenger", "Connection", "Dispatcher", "Message", "Policy", "Config",
    "EntityName", "EntityType", "EntityAddr", "LinkState",
    "MsgrError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
    "ConnectionClosed", "TransportError", "ConnectionRefused", "ConfigError",
}


def test_all_is_pinned():
    assert set(msgr.__all__) == API
    for name in API:
        assert getattr(msgr, name) is not None


def test_error_hierarchy():
    assert issubclass(msgr.ConfigError, ValueError)
    for cls in (msgr.ProtocolError, msgr.ConnectionClosed, msgr.TransportError, msgr.ConfigError):
        assert issubclass(cls, msgr.MsgrError)
    assert issubclass(msgr.LocalProtocolError, msgr.ProtocolError)
    assert issubclass(msgr.RemoteProtocolError, msgr.ProtocolError)


def test_entity_type_values():
    T = msgr.EntityType
    assert (T.MON, T.MDS, T.OSD, T.CLIENT, T.MGR, T.AUTH, T.ANY) == (1, 2, 4, 8, 0x10, 0x20, 0xFF)


def test_message_priorities():
    M = msgr.Message
    assert (M.PRIO_LOW, M.PRIO_DEFAULT, M.PRIO_HIGH, M.PRIO_HIGHEST) == (64, 127, 196, 255)


def test_policies_have_cephs_flags():
    P = msgr.Policy
    table = {
        P.lossy_client(): (True, False, False, False),
        P.lossless_client(): (False, False, False, True),
        P.stateless_server(): (True, True, False, False),
        P.stateful_server(): (False, True, True, True),
        P.lossless_peer(): (False, False, True, False),
        P.lossless_peer_reuse(): (False, False, True, True),
    }
    for p, flags in table.items():
        assert (p.lossy, p.server, p.standby, p.resetcheck) == flags


@pytest.mark.parametrize("kw, error, match", [
    ({"lossy": "yes"}, TypeError, "lossy must be a bool"),
    ({"server": 2}, TypeError, "server must be a bool"),
    ({"standby": None}, TypeError, "standby must be a bool"),
    ({"features_required": 1.0}, TypeError, "features_required must be an int"),
    ({"features_required": -1}, ValueError, "features_required -1 out of range"),
    ({"features_required": 1 << 64}, ValueError, "out of range")])
def test_policy_refuses_fields_of_the_wrong_kind(kw, error, match):
    fields = {"lossy": True, "server": False, "standby": False, "resetcheck": False, **kw}
    with pytest.raises(error, match=match):
        Policy(**fields)


def test_policy_takes_0_and_1_as_flags_and_any_int_kind():
    p = Policy(1, 0, 0, 1, features_required=_Int(5))
    assert p == Policy(True, False, False, True, 5) and type(p.lossy) is bool
    assert type(p.features_required) is int


class _Int:
    """An int-like value that is not an int (as numpy's are)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


@pytest.mark.parametrize("num, error", [("x", TypeError), (1.5, TypeError), (None, TypeError),
                                        (1 << 63, ValueError), (-(1 << 63) - 1, ValueError)])
def test_entity_name_num_is_an_int64(num, error):
    with pytest.raises(error, match="EntityName.num"):
        EntityName(EntityType.OSD, num)
    assert EntityName(EntityType.CLIENT, -(1 << 63)).num == -(1 << 63)
    assert EntityName(EntityType.OSD, _Int(3)) == EntityName(EntityType.OSD, 3)
    with pytest.raises(ConfigError, match="int64"):
        EntityName.parse("osd.99999999999999999999")


def test_messenger_settings_refuse_the_wrong_kind():
    """Checked at the call, before start() (no thread or socket exists yet)."""
    with pytest.raises(TypeError, match="must be a msgr.Config"):
        Messenger(EntityName(EntityType.OSD, 0), config={"io_threads": 2})
    m = Messenger(EntityName(EntityType.OSD, 0))
    with pytest.raises(TypeError, match="set_default_policy: expected a msgr.Policy"):
        m.set_default_policy(None)
    with pytest.raises(TypeError, match="set_policy: expected a msgr.Policy"):
        m.set_policy(EntityType.CLIENT, "lossy")
    with pytest.raises(ValueError, match="set_policy: peer_type must be an EntityType"):
        m.set_policy("osd", Policy.lossy_client())
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        m.set_policy_throttlers(EntityType.CLIENT, max_bytes="1M")
    with pytest.raises(ConfigError, match="max_messages"):
        m.set_policy_throttlers(EntityType.CLIENT, max_messages=-1)
    with pytest.raises(ValueError, match="set_policy_throttlers: peer_type"):
        m.set_policy_throttlers(99, max_messages=1)
    m.set_policy_throttlers(EntityType.CLIENT, max_bytes=_Int(1 << 20), max_messages=0)
    assert m.get_policy(EntityType.OSD) == Policy.lossy_client()


def test_connection_state_is_a_public_linkstate():
    assert msgr.LinkState.READY.name == "READY"
    assert msgr.Connection.state.__doc__ and "LinkState" in msgr.Connection.state.__doc__
