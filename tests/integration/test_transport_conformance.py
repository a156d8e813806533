"""Every transport passes the one conformance suite (msgr.testing.transport_checks)."""
from __future__ import annotations

import random
import socket
import time

import pytest

from msgr.entity import EntityAddr
from msgr.testing.transport_checks import check_transport
from msgr.transports.base import create_transport
from msgr.transports.inject import FailureInjector


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def tcp_pair(host: str, wrap=lambda t: t):
    """(dialled, accepted) TCP transports on ``host``; the listener is closed again."""
    factory = create_transport("tcp")
    listener = factory.listen(EntityAddr("v2", host, 0))
    try:
        a = factory.connect(listener.addr)
        end = time.monotonic() + 10
        while (b := listener.accept()) is None:
            assert time.monotonic() < end, "no connection to accept"
            time.sleep(0.001)
        a.finish_connect()
        return wrap(a), wrap(b)
    finally:
        listener.close()


def refused(host: str):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port = s.getsockname()[1]           # free, and nobody listens on it
    return create_transport("tcp").connect(EntityAddr("v2", host, port))


KINDS = {
    "tcp": lambda: tcp_pair("127.0.0.1"),
    "tcp6": lambda: tcp_pair("::1"),
    # the fault injector, set never to fire, must be a transport like any other
    "inject": lambda: tcp_pair("127.0.0.1",
                               lambda t: FailureInjector(t, 1 << 62, random.Random(1))),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_transport_conforms(kind):
    if kind == "tcp6" and not _ipv6():
        pytest.skip("no IPv6 loopback here")
    host = "::1" if kind == "tcp6" else "127.0.0.1"
    check_transport(KINDS[kind], refused=lambda: refused(host))


def test_the_suite_catches_a_transport_that_changes_bytes():
    """The checks can fail: a transport that flips a bit of every 7th byte is caught."""
    class Garbling(FailureInjector):
        def send(self, buffers):
            data = bytearray(b"".join(bytes(b) for b in buffers))
            data[6::7] = bytes(x ^ 1 for x in data[6::7])
            return self._inner.send([data])

    with pytest.raises(AssertionError, match="round_trip: bytes changed"):
        check_transport(lambda: tcp_pair("127.0.0.1",
                                         lambda t: Garbling(t, 1 << 62, random.Random(1))))
