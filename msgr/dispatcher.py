"""Dispatcher: the base class of user callbacks (Ceph's ``Dispatcher``).

Override what you need. Callbacks for one connection arrive in order.
Broadcast to every dispatcher: connect, accept, remote_reset. First True wins:
dispatch, reset, refused.
"""
from __future__ import annotations

__all__ = ["Dispatcher"]


class Dispatcher:
    """Receives messages and connection events from a Messenger."""

    def ms_can_fast_dispatch(self, msg) -> bool:
        """True to have ``msg`` handled inline on the I/O thread by :meth:`ms_fast_dispatch`."""
        return False

    def ms_fast_dispatch(self, msg) -> None:
        """Handles ``msg`` on the I/O thread: must be quick and must not block."""

    def ms_dispatch(self, msg) -> bool:
        """Handles ``msg`` on a dispatch thread; True when handled."""
        return False

    def ms_handle_connect(self, conn) -> None:
        """An outgoing session is ready (again, after each reconnect)."""

    def ms_handle_accept(self, conn) -> None:
        """An incoming session is ready."""

    def ms_handle_reset(self, conn) -> bool:
        """A lossy connection failed (or ``mark_down_all``); it is dead."""
        return False

    def ms_handle_remote_reset(self, conn) -> None:
        """The peer lost our session (it restarted, or marked us down)."""

    def ms_handle_refused(self, conn) -> bool:
        """A connection attempt was refused."""
        return False
