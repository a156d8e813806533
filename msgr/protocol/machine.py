"""ProtocolMachine: one msgr2 connection over one transport, sans I/O.

Theory of operation. The owner (the runtime, or a test's byte pump) moves
bytes and time; the machine never touches a socket, a clock or a thread:

* incoming bytes: ``get_recv_buffer()`` + ``commit_recv(n, now)`` (read
  straight into the machine's buffer) or ``receive_data(data, now)``;
* events: ``next_event()`` returns a received :class:`~msgr.Message`, an
  event from ``events.py``, or ``NEED_DATA``. Frames are parsed lazily, one
  event per call, so an owner whose throttle is full simply stops asking;
* outgoing: ``send_message(msg)`` queues; ``data_to_send(now)`` frames queued
  messages (highest priority first) and returns a list of buffers for
  scatter/gather I/O;
* time: ``start(now)``, ``on_tick(now)`` and ``next_deadline()`` drive the
  ready and idle timeouts.

The receive buffer is scanned by one native call (``scan_frames``) that finds
every complete frame and checks its CRCs; the machine then walks the records.
Segments under ``ZERO_COPY_MIN`` bytes are copied out as ``bytes``; larger ones
are handed out as memoryviews and the buffer is given away with them (the next
read goes to a fresh buffer), so a large ``data`` segment is never copied.

Any protocol error faults the machine: it lands in CLOSED (or WAIT) and emits
:class:`Faulted`; nothing raises out of ``next_event``.
"""
from __future__ import annotations

import logging
from collections import deque

from .. import _native
from ..errors import LocalProtocolError, MsgrError, Reason, RemoteProtocolError, TransportError
from .accept import AcceptMixin
from .events import Faulted
from .frames import Tag, control_frame
from .handshake import HandshakeMixin, WaitSignal
from .intercept import BANNER_WRITE, Action
from .rx import MAX_RECORDS, RX_INITIAL, ZERO_COPY_MIN, RxMixin
from .session import Session
from .states import TERMINAL, TRANSITIONS, ConnState, Input
from .tx import TxMixin
from ..log import conn_state

__all__ = ["ProtocolMachine", "MachineParams", "ZERO_COPY_MIN"]

from .params import MachineParams  # noqa: E402  (re-exported)

_READY = ConnState.READY
_log = logging.getLogger(__name__)


class ProtocolMachine(RxMixin, TxMixin, HandshakeMixin, AcceptMixin):
    """See the module docstring.

    Args:
        params: this side's identity and limits (:class:`MachineParams`).
        connecting: True for the dialling side, False for the accepting side.
        session: the session to continue (lossless reconnect), or None for new.
    """

    def __init__(self, params: MachineParams, connecting: bool, session: Session | None = None) -> None:
        self.p = params
        self.connecting = connecting
        self.state = ConnState.NONE
        self.session = session if session is not None else Session(params.policy.lossy)
        self.rev1 = False
        self.was_ready = False
        self.fault_event: Faulted | None = None
        self._rx_target = min(RX_INITIAL, params.recv_buffer_bytes)
        self._rx = bytearray(self._rx_target)
        self._rxmv = memoryview(self._rx)
        self._view_len = 0
        self._rpos = self._wpos = 0
        self._donated = False
        self._banner_done = False
        self._scanner = _native.Scanner(MAX_RECORDS)
        self._recs = self._scanner.recs
        self._nrec = self._irec = 0
        self._scan_end = -1
        self._need = 0
        self._events: deque = deque()
        self.last_batch_bytes = -1      # see next_events
        self.invalid_dropped = 0        # messages tx dropped as unframeable; the owner resets it
        self._out: list = []
        self._keepalive_stamp = None
        self._scan_status = 0
        self._ready_deadline = 0.0
        self._last_active = 0.0
        self.owner = None
        self.halted = False
        self._bp_passed = False
        self._ic = params.interceptor
        self._init_handshake()

    def __repr__(self) -> str:
        peer = self.peer_name or (self.p.target_addr or "?")
        return f"machine({id(self):#x} peer {peer} state {self.state.name})"

    # ----------------------------------------------------------------- driving
    def start(self, now: float) -> None:
        """Begins the handshake (sends our banner); arms the ready timeout."""
        self._last_active = now
        self._ready_deadline = now + self.p.ready_timeout
        self._run(Input.CONNECT if self.connecting else Input.ACCEPT, None)
        if self._ic is not None and not self.done:
            try:
                self._hit(BANNER_WRITE)
            except MsgrError as e:
                self._step(Input.FAULT, e)

    # ----------------------------------------------------------------- interceptor
    def _hit(self, bp) -> bool:
        """Reports breakpoint ``bp``; False when the machine must halt here."""
        action = self._ic.intercept(self.owner, bp)
        if action is Action.CONTINUE:
            return True
        if action is Action.FAULT:
            raise TransportError(f"interceptor fault at {bp}")
        self.halted = True
        return False

    def resume(self) -> None:
        """Lifts an interceptor BLOCK: processing and output go on."""
        self.halted = False

    def close(self) -> None:
        """Local close (mark_down): CLOSED, no event."""
        self._step(Input.CLOSE, None)

    def fault(self, error: MsgrError) -> None:
        """Reports a transport failure: the machine faults (emits Faulted once)."""
        if self.state not in TERMINAL and self.fault_event is None:
            self._run(Input.FAULT, error)

    @property
    def is_ready(self) -> bool:
        return self.state is _READY

    @property
    def done(self) -> bool:
        """True once faulted, waiting or closed: the transport must go."""
        return self.state is ConnState.CLOSED or self.state is ConnState.WAIT

    # ----------------------------------------------------------------- table
    def _step(self, inp: Input, arg) -> None:
        t = TRANSITIONS.get((self.state, inp))
        if t is None:
            raise RemoteProtocolError(f"unexpected {inp.name} in state {self.state.name}", Reason.BAD_TAG)
        res = getattr(self, "_a_" + t.action)(arg)
        nxt = t.next if res is None else res
        if nxt is not t.next and nxt not in t.alt:
            raise LocalProtocolError(f"{t.action} chose {nxt.name}, not allowed by the table")
        if nxt is not self.state and _log.isEnabledFor(logging.DEBUG):
            conn_state(_log, self.owner or self, self.state.name, nxt.name, t.action)
        self.state = nxt
        if nxt is _READY:
            self.was_ready = True

    def _run(self, inp: Input, arg) -> None:
        """Steps; any msgr error becomes a fault instead of escaping."""
        try:
            self._step(inp, arg)
        except MsgrError as e:
            if inp is Input.FAULT:
                raise
            self._step(Input.FAULT, e)

    def _a_fault(self, error: MsgrError):
        wait = isinstance(error, WaitSignal)
        self.fault_event = Faulted(error, self.was_ready, wait=wait)
        self._events.append(self.fault_event)
        return ConnState.WAIT if wait else None

    def _a_close(self, _arg) -> None:
        self._out.clear()

    def _a_timeout(self, error) -> None:
        self._a_fault(error)

    def _a_message(self, payload) -> None:
        raise RemoteProtocolError("MESSAGE frame outside READY handled by the table", Reason.BAD_TAG)

    def _a_ack(self, payload) -> None:
        from .payloads import decode_u64
        self.session.acked(decode_u64(payload, "ACK"))

    def _a_keepalive(self, payload) -> None:
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2 payload is not 8 bytes", Reason.DECODE)
        self._out.append(control_frame(Tag.KEEPALIVE2_ACK, payload, self.rev1))

    def _a_keepalive_ack(self, payload) -> None:
        from .events import KeepaliveAck
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2_ACK payload is not 8 bytes", Reason.DECODE)
        stamp = (int.from_bytes(payload[:4], "little"), int.from_bytes(payload[4:], "little"))
        self._events.append(KeepaliveAck(stamp))

    # ----------------------------------------------------------------- time
    def next_deadline(self) -> float:
        """When ``on_tick`` should next run (monotonic seconds)."""
        if self.state is _READY:
            return self._last_active + self.p.idle_timeout
        return self._ready_deadline

    def on_tick(self, now: float) -> None:
        """Checks the ready and idle timeouts; a timeout faults the machine."""
        if self.done:
            return
        if self.state is _READY:
            if now - self._last_active >= self.p.idle_timeout:
                self._run(Input.TIMEOUT, TransportError(
                    f"idle for {self.p.idle_timeout}s (ms_connection_idle_timeout)"))
        elif now >= self._ready_deadline:
            self._run(Input.TIMEOUT, TransportError(
                f"not ready within {self.p.ready_timeout}s (ms_connection_ready_timeout)"))
