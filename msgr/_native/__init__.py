"""Native layer of msgr: the C kernels (CRC32C, the msgr2 frame scanner, the ring set)
and the compiled message core (:class:`Message`, built with Cython).

Every native piece has a pure-Python twin with the same names and contracts,
side by side in this package; the twin is the specification. Selection (at import):

* ``MSGR_NATIVE=0``: the pure-Python twins (:mod:`.pure`, :mod:`.message`).
* ``MSGR_NATIVE=1``: the compiled pieces (the cffi module ``_cffi``, the Cython
  module ``_message``); ImportError if one is missing.
* otherwise: each compiled piece when it is built, else its twin.

:data:`BACKEND` tells which kernels are in use (``"cffi"`` or ``"python"``),
:data:`CORE` which message core (``"cython"`` or ``"python"``), and
:data:`NATIVE` is True when both are compiled (what benchmarks print).

API:

* ``crc32c(seed, data) -> int`` -- Ceph's ``ceph_crc32c`` (raw CRC32C, the
  caller's seed, no inversions); ``crc32c_sw`` is the table-only path. The
  cffi build picks the fastest path the CPU has at load time (clmul folding,
  the crc32 instruction, tables); ``MSGR_CRC32C=table|crc32|pclmul|vpclmul``
  caps it, so tests can reach every path on one machine.
* ``scan_frames(buf, start, end, rev1, max_segment, out, max_frames)
  -> (nframes, status, pos, need)`` -- validates and indexes every complete
  msgr2 crc-mode frame of a receive buffer in one call (``SCAN_*`` status
  codes, ``FRAME_RECORD_SIZE`` int64 per frame, ``FLAG_ABORTED``);
  ``Scanner(max_frames).scan(buf, start, end, rev1, max_segment)`` is the
  same with an owned record table (``.recs``) and, in cffi, a cached pointer.
* ``RingSet(nrings, capacity)`` -- the dispatch hand-off, below.

Theory of operation of :class:`RingSet`
---------------------------------------

A RingSet is ``nrings`` single-producer/single-consumer rings that share one
consumer thread (the dispatch thread) and one eventcount.  Ring ``i`` has
exactly one producer thread (I/O reactor ``i``).  Items are Python objects
stored in preallocated Python lists, ``rs.slots[i]``, indexed by a sequence
number masked with ``rs.mask``.  Only the counters live in C: per ring a
64-bit ``tail`` (items published) and ``head`` (items released by the
consumer) on separate cache lines, written with release and read with
acquire ordering.  A cffi call costs 44-82 ns and releases the GIL, so the
protocol makes one C call per *batch*, never per item.

Producer ``i`` (the only writer of ring ``i``'s tail)::

    t = my_tail
    if t - cached_head >= rs.capacity:
        cached_head = rs.head(i)            # acquire: slots below are free
        if t - cached_head >= rs.capacity:
            ...                             # still full: back off, retry later
    rs.slots[i][t & rs.mask] = item; t += 1 # ... as many items as fit
    rs.publish(i, t)                        # release; wakes the consumer
    my_tail = t

Consumer (one thread for the whole set)::

    heads = [0] * rs.nrings
    while (tails := rs.wait(heads, None)) is not None:
        for i in range(rs.nrings):
            ring = rs.slots[i]
            for s in range(heads[i], tails[i]):
                item = ring[s & rs.mask]
                ring[s & rs.mask] = None
                handle(item)
        heads = tails                        # released by the next wait()

``wait(heads, timeout)`` first publishes ``heads`` (release), then returns
the current tails as soon as any ring has ``tail > head``, the unchanged
tails on timeout, or None once the set is closed and every ring is drained.
It spins briefly, then sleeps on a futex without the GIL; a producer enters
the kernel only when the consumer has announced that it sleeps (waiters
flag plus sequentially consistent fences on both sides, so no wake-up is
lost).  ``close()`` may be called from any thread and wakes the consumer.
"""

from __future__ import annotations

import os

_MODE = os.environ.get("MSGR_NATIVE", "")

if _MODE == "0":
    from . import pure as _impl
    from . import message as _core, decode as _decoder, layout as _layout
else:
    try:
        from . import cffi_backend as _impl
    except ImportError:
        if _MODE == "1":
            raise
        from . import pure as _impl
    try:                                    # the compiled core comes whole, or not at all
        from . import _message as _core, _decode as _decoder, _layout as _layout
    except ImportError:
        if _MODE == "1":
            raise
        from . import message as _core, decode as _decoder, layout as _layout

__all__ = list(_impl.__all__) + ["Message", "decode_run", "lay_out", "COPY_LIMIT", "FRAME_FLAGS",
                                  "CORE", "NATIVE"]

BACKEND = _impl.BACKEND
CORE = "python" if _core.__name__.endswith(".message") else "cython"
NATIVE = BACKEND == "cffi" and CORE == "cython"
Message = _core.Message
decode_run = _decoder.decode_run
lay_out = _layout.lay_out
COPY_LIMIT = _layout.COPY_LIMIT
FRAME_FLAGS = _layout.FRAME_FLAGS
crc32c = _impl.crc32c
crc32c_sw = _impl.crc32c_sw
scan_frames = _impl.scan_frames
Scanner = _impl.Scanner
fill_message_frames = _impl.fill_message_frames
RingSet = _impl.RingSet
SCAN_OK = _impl.SCAN_OK
SCAN_BAD_PREAMBLE_CRC = _impl.SCAN_BAD_PREAMBLE_CRC
SCAN_BAD_SEGMENT_COUNT = _impl.SCAN_BAD_SEGMENT_COUNT
SCAN_SEGMENT_TOO_LARGE = _impl.SCAN_SEGMENT_TOO_LARGE
SCAN_BAD_SEGMENT_CRC = _impl.SCAN_BAD_SEGMENT_CRC
SCAN_BAD_LATE_STATUS = _impl.SCAN_BAD_LATE_STATUS
FRAME_RECORD_SIZE = _impl.FRAME_RECORD_SIZE
FLAG_ABORTED = _impl.FLAG_ABORTED
