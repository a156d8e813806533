"""The project's tools; run them with ``python -m tools.<name>`` from the repository root."""
