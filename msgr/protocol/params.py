"""MachineParams: everything a ProtocolMachine needs to know about this side."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from ..entity import EntityAddr, EntityName
from ..policy import Policy

__all__ = ["MachineParams", "FEATURES_ALL", "FEATURE_MSG_ADDR2", "MSGR2_REV1"]

FEATURES_ALL = 0x3F01CFBDFFFDFFFF     # Pacific's CEPH_FEATURES_ALL
FEATURE_MSG_ADDR2 = 1 << 59           # CEPH_FEATURE_MSG_ADDR2, always required by msgr2
MSGR2_REV1 = 1                        # msgr2 banner feature bit 0: msgr2.1


@dataclass(frozen=True)
class MachineParams:
    """This side's identity, limits and hooks for one machine.

    Attributes:
        my_name: our entity name (``osd.0``); ``num`` is the ident gid.
        my_addrs: addresses we advertise (a blank ``any`` one for unbound clients).
        policy: the policy for the peer (connecting side: known up front;
            accepting side: the default until HELLO names the peer type).
        policy_for: accepting side: peer type -> Policy.
        peer_type: connecting side: the entity type we expect to reach.
        target_addr: connecting side: the address we dialled.
        peer_socket_addr: accepting side: the peer's socket address (for HELLO).
        auth_client / auth_server: auth providers (``msgr.auth``).
        global_seq: this attempt's global_seq (connecting) or ours (accepting).
        next_global_seq: returns a global_seq greater than its argument.
        rng: randomness for cookies (injectable for tests).
        interceptor: a ``msgr.testing.Interceptor`` (tests only), or None.
        buffer_pool: a :class:`~msgr.bufpool.BufferPool` for large receive
            buffers (shared by the messenger's machines), or None.
    """

    my_name: EntityName
    my_addrs: tuple
    policy: Policy
    auth_client: object = None
    auth_server: object = None
    policy_for: Callable[[int], Policy] | None = None
    peer_type: int = 0
    target_addr: EntityAddr | None = None
    peer_socket_addr: EntityAddr | None = None
    global_seq: int = 0
    next_global_seq: Callable[[int], int] = lambda gs: gs + 1
    rev1_allowed: bool = True
    features_supported: int = FEATURES_ALL
    recv_buffer_bytes: int = 256 * 1024
    max_segment_bytes: int = 256 << 20
    ready_timeout: float = 10.0
    idle_timeout: float = 900.0
    rng: random.Random = field(default_factory=random.SystemRandom)
    interceptor: object = None
    buffer_pool: object = None
