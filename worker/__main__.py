"""`python -m worker`: the same as `dagbroker worker`."""

from __future__ import annotations

import sys

from worker.main import main

if __name__ == "__main__":
    sys.exit(main())
