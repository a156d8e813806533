"""``python -m tools.loadgen``: runs msgr-loadgen (see :mod:`tools.loadgen.workload`)."""
import sys

from .workload import main

if __name__ == "__main__":
    sys.exit(main())
