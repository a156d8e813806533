"""Messengers on 127.0.0.1: round trips, ordering, large segments, lifecycle."""
import threading
import time

import pytest

from msgr import EntityType, LocalProtocolError, Message, Policy
from tests.helpers import Recorder, wait_for


def test_round_trip(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(42, front=b"hello", tid=7))
    reply = cd.get()
    assert (reply.type, reply.front, reply.tid) == (42, b"hello", 7)
    assert reply.connection is conn and str(reply.source) == "osd.0"
    assert conn.is_connected() and str(conn.peer_name) == "osd.0" and conn.peer_type == EntityType.OSD
    assert cd.count("connect", conn) == 1 and sd.count("accept") == 1
    assert c.connect_to(EntityType.OSD, s.bound) is conn
    assert conn.is_lossy


@pytest.mark.parametrize("dispatch_threads", [0, 1, 2])
def test_eight_connections_keep_order(server_client, dispatch_threads):
    cfg = {"dispatch_threads": dispatch_threads, "io_threads": 2}
    s, sd, c, cd = server_client(server_cfg=cfg, client_cfg=cfg)
    conns = [c.connect_to(EntityType.OSD, s.bound, anon=True) for _ in range(8)]
    for i in range(500):
        for k, conn in enumerate(conns):
            conn.send_message(Message(1, front=b"%d:%d" % (k, i), tid=i))
    assert wait_for(lambda: len(cd.msgs) == 4000, 20), len(cd.msgs)
    per = {}
    for m in cd.msgs:
        per.setdefault(m.connection, []).append(m.tid)
    assert len(per) == 8
    for tids in per.values():
        assert tids == list(range(500))
    server_per = {}
    for m in sd.msgs:
        server_per.setdefault(m.connection, []).append(m.seq)
    assert all(seqs == list(range(1, 501)) for seqs in server_per.values())


def test_unframeable_message_dropped_and_counted_without_a_fault(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    bad = Message(1, tid=2)
    bad.version = 1 << 16                             # changed after Message() checked it
    for m in (Message(1, tid=1), bad, Message(1, tid=3)):
        conn.send_message(m)
    assert [cd.get().tid, cd.get().tid] == [1, 3]
    assert c.perf_dump()["messages_dropped"] == 1
    assert c.perf_dump()["connection_faults"] == 0 and cd.count("reset") == 0


@pytest.mark.parametrize("not_a_message", ["str", None, b"bytes", 42])
def test_send_message_refuses_what_is_not_a_message_and_goes_on(server_client, not_a_message):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    with pytest.raises(TypeError, match="takes a msgr.Message"):
        conn.send_message(not_a_message)
    conn.send_message(Message(1, tid=2))
    assert [sd.get().tid, sd.get().tid] == [1, 2]
    assert c.perf_dump()["connection_faults"] == 0 and cd.count("reset") == 0


def test_dispatchers_must_be_dispatchers(messengers):
    m = messengers()
    for bad in (None, object(), lambda msg: True):
        with pytest.raises(TypeError, match="must be a msgr.Dispatcher"):
            m.add_dispatcher_tail(bad)
        with pytest.raises(TypeError, match="must be a msgr.Dispatcher"):
            m.add_dispatcher_head(bad)


def test_eight_mib_data_segment_intact(server_client):
    s, sd, c, cd = server_client()
    data = bytes(range(256)) * (32 * 1024)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(9, front=b"f", middle=b"m", data=data))
    m = sd.get()
    assert bytes(m.data) == data and m.front == b"f" and m.middle == b"m"


def test_mark_down_no_local_notification_and_fresh_connection(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1))
    cd.get()
    conn.mark_down()
    assert not conn.is_connected()
    conn.send_message(Message(2))                     # dropped, counted
    assert wait_for(lambda: c.perf_dump()["messages_dropped"] >= 1)
    fresh = c.connect_to(EntityType.OSD, s.bound)
    assert fresh is not conn
    fresh.send_message(Message(3, tid=3))
    assert cd.get().tid == 3
    assert cd.count("reset") == 0
    assert wait_for(lambda: sd.count("accept") == 2)


def test_refused_address(messengers):
    rec = Recorder()
    c = messengers(dispatcher=rec, ms_initial_backoff=0.05, ms_max_backoff=0.1)
    probe = messengers("osd.9", bind=True, start=False)
    dead = probe.bound
    probe._listeners[0].close()
    probe._listeners.clear()
    conn = c.connect_to(EntityType.OSD, dead)
    assert wait_for(lambda: rec.count("refused", conn) >= 2)
    assert not conn.is_connected()
    conn.mark_down()


def test_loopback_from_four_threads_keeps_each_threads_order(messengers):
    rec = Recorder()
    m = messengers("osd.3", dispatcher=rec, bind=True)
    lc = m.get_loopback_connection()
    assert lc is m.get_loopback_connection() and lc.is_connected()

    def sender(k):
        for i in range(300):
            lc.send_message(Message(5, front=bytes([k]), tid=i))
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wait_for(lambda: len(rec.msgs) == 1200)
    for k in range(4):
        assert [x.tid for x in rec.msgs if x.front == bytes([k])] == list(range(300))
    assert all(str(x.source) == "osd.3" and x.connection is lc for x in rec.msgs)


def test_rebind_avoids_ports(messengers):
    rec = Recorder(reply=True)
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec)
    old = s.bound
    avoid = {old.port + i for i in range(1, 5)}
    new = s.rebind(avoid)
    assert new.port != old.port and new.port not in avoid and new.nonce != old.nonce
    cd = Recorder()
    c = messengers(dispatcher=cd, policy=Policy.lossy_client())
    c.connect_to(EntityType.OSD, new).send_message(Message(1, tid=1))
    assert cd.get().tid == 1


def test_rebind_keeps_the_socket_options(messengers):
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, ms_tcp_nodelay=False,
                   ms_tcp_rcvbuf=1 << 16)
    s.rebind()
    (lst,) = s._listeners
    assert (lst._nodelay, lst._rcvbuf) == (False, 1 << 16)


def test_loopback_outlives_mark_down_all_and_rebind(messengers):
    rec = Recorder()
    m = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec)
    lb = m.get_loopback_connection()
    m.mark_down_all()
    lb.send_message(Message(1, tid=1))
    assert rec.get().tid == 1 and rec.count("reset") == 0
    m.rebind()
    assert m.get_loopback_connection() is lb
    lb.send_message(Message(1, tid=2))
    assert rec.get().tid == 2 and lb.is_connected()


def test_a_marked_down_loopback_is_replaced_and_follows_rebind(messengers):
    rec = Recorder()
    m = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec)
    lb = m.connect_to(EntityType.OSD, m.bound)
    lb.mark_down()
    lb2 = m.get_loopback_connection()
    assert lb2 is not lb and not lb2.is_closed
    lb2.send_message(Message(1, tid=3))
    assert rec.get().tid == 3
    new = m.rebind()
    assert m.connect_to(EntityType.OSD, new) is lb2 and lb2.peer_addr == new
    assert all(r.load >= 0 for r in m._pool.reactors)


def test_connect_to_our_own_address_is_the_loopback(messengers):
    rec = Recorder()
    m = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=rec)
    lb = m.connect_to(EntityType.OSD, m.bound)
    assert lb is m.get_loopback_connection()
    lb.send_message(Message(1, tid=7))
    assert rec.get().tid == 7
    assert m.connect_to(EntityType.OSD, m.bound, anon=True) is not lb


def test_mark_disposable_shows_at_once_and_after_shutdown_is_harmless(messengers):
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=Recorder())
    c = messengers(policy=Policy.lossless_client(), dispatcher=Recorder())
    conn = c.connect_to(EntityType.OSD, s.bound)
    assert not conn.is_lossy
    conn.mark_disposable()
    assert conn.is_lossy
    c.shutdown()
    assert c.wait(10)
    conn.mark_disposable()                  # the reactor is gone: nothing to do, no error
    conn.send_message(Message(1))           # dropped and counted, no error


def test_a_messenger_shut_down_before_start_cannot_start(messengers):
    m = messengers(start=False)
    m.shutdown()
    with pytest.raises(LocalProtocolError, match="runs once"):
        m.start()
    assert m.wait(1)


def test_rebind_and_connect_to_after_shutdown_refuse(messengers):
    m = messengers("osd.0", policy=Policy.stateless_server(), bind=True)
    m.shutdown()
    with pytest.raises(LocalProtocolError, match="rebind"):
        m.rebind()
    with pytest.raises(LocalProtocolError, match="connect_to"):
        m.connect_to(EntityType.OSD, "v2:127.0.0.1:1/1")
    assert m.wait(10)


def test_messages_a_remote_reset_discards_are_counted(messengers):
    """The server forgets the lossless session: the client's queue goes with it (as in
    Ceph's reset_session), and each discarded message is counted as dropped."""
    sd, cd = Recorder(), Recorder()
    s = messengers("osd.0", policy=Policy.stateful_server(), bind=True, dispatcher=sd)
    c = messengers(policy=Policy.lossless_client(), dispatcher=cd, ms_initial_backoff=0.05)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=1))
    assert sd.get().tid == 1
    s.mark_down_all()
    for tid in range(2, 6):
        conn.send_message(Message(1, tid=tid))
    assert wait_for(lambda: cd.count("remote_reset") == 1)
    conn.send_message(Message(1, tid=99))
    got = []
    while (m := sd.get()).tid != 99:
        got.append(m.tid)
    # the server's side was closing: it read (and acked) none of them
    assert s.perf_dump()["messages_dropped"] == 0
    assert len(got) + c.perf_dump()["messages_dropped"] == 4


@pytest.mark.parametrize("close", ["mark_down", "shutdown"])
def test_messages_discarded_by_a_close_are_counted(messengers, close):
    """Queued for a peer that never answers, then closed: each one is counted as dropped."""
    c = messengers(policy=Policy.lossless_client(), dispatcher=Recorder(), ms_initial_backoff=5.0)
    conn = c.connect_to(EntityType.OSD, "v2:127.0.0.1:1/1")      # refused: messages wait
    for tid in range(5):
        conn.send_message(Message(1, tid=tid))
    time.sleep(0.1)                                             # into the session's queue
    conn.send_message(Message(1, tid=5))
    conn.mark_down() if close == "mark_down" else c.shutdown()
    assert wait_for(lambda: c.perf_dump()["messages_dropped"] == 6)


def test_shutdown_from_a_dispatcher(messengers):
    done = threading.Event()

    class Stopper(Recorder):
        def ms_dispatch(self, msg):
            msg.connection.messenger.shutdown()
            done.set()
            return True
    s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=Stopper())
    c = messengers(policy=Policy.lossy_client(), dispatcher=Recorder())
    c.connect_to(EntityType.OSD, s.bound).send_message(Message(1))
    assert done.wait(10)
    assert s.wait(10)


def test_context_manager_and_wait(messengers):
    from msgr import Config, EntityName, Messenger
    with Messenger(EntityName.parse("osd.1"), config=Config(io_threads=1)) as m:
        assert m.get_loopback_connection().is_connected()
    assert m.wait(0)


def test_lossy_server_shutdown_resets_client_once(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1))
    cd.get()
    s.shutdown()
    assert s.wait(10)
    assert wait_for(lambda: cd.count("reset", conn) == 1)
    assert not conn.is_connected()
    conn.send_message(Message(2))
    assert wait_for(lambda: c.perf_dump()["messages_dropped"] >= 1)
    assert cd.count("reset", conn) == 1


def test_keepalive_ack(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1))
    cd.get()
    assert conn.last_keepalive_ack is None
    conn.send_keepalive()
    assert wait_for(lambda: conn.last_keepalive_ack is not None)


def test_anon_connections_are_distinct(server_client):
    s, sd, c, cd = server_client()
    a = c.connect_to(EntityType.OSD, s.bound, anon=True)
    b = c.connect_to(EntityType.OSD, s.bound, anon=True)
    assert a is not b
    a.send_message(Message(1, tid=1))
    b.send_message(Message(1, tid=2))
    got = {cd.get().connection for _ in range(2)}
    assert got == {a, b}
    assert wait_for(lambda: sd.count("accept") == 2)
    server_conns = {conn for n, conn in sd.events if n == "accept"}
    assert len(server_conns) == 2


def test_mark_down_all_resets_each(server_client):
    s, sd, c, cd = server_client()
    conns = [c.connect_to(EntityType.OSD, s.bound, anon=True) for _ in range(3)]
    for k in conns:
        k.send_message(Message(1))
    for _ in conns:
        cd.get()
    c.mark_down_all()
    assert wait_for(lambda: cd.count("reset") == 3)
    assert all(not k.is_connected() for k in conns)


def test_idle_timeout_closes_lossy_connection(server_client):
    s, sd, c, cd = server_client(client_cfg={"ms_connection_idle_timeout": 0.5})
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1))
    cd.get()
    assert wait_for(lambda: cd.count("reset", conn) == 1, 5)
    assert c.perf_dump()["idle_timeouts"] == 1


def test_perf_dump_counts(server_client):
    s, sd, c, cd = server_client()
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(10):
        conn.send_message(Message(1, front=b"x" * 10))
    for _ in range(10):
        cd.get()
    assert wait_for(lambda: s.perf_dump()["messages_received"] == 10)
    cp, sp = c.perf_dump(), s.perf_dump()
    assert cp["messages_sent"] == 10 and cp["messages_received"] == 10
    assert sp["messages_sent"] == 10
    assert cp["bytes_sent"] == sp["bytes_received"] and cp["connections"] == 1
    assert c.get_dispatch_queue_len() == 0


def test_busy_poll_round_trips_and_sleeps_when_idle(server_client):
    """ms_busy_poll_us: 200 ordered round trips work with polling on both ends;
    afterwards the reactors sleep again (the process uses almost no CPU while idle,
    where a reactor that kept polling would use a whole core)."""
    poll = {"ms_busy_poll_us": 2000, "dispatch_threads": 0}
    s, sd, c, cd = server_client(server_cfg=poll, client_cfg=poll)
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(200):
        conn.send_message(Message(42, front=b"%d" % i, tid=i))
        reply = cd.get()
        assert (reply.tid, reply.front) == (i, b"%d" % i)
    wait_for(lambda: False, 0.2)          # let the last polling windows run out
    cpu0 = time.process_time()
    wait_for(lambda: False, 0.5)
    assert time.process_time() - cpu0 < 0.15
    for m in (s, c):                      # most replies were caught while polling
        perf = m.perf_dump()
        assert perf["busy_poll_hits"] > 50 and perf["busy_poll_misses"] >= 1, perf


def test_busy_poll_backs_off_with_sparse_traffic(server_client):
    """Requests 10 ms apart: the server's 2 ms polling windows keep running out,
    so it stops polling at most wake-ups (without the back-off: a miss per request)."""
    poll = {"ms_busy_poll_us": 2000, "dispatch_threads": 0}
    s, sd, c, cd = server_client(server_cfg=poll, client_cfg=poll)
    conn = c.connect_to(EntityType.OSD, s.bound)
    for i in range(60):
        conn.send_message(Message(42, tid=i))
        assert cd.get().tid == i
        wait_for(lambda: False, 0.01)
    assert s.perf_dump()["busy_poll_misses"] < 40


class _Headroom:
    """Stands in for a reactor's CpuHeadroom with a fixed answer."""

    def __init__(self, spare: bool) -> None:
        self.answer = spare

    def spare(self, now: float) -> bool:
        return self.answer


def _set_headroom(m, spare: bool) -> None:
    """Swaps each reactor's headroom on its own thread (the reactor owns it)."""
    done = []
    for r in m._pool.reactors:
        r.submit(lambda r=r: done.append(setattr(r, "headroom", _Headroom(spare))))
    assert wait_for(lambda: len(done) == len(m._pool.reactors))


@pytest.mark.parametrize("spare,flush_every", [(True, 8), (False, 8), (True, 0)])
def test_replies_written_mid_burst_only_with_headroom(server_client, spare, flush_every):
    """ms_reply_flush_msgs: an inline-dispatching server writes the replies to a long
    burst every 8 requests while the CPUs have headroom, else once per burst;
    either way every reply arrives once, in order."""
    cfg = {"dispatch_threads": 0, "io_threads": 1, "ms_reply_flush_msgs": flush_every}
    s, sd, c, cd = server_client(server_cfg=cfg)
    _set_headroom(s, spare)
    conn = c.connect_to(EntityType.OSD, s.bound)
    conn.send_message(Message(1, tid=0))
    assert cd.get().tid == 0
    for i in range(1, 2001):
        conn.send_message(Message(1, front=bytes(1000), tid=i))
    assert wait_for(lambda: len(cd.msgs) == 2001, 20), len(cd.msgs)
    assert [m.tid for m in cd.msgs] == list(range(2001))
    early = s.perf_dump()["early_reply_writes"]
    if spare and flush_every:
        assert early > 0
    else:
        assert early == 0
