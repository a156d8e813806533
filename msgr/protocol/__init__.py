"""The msgr2 protocol, sans I/O: bytes in, events and bytes out, time passed in (no sockets, threads or clocks)."""
