"""Test support: MachinePair and MockClock, the interceptor's breakpoints, the transport conformance suite."""
