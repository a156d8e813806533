"""Argument checks shared by the public constructors and setters."""
from __future__ import annotations

from operator import index as _index

__all__ = ["as_int"]


def as_int(value, what: str) -> int:
    """``value`` as an int: ints and what acts as one (numpy's integers), not floats or str.

    Raises:
        TypeError: naming ``what`` (e.g. "message tid", "EntityName.num").
    """
    try:
        return _index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
