"""One conformance suite for every transport (trio's ``testing/_check_streams.py`` shape).

A transport (:class:`~msgr.transports.base.Transport`) is a non-blocking byte
stream the reactor polls; everything above it (the IOHandler, the failover
logic) assumes the contract its docstrings state. :func:`check_transport`
checks that contract on an implementation, so a new transport (shared memory,
RDMA) is proven by the same checks as TCP:

* bytes arrive intact and in order both ways, from buffer lists of any
  bytes-like types, however the kernel splits them;
* ``recv_into`` returns None when nothing is there, ``send`` returns 0 when the
  peer does not read: neither ever blocks;
* ``send`` takes lists longer than IOV_MAX (sending a part);
* the peer's close is an end of stream (TransportError) after the data sent
  before it, and a send into a closed stream fails with TransportError too;
  no OSError ever escapes;
* ``close`` is idempotent, ``fileno`` and ``peer_addr`` are stable;
* a dial to nobody is :class:`~msgr.errors.ConnectionRefused`.

It drives the transports from the calling thread, polling with short sleeps
and a deadline (no selector: those live in the reactor), so it belongs in
integration tests.
"""
from __future__ import annotations

import os
import time

from ..entity import EntityAddr
from ..errors import ConnectionRefused, TransportError
from ..transports.base import consume

__all__ = ["check_transport"]

_DEADLINE = 10.0


def check_transport(make_pair, refused=None) -> None:
    """Runs every check on the transports ``make_pair`` makes.

    Args:
        make_pair: returns ``(a, b)``, two transports connected to each other
            (a dialled, b accepted; ``finish_connect`` done). Called once per check.
        refused: returns a transport dialling an address nobody listens on, or
            None to skip that check. Its ``connect`` or ``finish_connect`` must
            raise ConnectionRefused.

    Raises:
        AssertionError: naming the check that failed.
    """
    for check in (_identity, _round_trip, _large_both_ways, _long_buffer_list,
                  _clogged_never_blocks, _eof_after_data, _send_to_closed, _close_twice):
        a, b = make_pair()
        try:
            check(a, b)
        except AssertionError as e:
            raise AssertionError(f"{check.__name__[1:]}: {e}") from None
        finally:
            a.close()
            b.close()
    if refused is not None:
        _refused(refused)


# ---------------------------------------------------------------- helpers
def _until(pred, what: str):
    """Polls ``pred()`` until it returns something true; its value."""
    end = time.monotonic() + _DEADLINE
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.0005)


def _send_all(t, buffers: list, peer=None, sink: bytearray | None = None) -> None:
    """Sends every byte of ``buffers`` on ``t``; drains ``peer`` into ``sink`` meanwhile."""
    out = list(buffers)
    end = time.monotonic() + _DEADLINE
    while out:
        n = t.send(out)
        assert isinstance(n, int) and n >= 0, f"send returned {n!r}"
        if n:
            consume(out, n)
        elif peer is not None:
            _read_some(peer, sink)
        assert time.monotonic() < end, "timed out sending"


def _read_some(t, sink: bytearray) -> int:
    buf = bytearray(65536)
    n = t.recv_into(memoryview(buf))
    if n is None:
        return 0
    assert 0 < n <= len(buf), f"recv_into returned {n}"
    sink += buf[:n]
    return n


def _receive(t, nbytes: int) -> bytes:
    got = bytearray()
    _until(lambda: _read_some(t, got) >= 0 and len(got) >= nbytes, f"{nbytes} bytes")
    assert len(got) == nbytes, f"got {len(got)} bytes, expected {nbytes}"
    return bytes(got)


# ---------------------------------------------------------------- the checks
def _identity(a, b) -> None:
    for t in (a, b):
        fd = t.fileno()
        assert isinstance(fd, int) and fd >= 0, f"fileno() is {fd!r}"
        assert t.fileno() == fd, "fileno() changed"
        assert isinstance(t.peer_addr, EntityAddr), f"peer_addr is {t.peer_addr!r}"


def _round_trip(a, b) -> None:
    assert a.recv_into(memoryview(bytearray(16))) is None, "recv_into with nothing sent"
    assert b.recv_into(memoryview(bytearray(16))) is None, "recv_into with nothing sent"
    pieces = [b"head", bytearray(b"-mid-"), memoryview(b"0123456789")[2:7], b"", b"tail"]
    want = b"".join(bytes(p) for p in pieces)
    for src, dst in ((a, b), (b, a)):
        _send_all(src, pieces)
        assert _receive(dst, len(want)) == want, "bytes changed on the way"


def _large_both_ways(a, b) -> None:
    data = os.urandom(1 << 20) * 3
    for src, dst in ((a, b), (b, a)):
        got = bytearray()
        _send_all(src, [memoryview(data)[i:i + 100_000] for i in range(0, len(data), 100_000)],
                  dst, got)
        got += _receive(dst, len(data) - len(got)) if len(got) < len(data) else b""
        assert bytes(got) == data, "a large transfer changed or lost bytes"


def _long_buffer_list(a, b) -> None:
    pieces = [bytes([i % 251]) * 3 for i in range(3000)]         # over IOV_MAX (1024)
    want = b"".join(pieces)
    got = bytearray()
    _send_all(a, pieces, b, got)
    got += _receive(b, len(want) - len(got)) if len(got) < len(want) else b""
    assert bytes(got) == want, "a long buffer list was not sent in order"


def _clogged_never_blocks(a, b) -> None:
    chunk = bytes(1 << 16)
    sent, end = 0, time.monotonic() + _DEADLINE
    while True:
        t0 = time.monotonic()
        n = a.send([chunk])
        assert time.monotonic() - t0 < 1.0, "send blocked on a clogged stream"
        if n == 0:
            break
        sent += n
        assert time.monotonic() < end and sent < 1 << 30, "send never reported a full stream"
    assert sent > 0, "nothing could be sent at all"
    assert _receive(b, sent) == bytes(sent), "the clogged bytes did not arrive"


def _eof_after_data(a, b) -> None:
    _send_all(a, [b"last words"])
    a.close()
    got = bytearray()

    def ended() -> bool:
        try:
            _read_some(b, got)
        except TransportError:
            return True
        return False
    _until(ended, "the end of stream to show as TransportError")
    assert bytes(got) == b"last words", "data sent before the close was lost"


def _send_to_closed(a, b) -> None:
    b.close()

    def failed() -> bool:
        try:
            a.send([bytes(4096)])
        except TransportError:
            return True
        return False
    _until(failed, "a send into a closed stream to raise TransportError")


def _close_twice(a, b) -> None:
    a.close()
    a.close()
    b.close()
    b.close()


def _refused(refused) -> None:
    try:
        t = refused()
    except ConnectionRefused:
        return
    try:
        def fails() -> bool:
            try:
                t.finish_connect()
            except ConnectionRefused:
                return True
            except TransportError as e:
                raise AssertionError(f"refused: {type(e).__name__}, not ConnectionRefused") from None
            return False
        _until(fails, "a dial to nobody to be refused")
    finally:
        t.close()
