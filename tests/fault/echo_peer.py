"""A msgr echo server in its own process, for kill -9 / restart tests.

Usage: python echo_peer.py PORT NONCE POLICY. Prints ``ready ADDR`` once bound and
serves until its stdin closes.
"""
import sys

from msgr import Config, Dispatcher, EntityName, Message, Messenger, Policy


class Echo(Dispatcher):
    def ms_dispatch(self, msg):
        msg.connection.send_message(Message(msg.type, front=msg.front, tid=msg.tid))
        return True


def main() -> None:
    port, nonce, policy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    m = Messenger(EntityName.parse("osd.0"), nonce=nonce, config=Config(io_threads=1))
    m.set_default_policy(getattr(Policy, policy)())
    m.add_dispatcher_tail(Echo())
    addr = m.bind(f"v2:127.0.0.1:{port}")
    m.start()
    print("ready", addr, flush=True)
    sys.stdin.read()
    m.shutdown()
    m.wait(5)


if __name__ == "__main__":
    main()
