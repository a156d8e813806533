"""Ceph's auth method *none* (CEPH_AUTH_NONE) in its two msgr2 forms.

* To a MON peer the AUTH_REQUEST payload is the mon form
  (``MonConnection::get_auth_request``): ``u8 AUTH_MODE_MON (10); EntityName
  {le32 type, string id}; le64 global_id`` and no method-specific part.
* To any other peer it is the authorizer (``AuthNoneAuthorizer``):
  ``u8 v=1; EntityName; le64 global_id``.

The server accepts both forms and assigns a global_id when the client asks for
one (0). There is no session key, so AUTH_SIGNATURE is 32 zero bytes and the
only connection mode is CRC.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..protocol.encoding import DecodeError, Decoder, Encoder

__all__ = ["AuthNoneClient", "AuthNoneServer", "AuthResult", "AUTH_NONE", "AUTH_MODE_MON",
           "CON_MODE_CRC", "CON_MODE_SECURE", "ZERO_SIGNATURE"]

AUTH_NONE = 1
AUTH_CEPHX = 2
AUTH_MODE_MON = 10
AUTHORIZER_V1 = 1
CON_MODE_CRC = 1
CON_MODE_SECURE = 2
EOPNOTSUPP = 95
ZERO_SIGNATURE = bytes(32)
MON_TYPE = 0x01


class AuthNoneClient:
    """Builds AUTH_REQUEST payloads for auth none.

    Args:
        entity_type: our entity type (le32 in EntityName).
        entity_id: our auth id string (``"admin"`` for clients by default).
    """

    method = AUTH_NONE
    modes = (CON_MODE_CRC,)

    def __init__(self, entity_type: int, entity_id: str) -> None:
        self.entity_type = entity_type
        self.entity_id = entity_id

    def request_payload(self, peer_type: int, global_id: int = 0) -> bytes:
        """The AUTH_REQUEST payload for a peer of ``peer_type``."""
        enc = Encoder().u8(AUTH_MODE_MON if peer_type == MON_TYPE else AUTHORIZER_V1)
        enc.u32(self.entity_type).string(self.entity_id)
        return enc.u64(global_id).getvalue()

    def signature(self) -> bytes:
        """AUTH_SIGNATURE payload: HMAC with an empty key, i.e. zeros."""
        return ZERO_SIGNATURE


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What the server decided about one AUTH_REQUEST.

    ``ok`` False means AUTH_BAD_METHOD with ``result`` (-errno).
    """

    ok: bool
    global_id: int = 0
    con_mode: int = CON_MODE_CRC
    result: int = 0
    entity_type: int = 0
    entity_id: str = ""


class AuthNoneServer:
    """Accepts auth-none requests in either form and assigns global ids.

    Args:
        next_global_id: a callable returning a fresh non-zero global_id.
    """

    methods = (AUTH_NONE,)
    modes = (CON_MODE_CRC,)

    def __init__(self, next_global_id) -> None:
        self._next_global_id = next_global_id

    def handle_request(self, method: int, modes: tuple, payload: bytes) -> AuthResult:
        """Checks method and modes, decodes the payload.

        Raises:
            DecodeError: the payload is not a valid auth-none request.
        """
        if method != AUTH_NONE or CON_MODE_CRC not in modes:
            return AuthResult(ok=False, result=-EOPNOTSUPP)
        d = Decoder(payload, "AUTH_REQUEST(none)")
        form = d.u8()
        if form not in (AUTH_MODE_MON, AUTHORIZER_V1):
            raise DecodeError(f"AUTH_REQUEST(none): unknown form byte {form}")
        etype, eid, gid = d.u32(), d.string(), d.u64()
        return AuthResult(ok=True, global_id=gid or self._next_global_id(),
                          entity_type=etype, entity_id=eid)

    def signature(self) -> bytes:
        return ZERO_SIGNATURE
