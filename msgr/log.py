"""Ceph-style connection logging: every line about a connection starts with its prefix.

The prefix is the connection's ``repr``, like Ceph's ``conn(0x... :-1 s=READY ...)``::

    conn(0x7f3a2c1d5e10 peer osd.1 v2:127.0.0.1:6800/1234 state READY) fault: ...

Use the standard ``logging`` module, one logger per module (``log =
logging.getLogger(__name__)``), and these helpers for lines about a
connection. Nothing is formatted, not even the prefix, unless the level is
enabled: the arguments go to ``logging`` as ``%`` arguments, and the cost when
disabled is one ``isEnabledFor`` call (a cached dict lookup). State
transitions are logged at DEBUG with :func:`conn_state`.

Example::

    >>> import logging
    >>> from msgr.log import conn_log, conn_debug, conn_state
    >>> log = logging.getLogger("msgr.io_handler")
    >>> class Conn:                        # any object whose repr is the prefix
    ...     def __repr__(self):
    ...         return "conn(0x1 peer osd.1 v2:127.0.0.1:6800/7 state READY)"
    >>> c = Conn()
    >>> log.setLevel(logging.INFO)
    >>> conn_log(log, logging.INFO, c, "fault: %s", "bad crc")
    ... # INFO: conn(0x1 peer osd.1 v2:127.0.0.1:6800/7 state READY) fault: bad crc
    >>> conn_debug(log, c, "sent %d messages", 3)      # DEBUG is off: nothing is formatted
    >>> conn_state(log, c, "HELLO_CONNECTING", "AUTH_CONNECTING")
    ... # DEBUG: conn(...) state HELLO_CONNECTING -> AUTH_CONNECTING (when DEBUG is on)
    >>> log.setLevel(logging.NOTSET)

On a hot path, guard a whole block with one check so not even the call happens::

    if log.isEnabledFor(logging.DEBUG):
        conn_debug(log, self, "read %d bytes", n)
"""
from __future__ import annotations

import logging

__all__ = ["conn_log", "conn_debug", "conn_state", "ConnAdapter", "conn_prefix"]

DEBUG = logging.DEBUG


def conn_prefix(conn) -> str:
    """The prefix text of ``conn`` (its ``repr``), for code that builds its own lines."""
    return repr(conn)


def conn_log(logger: logging.Logger, level: int, conn, msg: str, *args, **kwargs) -> None:
    """Logs ``"<conn> " + msg % args`` at ``level``; formats nothing when the level is off.

    ``kwargs`` go to :meth:`logging.Logger.log` (``exc_info=True`` for a traceback).
    The record points at the caller (``stacklevel``), not at this helper.
    """
    if logger.isEnabledFor(level):
        kwargs.setdefault("stacklevel", 2)
        logger.log(level, "%r " + msg, conn, *args, **kwargs)


def conn_debug(logger: logging.Logger, conn, msg: str, *args, **kwargs) -> None:
    """:func:`conn_log` at DEBUG."""
    if logger.isEnabledFor(DEBUG):
        kwargs.setdefault("stacklevel", 2)
        logger.log(DEBUG, "%r " + msg, conn, *args, **kwargs)


def conn_state(logger: logging.Logger, conn, old, new, why: str = "") -> None:
    """Logs a state transition at DEBUG: ``<conn> state OLD -> NEW[: why]``.

    ``old`` and ``new`` may be enum members (their ``name`` is used) or strings.
    """
    if logger.isEnabledFor(DEBUG):
        logger.log(DEBUG, "%r state %s -> %s%s%s", conn, getattr(old, "name", old),
                   getattr(new, "name", new), ": " if why else "", why, stacklevel=2)


class ConnAdapter(logging.LoggerAdapter):
    """A LoggerAdapter bound to one connection: ``ConnAdapter(log, conn).debug("x %d", 1)``.

    The prefix is computed per record and only for enabled levels
    (``LoggerAdapter.log`` checks the level before :meth:`process` runs), so the
    state shown is the state at the time of the line.
    """

    def __init__(self, logger: logging.Logger, conn) -> None:
        super().__init__(logger, {"conn": conn})

    def process(self, msg, kwargs):
        prefix = repr(self.extra["conn"]).replace("%", "%%")
        return f"{prefix} {msg}", kwargs
