"""I/O threads: the only place selectors live."""
from .loop import Reactor, Timer
from .pool import ReactorPool

__all__ = ["Reactor", "Timer", "ReactorPool"]
