"""Ceph's existing-connection and reconnect rules, one by one, in order."""
from dataclasses import replace

import pytest

from msgr.arbiter import Existing, Verdict, decide_ident, decide_reconnect
from msgr.entity import EntityAddr

LOW = EntityAddr("v2", "127.0.0.1", 6800, 1)
HIGH = EntityAddr("v2", "127.0.0.1", 6800, 2)     # memcmp: nonce 2 > nonce 1
EX = Existing(dead=False, ready=False, standby=False, lossy=False, server=False,
              resetcheck=True, client_cookie=5, server_cookie=9, connect_seq=3,
              peer_global_seq=10, peer_addr=HIGH)


def ident(ex, cookie=5, gs=11, peer=HIGH, me=LOW):
    return decide_ident(ex, cookie, gs, peer, me).kind.value


def test_ident_rules_in_order():
    assert ident(replace(EX, dead=True)) == "accept_new"
    assert ident(EX, gs=9) == "stop"                                  # stale attempt
    assert ident(replace(EX, lossy=True)) == "replace_lossy"
    out = decide_ident(EX, 6, 11, HIGH, LOW)                          # peer restarted
    assert out.kind is Verdict.REUSE and out.reset
    assert not decide_ident(replace(EX, resetcheck=False), 6, 11, HIGH, LOW).reset
    assert ident(EX, cookie=5) == "reuse"                             # interrupted establishment
    racing = replace(EX, server_cookie=0, client_cookie=7)
    assert ident(replace(racing, ready=True), cookie=5) == "reuse"
    assert ident(replace(racing, standby=True), cookie=5) == "reuse"
    assert ident(racing, cookie=5, peer=LOW, me=HIGH) == "reuse"      # lower address wins
    assert ident(racing, cookie=5, peer=HIGH, me=LOW) == "wait"       # ours wins
    assert ident(replace(racing, server=True), cookie=5, peer=HIGH, me=LOW) == "reuse"


def rc(ex, cookie=5, gs=11, cs=4, me=LOW):
    out = decide_reconnect(ex, cookie, gs, cs, me)
    return out.kind.value, out.full, out.seq


def test_reconnect_rules_in_order():
    assert rc(None) == ("reset", True, 0)
    assert rc(replace(EX, dead=True)) == ("reset", True, 0)
    assert rc(EX, cookie=6) == ("reset", True, 0)
    assert rc(replace(EX, resetcheck=False), cookie=6) == ("reset", False, 0)
    assert rc(replace(EX, server_cookie=0)) == ("reset", False, 0)
    assert rc(EX, gs=9) == ("retry_global", False, 10)
    assert rc(EX, cs=2) == ("retry", False, 3)
    assert rc(EX, cs=3, me=LOW)[0] == "wait"             # reconnect race, existing (peer HIGH) wins
    assert rc(replace(EX, peer_addr=LOW), cs=3, me=HIGH)[0] == "reuse"
    assert rc(replace(EX, server=True), cs=3, me=LOW)[0] == "reuse"
    assert rc(EX, cs=4) == ("reuse", False, 0)


@pytest.mark.parametrize("a,b", [
    (EntityAddr("v2", "127.0.0.1", 1, 0), EntityAddr("v2", "127.0.0.1", 2, 0)),
    (EntityAddr("v2", "127.0.0.1", 255, 0), EntityAddr("v2", "127.0.0.1", 256, 0)),
    (EntityAddr("v2", "10.0.0.2", 1, 0), EntityAddr("v2", "10.0.0.1", 9, 0)),   # port before IP
])
def test_ordering_follows_the_in_memory_struct(a, b):
    # same type and nonce: sockaddr bytes compare with the port in network order first
    assert a.sort_key() < b.sort_key()
