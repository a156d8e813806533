"""Lifecycle: a connection's session, states, faults, races and close, on its reactor.

Theory of operation (the lifecycle half of crimson's ``ProtocolV2``). Runs on
the connection's reactor thread only, and is cold: nothing here runs per
message. It owns the :class:`~msgr.protocol.session.Session` (which outlives
transports), the :class:`~msgr.linkstate.LinkState`, the backoff, and the
facts the fault decision needs (``announced``, ``can_dial``,
``keepalive_wanted``). The :class:`~msgr.io_handler.IOHandler` tells it what
happened (:class:`~msgr.io_handler.LinkListener`); it gives the IOHandler
transports and takes them away.

Faults: the facts go to :func:`~msgr.linkstate.after_fault` (Ceph's
``ProtocolV2::_fault``), and the answer is carried out here: redial now, after
a backoff (WAIT), wait in STANDBY for the next send or the peer, or close
(with ``ms_handle_reset`` once announced).

Arbitration: an accepted socket's CLIENT_IDENT / SESSION_RECONNECT names a
peer; if another connection is registered for that peer, the request goes to
that connection's reactor (:meth:`arbitrate`), which applies Ceph's rules
(:mod:`msgr.arbiter`) and either adopts the new socket (the user's handle
never changes) or sends the temporary connection its answer (:meth:`decided`).
Meanwhile the temporary connection is HANDED_OFF: its machine and transport
wait, as a :class:`~msgr.linkstate.Handoff`, in its handle's locked slot, and
whichever side takes them out under that lock owns them.
"""
from __future__ import annotations

import logging

from .arbiter import Existing, Outcome, Verdict, decide_ident, decide_reconnect
from .dispatch.chain import Notify
from .errors import ConnectionRefused, RemoteProtocolError, TransportError
from .io_handler import wall_stamp
from .linkstate import FaultFacts, LinkState, Next, after_fault, next_backoff
from .log import conn_debug, conn_state
from .protocol.events import Decision, Established, Faulted, Reply, SessionRequest
from .protocol.intercept import SOCKET_ACCEPTED, SOCKET_CONNECTING, Action
from .protocol.machine import ProtocolMachine
from .protocol.states import ConnState
from .reactor.entry import guarded

__all__ = ["Lifecycle"]
log = logging.getLogger(__name__)

_S = LinkState
_REPLIES = {Verdict.STOP: Reply.STOP, Verdict.WAIT: Reply.WAIT, Verdict.RESET: Reply.RESET,
            Verdict.RETRY: Reply.RETRY, Verdict.RETRY_GLOBAL: Reply.RETRY_GLOBAL}


class Lifecycle:
    """The reactor side of one connection's life (see the module docstring).

    Args:
        conn: the user's handle.
        io: the connection's IOHandler (or the loopback's I/O side).
        messenger: the owning Messenger (its "for connections" section).
        worker: the reactor this connection lives on, with its counters.
        session: the connection's session (queues, seqs, cookies).
        can_dial: this side may (re)dial the peer.
        state: the initial state (NONE; READY for the loopback).
    """

    def __init__(self, conn, io, messenger, worker, session, can_dial: bool,
                 state: LinkState = LinkState.NONE) -> None:
        # links, fixed for life
        self.conn = conn
        self.io = io
        io.life = self
        self.reactor = worker.reactor
        self.counters = worker.counters
        self._messenger = messenger
        self._delivery = messenger._delivery
        self.session = session
        # reactor thread only (``state`` is read lock-free by repr and metrics)
        self.state = state
        self.can_dial = can_dial
        self.announced = False          # ms_handle_connect/accept delivered once
        self.keepalive_wanted = False   # a keepalive waits for a transport
        self.backoff = 0.0
        self._backoff_timer = None

    def __repr__(self) -> str:
        return repr(self.conn)

    def _to(self, state: LinkState, why: str = "", *args) -> None:
        """Moves to ``state``; logged at DEBUG with ``why % args`` (formatted only then)."""
        if state is not self.state:
            if log.isEnabledFor(logging.DEBUG):
                conn_state(log, self.conn, self.state, state, why % args if args else why)
            self.state = state

    def _on_internal_error(self, error: Exception) -> None:
        self.internal_error(error)

    def internal_error(self, error: Exception) -> None:
        """A bug hit a reactor entry point: count it as a fault and close the connection."""
        self._count_fault(error)
        try:
            self.io.shut()
        except Exception:           # noqa: BLE001 - closing must go on
            log.exception("%r: cannot shut the transport down", self)
            self.io.transport = self.io.machine = None
        self.close(reset=self.announced)

    # ---------------------------------------------------------------- starting
    @guarded
    def start_connect(self) -> None:
        """Dials the peer (first time, after a backoff, or out of STANDBY)."""
        self._backoff_timer = None
        if self.state is _S.CLOSED:
            return
        self._to(_S.CONNECTING)
        msgr = self._messenger
        self.io.arm_deadline(self.reactor.time + msgr.config.ms_connection_ready_timeout)
        try:
            ic = msgr.interceptor
            if ic is not None and ic.intercept(self.conn, SOCKET_CONNECTING) is Action.FAULT:
                raise TransportError("interceptor fault at socket_connecting")
            transport = msgr._make_transport(self.conn.peer_addr)
        except TransportError as e:
            self.on_fault(Faulted(e, False))
            return
        self.io.dial(transport)

    def on_connected(self) -> None:
        """The dialled transport connected: run a connecting machine on it."""
        m = ProtocolMachine(self._messenger._connect_params(self.conn), True, self.session)
        if self.keepalive_wanted:
            self.keepalive_wanted = False
            m.send_keepalive(wall_stamp())
        self.io.run(m, arm=False)

    @guarded
    def start_accept(self, transport) -> None:
        """Runs an accepting machine on a socket the listener took."""
        if self.state is _S.CLOSED:     # closed (mark_down_all, shutdown) before it started
            transport.close()
            return
        self._to(_S.ACCEPTING)
        self.io.transport = transport
        ic = self._messenger.interceptor
        if ic is not None and ic.intercept(self.conn, SOCKET_ACCEPTED) is Action.FAULT:
            transport.close()
            self.close(reset=False)
            return
        m = ProtocolMachine(self._messenger._accept_params(transport.peer_addr), False,
                            self.session)
        self.io.run(m, arm=True)

    def on_established(self, ev: Established) -> None:
        """READY: the handle learns the peer; the dispatchers hear of it."""
        conn, m = self.conn, self.io.machine
        conn.peer_name = ev.peer_name
        conn.peer_type = ev.peer_name.type
        conn.features = ev.features
        conn.policy = m.policy
        if conn._disposable:            # mark_disposable() before this transport's handshake
            self._lossy(m)
        self.backoff = 0.0
        self.announced = True
        self._to(_S.READY)
        self.io.notify(Notify.ACCEPT if ev.accepted else Notify.CONNECT)

    # ---------------------------------------------------------------- faults
    def _count_fault(self, err) -> None:
        self.counters.connection_faults += 1
        if isinstance(err, RemoteProtocolError) and err.reason.is_bad_frame:
            self.counters.bad_frames += 1

    def on_fault(self, ev: Faulted) -> None:
        """The transport failed: drop it, then do what :func:`after_fault` says."""
        self._count_fault(ev.error)
        conn_debug(log, self.conn, "fault: %s", ev.error)
        m = self.io.drop()
        if self.state is _S.CLOSED:
            return
        policy = m.policy if m is not None else self.conn.policy
        if self.conn._disposable and not policy.lossy:     # mark_disposable() came first:
            self._lossy(m)                                  # its submitted switch may not have
            policy = policy.as_lossy()
        if isinstance(ev.error, ConnectionRefused):
            self.io.notify(Notify.REFUSED)
        stream = self.session.stream
        if not policy.lossy:
            stream.requeue_sent()
        nxt = after_fault(FaultFacts(
            lossy=policy.lossy, server=policy.server, standby=policy.standby,
            announced=self.announced, can_dial=self.can_dial, was_ready=ev.was_ready,
            peer_wait=ev.wait, has_output=bool(stream.out) or self.keepalive_wanted))
        if nxt is Next.CLOSE_RESET or nxt is Next.CLOSE:
            self.close(reset=nxt is Next.CLOSE_RESET)
        elif nxt is Next.STANDBY:
            self._go_standby()
        elif nxt is Next.REDIAL:
            self._new_attempt(bump_connect_seq=True)
            self.start_connect()
        else:
            self._retry_later(ev.wait)

    def _retry_later(self, peer_wait: bool) -> None:
        cfg = self._messenger.config
        self.backoff = next_backoff(self.backoff, peer_wait, cfg.ms_initial_backoff,
                                    cfg.ms_max_backoff)
        self._new_attempt(bump_connect_seq=bool(self.session.ident.server_cookie))
        self._cancel_backoff()
        self._to(_S.WAIT, "redial in %gs", self.backoff)
        self._backoff_timer = self.reactor.call_later(self.backoff, self.start_connect)

    def _new_attempt(self, bump_connect_seq: bool) -> None:
        """Session bookkeeping before redialling (Ceph's ``_fault``): a READY session
        always bumps connect_seq, a failed handshake or standby only once a server
        cookie exists; the next attempt gets a fresh global_seq."""
        ident = self.session.ident
        if bump_connect_seq:
            ident.connect_seq += 1
        ident.global_seq = 0
        self.counters.reconnects += 1

    def _go_standby(self) -> None:
        self._to(_S.STANDBY)
        self._cancel_backoff()

    def _cancel_backoff(self) -> None:
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._backoff_timer = None

    def want_send(self) -> None:
        """Messages were queued without a transport: STANDBY redials."""
        if self.state is _S.STANDBY:
            self._wake()

    def want_keepalive(self) -> None:
        """A keepalive waits for the next transport; STANDBY redials for it."""
        self.keepalive_wanted = True
        if self.state is _S.STANDBY:
            self._wake()

    def _wake(self) -> None:
        """STANDBY + something to send: redial (never on a server policy)."""
        if self.state is not _S.STANDBY or not self.can_dial or self.conn.policy.server:
            return
        self._new_attempt(bump_connect_seq=bool(self.session.ident.server_cookie))
        self.start_connect()

    def on_remote_reset(self, dropped: int = 0) -> None:
        """The peer lost our session: ``dropped`` queued messages went with it (counted
        in ``messages_dropped``, as Ceph's ``reset_session`` discards them); tell the
        dispatchers."""
        self.counters.session_resets += 1
        if dropped:
            self._delivery.count_dropped(dropped)
        self.io.notify(Notify.REMOTE_RESET)

    @guarded
    def make_lossy(self) -> None:
        """``mark_disposable()``: the session becomes lossy from now on.

        Submitted by the handle; a fault handled before it runs applies it itself
        (the handle's flag is set before the call returns), so no fault after
        ``mark_disposable()`` returns reconnects a lossless session.
        """
        self._lossy(self.io.machine)

    def _lossy(self, machine) -> None:
        conn = self.conn
        if not conn.policy.lossy:
            conn.policy = conn.policy.as_lossy()
        self.session.stream.make_lossy()
        if machine is not None and not machine.policy.lossy:
            machine.policy = machine.policy.as_lossy()

    # ---------------------------------------------------------------- closing
    @guarded
    def close_now(self, reset: bool) -> None:
        """The handle's close (``mark_down``, ``mark_down_all``, shutdown), submitted."""
        self.close(reset=reset)

    def close(self, reset: bool = False) -> None:
        """Closes for good; ``reset`` delivers ``ms_handle_reset``.

        The end is claimed under the handle's lock first (an existing connection
        adopting this one's socket from its own reactor claims it the same way), so
        exactly one of the two ends a handed-off socket.
        """
        claimed = self.conn._claim_end()
        if claimed is None:
            return
        dropped, handoff = claimed
        self._to(_S.CLOSED, "reset" if reset else "")
        self._cancel_backoff()
        if handoff is not None:
            handoff.close()
        self.io.shut()
        dropped += self.session.stream.discard()   # never sent, or never acknowledged
        if dropped:
            self._delivery.count_dropped(dropped)
        self.counters.connections_closed += 1
        if self._messenger.interceptor is not None:
            self._messenger.interceptor.forget(self.conn)
        self._messenger._closed(self.conn)
        if reset:
            self.counters.session_resets += 1
            self.io.notify(Notify.RESET)

    # ---------------------------------------------------------------- arbitration (temp side)
    def on_session_request(self, req: SessionRequest) -> bool:
        """An accepted socket names its peer: decide here, or hand off to the existing
        connection's reactor. False when this transport stops reading."""
        m = self.io.machine
        peer = req.peer_addrs[0]
        self.conn.peer_addr = peer
        if m.policy.server and m.policy.lossy:
            m.decide(Decision(Reply.RESET, full=True) if req.reconnect else Decision(Reply.ACCEPT))
            return self._after_decision()
        existing = self._messenger._register_if_absent(peer, self.conn, register=not req.reconnect)
        if existing is None:
            if req.reconnect:
                m.decide(Decision(Reply.RESET, full=True))
            else:
                self.can_dial = _dialable(peer) and not m.policy.server
                m.decide(Decision(Reply.ACCEPT))
            return self._after_decision()
        self._to(_S.HANDED_OFF, "to %r", existing)
        self.conn._park(self.io.park())
        existing._reactor.submit(existing._life.arbitrate, self.conn, req)
        return False

    def _after_decision(self) -> bool:
        """Runs the events the decision produced; False when the machine is gone."""
        io = self.io
        m = io.machine
        if m is not None and m.state is ConnState.CLOSED and m.fault_event is None:
            self.close(reset=False)          # STOP: a stale attempt, never announced
            return False
        if not io.process() or io.machine is not m:
            return False
        io.write()
        return True

    @guarded
    def decided(self, decision: Decision) -> None:
        """Back on the temp's reactor: apply the existing connection's answer."""
        handoff = self.conn._unpark()
        if handoff is None:             # closed meanwhile: the close took the socket
            return
        self._to(_S.ACCEPTING)
        m = handoff.machine
        if decision.kind is Reply.ACCEPT:
            self.can_dial = _dialable(self.conn.peer_addr) and not m.policy.server
        self.io.attach(handoff)
        m.decide(decision)
        self._after_decision()

    @guarded
    def handed_over(self) -> None:
        """The temp's socket was adopted by the existing connection (which also took
        it out of the registry): it ends silently (it was never announced)."""
        self._to(_S.CLOSED, "handed over")

    # ---------------------------------------------------------------- arbitration (existing side)
    def _existing_view(self) -> Existing:
        s, policy = self.session.ident, self.conn.policy
        return Existing(
            dead=self.state is _S.CLOSED, ready=self.state is _S.READY,
            standby=self.state is _S.STANDBY, lossy=policy.lossy, server=policy.server,
            resetcheck=policy.resetcheck, client_cookie=s.client_cookie,
            server_cookie=s.server_cookie, connect_seq=s.connect_seq,
            peer_global_seq=s.peer_global_seq, peer_addr=self.conn.peer_addr)

    @guarded
    def arbitrate(self, temp, req: SessionRequest) -> None:
        """On this (existing) connection's reactor: Ceph's rules, then act on them."""
        my = self._messenger._my_addrs()[0]
        ident, ex = req.ident, self._existing_view()
        if req.reconnect:
            out = decide_reconnect(ex, ident.client_cookie, ident.global_seq,
                                   ident.connect_seq, my)
        else:
            out = decide_ident(ex, ident.client_cookie, ident.global_seq,
                               req.peer_addrs[0], my)
        conn_debug(log, self.conn, "arbitration for %r: %s", temp, out)
        self._messenger._inject_internal_delay()
        if out.kind is Verdict.REUSE:
            self._adopt(temp, out)
            return
        decision = self._reply_for(temp, req, out)
        temp._reactor.submit(temp._life.decided, decision)

    def _reply_for(self, temp, req: SessionRequest, out: Outcome) -> Decision:
        if out.kind is Verdict.ACCEPT_NEW or out.kind is Verdict.REPLACE_LOSSY:
            if out.kind is Verdict.REPLACE_LOSSY:
                self.close(reset=True)
            self._messenger._replace_registration(req.peer_addrs[0], temp, self.conn)
            return Decision(Reply.ACCEPT)
        if out.kind is Verdict.WAIT:
            self._push_connect()
        return Decision(_REPLIES[out.kind], full=out.full, seq=out.seq)

    def _push_connect(self) -> None:
        """Ceph sends a keepalive on the winning connection so it finishes connecting."""
        if self.state is _S.STANDBY:
            self.keepalive_wanted = True
            self._wake()

    def _adopt(self, temp, out: Outcome) -> None:
        """``reuse_connection``: move temp's socket and machine into this connection.

        temp lives on another reactor: its handoff is claimed under its lock. If it
        was closed meanwhile (mark_down_all, shutdown), there is nothing to adopt
        and this connection carries on as it was.
        """
        handoff = temp.claim_for_handoff()
        if handoff is None:
            return
        self._messenger._closed(temp)
        temp._reactor.submit(temp._life.handed_over)
        io = self.io
        # Messages waiting behind a full throttle were decoded (and counted in
        # in_seq, which the peer will not resend): they stay in the intake and
        # go before anything the new socket brings. The old machine ends here.
        io.drop(flush_delay=False)      # held messages keep their timers, and their order
        self._cancel_backoff()
        s = self.session
        if out.reset:
            self.on_remote_reset(len(s.reset()))
        s.stream.requeue_sent()
        self.can_dial = _dialable(self.conn.peer_addr) and not self.conn.policy.server
        self._to(_S.ACCEPTING, "adopting the socket of %r", temp)
        machine = handoff.machine
        io.attach(handoff)
        machine.decide(Decision(Reply.ACCEPT, session=s))
        if not self._after_decision() and io.machine is machine and io.transport is not None:
            io.write()           # messages waiting hold the reading: still answer the peer


def _dialable(addr) -> bool:
    return addr.type in ("v2", "any") and addr.port != 0 and not addr.is_blank
