"""asyncio and uvloop (``spec.loop``), streams or ``BufferedProtocol`` (``spec.variant``).

Framing as the blocking peer: 4-byte length + payload, TCP_NODELAY, an empty frame ends a stream.
- "streams": the receiver awaits ``readexactly(4)`` then ``readexactly(size)`` per message; the
  sender calls ``writer.write`` per message and awaits ``drain()`` once its buffer passes 64 KiB.
- "protocol": the receiver is a ``BufferedProtocol`` that hands the loop a large buffer and counts
  whole frames in it; the sender calls ``transport.write`` per message and waits only while the
  transport has paused it (``pause_writing``/``resume_writing``).
Several connections: one task (streams) or one writer coroutine (protocol) per connection, in one
loop. Round trip: the client writes the next message as soon as the echo is whole.
"""
from __future__ import annotations

import asyncio
import socket
import time

from .common import END, LEN, SETUP_S, FrameCounter, frame, now_ns, rt_result

HIGH_WATER = 65536


def _run(spec, main):
    if spec.loop == "uvloop":
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    return asyncio.run(main())


def _nodelay(transport) -> None:
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ---------------------------------------------------------------- server
class _Tally:
    """What the server reports: whole messages, end markers seen, the time of the last one."""

    def __init__(self, conns: int) -> None:
        self.count, self.ends, self.conns, self.t_end, self.broken = 0, 0, conns, None, 0
        self.done = asyncio.get_running_loop().create_future()

    def ended(self, count: int, broken: bool = False) -> None:
        """A connection is over: at its end marker, or ``broken`` (closed before it)."""
        self.count += count
        self.ends += 1
        self.broken += broken
        if self.ends >= self.conns and not self.done.done():
            self.t_end = None if self.broken else now_ns()
            self.done.set_result(None)


class _SinkProtocol(asyncio.BufferedProtocol):
    def __init__(self, spec, tally: _Tally) -> None:
        self.fc, self.tally, self.over = FrameCounter(spec.size), tally, False

    def connection_made(self, transport) -> None:
        _nodelay(transport)

    def get_buffer(self, sizehint: int):
        return self.fc.free()

    def buffer_updated(self, nbytes: int) -> None:
        self.fc.scan(nbytes)
        if self.fc.ended and not self.over:
            self.over = True
            self.tally.ended(self.fc.count)

    def connection_lost(self, exc) -> None:
        if not self.over:                         # closed before its end marker
            self.over = True
            self.tally.ended(self.fc.count, broken=True)


class _EchoProtocol(asyncio.BufferedProtocol):
    """Writes each whole frame back at once; the end marker resolves ``tally.done``."""

    def __init__(self, spec, tally: _Tally) -> None:
        self.buf = bytearray(spec.size + 4 + 65536)
        self.view, self.have, self.tally, self.tr = memoryview(self.buf), 0, tally, None

    def connection_made(self, transport) -> None:
        self.tr = transport
        _nodelay(transport)

    def get_buffer(self, sizehint: int):
        return self.view[self.have:]

    def buffer_updated(self, nbytes: int) -> None:
        self.have += nbytes
        while self.have >= 4:
            size = LEN.unpack_from(self.buf)[0]
            if self.have < 4 + size:
                return
            if not size:
                self.tally.ended(0)
                return
            self.tr.write(bytes(self.view[:4 + size]))
            rest = self.have - 4 - size
            self.buf[:rest] = self.buf[4 + size:self.have]
            self.have = rest

    def connection_lost(self, exc) -> None:
        if not self.tally.done.done():
            self.tally.ended(0)


async def _stream_conn(spec, tally: _Tally, reader, writer) -> None:
    _nodelay(writer.transport)
    rx, unpack, count = reader.readexactly, LEN.unpack, 0
    try:
        while True:
            size = unpack(await rx(4))[0]
            if not size:
                break
            body = await rx(size)
            if spec.workload == "rt":
                writer.write(LEN.pack(size) + body)
            else:
                count += 1
        tally.ended(count)
    except (asyncio.IncompleteReadError, ConnectionError):
        tally.ended(count, broken=True)
    writer.close()


def serve(spec, ctl) -> dict:
    async def main() -> dict:
        loop, tally = asyncio.get_running_loop(), _Tally(spec.conns)
        if spec.variant == "streams":
            server = await asyncio.start_server(
                lambda r, w: _stream_conn(spec, tally, r, w), "127.0.0.1", 0)
        else:
            proto = _EchoProtocol if spec.workload == "rt" else _SinkProtocol
            server = await loop.create_server(lambda: proto(spec, tally), "127.0.0.1", 0)
        ctl.ready(server.sockets[0].getsockname()[1])
        cpu0 = time.process_time()
        try:
            await asyncio.wait_for(asyncio.shield(tally.done), spec.limit_s + 2 * SETUP_S)
        except asyncio.TimeoutError:
            pass
        cpu = time.process_time() - cpu0
        server.close()
        return {"count": tally.count, "ends": tally.ends, "t_end": tally.t_end, "cpu_s": cpu}
    return _run(spec, main)


# ---------------------------------------------------------------- client
class _ClientProtocol(asyncio.Protocol):
    """Flow control for the one-way writer; for round trips, times each echo and sends the next."""

    def __init__(self, spec, one: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.closed, self.resumed, self.tr = loop.create_future(), None, None
        self.spec, self.one, self.got, self.lat, self.t0 = spec, one, 0, [], 0
        self.stop = 0.0                           # set by the round-trip driver
        self.done = loop.create_future()

    def connection_made(self, transport) -> None:
        self.tr = transport
        _nodelay(transport)

    def pause_writing(self) -> None:
        self.resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.resumed is not None:
            self.resumed.set_result(None)
            self.resumed = None

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.one):
            return
        self.lat.append(time.perf_counter_ns() - self.t0)
        self.got -= len(self.one)
        if len(self.lat) >= self.spec.n + self.spec.warmup or time.monotonic() > self.stop:
            self.done.set_result(None)
        else:
            self.send()

    def send(self) -> None:
        self.t0 = time.perf_counter_ns()
        self.tr.write(self.one)

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.spec.workload == "rt" and not self.done.done():
            self.done.set_exception(ConnectionError("the echo server closed the connection"))


async def _stream_writer(spec, one: bytes, count: int, stop: int, reader, writer) -> int:
    write, tr, sent = writer.write, writer.transport, 0
    while sent < count:
        for _ in range(min(1024, count - sent)):
            write(one)
            if tr.get_write_buffer_size() > HIGH_WATER:
                await writer.drain()
        sent += min(1024, count - sent)
        if now_ns() > stop:
            break
        await asyncio.sleep(0)                    # let the other connections' writers run
    write(END)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    return sent


async def _proto_writer(spec, one: bytes, count: int, stop: int, proto) -> int:
    write, sent = proto.tr.write, 0
    while sent < count:
        for _ in range(min(1024, count - sent)):
            write(one)
            if proto.resumed is not None:
                await proto.resumed
        sent += min(1024, count - sent)
        if now_ns() > stop:
            break
        await asyncio.sleep(0)
    write(END)
    proto.tr.close()                               # flushes the buffer, then closes
    await proto.closed
    return sent


async def _stream_rt(spec, one: bytes, reader, writer) -> list:
    lat, clock, rx = [], time.perf_counter_ns, reader.readexactly
    stop = time.monotonic() + spec.limit_s
    for _ in range(spec.n + spec.warmup):
        t0 = clock()
        writer.write(one)
        await rx(LEN.unpack(await rx(4))[0])
        lat.append(clock() - t0)
        if time.monotonic() > stop:
            break
    writer.write(END)
    await writer.drain()
    writer.close()
    return lat


def client(spec, port: int) -> dict:
    async def main() -> dict:
        loop, one = asyncio.get_running_loop(), frame(spec.size)
        conns = []
        for _ in range(spec.conns):
            if spec.variant == "streams":
                conns.append(await asyncio.open_connection("127.0.0.1", port))
            else:
                conns.append((await loop.create_connection(
                    lambda: _ClientProtocol(spec, one), "127.0.0.1", port))[1])
        cpu0 = time.process_time()
        if spec.workload == "rt":
            if spec.variant == "streams":
                lat = await _stream_rt(spec, one, *conns[0])
            else:
                proto = conns[0]
                proto.stop = time.monotonic() + spec.limit_s
                proto.send()
                await asyncio.wait_for(proto.done, spec.limit_s + SETUP_S)
                lat = proto.lat
                proto.tr.write(END)
                proto.tr.close()
                await proto.closed
            return rt_result(lat, spec.warmup, time.process_time() - cpu0)
        t0 = now_ns()
        stop = t0 + int(spec.limit_s * 1e9)
        if spec.variant == "streams":
            jobs = [_stream_writer(spec, one, k, stop, *c) for k, c in zip(spec.per_conn(), conns)]
        else:
            jobs = [_proto_writer(spec, one, k, stop, c) for k, c in zip(spec.per_conn(), conns)]
        sent = sum(await asyncio.gather(*jobs))
        return {"sent": sent, "t_start": t0, "cpu_s": time.process_time() - cpu0}
    return _run(spec, main)
