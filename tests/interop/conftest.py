"""Fixtures for interop tests against real Ceph (Pacific 16.2) binaries.

``ceph_mon`` runs one real ``ceph-mon`` ("mon.a") for the whole session, on a
free loopback port, msgr2 only, auth none, crc mode, everything in a
temporary directory; the process is ours and is stopped by its PID.
``fake_conf`` writes a client conf pointing the real ``ceph`` CLI at a msgr
server (reference/msgr2.md section 1).

Without the binaries the tests skip, except under ``CI=true``, where a
missing binary is a failure.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from msgr.entity import EntityAddr

MON_ID = "a"
START_TIMEOUT = 90.0
STOP_GRACE = 15.0
LOG_TAIL_LINES = 40

_MON_CONF = """\
[global]
fsid = {fsid}
mon_host = v2:127.0.0.1:{port}
mon_initial_members = {mon_id}
public_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_supported = none
ms_cluster_mode = crc
ms_service_mode = crc
ms_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_mon_client_mode = crc
keyring = {dir}/keyring-unused
run_dir = {dir}/run
log_file = {dir}/log/$cluster-$name.log
mon_cluster_log_file = {dir}/log/$cluster.log
crash_dir = {dir}/crash
mon_data = {dir}/mon/$cluster-$id
osd_pool_default_size = 1
mon_allow_pool_size_one = true
mon_warn_on_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 1

[mon]
admin_socket = {dir}/run/$cluster-$name.asok
pid_file = {dir}/run/$cluster-$name.pid
debug_ms = 20
debug_mon = 10
debug_auth = 20
"""

_FAKE_CONF = """\
[global]
mon_host = {addr}
auth_client_required = none
ms_client_mode = crc
ms_mon_client_mode = crc
keyring = /nonexistent
run_dir = {dir}
log_file = {dir}/ceph-cli.log
debug_ms = 10
debug_monc = 20
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "interop: needs real Ceph binaries (ceph-mon, ceph, monmaptool); "
        "skipped without them unless CI=true")


def require_binaries(*names: str) -> dict[str, str]:
    """Paths of the named executables.

    Skips the test when one is missing, or fails it when env CI is "true".
    """
    paths = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in paths.items() if path is None)
    if missing:
        reason = f"Ceph binaries not installed: {', '.join(missing)} (apt: ceph-mon ceph-common)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; required under CI=true", pytrace=False)
        pytest.skip(reason)
    return paths


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mon_host_form(addr) -> str:
    """``addr`` as a ``mon_host`` entry: ``v2:HOST:PORT`` (IPv6 in brackets), no nonce."""
    a = EntityAddr.parse(addr)
    host = f"[{a.host}]" if a.is_ipv6 else a.host
    return f"{a.type}:{host}:{a.port}"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file, or a note that it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


@dataclass(frozen=True)
class CephMon:
    """A running real monitor.

    Attributes:
        addr: its msgr2 address, ``v2:127.0.0.1:PORT/0`` (mons use nonce 0).
        conf: the ceph.conf a real client can use (``ceph -c CONF ...``).
        dir: the directory holding conf, store, logs.
        log_path: the mon's own log (debug_ms=20).
        fsid: the cluster fsid.
        name: the mon's id ("a").
        pid: the ceph-mon process id.
    """

    addr: EntityAddr
    conf: Path
    dir: Path
    log_path: Path
    fsid: uuid.UUID
    name: str
    pid: int


def _run(cmd: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}): {proc.args}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}", pytrace=False)


def _prepare_mon(bins: dict, d: Path, port: int, fsid: uuid.UUID) -> Path:
    """Writes the conf, the initial monmap and runs ``ceph-mon --mkfs``."""
    for sub in ("log", "run", "mon", "crash"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "ceph.conf"
    conf.write_text(_MON_CONF.format(fsid=fsid, port=port, mon_id=MON_ID, dir=d))
    monmap = d / "monmap"
    _check(_run([bins["monmaptool"], "--create", "--clobber", "--fsid", str(fsid),
                 "--addv", MON_ID, f"[v2:127.0.0.1:{port}]", str(monmap)]), "monmaptool --create")
    _check(_run([bins["ceph-mon"], "-c", str(conf), "-i", MON_ID, "--mkfs",
                 "--monmap", str(monmap)]), "ceph-mon --mkfs")
    return conf


def _mon_answers(ceph: str, conf: Path) -> bool:
    try:
        proc = _run([ceph, "-c", str(conf), "--connect-timeout", "5", "mon", "stat"], timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _wait_until_up(proc: subprocess.Popen, ceph: str, conf: Path, logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ceph-mon exited early with {proc.returncode}\n"
                        + "\n".join(f"--- {p}\n{tail(p)}" for p in logs), pytrace=False)
        if _mon_answers(ceph, conf):
            return
        time.sleep(0.5)
    pytest.fail(f"ceph-mon did not answer `ceph mon stat` within {START_TIMEOUT:.0f}s\n"
                + "\n".join(f"--- {p}\n{tail(p)}" for p in logs), pytrace=False)


def _stop(proc: subprocess.Popen, logs: list[Path]) -> None:
    """SIGTERM by PID, SIGKILL after the grace period; prints log tails if it had died."""
    if proc.poll() is not None:
        print(f"ceph-mon (pid {proc.pid}) had already exited with {proc.returncode}")
        for p in logs:
            print(f"--- {p}\n{tail(p)}")
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_GRACE)


@pytest.fixture(scope="session")
def ceph_mon(tmp_path_factory) -> CephMon:
    """A real ceph-mon "a" on ``v2:127.0.0.1:<free port>``, auth none, crc, msgr2 only."""
    bins = require_binaries("ceph-mon", "ceph", "monmaptool")
    d = tmp_path_factory.mktemp("ceph-mon")
    port, fsid = free_loopback_port(), uuid.uuid4()
    conf = _prepare_mon(bins, d, port, fsid)
    stdout_path = d / "log" / f"ceph-mon.{MON_ID}.stdout"
    log_path = d / "log" / f"ceph-mon.{MON_ID}.log"
    with open(stdout_path, "wb") as out:
        proc = subprocess.Popen([bins["ceph-mon"], "-f", "-c", str(conf), "-i", MON_ID],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    logs = [stdout_path, log_path]
    try:
        _wait_until_up(proc, bins["ceph"], conf, logs)
        yield CephMon(EntityAddr("v2", "127.0.0.1", port, 0), conf, d, log_path, fsid,
                      MON_ID, proc.pid)
    finally:
        _stop(proc, logs)


@pytest.fixture
def ceph_cli() -> str:
    """Path of the real ``ceph`` CLI (skips, or fails under CI=true, without it)."""
    return require_binaries("ceph")["ceph"]


@pytest.fixture
def fake_conf(tmp_path):
    """A function ``(addr, **options) -> Path`` writing a conf for the ``ceph`` CLI.

    The conf points ``mon_host`` at ``addr`` with auth none and crc mode;
    ``options`` add ``[global]`` settings. Commands that connect log to
    ``ceph-cli.log`` next to it (debug_ms=10, debug_monc=20); ``ceph ping``
    never starts the log.
    """
    def write(addr, name: str = "fake.conf", **options) -> Path:
        path = tmp_path / name
        extra = "".join(f"{key} = {value}\n" for key, value in options.items())
        path.write_text(_FAKE_CONF.format(addr=mon_host_form(addr), dir=tmp_path) + extra)
        return path

    return write
