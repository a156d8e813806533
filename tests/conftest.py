"""Shared fixtures: messengers that are always shut down, leak checks, waiting helpers."""
from __future__ import annotations

import os
import threading

import pytest

# Debug mode (before msgr is imported): every reactor entry point checks that it
# runs on its own reactor thread (msgr/reactor/entry.py); see check_threads below.
os.environ.setdefault("MSGR_DEBUG", "1")

import msgr  # noqa: E402
from msgr import Config, EntityName, EntityType, Messenger, Policy  # noqa: E402
from msgr.reactor import entry  # noqa: E402
from tests.helpers import Recorder, need_cffi, wait_for  # noqa: E402


@pytest.fixture(autouse=True)
def check_threads():
    """Fails a test in which a reactor entry point ran off its reactor's thread."""
    before = len(entry.violations)
    yield
    assert entry.violations[before:] == [], "reactor entry points called off their thread"


@pytest.fixture(params=["python", "cffi"])
def nat(request):
    """A backend of msgr._native: the pure twin, then the cffi module."""
    from msgr._native import pure
    return pure if request.param == "python" else need_cffi()


def _fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def _msgr_threads() -> list:
    return [t for t in threading.enumerate() if t.name.startswith("msgr-")]


@pytest.fixture
def messengers():
    """A factory of Messengers; all are shut down and waited for afterwards,
    and the test fails if any msgr thread or fd is left behind."""
    fds_before = _fds()
    made: list[Messenger] = []

    def make(name="client.-1", *, policy=None, bind=False, start=True, dispatcher=None, **cfg):
        m = Messenger(EntityName.parse(name), config=Config(**cfg))
        if policy is not None:
            m.set_default_policy(policy)
        if dispatcher is not None:
            m.add_dispatcher_tail(dispatcher)
        m.bound = m.bind("v2:127.0.0.1:0") if bind else None
        made.append(m)
        if start:
            m.start()
        return m

    yield make
    for m in made:
        m.shutdown()
    for m in made:
        assert m.wait(10), f"{m} did not stop"
    assert wait_for(lambda: not _msgr_threads(), 5), _msgr_threads()
    leaked = {fd for fd in _fds() - fds_before if _is_socketish(fd)}
    assert wait_for(lambda: not {fd for fd in _fds() - fds_before if _is_socketish(fd)}, 5), leaked


def _is_socketish(fd: str) -> bool:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return target.startswith(("socket:", "anon_inode:"))


@pytest.fixture
def server_client(messengers):
    """An echoing OSD server (stateless) and a lossy client, started."""
    def make(server_cfg=None, client_cfg=None, client_dispatcher=None, server_dispatcher=None):
        sd = server_dispatcher or Recorder(reply=True)
        cd = client_dispatcher or Recorder()
        s = messengers("osd.0", policy=Policy.stateless_server(), bind=True, dispatcher=sd,
                       **(server_cfg or {}))
        c = messengers("client.-1", policy=Policy.lossy_client(), dispatcher=cd, **(client_cfg or {}))
        return s, sd, c, cd
    return make


__all__ = ["msgr", "EntityType"]
