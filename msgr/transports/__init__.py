"""Transports: the only place sockets (and later shared memory, verbs) live."""
from .base import Listener, Transport, create_transport, translate_os_errors

__all__ = ["Transport", "Listener", "create_transport", "translate_os_errors"]
