"""Blocking sockets, 4-byte length + payload, TCP_NODELAY.

Variants (``spec.variant``): "batched" sends up to 512 frames (at most 4 MiB) per ``sendmsg``;
"sendall" makes one ``sendall`` per message. Either way the receiver reads into a large buffer
(``recv_into``, many frames per read) and counts whole frames; with several connections it waits
on an epoll selector. Round trip: one ``sendall`` and ``recv_into`` until the echo is whole, on
both sides.
"""
from __future__ import annotations

import selectors
import socket
import time

from .common import END, LEN, SETUP_S, FrameCounter, frame, now_ns, rt_result

BATCH_FRAMES, BATCH_BYTES = 512, 4 << 20


def _nodelay(s: socket.socket, timeout: float) -> socket.socket:
    s.settimeout(timeout)                     # a bound on every wait, not a polling interval
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def sendmsg_all(sock: socket.socket, bufs: list) -> None:
    """One ``sendmsg`` of ``bufs``; the rare short write of a blocking socket is finished."""
    total, done = sum(len(b) for b in bufs), sock.sendmsg(bufs)
    if done < total:
        sock.sendall(b"".join(bufs)[done:])


def serve(spec, ctl) -> dict:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(spec.conns)
    srv.settimeout(SETUP_S)
    ctl.ready(srv.getsockname()[1])
    socks = [_nodelay(srv.accept()[0], spec.limit_s + SETUP_S) for _ in range(spec.conns)]
    srv.close()
    try:
        return (_echo if spec.workload == "rt" else _sink)(spec, socks)
    finally:
        for s in socks:
            s.close()


def _sink(spec, socks: list) -> dict:
    """Counts frames until every connection has sent its end marker (or closed)."""
    counters = {s: FrameCounter(spec.size) for s in socks}
    cpu0, t_end, ends = time.process_time(), None, 0
    deadline = time.monotonic() + spec.limit_s + SETUP_S
    if len(socks) == 1:
        (s, fc), = counters.items()
        while not fc.ended and (n := s.recv_into(fc.free())):
            fc.scan(n)
        t_end, ends = (now_ns(), 1) if fc.ended else (None, 0)
    else:
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ, counters[s])
        while ends < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                fc = key.data
                n = key.fileobj.recv_into(fc.free())
                fc.scan(n)
                if fc.ended or not n:
                    sel.unregister(key.fileobj)
                    ends += 1
        sel.close()
        t_end = now_ns() if ends == len(socks) else None
    return {"count": sum(fc.count for fc in counters.values()), "t_end": t_end, "ends": ends,
            "cpu_s": time.process_time() - cpu0}


def _echo(spec, socks: list) -> dict:
    """Sends every whole frame back with one sendall, until the end marker."""
    s, buf = socks[0], bytearray(spec.size + 4 + 65536)
    view, cpu0 = memoryview(buf), time.process_time()
    while True:
        have = s.recv_into(buf)
        if not have:
            break
        while have < 4 or have < 4 + LEN.unpack_from(buf)[0]:
            got = s.recv_into(view[have:])
            if not got:
                break
            have += got
        if have == 4 and not LEN.unpack_from(buf)[0]:
            break                                 # the end marker
        s.sendall(view[:have])
    return {"cpu_s": time.process_time() - cpu0}


def client(spec, port: int) -> dict:
    socks = [_nodelay(socket.create_connection(("127.0.0.1", port), timeout=SETUP_S),
                      spec.limit_s + SETUP_S) for _ in range(spec.conns)]
    try:
        if spec.workload == "rt":
            return _roundtrips(spec, socks[0])
        return _oneway(spec, socks)
    finally:
        for s in socks:
            s.close()


def _oneway(spec, socks: list) -> dict:
    """Round-robin over the connections: a batch (or one message) each, until done or timed out."""
    one, left = frame(spec.size), spec.per_conn()
    k = max(1, min(BATCH_FRAMES, BATCH_BYTES // len(one))) if spec.variant == "batched" else 1
    batch, sent = [one] * k, 0
    cpu0, t0 = time.process_time(), now_ns()
    stop = t0 + int(spec.limit_s * 1e9)
    while sent < spec.n and now_ns() < stop:
        for i, s in enumerate(socks):
            if k > 1:
                m = min(k, left[i])
                if m:
                    sendmsg_all(s, batch if m == k else batch[:m])
            else:
                m = min(256, left[i])             # 256 single sends per connection per round
                send = s.sendall
                for _ in range(m):
                    send(one)
            left[i] -= m
            sent += m
    for s in socks:
        s.sendall(END)
        s.shutdown(socket.SHUT_WR)
    return {"sent": sent, "t_start": t0, "cpu_s": time.process_time() - cpu0}


def _roundtrips(spec, s: socket.socket) -> dict:
    one = frame(spec.size)
    buf, lat, clock = bytearray(len(one)), [], time.perf_counter_ns
    view, want = memoryview(buf), len(one)
    cpu0, stop = time.process_time(), time.monotonic() + spec.limit_s
    for _ in range(spec.n + spec.warmup):
        t0 = clock()
        s.sendall(one)
        have = s.recv_into(buf)
        while have < want:
            got = s.recv_into(view[have:])
            if not got:
                raise ConnectionError("the echo server closed the connection")
            have += got
        lat.append(clock() - t0)
        if time.monotonic() > stop:
            break
    cpu = time.process_time() - cpu0
    s.sendall(END)
    return rt_result(lat, spec.warmup, cpu)
