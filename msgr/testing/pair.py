"""MachinePair: two ProtocolMachines talking through an in-memory byte pump.

No sockets, threads or sleeps: ``pump()`` moves bytes both ways in chunks of
``chunk`` bytes (None = whole) until neither side has anything to say, and
collects every event each side emitted. Time comes from a :class:`MockClock`.
"""
from __future__ import annotations

from ..auth import AuthNoneClient, AuthNoneServer
from ..entity import EntityAddr, EntityName, EntityType
from ..policy import Policy
from ..protocol.events import NEED_DATA, Decision, Reply, SessionRequest
from ..protocol.machine import ProtocolMachine
from ..protocol.params import MachineParams

__all__ = ["MockClock", "MachinePair", "make_params"]


class MockClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def make_params(connecting: bool, *, server_addr: EntityAddr | None = None,
                policy: Policy | None = None, **kw) -> MachineParams:
    """Params for a client (connecting) or an OSD server (accepting) in tests."""
    server_addr = server_addr or EntityAddr("v2", "127.0.0.1", 6800, 1234)
    gids = iter(range(4100, 1 << 30))
    if connecting:
        name = kw.pop("my_name", EntityName(EntityType.CLIENT, -1))
        return MachineParams(
            my_name=name, my_addrs=(EntityAddr("any", "0.0.0.0", 0, 99),),
            policy=policy or Policy.lossy_client(),
            auth_client=AuthNoneClient(int(name.type), "admin"),
            peer_type=kw.pop("peer_type", EntityType.OSD), target_addr=server_addr,
            global_seq=kw.pop("global_seq", 1), **kw)
    name = kw.pop("my_name", EntityName(EntityType.OSD, 0))
    pol = policy or Policy.stateless_server()
    return MachineParams(
        my_name=name, my_addrs=(server_addr,), policy=pol, policy_for=lambda t: pol,
        auth_server=AuthNoneServer(lambda: next(gids)),
        peer_socket_addr=EntityAddr("v2", "127.0.0.1", 40000, 0), global_seq=7, **kw)


def default_arbiter(machine: ProtocolMachine, request: SessionRequest) -> Decision:
    """No other sessions exist: accept a new one; a reconnect gets a full reset."""
    return Decision(Reply.RESET, full=True) if request.reconnect else Decision(Reply.ACCEPT)


class MachinePair:
    """A connecting and an accepting machine joined by a byte pump.

    Attributes:
        client, server: the two machines.
        client_events, server_events: every event each emitted, in order.
    """

    def __init__(self, client: ProtocolMachine, server: ProtocolMachine,
                 clock: MockClock | None = None, arbiter=None) -> None:
        self.client, self.server = client, server
        self.arbiter = arbiter or default_arbiter
        self.clock = clock or MockClock()
        self.client_events: list = []
        self.server_events: list = []
        self.wire_log: list = []

    @classmethod
    def create(cls, client_kw: dict | None = None, server_kw: dict | None = None) -> "MachinePair":
        c = ProtocolMachine(make_params(True, **(client_kw or {})), connecting=True)
        s = ProtocolMachine(make_params(False, **(server_kw or {})), connecting=False)
        return cls(c, s)

    def start(self) -> None:
        self.client.start(self.clock.now)
        self.server.start(self.clock.now)

    def _move(self, src: ProtocolMachine, dst: ProtocolMachine, chunk: int | None) -> int:
        data = b"".join(bytes(b) for b in src.data_to_send(self.clock.now))
        if not data:
            return 0
        self.wire_log.append((src is self.client, data))
        step = chunk or len(data)
        for i in range(0, len(data), step):
            dst.receive_data(data[i:i + step], self.clock.now)
            self._drain(dst)
        return len(data)

    def _drain(self, m: ProtocolMachine) -> None:
        sink = self.client_events if m is self.client else self.server_events
        while (ev := m.next_event()) is not NEED_DATA:
            sink.append(ev)
            if isinstance(ev, SessionRequest):
                m.decide(self.arbiter(m, ev))

    def pump(self, chunk: int | None = None, max_rounds: int = 1000) -> int:
        """Moves bytes until quiet; returns the number of bytes moved."""
        total = 0
        for _ in range(max_rounds):
            moved = self._move(self.client, self.server, chunk)
            moved += self._move(self.server, self.client, chunk)
            self._drain(self.client)
            self._drain(self.server)
            total += moved
            if not moved:
                return total
        raise AssertionError("pump did not go quiet")
