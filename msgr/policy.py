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

__all__ = ["Policy", "PolicySet", "check_policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How connections to one peer type behave. Use the named constructors."""

    lossy: bool
    server: bool
    standby: bool
    resetcheck: bool
    features_required: int = 0

    def __post_init__(self) -> None:
        for name in ("lossy", "server", "standby", "resetcheck"):
            if type(getattr(self, name)) is not bool:
                raise TypeError(f"Policy.{name} must be a bool, not {getattr(self, name)!r}")
        f = self.features_required
        if type(f) is not int or not 0 <= f < 1 << 64:
            raise TypeError(f"Policy.features_required must be an int in 0..2**64-1, not {f!r}")

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
        return self.by_type.get(int(EntityType(peer_type)), self.default)

    def set(self, peer_type: EntityType | int, policy: Policy) -> None:
        """Raises ValueError (not an EntityType) or TypeError (not a Policy)."""
        self.by_type[int(EntityType(peer_type))] = check_policy(policy)


def check_policy(policy) -> Policy:
    """``policy`` if it is a Policy; else TypeError."""
    if not isinstance(policy, Policy):
        raise TypeError(f"expected a msgr.Policy (Policy.lossy_client(), ...), not {policy!r}")
    return policy
