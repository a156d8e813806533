"""One Message object queued on two lossless sessions (a broadcast) or twice on one.

Each session keeps its own seq for it: an ack on one session must not trim the
other's copy, and a replay after a fault must bring it again. No sockets: MachinePairs.
"""
from msgr import Message, Policy
from msgr.testing.pair import MachinePair

LOSSLESS = ({"policy": Policy.lossless_client()}, {"policy": Policy.stateful_server()})


def ready_pair() -> MachinePair:
    p = MachinePair.create(*LOSSLESS)
    p.start()
    p.pump()
    return p


def frame(machine) -> bytes:
    return b"".join(bytes(b) for b in machine.data_to_send(1000.0))


def test_an_ack_on_one_session_does_not_trim_the_others_copy():
    p1, p2 = ready_pair(), ready_pair()
    for tid in range(5):                          # p1: seqs 1..5, delivered and acked
        p1.client.send_message(Message(1, tid=tid))
    p1.pump()
    shared = Message(1, front=b"both", tid=99)
    p1.client.send_message(shared)
    frame(p1.client)                              # p1 sends it as seq 6: lost on the way
    p2.client.send_message(shared)
    frame(p2.client)                              # p2 sends it as seq 1
    p1.server.send_message(Message(2))            # its header acks p1's seq 5
    p1.pump()
    assert [(seq, m.tid) for seq, m in p1.client.session.stream.sent] == [(6, 99)]   # not acked yet
    p1.client.session.stream.requeue_sent()              # a fault: the replay must bring it
    assert p1.client.session.stream.out.count == 1


def test_a_replay_after_reconnect_drops_only_what_the_peer_has():
    """discard_requeued_up_to counts on this session's seqs, not the object's."""
    p1, p2 = ready_pair(), ready_pair()
    shared = Message(1, tid=7)
    for tid in range(3):
        p1.client.send_message(Message(1, tid=tid))
    p1.client.send_message(shared)
    frame(p1.client)                              # seqs 1..3, then 4 for shared, on p1
    p2.client.send_message(shared)
    frame(p2.client)                              # seq 1 on p2
    s = p1.client.session.stream
    s.requeue_sent()
    s.discard_requeued_up_to(3)                   # the peer had seqs 1..3
    assert [m.tid for m in s.out.pop_many(10)] == [7] and s.out_seq == 3
