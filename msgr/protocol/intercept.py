"""Interceptor breakpoints and actions: plain data the machine checks (see msgr.testing)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .frames import Tag

__all__ = ["Action", "Breakpoint", "tag_bp", "BANNER_WRITE", "BANNER_READ",
           "SOCKET_CONNECTING", "SOCKET_ACCEPTED", "READ_BPS", "WRITE_BPS"]


class Action(Enum):
    CONTINUE = "continue"
    FAULT = "fault"
    BLOCK = "block"
    STALL = "stall"


@dataclass(frozen=True)
class Breakpoint:
    """``tag`` + ``direction`` ("read"/"write"), or a ``custom`` step name."""

    tag: Tag | None = None
    direction: str | None = None
    custom: str | None = None

    def __str__(self) -> str:
        return self.custom or f"{self.tag.name}:{self.direction}"


def tag_bp(tag: Tag, direction: str) -> Breakpoint:
    if direction not in ("read", "write"):
        raise ValueError(f"direction must be read or write, not {direction!r}")
    return Breakpoint(Tag(tag), direction)


BANNER_WRITE = Breakpoint(custom="banner_write")
BANNER_READ = Breakpoint(custom="banner_read")
SOCKET_CONNECTING = Breakpoint(custom="socket_connecting")
SOCKET_ACCEPTED = Breakpoint(custom="socket_accepted")

READ_BPS = {t.value: Breakpoint(t, "read") for t in Tag}
WRITE_BPS = {t.value: Breakpoint(t, "write") for t in Tag}
