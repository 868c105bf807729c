"""Container healthcheck: healthy while the service touched HEALTH_FILE within the last N seconds.

A service touches it every HEALTH_INTERVAL while connected and no problem lasts (``Broker.set_problem``: a
connection the broker blocks, say), so it turns unhealthy N seconds into a problem.

Usage: python -m pipeline.health [max_age_seconds]
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_MAX_AGE = 30.0
HEALTH_INTERVAL = 5.0  # seconds between touches of HEALTH_FILE by a healthy service


def is_fresh(path: str, max_age: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime <= max_age
    except OSError:
        return False


def main() -> int:
    max_age = float(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MAX_AGE
    path = os.environ.get("HEALTH_FILE", "")
    return 0 if path and is_fresh(path, max_age) else 1


if __name__ == "__main__":
    sys.exit(main())
