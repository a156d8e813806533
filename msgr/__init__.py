"""msgr: an event-driven msgr2.1 messenger (Ceph's wire protocol) in Python.

The public API: :class:`Messenger`, :class:`Connection` (whose ``state`` is a
:class:`LinkState`), :class:`Dispatcher`, :class:`Message`, :class:`Policy`,
:class:`Config`, :class:`EntityName`, :class:`EntityType`, :class:`EntityAddr`
and the errors. Everything else is internal.
"""
from .config import Config
from .connection import Connection
from .dispatcher import Dispatcher
from .entity import EntityAddr, EntityName, EntityType
from .errors import (ConfigError, ConnectionClosed, ConnectionRefused, LocalProtocolError,
                     MsgrError, ProtocolError, RemoteProtocolError, TransportError)
from .linkstate import LinkState
from .message import Message
from .messenger import Messenger
from .policy import Policy

__all__ = [
    "Messenger", "Connection", "Dispatcher", "Message", "Policy", "Config",
    "EntityName", "EntityType", "EntityAddr", "LinkState",
    "MsgrError", "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
    "ConnectionClosed", "TransportError", "ConnectionRefused", "ConfigError",
]
__version__ = "0.1.0"
