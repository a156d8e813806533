"""TCP transport: non-blocking sockets, scatter/gather ``sendmsg``, ``recv_into``.

Facts: a non-blocking ``connect`` returns EINPROGRESS and the socket turns
writable when it completes; ``SO_ERROR`` then tells success or the errno.
``sendmsg`` takes at most IOV_MAX (1024 on Linux) buffers per call.
"""
from __future__ import annotations

import errno
import os
import socket

from ..entity import EntityAddr
from ..errors import TransportError
from .base import (Listener, Transport, TransportFactory, register_transport, translate_os_errors,
                   transport_error)

__all__ = ["TcpTransport", "TcpListener", "TcpFactory"]

_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)


def _entity_addr(sockaddr) -> EntityAddr:
    return EntityAddr("v2", sockaddr[0], sockaddr[1], 0)


class TcpTransport(Transport):
    """One TCP connection (connected or connecting)."""

    __slots__ = ("_sock", "_fd", "_peer", "_sendmsg", "_recv_into")

    def __init__(self, sock: socket.socket, peer: EntityAddr) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._peer = peer
        self._sendmsg = sock.sendmsg
        self._recv_into = sock.recv_into

    def fileno(self) -> int:
        return self._fd

    @property
    def peer_addr(self) -> EntityAddr:
        return self._peer

    def finish_connect(self) -> None:
        with translate_os_errors(f"connect to {self._peer}"):
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))

    def recv_into(self, buf: memoryview) -> int | None:
        try:
            n = self._recv_into(buf)
        except BlockingIOError:
            return None
        except InterruptedError:
            return None
        except OSError as e:
            raise transport_error(f"recv from {self._peer}", e) from None
        if n == 0:
            raise TransportError(f"connection closed by {self._peer}")
        return n

    def send(self, buffers: list) -> int:
        if len(buffers) > _IOV_MAX:
            buffers = buffers[:_IOV_MAX]
        try:
            return self._sendmsg(buffers)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            raise transport_error(f"send to {self._peer}", e) from None

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            try:
                self._sock.close()
            except OSError:
                pass


class TcpListener(Listener):
    """A listening TCP socket."""

    def __init__(self, sock: socket.socket, nodelay: bool = True, rcvbuf: int = 0) -> None:
        self._sock = sock
        self._addr = _entity_addr(sock.getsockname())
        self._nodelay = nodelay
        self._rcvbuf = rcvbuf

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def addr(self) -> EntityAddr:
        return self._addr

    def accept(self) -> TcpTransport | None:
        try:
            sock, peer = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                return None
            raise transport_error(f"accept on {self._addr}", e) from None
        with translate_os_errors("accepted socket setup"):
            _tune(sock, self._nodelay, self._rcvbuf)
        return TcpTransport(sock, _entity_addr(peer))

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def _tune(sock: socket.socket, nodelay: bool, rcvbuf: int) -> None:
    sock.setblocking(False)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)


class TcpFactory(TransportFactory):
    """Makes TCP transports and listeners (IPv4 and IPv6)."""

    name = "tcp"

    def connect(self, addr: EntityAddr, *, nodelay: bool = True, rcvbuf: int = 0) -> TcpTransport:
        family = socket.AF_INET6 if addr.is_ipv6 else socket.AF_INET
        with translate_os_errors(f"connect to {addr}"):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                _tune(sock, nodelay, rcvbuf)
                err = sock.connect_ex((addr.host, addr.port))
                if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    raise OSError(err, os.strerror(err))
            except BaseException:
                sock.close()
                raise
        return TcpTransport(sock, EntityAddr("v2", addr.host, addr.port, 0))

    def listen(self, addr: EntityAddr, *, backlog: int = 512, nodelay: bool = True,
               rcvbuf: int = 0) -> TcpListener:
        family = socket.AF_INET6 if addr.is_ipv6 else socket.AF_INET
        with translate_os_errors(f"bind {addr}"):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr.host, addr.port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
        return TcpListener(sock, nodelay, rcvbuf)


register_transport("tcp", TcpFactory)
