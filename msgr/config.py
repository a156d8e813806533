"""Messenger configuration: Ceph's ``ms_*`` options with Ceph's defaults.

``Config(...)`` validates every field and raises :class:`ConfigError` (a
``ValueError``) naming the option. ``Config.from_env()`` reads
``MSGR_<UPPER_NAME>`` environment variables over the defaults.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields

from .errors import ConfigError

__all__ = ["Config", "MiB"]

MiB = 1 << 20

_ENTITY_LABELS = {"mon", "mds", "osd", "client", "mgr", "auth"}


@dataclass(frozen=True)
class Config:
    """Options of one Messenger. Frozen; use ``dataclasses.replace`` to derive."""

    io_threads: int = 3
    dispatch_threads: int = 1
    ms_initial_backoff: float = 0.2
    ms_max_backoff: float = 15.0
    ms_connection_ready_timeout: float = 10.0
    ms_connection_idle_timeout: float = 900.0
    ms_tcp_nodelay: bool = True
    ms_tcp_rcvbuf: int = 0
    ms_dispatch_throttle_bytes: int = 100 * MiB
    ms_max_segment_bytes: int = 256 * MiB
    ms_recv_buffer_bytes: int = 256 * 1024
    ms_send_batch_bytes: int = 1 * MiB
    ms_msgr2_rev1: bool = True
    ms_inject_socket_failures: int = 0
    ms_inject_delay_type: str = ""
    ms_inject_delay_max: float = 1.0
    ms_inject_delay_probability: float = 0.0
    ms_inject_internal_delays: float = 0.0
    ms_inject_seed: int = 0
    ms_ring_capacity: int = 4096
    ms_busy_poll_us: int = 0
    ms_reply_flush_msgs: int = 8
    auth_name: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f, getattr(self, f.name))
        _at_least(self, "io_threads", 1)
        _at_least(self, "dispatch_threads", 0)
        for name in ("ms_initial_backoff", "ms_max_backoff", "ms_connection_ready_timeout",
                     "ms_connection_idle_timeout", "ms_inject_delay_max",
                     "ms_inject_internal_delays", "ms_tcp_rcvbuf", "ms_inject_socket_failures",
                     "ms_busy_poll_us", "ms_reply_flush_msgs"):
            _at_least(self, name, 0)
        for name in ("ms_dispatch_throttle_bytes", "ms_max_segment_bytes", "ms_send_batch_bytes"):
            _at_least(self, name, 1)
        _at_least(self, "ms_recv_buffer_bytes", 4096)
        _at_least(self, "ms_ring_capacity", 2)
        if self.ms_max_backoff < self.ms_initial_backoff:
            raise ConfigError("ms_max_backoff", "must be >= ms_initial_backoff")
        if not 0.0 <= self.ms_inject_delay_probability <= 1.0:
            raise ConfigError("ms_inject_delay_probability", "must be within [0, 1]")
        bad = set(self.ms_inject_delay_type.split()) - _ENTITY_LABELS
        if bad:
            raise ConfigError("ms_inject_delay_type", f"unknown entity types {sorted(bad)}")

    @classmethod
    def from_env(cls, environ: "dict[str, str] | None" = None, **overrides) -> "Config":
        """Builds a Config from ``MSGR_<UPPER_NAME>`` variables, then ``overrides``.

        Raises:
            ConfigError: a variable does not parse as its option's type.
        """
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get("MSGR_" + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f, raw)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes) -> "Config":
        """Returns a copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def _field_type(f: dataclasses.Field) -> type:
    return {"int": int, "float": float, "bool": bool, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]


def _check_type(f: dataclasses.Field, value) -> None:
    want = _field_type(f)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f.name, f"expected {want.__name__}, got {value!r}")
    if want is float and value != value:       # NaN passes every bound check: refuse it here
        raise ConfigError(f.name, "must be a number, got nan")


def _at_least(cfg: Config, name: str, low: float) -> None:
    if getattr(cfg, name) < low:
        raise ConfigError(name, f"must be >= {low}, got {getattr(cfg, name)!r}")


def _parse(f: dataclasses.Field, raw: str):
    want = _field_type(f)
    try:
        if want is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return want(raw)
    except ValueError:
        raise ConfigError(f.name, f"cannot parse {raw!r} as {want.__name__}") from None
