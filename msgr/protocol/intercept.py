"""Interceptor breakpoints and actions: plain data the machine checks (see msgr.testing)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from .frames import Tag

__all__ = ["Action", "Breakpoint", "Direction", "tag_bp", "BANNER_WRITE", "BANNER_READ",
           "SOCKET_CONNECTING", "SOCKET_ACCEPTED", "READ_BPS", "WRITE_BPS"]


class Action(Enum):
    CONTINUE = "continue"
    FAULT = "fault"
    BLOCK = "block"
    STALL = "stall"


class Direction(StrEnum):
    """Which way a frame goes at a tag breakpoint."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Breakpoint:
    """``tag`` + ``direction``, or a ``custom`` step name."""

    tag: Tag | None = None
    direction: Direction | None = None
    custom: str | None = None

    def __str__(self) -> str:
        return self.custom or f"{self.tag.name}:{self.direction}"


def tag_bp(tag: Tag, direction: Direction | str) -> Breakpoint:
    """The breakpoint for frames tagged ``tag`` going ``direction`` ("read" or "write").

    Raises:
        ValueError: ``direction`` is neither.
    """
    try:
        direction = Direction(direction)
    except ValueError:
        raise ValueError(f"direction must be read or write, not {direction!r}") from None
    return Breakpoint(Tag(tag), direction)


BANNER_WRITE = Breakpoint(custom="banner_write")
BANNER_READ = Breakpoint(custom="banner_read")
SOCKET_CONNECTING = Breakpoint(custom="socket_connecting")
SOCKET_ACCEPTED = Breakpoint(custom="socket_accepted")

READ_BPS = {t.value: Breakpoint(t, Direction.READ) for t in Tag}
WRITE_BPS = {t.value: Breakpoint(t, Direction.WRITE) for t in Tag}
