"""Reactor entry points: the error boundary and (in debug mode) the owner check.

A connection's reactor-side objects (its ``IOHandler`` and ``Lifecycle``) are
touched only by their reactor's thread. Every method another thread submits to
that reactor, and every callback the reactor calls, is decorated with
:func:`guarded`:

* a bug inside it must not wedge the connection: an unexpected exception is
  logged with its traceback and handed to the object's ``_on_internal_error``
  (which closes the connection, with ``ms_handle_reset`` if it had been
  announced), instead of leaving it half-updated with its fd still polled;
* in debug mode (``MSGR_DEBUG=1`` in the environment when msgr is imported, as
  the test suite sets it) it checks that it runs on the object's own reactor
  thread (``self.reactor``); a call from any other thread is recorded in
  :data:`violations` and raises AssertionError. Off, it costs nothing more.
"""
from __future__ import annotations

import functools
import logging
import os
import threading

__all__ = ["guarded", "DEBUG", "violations"]
log = logging.getLogger(__name__)

DEBUG = os.environ.get("MSGR_DEBUG", "") not in ("", "0")
#: Debug mode: ``(function name, thread name)`` of each entry called off its reactor thread.
violations: list = []
_get_ident = threading.get_ident


def guarded(fn):
    """Wraps a reactor entry point of an object with ``reactor`` and ``_on_internal_error``."""
    name = fn.__name__

    if DEBUG:
        @functools.wraps(fn)
        def wrapper(self, *args):
            if self.reactor._tid != _get_ident():
                violations.append((f"{type(self).__name__}.{name}",
                                   threading.current_thread().name))
                raise AssertionError(f"{type(self).__name__}.{name} called off its reactor thread")
            try:
                return fn(self, *args)
            except Exception as e:
                log.exception("%r: internal error in %s", self, name)
                self._on_internal_error(e)
        return wrapper

    @functools.wraps(fn)
    def wrapper(self, *args):
        try:
            return fn(self, *args)
        except Exception as e:
            log.exception("%r: internal error in %s", self, name)
            self._on_internal_error(e)
    return wrapper
