"""Bad peers over real TCP: garbage, silence, corruption, oversized frames.

Each case must fault only the offending connection, count it, never raise into
user code, and leave other connections working.
"""
import socket
import threading

import pytest

from msgr import EntityAddr, EntityType, Message, Policy
from msgr.protocol.events import NEED_DATA, Established
from msgr.protocol.frames import Tag, control_frame
from msgr.protocol.machine import ProtocolMachine
from msgr.testing.pair import make_params
from tests.helpers import Recorder, wait_for


def raw_connect(addr: EntityAddr) -> socket.socket:
    s = socket.create_connection((addr.host, addr.port), timeout=5)
    return s


def wait_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closes the socket (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def check_server_still_works(s, messengers):
    cd = Recorder()
    c = messengers(policy=Policy.lossy_client(), dispatcher=cd)
    c.connect_to(EntityType.OSD, s.bound).send_message(Message(1, tid=99))
    assert cd.get().tid == 99


BANNER_REV1 = b"ceph v2\n\x10\x00" + (1).to_bytes(8, "little") + bytes(8)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.0\r\n\r\n",
    b"ceph v027" + bytes(100),
    BANNER_REV1 + b"\x01\x01" + bytes(30),                              # bad preamble crc
    BANNER_REV1 + control_frame(Tag.MESSAGE, b"x", True),                # out of state
    BANNER_REV1 + control_frame(77, b"", True),                          # unknown tag
    BANNER_REV1[:18] + bytes(8) + control_frame(Tag.HELLO, b"\x08", False),  # rev0, bad payload
])
def test_garbage_faults_that_connection_only(messengers, garbage):
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=Recorder(reply=True))
    sock = raw_connect(s.bound)
    sock.sendall(garbage)
    assert wait_closed(sock)
    sock.close()
    assert wait_for(lambda: s.perf_dump()["connection_faults"] >= 1)
    assert s.perf_dump()["bad_frames"] >= 1
    check_server_still_works(s, messengers)


def test_oversized_segment_refused_without_reading_it(messengers):
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True,
                   dispatcher=Recorder(), ms_max_segment_bytes=4096)
    sock = raw_connect(s.bound)
    frame = control_frame(Tag.HELLO, bytes(100000), True)
    sock.sendall(BANNER_REV1 + frame[:32])
    assert wait_closed(sock)
    sock.close()
    assert wait_for(lambda: s.perf_dump()["bad_frames"] == 1)


def test_silent_peer_hits_ready_timeout(messengers):
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True,
                   dispatcher=Recorder(reply=True), ms_connection_ready_timeout=0.3)
    sock = raw_connect(s.bound)
    sock.recv(26)                        # the server's banner, then silence from us
    assert wait_closed(sock, 5)
    sock.close()
    assert wait_for(lambda: s.perf_dump()["ready_timeouts"] == 1)
    check_server_still_works(s, messengers)


def test_client_against_garbage_server_retries_without_reset(messengers):
    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def serve():
        lst.settimeout(0.2)
        while not stop.is_set() and len(accepted) < 3:
            try:
                conn, _ = lst.accept()
            except socket.timeout:
                continue
            accepted.append(conn)
            conn.sendall(b"NOT CEPH AT ALL" * 10)
    t = threading.Thread(target=serve)
    t.start()
    rec = Recorder()
    c = messengers(policy=Policy.lossy_client(), dispatcher=rec, ms_initial_backoff=0.05,
                   ms_max_backoff=0.1)
    conn = c.connect_to(EntityType.OSD, EntityAddr("v2", "127.0.0.1", port, 0))
    assert wait_for(lambda: len(accepted) >= 3, 10)
    stop.set()
    t.join()
    conn.mark_down()
    for a in accepted:
        a.close()
    lst.close()
    assert c.perf_dump()["bad_frames"] >= 2
    assert rec.count("reset") == 0 and not conn.is_connected()


class RawClient:
    """A msgr2 client machine over a blocking socket, for corrupting the stream."""

    def __init__(self, addr: EntityAddr) -> None:
        self.sock = raw_connect(addr)
        self.m = ProtocolMachine(make_params(True, server_addr=addr), connecting=True)
        self.m.start(0.0)

    def handshake(self) -> None:
        while True:
            established = False
            while (ev := self.m.next_event()) is not NEED_DATA:
                established = established or isinstance(ev, Established)
            out = self.m.data_to_send()
            if out:
                self.sock.sendall(b"".join(bytes(b) for b in out))
            if established:
                return
            self.m.receive_data(self.sock.recv(65536))


def test_corrupt_message_after_ready_resets_lossy_server_conn_once(messengers):
    rec = Recorder()
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec)
    rc = RawClient(s.bound)
    rc.handshake()
    rc.m.send_message(Message(1, front=b"good"))
    good = b"".join(bytes(b) for b in rc.m.data_to_send())
    rc.m.send_message(Message(1, front=b"bad!"))
    bad = bytearray(b"".join(bytes(b) for b in rc.m.data_to_send()))
    bad[-14] ^= 0xFF                         # last byte of the front segment: crc mismatch
    rc.sock.sendall(good)
    assert rec.get().front == b"good"
    rc.sock.sendall(bytes(bad))
    assert wait_closed(rc.sock)
    rc.sock.close()
    assert wait_for(lambda: rec.count("reset") == 1)
    assert s.perf_dump()["bad_frames"] == 1 and len(rec.msgs) == 1


def test_internal_error_closes_the_connection_instead_of_wedging_it(messengers, monkeypatch):
    import time

    import msgr.lifecycle as lifecycle
    real = lifecycle.ProtocolMachine

    def broken(params, connecting, session=None):
        if connecting:
            raise RuntimeError("a bug in the machine")
        return real(params, connecting, session)

    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=Recorder())
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    monkeypatch.setattr(lifecycle, "ProtocolMachine", broken)
    cpu = time.process_time()
    conn = c.connect_to(EntityType.OSD, s.bound)
    assert wait_for(lambda: conn.is_closed, 5)
    assert c.perf_dump()["connection_faults"] == 1
    time.sleep(0.3)
    assert time.process_time() - cpu < 1.0           # no callback spinning on a dead socket
