"""Odd SESSION_RECONNECTs from a raw peer are answered as Ceph answers them."""
import socket

from msgr import EntityAddr, EntityType, Message, Policy
from msgr.protocol.events import NEED_DATA, Established, RemoteReset
from msgr.protocol.frames import Tag
from msgr.protocol.machine import ProtocolMachine
from msgr.protocol.session import Session
from msgr.testing.interceptor import Interceptor, tag_bp
from msgr.testing.pair import make_params
from tests.helpers import Recorder, wait_for


def raw_session(addr: EntityAddr, session: Session, my_addr: EntityAddr | None = None):
    """Runs a client machine over a blocking socket until READY; returns (events, machine)."""
    sock = socket.create_connection((addr.host, addr.port), timeout=5)
    params = make_params(True, server_addr=addr, policy=Policy.lossless_client(), global_seq=5)
    if my_addr is not None:
        params = params.__class__(**{**params.__dict__, "my_addrs": (my_addr,)})
    m = ProtocolMachine(params, connecting=True, session=session)
    m.start(0.0)
    events = []
    try:
        while True:
            done = False
            while (ev := m.next_event()) is not NEED_DATA:
                events.append(ev)
                done = done or isinstance(ev, Established)
            out = m.data_to_send()
            if out:
                sock.sendall(b"".join(bytes(b) for b in out))
            if done or m.done:
                return events, m
            m.receive_data(sock.recv(65536))
    finally:
        sock.close()


def unknown_session(cookie: int) -> Session:
    s = Session(lossy=False)
    s.ident.client_cookie, s.ident.server_cookie, s.ident.connect_seq = cookie, 0xDEAD, 3
    s.stream.in_seq = 7
    return s


def test_reconnect_for_unknown_session_gets_full_reset(messengers):
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=Recorder())
    ic = Interceptor()
    s.interceptor = ic
    for cookie in (12345, 0):                  # a cookie of 0 is just another unknown session
        events, m = raw_session(s.bound, unknown_session(cookie))
        assert any(isinstance(e, RemoteReset) for e in events)
        assert any(isinstance(e, Established) for e in events) and m.session.ident.server_cookie
    assert ic.total(tag_bp(Tag.SESSION_RESET, "write")) == 2


def test_impostor_with_other_cookie_resets_the_existing_session(messengers):
    sd, cd = Recorder(reply=True), Recorder()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    cd.get()
    server_conn = [k for n, k in sd.events if n == "accept"][0]
    same_peer = server_conn.peer_addr                       # the client's address, nonce included
    sess = unknown_session(999)                             # a different client_cookie
    events, m = raw_session(s.bound, sess, my_addr=same_peer)
    # RECONNECT with a foreign cookie: SESSION_RESET(full=resetcheck); then its
    # CLIENT_IDENT with a new cookie means "the peer restarted": the server resets
    # the existing session and the impostor's socket replaces it on the same handle.
    assert any(isinstance(e, RemoteReset) for e in events)
    assert wait_for(lambda: sd.count("remote_reset", server_conn) == 1)
    assert wait_for(lambda: sd.count("accept", server_conn) == 2)
