"""The child processes of a load-generator or benchmark run: spawn, pipe, end them all."""
from __future__ import annotations

import multiprocessing as mp
import signal
import time

__all__ = ["Fleet"]


class Fleet:
    """The child processes of a run ("spawn" context); :meth:`end_all` ends every one."""

    def __init__(self) -> None:
        self.ctx, self.procs = mp.get_context("spawn"), []

    def spawn(self, target, *args):
        """Starts ``target(*args, pipe)`` in a new process; returns our end of the pipe."""
        mine, theirs = self.ctx.Pipe()
        p = self.ctx.Process(target=target, args=(*args, theirs), daemon=True)
        p.start()
        theirs.close()
        self.procs.append(p)
        return mine

    def end_all(self, grace: float) -> list:
        """Joins every child within ``grace`` s, then terminates (kills); returns the pids forced."""
        deadline = time.monotonic() + grace
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        forced = [p for p in self.procs if p.is_alive()]
        for p in forced:
            p.terminate()
            p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
        return [p.pid for p in forced]

    @staticmethod
    def child_setup() -> None:
        """In a child: ignore SIGINT (the parent coordinates); die with the parent (Linux)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            import ctypes
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    @staticmethod
    def send(pipe, item) -> None:
        """Sends on a pipe whose other end may be gone."""
        try:
            pipe.send(item)
        except OSError:
            pass

    @staticmethod
    def expect(pipe, kind: str, timeout: float):
        """Returns the data of the next ``(kind, _, data)`` message; RuntimeError after ``timeout``."""
        try:
            got, _, data = pipe.recv() if pipe.poll(timeout) else (None, 0, None)
        except EOFError:                            # the child died
            got = data = None
        if got == kind:
            return data
        raise RuntimeError(f"the child process sent no '{kind}' within {timeout:g} s")
