"""Connection policies: Ceph's ``Policy`` (``src/msg/Policy.h``) as frozen data.

The protocol branches on the fields, never on a subclass:

* ``lossy``: a fault ends the session (``ms_handle_reset``); no reconnect.
* ``server``: never (re)connects from this side; waits for the peer.
* ``standby``: when idle after a fault, wait for the next send to reconnect.
* ``resetcheck``: detect that the peer lost our session (remote reset).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace

from .checks import as_int
from .entity import EntityType

__all__ = ["Policy", "PolicySet", "check_policy", "peer_type_of"]


@dataclass(frozen=True, slots=True)
class Policy:
    """How connections to one peer type behave. Use the named constructors."""

    lossy: bool
    server: bool
    standby: bool
    resetcheck: bool
    features_required: int = 0

    def __post_init__(self) -> None:
        """Flags are bools (an int 0 or 1 is taken as one); features_required is a u64.

        Raises:
            TypeError: a flag or features_required of another kind.
            ValueError: features_required out of 0..2**64-1.
        """
        for name in ("lossy", "server", "standby", "resetcheck"):
            value = getattr(self, name)
            if type(value) is not bool:
                try:
                    flag = operator.index(value)
                except TypeError:
                    flag = None
                if flag not in (0, 1):
                    raise TypeError(f"Policy.{name} must be a bool, not {value!r}"[:200])
                object.__setattr__(self, name, bool(flag))
        f = as_int(self.features_required, "Policy.features_required")
        if not 0 <= f < 1 << 64:
            raise ValueError(f"Policy.features_required {f} out of range 0..2**64-1")
        object.__setattr__(self, "features_required", f)

    @classmethod
    def lossy_client(cls, features_required: int = 0) -> "Policy":
        """A client whose session ends at the first fault (``ms_handle_reset``); it redials
        only while its handshake fails (Ceph's ``Policy::lossy_client``)."""
        return cls(True, False, False, False, features_required)

    @classmethod
    def lossless_client(cls, features_required: int = 0) -> "Policy":
        """A client that keeps its session across faults: it redials with backoff and
        replays what was not acknowledged; resets are checked (``Policy::lossless_client``)."""
        return cls(False, False, False, True, features_required)

    @classmethod
    def stateless_server(cls, features_required: int = 0) -> "Policy":
        """A server for lossy clients: a fault ends the session (``Policy::stateless_server``)."""
        return cls(True, True, False, False, features_required)

    @classmethod
    def stateful_server(cls, features_required: int = 0) -> "Policy":
        """A server that keeps lossless sessions without a transport (STANDBY) until the
        client comes back; it never dials (``Policy::stateful_server``)."""
        return cls(False, True, True, True, features_required)

    @classmethod
    def lossless_peer(cls, features_required: int = 0) -> "Policy":
        """A peer that either side may dial; lossless, and STANDBY with nothing to send.
        Resets are not checked: a restarted peer continues our session
        (``Policy::lossless_peer``)."""
        return cls(False, False, True, False, features_required)

    @classmethod
    def lossless_peer_reuse(cls, features_required: int = 0) -> "Policy":
        """As :meth:`lossless_peer`, but resets are checked: a restarted peer resets our
        session, and the dispatchers hear ``ms_handle_remote_reset``
        (``Policy::lossless_peer_reuse``)."""
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
        return self.by_type.get(int(peer_type_of(peer_type, "get_policy")), self.default)

    def set(self, peer_type: EntityType | int, policy: Policy) -> None:
        """Raises ValueError (not an EntityType) or TypeError (not a Policy)."""
        self.by_type[int(peer_type_of(peer_type, "set_policy"))] = check_policy(policy, "set_policy")


def check_policy(policy, where: str) -> Policy:
    """``policy`` if it is a Policy; else TypeError naming the call ``where``."""
    if not isinstance(policy, Policy):
        raise TypeError(f"{where}: expected a msgr.Policy (Policy.lossy_client(), ...), "
                        f"not {type(policy).__name__}")
    return policy


def peer_type_of(peer_type, where: str) -> EntityType:
    """``peer_type`` as an EntityType; else ValueError naming the call ``where``."""
    try:
        return EntityType(peer_type)
    except ValueError:
        raise ValueError(f"{where}: peer_type must be an EntityType (EntityType.OSD, ...) "
                         f"or its value, not {peer_type!r}"[:200]) from None
