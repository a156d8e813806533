"""Hand-off from I/O threads to user code: rings, dispatch threads, throttles."""
