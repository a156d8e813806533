"""Failover: what a connection does after a fault, and session arbitration.

Mixed into Connection; everything runs on the connection's reactor thread.

Faults (Ceph's ``ProtocolV2::_fault``, per policy):

* lossy: once announced (connect/accept delivered) the connection closes with
  ``ms_handle_reset``; a dialling side that fails its handshake retries with
  backoff; an unannounced accepted one just goes away;
* lossless: unacked messages are requeued with their seqs; then a ``standby``
  policy with nothing to send, or a ``server``, waits (STANDBY) for the next
  send or the peer; otherwise a READY session redials at once (connect_seq+1)
  and a failed handshake redials after a backoff (WAIT: the maximum).

Arbitration: an accepted socket's CLIENT_IDENT / SESSION_RECONNECT names a
peer; if another connection is registered for that peer, the request is
handed to that connection's reactor (``_arbitrate``), which applies Ceph's
rules (``arbiter.py``) and either adopts the new socket into the existing
connection (the user's handle never changes) or sends the temporary
connection its answer (``_decided``). While handed off, the temporary
connection polls nothing and has no timer, so exactly one thread owns the
socket and machine at any time.
"""
from __future__ import annotations

import functools
import logging

from .arbiter import Existing, Outcome, Verdict, decide_ident, decide_reconnect
from .errors import ConnectionRefused, RemoteProtocolError
from .log import conn_debug
from .message import Message
from .protocol.events import Decision, Faulted, Reply, SessionRequest
from .protocol.states import ConnState
from .reactor.loop import EVENT_READ

__all__ = ["Failover", "guarded"]
log = logging.getLogger(__name__)


def guarded(fn):
    """Wraps a connection's reactor entry point: a bug must not wedge the connection.

    An unexpected exception is logged with its traceback, counted as a fault,
    and the connection is closed (``ms_handle_reset`` if it had been
    announced), instead of being left half-updated with its fd still polled.
    """
    @functools.wraps(fn)
    def wrapper(self, *args):
        try:
            return fn(self, *args)
        except Exception as e:
            log.exception("%r: internal error in %s", self, fn.__name__)
            self._internal_error(e)
    return wrapper


class Failover:
    """See the module docstring."""

    def _internal_error(self, error: Exception) -> None:
        self._count_fault(error)
        try:
            self._drop_transport()
        except Exception:
            self._transport = None
        self._machine = None
        self._close_now(reset=self._announced)

    # ---------------------------------------------------------------- faults
    def _drop_transport(self) -> None:
        if self._transport is not None:
            self._set_mask(0)
            self._transport.close()
            self._transport = None
        self._out.clear()
        self._connected = False
        self._backlog = None

    def _count_fault(self, err) -> None:
        counters = self._worker.counters
        counters.connection_faults += 1
        if isinstance(err, RemoteProtocolError) and err.reason.is_bad_frame:
            counters.bad_frames += 1

    def _on_fault(self, ev: Faulted) -> None:
        self._count_fault(ev.error)
        conn_debug(log, self, "fault: %s", ev.error)
        self._drop_transport()
        if self._delay is not None:
            self._delay.flush()
        m, self._machine = self._machine, None
        if self._dead:
            return
        policy = m.policy if m is not None else self.policy
        if isinstance(ev.error, ConnectionRefused):
            self.msgr._deliver_event(self, "ms_handle_refused")
        if policy.lossy:
            if self._announced:
                self._close_now(reset=True)
            elif self._can_dial:
                self._retry_later(ev.wait)
            else:
                self._close_now(reset=False)
            return
        s = self._session
        s.requeue_sent()
        if not self._announced and not self._can_dial:
            self._close_now(reset=False)
        elif policy.standby and not s.out and not self._keepalive_wanted and not ev.wait:
            self._go_standby()
        elif policy.server or not self._can_dial:
            self._go_standby()
        elif ev.was_ready:
            self._new_attempt(bump_connect_seq=True)
            self._start_connect()
        else:
            self._retry_later(ev.wait)

    def _retry_later(self, wait: bool) -> None:
        cfg = self.msgr.config
        if wait:
            self._backoff = cfg.ms_max_backoff
        elif not self._backoff:
            self._backoff = cfg.ms_initial_backoff
        else:
            self._backoff = min(2 * self._backoff, cfg.ms_max_backoff)
        self._new_attempt(bump_connect_seq=bool(self._session.server_cookie))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._reactor.call_later(self._backoff, self._start_connect)

    def _new_attempt(self, bump_connect_seq: bool) -> None:
        """Session bookkeeping before redialling (Ceph's ``_fault``): a READY session
        always bumps connect_seq, a failed handshake or standby only once a server
        cookie exists; the next attempt gets a fresh global_seq."""
        if bump_connect_seq:
            self._session.connect_seq += 1
        self._session.global_seq = 0
        self._worker.counters.reconnects += 1

    def _go_standby(self) -> None:
        self._standby = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @guarded
    def _wake_from_standby(self) -> None:
        """STANDBY + something to send: redial (never on a server policy)."""
        if not self._standby or not self._can_dial or self.policy.server:
            return
        self._standby = False
        self._new_attempt(bump_connect_seq=bool(self._session.server_cookie))
        self._start_connect()

    def _remote_reset(self, dropped: int = 0) -> None:
        """The peer lost our session: ``dropped`` queued messages went with it (counted
        in ``messages_dropped``, as Ceph's ``reset_session`` discards them); tell the
        dispatchers."""
        self._worker.counters.session_resets += 1
        if dropped:
            self.msgr._count_dropped(dropped)
        self.msgr._deliver_event(self, "ms_handle_remote_reset")

    def _close_now(self, reset: bool = False) -> None:
        """Closes on the reactor thread; ``reset`` delivers ``ms_handle_reset``.

        ``_dead`` is claimed under ``_lock``: an existing connection adopting this
        one's socket from its own reactor (:meth:`_adopt`) claims it the same way,
        so exactly one of the two gets the socket.
        """
        with self._lock:
            if self._dead:
                return
            self._dead = True
            self._closed = True
            dropped = len(self._pending)
            self._pending.clear()
        conn_debug(log, self, "closing (reset=%s)", reset)
        self._drop_transport()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._machine is not None:
            self._machine.close()
            self._machine = None
        # what was never sent, or never acknowledged, is discarded: count it
        dropped += len(self._session.out.clear()) + len(self._session.sent)
        self._session.sent.clear()
        if dropped:
            self.msgr._count_dropped(dropped)
        if self._delay is not None:
            self._delay.discard(self.msgr._release_message)
        self._worker.counters.connections_closed += 1
        if self.msgr.interceptor is not None:
            self.msgr.interceptor.forget(self)
        self.msgr._on_closed(self)
        if reset:
            self._worker.counters.session_resets += 1
            self.msgr._deliver_event(self, "ms_handle_reset")

    # ---------------------------------------------------------------- arbitration (temp side)
    def _on_session_request(self, req: SessionRequest) -> bool:
        """Accepted socket names its peer: decide here, or hand off to the existing connection."""
        m = self._machine
        peer = req.peer_addrs[0]
        self.peer_addr = peer
        if m.policy.server and m.policy.lossy:
            m.decide(Decision(Reply.RESET, full=True) if req.reconnect else Decision(Reply.ACCEPT))
            return self._after_decision()
        existing = self.msgr._register_if_absent(peer, self, register=not req.reconnect)
        if existing is None:
            if req.reconnect:
                m.decide(Decision(Reply.RESET, full=True))
            else:
                self._can_dial = _dialable(peer) and not m.policy.server
                m.decide(Decision(Reply.ACCEPT))
            return self._after_decision()
        self._handed_off = True
        self._set_mask(0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        existing._reactor.submit(existing._arbitrate, self, req)
        return False

    def _after_decision(self) -> bool:
        """Runs the events the decision produced; False when the machine is gone."""
        m = self._machine
        if m is not None and m.state is ConnState.CLOSED and m.fault_event is None:
            self._close_now(reset=False)          # "stop": a stale attempt, never announced
            return False
        if not self._process() or self._machine is not m:
            return False
        self._write()
        return True

    @guarded
    def _decided(self, decision: Decision) -> None:
        """Back on the temp's reactor: apply the existing connection's answer."""
        self._handed_off = False
        m = self._machine
        if self._dead or m is None:
            return
        if decision.kind is Reply.ACCEPT:
            self._can_dial = _dialable(self.peer_addr) and not m.policy.server
        self._set_mask(EVENT_READ)
        self._arm_timer(m.next_deadline())
        m.decide(decision)
        self._after_decision()

    # ---------------------------------------------------------------- arbitration (existing side)
    def _existing_view(self) -> Existing:
        s, m = self._session, self._machine
        return Existing(
            dead=self._dead, ready=m is not None and m.is_ready, standby=self._standby,
            lossy=self.policy.lossy, server=self.policy.server,
            resetcheck=self.policy.resetcheck, client_cookie=s.client_cookie,
            server_cookie=s.server_cookie, connect_seq=s.connect_seq,
            peer_global_seq=s.peer_global_seq, peer_addr=self.peer_addr)

    @guarded
    def _arbitrate(self, temp, req: SessionRequest) -> None:
        """On this (existing) connection's reactor: Ceph's rules, then act on them."""
        my = self.msgr._my_addrs()[0]
        ident, ex = req.ident, self._existing_view()
        if req.reconnect:
            out = decide_reconnect(ex, ident.client_cookie, ident.global_seq,
                                   ident.connect_seq, my)
        else:
            out = decide_ident(ex, ident.client_cookie, ident.global_seq,
                               req.peer_addrs[0], my)
        conn_debug(log, self, "arbitration for %r: %s", temp, out)
        self.msgr._inject_internal_delay()
        if out.kind is Verdict.REUSE:
            self._adopt(temp, req, out)
            return
        decision = self._reply_for(temp, req, out)
        temp._reactor.submit(temp._decided, decision)

    def _reply_for(self, temp, req: SessionRequest, out: Outcome) -> Decision:
        if out.kind is Verdict.ACCEPT_NEW or out.kind is Verdict.REPLACE_LOSSY:
            if out.kind is Verdict.REPLACE_LOSSY:
                self._close_now(reset=True)
            self.msgr._replace_registration(req.peer_addrs[0], temp, self)
            return Decision(Reply.ACCEPT)
        if out.kind is Verdict.WAIT:
            self._push_connect()
        return Decision(Reply(out.kind.value), full=out.full, seq=out.seq)

    def _push_connect(self) -> None:
        """Ceph sends a keepalive on the winning connection so it finishes connecting."""
        if self._standby:
            self._keepalive_wanted = True
            self._wake_from_standby()

    def _adopt(self, temp, req: SessionRequest, out: Outcome) -> None:
        """``reuse_connection``: move temp's socket and machine into this connection.

        temp lives on another reactor: it is claimed under its lock first. If it
        was closed meanwhile (mark_down_all, shutdown), there is nothing to adopt
        and this connection carries on as it was.
        """
        with temp._lock:
            if temp._dead:
                return
            temp._dead = temp._closed = True
            machine, transport = temp._machine, temp._transport
            temp._machine = temp._transport = None
        temp._release_after_handoff()
        # Messages parked behind a full throttle were decoded (and counted in
        # in_seq, which the peer will not resend): they still go to dispatch,
        # before anything the new socket brings. The old machine's other events end with it.
        parked = [ev for ev in self._backlog or () if type(ev) is Message]
        self._drop_transport()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        s = self._session
        if out.reset:
            self._remote_reset(len(s.reset()))
        s.requeue_sent()
        self._standby = False
        self._can_dial = _dialable(self.peer_addr) and not self.policy.server
        self._machine, self._transport, self._mask = machine, transport, 0
        self._backlog = parked or None
        machine.owner = self
        self._set_mask(EVENT_READ)
        self._arm_timer(machine.next_deadline())
        machine.decide(Decision(Reply.ACCEPT, session=s))
        if not self._after_decision() and self._machine is machine and self._transport is not None:
            self._write()           # parked messages hold the reading: still answer the peer

    def _release_after_handoff(self) -> None:
        """The temp gave its socket away (claimed by :meth:`_adopt`): it ends silently
        (it was never announced)."""
        self.msgr._on_closed(self)


def _dialable(addr) -> bool:
    return addr.type in ("v2", "any") and addr.port != 0 and not addr.is_blank
