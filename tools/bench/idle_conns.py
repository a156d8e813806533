"""1,000 idle connections: CPU used while idle, and memory per connection.

``python -m tools.bench.idle_conns [--conns 1000] [--idle 5]``: a server and a
client messenger in this process open ``--conns`` connections (one message
each way, so every session is READY), then sit idle. Prints the process CPU
seconds consumed during the idle period (a reactor that wakes for nothing
would show here) and the resident memory added per connection (both ends, so
two Connection objects and two sockets per connection).
"""
from __future__ import annotations

import argparse
import resource
import time

from msgr import Config, Dispatcher, EntityName, EntityType, Message, Messenger, Policy


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Echo(Dispatcher):
    def ms_dispatch(self, msg):
        msg.connection.send_message(Message(1, tid=msg.tid))
        return True


class Count(Dispatcher):
    n = 0

    def ms_dispatch(self, msg):
        Count.n += 1
        return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__package__}.idle_conns",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=5.0)
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    cfg = Config(io_threads=2, dispatch_threads=0)
    s = Messenger(EntityName.parse("osd.0"), config=cfg)
    s.set_default_policy(Policy.stateless_server())
    s.add_dispatcher_tail(Echo())
    addr = s.bind("v2:127.0.0.1:0")
    s.start()
    c = Messenger(EntityName.parse("client.-1"), config=cfg)
    c.add_dispatcher_tail(Count())
    c.start()
    before = rss()
    conns = [c.connect_to(EntityType.OSD, addr, anon=True) for _ in range(args.conns)]
    for i, k in enumerate(conns):
        k.send_message(Message(1, tid=i))
    deadline = time.monotonic() + 60
    while Count.n < args.conns and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = sum(k.is_connected() for k in conns)
    time.sleep(0.5)
    grown = rss() - before
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(args.idle)
    cpu = time.process_time() - cpu0
    idle = time.monotonic() - t0
    print(f"connections ready: {ready}/{args.conns}")
    print(f"idle {idle:.1f} s: process CPU {cpu * 1e3:.1f} ms ({cpu / idle * 100:.3f}% of one core)")
    print(f"memory: +{grown / 2**20:.1f} MiB, {grown / max(ready, 1) / 1024:.1f} KiB per "
          f"connection (both ends: 2 Connections, 2 sockets, 2 receive buffers)")
    c.shutdown()
    s.shutdown()
    c.wait(10)
    s.wait(10)
    return 0 if ready == args.conns else 1


if __name__ == "__main__":
    raise SystemExit(main())
