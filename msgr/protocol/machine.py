"""ProtocolMachine: one msgr2 connection over one transport, sans I/O.

Theory of operation. The owner (the runtime, or a test's byte pump) moves
bytes and time; the machine never touches a socket, a clock or a thread:

* incoming bytes: ``get_recv_buffer()`` + ``commit_recv(n, now)`` (read
  straight into the machine's buffer) or ``receive_data(data, now)``;
* events: ``next_event()`` returns a received :class:`~msgr.Message`, an
  event from ``events.py``, or ``NEED_DATA``; ``next_events()`` returns what is
  there in one list (the hot path). Frames are parsed lazily, so an owner whose
  throttle is full simply stops asking;
* outgoing: ``send_message(msg)`` queues; ``data_to_send(now)`` frames queued
  messages (highest priority first) and returns a list of buffers for
  scatter/gather I/O;
* time: ``start(now)``, ``on_tick(now)`` and ``next_deadline()`` drive the
  ready and idle timeouts.

The machine holds its parts rather than mixing them in: an
:class:`~msgr.protocol.rx.RxStream` (the receive buffer, the frame scanner,
message decoding), a :class:`~msgr.protocol.tx.Framer` (message framing), and
the handshake of its role (:class:`~msgr.protocol.handshake.ClientHandshake`
or :class:`~msgr.protocol.accept.ServerHandshake`), which runs the handshake's
table actions. The machine keeps the state, steps the table
(:mod:`msgr.protocol.states`), runs the steady-state and local actions
(``_a_*``), and owns the control frames, events, timeouts and interceptor hooks.

Any protocol error faults the machine: it lands in CLOSED (or WAIT) and emits
:class:`Faulted`; nothing raises out of ``next_event``.
"""
from __future__ import annotations

import logging
from collections import deque

from ..errors import LocalProtocolError, MsgrError, Reason, RemoteProtocolError, TransportError
from ..log import conn_state
from ..message import Message
from .accept import ServerHandshake
from .events import NEED_DATA, Established, Faulted, KeepaliveAck
from .frames import Tag, control_frame
from .handshake import ClientHandshake, WaitSignal
from .intercept import BANNER_READ, BANNER_WRITE, READ_BPS, WRITE_BPS, Action
from .payloads import decode_u64
from .rx import EVENTS_PER_CALL, MAX_RECORDS, RX_INITIAL, ZERO_COPY_MIN, RxStream
from .session import Session
from .states import TERMINAL, TRANSITIONS, ConnState, Input
from .tx import Framer

__all__ = ["ProtocolMachine", "MachineParams", "ZERO_COPY_MIN", "RX_INITIAL", "MAX_RECORDS"]

from .params import MachineParams  # noqa: E402  (re-exported)

_READY = ConnState.READY
_CLOSED = ConnState.CLOSED
_WAIT = ConnState.WAIT
_MESSAGE = Tag.MESSAGE.value
_TAG_INPUT = {t.value: Input(t.value) for t in Tag}
_MISSING = (False, None)
_log = logging.getLogger(__name__)


class ProtocolMachine:
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
        self.rx = RxStream(params.recv_buffer_bytes, params.max_segment_bytes, params.buffer_pool)
        self.framer = Framer()
        self.hs = (ClientHandshake if connecting else ServerHandshake)(self, params, self.session)
        self._actions = _ACTIONS[connecting]
        self.get_recv_buffer = self.rx.get_recv_buffer      # the read path calls the stream
        self._banner_done = False
        self._events: deque = deque()
        self.last_batch_bytes = -1      # see next_events
        self.invalid_dropped = 0        # messages the framer dropped as unframeable; the owner resets it
        self._out: list = []            # control frames, before the messages
        self._keepalive_stamp = None
        self._ready_deadline = 0.0
        self._last_active = 0.0
        self._owner = None
        self.halted = False
        self._bp_passed = False
        self._ic = params.interceptor

    def __repr__(self) -> str:
        peer = self.hs.peer_name or (self.p.target_addr or "?")
        return f"machine({id(self):#x} peer {peer} state {self.state.name})"

    # ----------------------------------------------------------------- what the owner reads
    @property
    def owner(self):
        """The owner's handle: the interceptor's key and the ``connection`` of messages."""
        return self._owner

    @owner.setter
    def owner(self, owner) -> None:
        self._owner = self.rx.owner = owner

    @property
    def policy(self):
        """The policy negotiated on this transport (the peer's type may pick it)."""
        return self.hs.policy

    @policy.setter
    def policy(self, policy) -> None:
        self.hs.policy = policy

    @property
    def peer_name(self):
        """The peer's EntityName once the handshake named it, else None."""
        return self.hs.peer_name

    @property
    def is_ready(self) -> bool:
        """True in READY: messages flow."""
        return self.state is _READY

    @property
    def done(self) -> bool:
        """True once faulted, waiting or closed: the transport must go."""
        return self.state is _CLOSED or self.state is _WAIT

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

    def commit_recv(self, n: int, now: float) -> None:
        """``n`` bytes were written into the view from ``get_recv_buffer`` at ``now``."""
        self._last_active = now
        self.rx.commit(n, now)

    def receive_data(self, data, now: float = 0.0) -> None:
        """Copies ``data`` in (for tests and non-zero-copy transports)."""
        mv = memoryview(data).cast("B")
        while mv:
            buf = self.get_recv_buffer()
            n = min(len(buf), len(mv))
            buf[:n] = mv[:n]
            self.commit_recv(n, now)
            mv = mv[n:]

    def decide(self, decision) -> None:
        """Answers the pending SessionRequest (owner side)."""
        self._run(Input.DECIDED, decision)
        if self.state is _CLOSED and self.fault_event is None:
            self._out.clear()       # STOP: a stale attempt gets nothing more

    def close(self) -> None:
        """Local close (mark_down): CLOSED, no event."""
        self._step(Input.CLOSE, None)

    def fault(self, error: MsgrError) -> None:
        """Reports a transport failure: the machine faults (emits Faulted once)."""
        if self.state not in TERMINAL and self.fault_event is None:
            self._run(Input.FAULT, error)

    def resume(self) -> None:
        """Lifts an interceptor BLOCK: processing and output go on."""
        self.halted = False

    # ----------------------------------------------------------------- the handshake's port
    def send_frame(self, tag: Tag, payload: bytes) -> None:
        """Queues a control frame (an interceptor may fault or halt here)."""
        if self._ic is not None:
            self._hit(WRITE_BPS[int(tag)])
        self._out.append(control_frame(tag, payload, self.rev1))

    def emit(self, event) -> None:
        """An event for the owner; READY also names the peer on what is decoded next."""
        if type(event) is Established:
            self.rx.source = event.peer_name
        self._events.append(event)

    def set_rev1(self, rev1: bool) -> None:
        """The banners chose msgr2.1 (True) or msgr2.0 framing, both ways."""
        self.rev1 = self.rx.rev1 = self.framer.rev1 = rev1

    def use_session(self, session: Session) -> None:
        """Continues ``session`` (an existing connection adopted this transport)."""
        self.session = self.hs.session = session

    # ----------------------------------------------------------------- interceptor
    def _hit(self, bp) -> bool:
        """Reports breakpoint ``bp``; False when the machine must halt here."""
        action = self._ic.intercept(self._owner, bp)
        if action is Action.CONTINUE:
            return True
        if action is Action.FAULT:
            raise TransportError(f"interceptor fault at {bp}")
        self.halted = True
        return False

    def _hit_message_write(self) -> bool:
        return self._hit(WRITE_BPS[_MESSAGE])

    # ----------------------------------------------------------------- the table
    def _step(self, inp: Input, arg) -> None:
        t = TRANSITIONS.get((self.state, inp))
        if t is None:
            raise RemoteProtocolError(f"unexpected {inp.name} in state {self.state.name}",
                                      Reason.BAD_TAG)
        on_hs, fn = self._actions.get(t.action, _MISSING)
        if fn is None:
            raise RemoteProtocolError(f"no {t.action} step on the {type(self.hs).__name__}",
                                      Reason.BAD_TAG)
        res = fn(self.hs if on_hs else self, arg)
        nxt = t.next if res is None else res
        if nxt is not t.next and nxt not in t.alt:
            raise LocalProtocolError(f"{t.action} chose {nxt.name}, not allowed by the table")
        if nxt is not self.state and _log.isEnabledFor(logging.DEBUG):
            conn_state(_log, self._owner or self, self.state.name, nxt.name, t.action)
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

    def _a_start_connect(self, _arg) -> None:
        self._out.append(self.hs.banner())

    _a_start_accept = _a_start_connect

    def _a_fault(self, error: MsgrError):
        wait = isinstance(error, WaitSignal)
        self.fault_event = Faulted(error, self.was_ready, wait=wait)
        self._events.append(self.fault_event)
        return _WAIT if wait else None

    def _a_close(self, _arg) -> None:
        self._out.clear()

    def _a_timeout(self, error) -> None:
        self._a_fault(error)

    def _a_message(self, payload) -> None:
        raise RemoteProtocolError("MESSAGE frame outside READY handled by the table",
                                  Reason.BAD_TAG)

    def _a_ack(self, payload) -> None:
        self.session.stream.acked(decode_u64(payload, "ACK"))

    def _a_keepalive(self, payload) -> None:
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2 payload is not 8 bytes", Reason.DECODE)
        self._out.append(control_frame(Tag.KEEPALIVE2_ACK, payload, self.rev1))

    def _a_keepalive_ack(self, payload) -> None:
        if len(payload) != 8:
            raise RemoteProtocolError("KEEPALIVE2_ACK payload is not 8 bytes", Reason.DECODE)
        stamp = (int.from_bytes(payload[:4], "little"), int.from_bytes(payload[4:], "little"))
        self._events.append(KeepaliveAck(stamp))

    # ----------------------------------------------------------------- events
    def next_event(self):
        """The next event, a received Message, or NEED_DATA. Never raises."""
        if self._events:
            return self._events.popleft()
        try:
            while not self._events:
                if self.state is _CLOSED or self.state is _WAIT or \
                        self.hs.request is not None or self.halted:
                    return NEED_DATA
                if not self._banner_done:
                    if not self._take_banner():
                        return NEED_DATA
                    continue
                rec = self.rx.record()
                if rec is None:
                    return NEED_DATA
                msg = self._next_frame(*rec)
                if msg is not None:
                    return msg
        except MsgrError as e:
            if self.state is not _CLOSED:
                self._step(Input.FAULT, e)
        return self._events.popleft() if self._events else NEED_DATA

    def next_events(self) -> list:
        """The events available now, in order; empty means NEED_DATA.

        At most about ``EVENTS_PER_CALL`` messages per call: call again until it
        returns an empty list.

        The hot path: consecutive MESSAGE frames in READY are decoded in one
        tight loop (:meth:`RxStream.decode_run`); anything else goes through
        :meth:`next_event`. Stops after a fault, a session request or a halt.

        Afterwards ``last_batch_bytes`` is the payload bytes of the returned
        messages when every event returned is a :class:`Message` from that
        loop, else -1 (the caller sums what it needs itself).
        """
        self.last_batch_bytes = -1
        if not self._events and self.rx.idle():
            return []           # every frame taken and no byte since: nothing to do (hot path)
        out = []
        if self._events:
            out.extend(self._events)
            self._events.clear()
        if self._ic is not None or self.state is not _READY:
            while (ev := self.next_event()) is not NEED_DATA:
                out.append(ev)
                if self.done or self.hs.request is not None or self.halted:
                    break
            return out
        plain = not out
        try:
            nbytes = self._read_ready(out)
        except MsgrError as e:
            if self.state is not _CLOSED:
                self._step(Input.FAULT, e)
            out.extend(self._events)
            self._events.clear()
            return out
        if plain and nbytes >= 0:
            self.last_batch_bytes = nbytes
        return out

    def _read_ready(self, out: list) -> int:
        """READY: runs of MESSAGE frames from the stream; any other frame through
        :meth:`next_event`, and a state change ends the call (the caller's
        ``next_events`` picks the path again).

        Returns:
            The payload bytes of the messages appended, or -1 if any other
            event was appended too.
        """
        rx, stream = self.rx, self.session.stream
        nbytes, mixed = 0, False
        while len(out) < EVENTS_PER_CALL:
            got = rx.decode_run(out, stream)
            if got < 0:
                break
            nbytes += got
            if not rx.pending():
                continue
            ev = self.next_event()
            if ev is NEED_DATA:
                break
            out.append(ev)
            if type(ev) is Message:         # a MESSAGE after a frame without an event (an ACK)
                nbytes += ev.size
            else:
                mixed = True
            if self.done or self.state is not _READY:
                break
        return -1 if mixed else nbytes

    def _take_banner(self) -> bool:
        payload = self.rx.banner()
        if payload is None:
            return False
        if self._ic is not None and not self._bp_passed and not self._hit(BANNER_READ):
            self._bp_passed = True
            return False
        self._bp_passed = False
        self.rx.take_banner(payload)
        self._banner_done = True
        self._run(Input.BANNER, payload)
        return True

    def _next_frame(self, tag: int, aborted: bool):
        """Takes the stream's current frame: a Message (READY), or None after a
        control frame stepped the table (or an interceptor halted before it)."""
        rx = self.rx
        if self._ic is not None and not aborted:
            if not self._bp_passed and not self._hit(READ_BPS.get(tag) or READ_BPS[1]):
                self._bp_passed = True
                return None
            self._bp_passed = False
        if aborted:
            rx.skip()
            return None
        if tag == _MESSAGE and self.state is _READY:
            return rx.message(self.session.stream)
        inp = _TAG_INPUT.get(tag)
        if inp is None:
            rx.skip()
            raise RemoteProtocolError(f"unknown frame tag {tag}", Reason.BAD_TAG)
        payload = rx.control_payload(inp.name, one_segment=inp is not Input.MESSAGE)
        self._step(inp, payload)
        rx.check_after()
        return None

    # ----------------------------------------------------------------- sending
    def send_message(self, msg) -> None:
        """Queues ``msg``; it is framed by a later :meth:`data_to_send`."""
        self.session.stream.out.push(msg)

    def send_keepalive(self, stamp: tuple) -> None:
        """Queues a KEEPALIVE2 with ``stamp`` = (sec, nsec) wall-clock time."""
        self._keepalive_stamp = stamp

    def has_pending_output(self) -> bool:
        """True if :meth:`data_to_send` would return something now."""
        s = self.session.stream
        return bool(self._out) or (self.state is _READY and (
            s.out.count > 0 or s.ack_left > 0 or self._keepalive_stamp is not None))

    def data_to_send(self, now: float = 0.0, budget: int = 1 << 20, send_hist=None) -> list:
        """Frames what may be sent now, up to about ``budget`` bytes of messages.

        ``send_hist`` (a :class:`~msgr.counters.Histogram` or None) observes, for each
        message framed for the first time, ``now - msg._queued_at`` (send-queue latency).

        Returns:
            A list of bytes-like buffers, in order (possibly empty; always empty
            while an interceptor halts the machine).

        Raises:
            TransportError: an interceptor FAULT at a write breakpoint.
        """
        if self.halted:
            return []
        if self.state is _READY:
            if self._keepalive_stamp is not None:
                sec, nsec = self._keepalive_stamp
                self._keepalive_stamp = None
                self.send_frame(Tag.KEEPALIVE2,
                                sec.to_bytes(4, "little") + nsec.to_bytes(4, "little"))
            s = self.session.stream
            if s.out.count and not self.halted:
                hit = self._hit_message_write if self._ic is not None else None
                self.invalid_dropped += self.framer.frame(self._out, s, budget, now, send_hist,
                                                          hit)
            if s.ack_left > 0 and not self.halted:
                s.ack_left = 0
                self.send_frame(Tag.ACK, s.in_seq.to_bytes(8, "little"))
        out = self._out
        if not out or self.halted:
            return []
        self._out = []
        self._last_active = now or self._last_active
        return out

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


def _action_table(hs_class) -> dict:
    """Table action name -> ``(on the handshake?, the function)`` for one role: the
    role's handshake step, or the machine's own ``_a_<name>`` (steady state, local)."""
    out = {}
    for t in TRANSITIONS.values():
        fn = getattr(hs_class, t.action, None)
        if fn is not None:
            out[t.action] = (True, fn)
        else:
            out[t.action] = (False, getattr(ProtocolMachine, "_a_" + t.action, None))
    return out


#: Per role (connecting: True/False), resolved once: a step costs one dict lookup.
_ACTIONS = {True: _action_table(ClientHandshake), False: _action_table(ServerHandshake)}
