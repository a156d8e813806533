"""Authentication providers for the msgr2 handshake (auth *none* today)."""
from .none import (AUTH_MODE_MON, AUTH_NONE, CON_MODE_CRC, CON_MODE_SECURE, AuthNoneClient,
                   AuthNoneServer, AuthResult)

__all__ = ["AuthNoneClient", "AuthNoneServer", "AuthResult", "AUTH_NONE", "AUTH_MODE_MON",
           "CON_MODE_CRC", "CON_MODE_SECURE"]
