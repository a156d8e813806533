"""Peers for ``python -m tools.bench.peers``: the same workloads over msgr and over other Python transports.

Each module exposes ``serve(spec, ctl) -> dict`` (run in the server process; ``ctl.ready(addr)``
announces where to connect, ``ctl.wait_stop(t)`` waits for the driver's stop) and
``client(spec, addr) -> dict`` (run in the client process).
``common.run_pair`` starts both in separate "spawn" processes, pins them and collects the results.

- ``msgr_peer``: msgr's ``Messenger`` (lossy_client / stateless_server).
- ``blocking``: blocking sockets, 4-byte length + payload framing.
- ``aio``: asyncio or uvloop, streams or ``BufferedProtocol``, the same framing.
- ``zmq_peer``: pyzmq PUSH/PULL (one-way) and REQ/REP (round trip).
"""
