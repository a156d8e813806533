"""The soak tool: ``python -m tools.soak --minutes N``; its oracle is :mod:`.oracle`."""
