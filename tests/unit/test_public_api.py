"""Pins the public API of ``msgr`` (API.md): renaming a name breaks this test."""
import pytest

import msgr
from msgr import ConfigError, EntityName, EntityType, Messenger, Policy

API = {
    "Messenger", "Connection", "Dispatcher", "Message", "Policy", "Config",
    "EntityName", "EntityType", "EntityAddr",
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


@pytest.mark.parametrize("kw, match", [
    ({"lossy": "yes"}, "lossy must be a bool"), ({"server": 1}, "server must be a bool"),
    ({"standby": None}, "standby must be a bool"), ({"features_required": -1}, "features_required"),
    ({"features_required": 1 << 64}, "features_required"), ({"features_required": 1.0}, "features_required")])
def test_policy_refuses_fields_of_the_wrong_kind(kw, match):
    fields = {"lossy": True, "server": False, "standby": False, "resetcheck": False, **kw}
    with pytest.raises(TypeError, match=match):
        Policy(**fields)


@pytest.mark.parametrize("num", ["x", 1.5, None, 1 << 63, -(1 << 63) - 1])
def test_entity_name_num_is_an_int64(num):
    with pytest.raises(TypeError, match="int64"):
        EntityName(EntityType.OSD, num)
    assert EntityName(EntityType.CLIENT, -(1 << 63)).num == -(1 << 63)


def test_messenger_settings_refuse_the_wrong_kind():
    """Checked at the call, before start() (no thread or socket exists yet)."""
    with pytest.raises(TypeError, match="must be a msgr.Config"):
        Messenger(EntityName(EntityType.OSD, 0), config={"io_threads": 2})
    m = Messenger(EntityName(EntityType.OSD, 0))
    with pytest.raises(TypeError, match="expected a msgr.Policy"):
        m.set_default_policy(None)
    with pytest.raises(TypeError, match="expected a msgr.Policy"):
        m.set_policy(EntityType.CLIENT, "lossy")
    with pytest.raises(ValueError, match="EntityType"):
        m.set_policy("osd", Policy.lossy_client())
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        m.set_policy_throttlers(EntityType.CLIENT, max_bytes="1M")
    with pytest.raises(ConfigError, match="max_messages"):
        m.set_policy_throttlers(EntityType.CLIENT, max_messages=-1)
    m.set_policy_throttlers(EntityType.CLIENT, max_bytes=1 << 20, max_messages=0)
    assert m.get_policy(EntityType.OSD) == Policy.lossy_client()
