"""Connection policies: Ceph's ``Policy`` (``src/msg/Policy.h``) as frozen data.

The protocol branches on the fields, never on a subclass:

* ``lossy``: a fault ends the session (``ms_handle_reset``); no reconnect.
* ``server``: never (re)connects from this side; waits for the peer.
* ``standby``: when idle after a fault, wait for the next send to reconnect.
* ``resetcheck``: detect that the peer lost our session (remote reset).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .entity import EntityType

__all__ = ["Policy", "PolicySet"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How connections to one peer type behave. Use the named constructors."""

    lossy: bool
    server: bool
    standby: bool
    resetcheck: bool
    features_required: int = 0

    @classmethod
    def lossy_client(cls, features_required: int = 0) -> "Policy":
        return cls(True, False, False, False, features_required)

    @classmethod
    def lossless_client(cls, features_required: int = 0) -> "Policy":
        return cls(False, False, False, True, features_required)

    @classmethod
    def stateless_server(cls, features_required: int = 0) -> "Policy":
        return cls(True, True, False, False, features_required)

    @classmethod
    def stateful_server(cls, features_required: int = 0) -> "Policy":
        return cls(False, True, True, True, features_required)

    @classmethod
    def lossless_peer(cls, features_required: int = 0) -> "Policy":
        return cls(False, False, True, False, features_required)

    @classmethod
    def lossless_peer_reuse(cls, features_required: int = 0) -> "Policy":
        return cls(False, False, True, True, features_required)

    def as_lossy(self) -> "Policy":
        """This policy with ``lossy`` set (``mark_disposable``, server's LOSSY flag)."""
        return replace(self, lossy=True)


@dataclass
class PolicySet:
    """A default Policy plus overrides per peer type. Owned by one Messenger."""

    default: Policy = field(default_factory=Policy.lossy_client)
    by_type: dict = field(default_factory=dict)

    def get(self, peer_type: EntityType | int) -> Policy:
        return self.by_type.get(int(peer_type), self.default)

    def set(self, peer_type: EntityType | int, policy: Policy) -> None:
        self.by_type[int(peer_type)] = policy
