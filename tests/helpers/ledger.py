"""features' ledger (FEATURES_LEDGER) as the tests read it: which ids it published and confirmed, and when."""

from __future__ import annotations

from pathlib import Path


def ledger_published_at(path: Path) -> dict[str, float]:
    """When features noted each row as published (Unix seconds), before its messages went out."""
    moments = {}
    for line in path.read_text().splitlines():
        if line.startswith("published "):
            _state, row_id, moment = line.split()
            moments[row_id] = float(moment)
    return moments


def ledger_ids(path: Path, state: str = "confirmed") -> list[str]:
    """Ids the features ledger notes as ``published`` or ``confirmed``."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.startswith(state + " ")]
