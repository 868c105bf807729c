"""metric_status.json: what metric tells plot through the shared logs/ folder (how many halves wait, since when).

metric replaces the file whole (a temporary file renamed over it) about once a second; plot reads it at each refresh.
It is a display, not a record: nothing depends on it surviving a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_FILE = "metric_status.json"


def write_status(folder: Path, status: dict[str, Any]) -> None:
    path = folder / STATUS_FILE
    temporary = path.with_name(f".{STATUS_FILE}.tmp")
    try:
        temporary.write_text(json.dumps(status))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a full disk: leave nothing behind
        raise


def read_status(folder: Path) -> dict[str, Any] | None:
    """The latest status, or None if metric has written none (or it cannot be read)."""
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None
