"""pyzmq: PUSH/PULL for one-way, REQ/REP for the round trip, over tcp://127.0.0.1.

One-way: the client opens ``spec.conns`` PUSH sockets (one TCP connection each) and sends
round-robin, one message per ``send`` (zmq batches on its I/O thread; the default high-water
mark of 1000 messages is the flow control); one PULL socket receives. An empty message ends a
connection. Messages of 64 KiB and more are sent and received without copying (``copy=False``).
Round trip: REQ ``send`` + ``recv`` against a REP that sends each message back.
"""
from __future__ import annotations

import time

from .common import SETUP_S, now_ns, rt_result

COPY_BELOW = 65536


def serve(spec, ctl) -> dict:
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP if spec.workload == "rt" else zmq.PULL)
    sock.rcvtimeo = int((spec.limit_s + 2 * SETUP_S) * 1000)
    ctl.ready(sock.bind_to_random_port("tcp://127.0.0.1"))
    copy, count, ends, t_end = spec.size < COPY_BELOW, 0, 0, None
    cpu0 = time.process_time()
    try:
        if spec.workload == "rt":
            recv, send = sock.recv, sock.send
            while True:
                msg = recv()
                send(msg)
                if not msg:
                    break
        else:
            recv = sock.recv
            while ends < spec.conns:
                if len(recv(copy=copy)):
                    count += 1
                else:
                    ends += 1
            t_end = now_ns()
    except zmq.Again:                             # the time bound passed: report what came
        pass
    cpu = time.process_time() - cpu0
    sock.close(linger=0)
    ctx.term()
    return {"count": count, "ends": ends, "t_end": t_end, "cpu_s": cpu}


def client(spec, port: int) -> dict:
    import zmq
    ctx = zmq.Context()
    kind = zmq.REQ if spec.workload == "rt" else zmq.PUSH
    socks = [ctx.socket(kind) for _ in range(spec.conns)]
    for s in socks:
        s.sndtimeo = s.rcvtimeo = int((spec.limit_s + SETUP_S) * 1000)
        s.connect(f"tcp://127.0.0.1:{port}")
    try:
        if spec.workload == "rt":
            return _roundtrips(spec, socks[0])
        return _oneway(spec, socks)
    finally:
        for s in socks:
            s.close(linger=int(SETUP_S * 1000))   # the queued messages still go out
        ctx.term()


def _oneway(spec, socks: list) -> dict:
    payload, copy, left, sent = bytes(spec.size), spec.size < COPY_BELOW, spec.per_conn(), 0
    cpu0, t0 = time.process_time(), now_ns()
    stop = t0 + int(spec.limit_s * 1e9)
    while sent < spec.n and now_ns() < stop:
        for i, s in enumerate(socks):
            m = min(256, left[i])                 # 256 messages per connection per round
            send = s.send
            for _ in range(m):
                send(payload, copy=copy)
            left[i] -= m
            sent += m
    for s in socks:
        s.send(b"")
    return {"sent": sent, "t_start": t0, "cpu_s": time.process_time() - cpu0}


def _roundtrips(spec, s) -> dict:
    payload, lat, clock = bytes(spec.size), [], time.perf_counter_ns
    send, recv = s.send, s.recv
    cpu0, stop = time.process_time(), time.monotonic() + spec.limit_s
    for _ in range(spec.n + spec.warmup):
        t0 = clock()
        send(payload)
        recv()
        lat.append(clock() - t0)
        if time.monotonic() > stop:
            break
    cpu = time.process_time() - cpu0
    send(b"")
    recv()
    return rt_result(lat, spec.warmup, cpu)
