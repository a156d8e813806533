"""Pins the public API of ``msgr`` (API.md): renaming a name breaks this test."""
import msgr

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
