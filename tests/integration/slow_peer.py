"""A msgr server whose dispatcher blocks until released, for overload tests.

Usage: python slow_peer.py THROTTLE_BYTES. Prints ``ready ADDR``; on a line
``rss`` prints its resident set size in bytes; on ``go`` releases the
dispatcher; on ``count`` prints how many messages and bytes it dispatched.
"""
import sys
import threading

from msgr import Config, Dispatcher, EntityName, Messenger, Policy

gate = threading.Event()
got = [0, 0]


class Slow(Dispatcher):
    def ms_dispatch(self, msg):
        gate.wait(60)
        got[0] += 1
        got[1] += len(msg.data)
        return True


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    m = Messenger(EntityName.parse("osd.0"), config=Config(
        io_threads=1, ms_dispatch_throttle_bytes=int(sys.argv[1])))
    m.set_default_policy(Policy.stateless_server())
    m.add_dispatcher_tail(Slow())
    print("ready", m.bind("v2:127.0.0.1:0"), flush=True)
    m.start()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "rss":
            print(rss(), flush=True)
        elif cmd == "go":
            gate.set()
        elif cmd == "count":
            print(got[0], got[1], flush=True)
    gate.set()
    m.shutdown()
    m.wait(10)


if __name__ == "__main__":
    main()
