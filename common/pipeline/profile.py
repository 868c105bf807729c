"""The reference of the inputs: for each feature and for the model's predictions, bins and the share of rows in each.

``make train`` saves a profile beside the model, made from the training data and the model's predictions on it; a
model without one learns it from the first rows of the stream. A column with at most ``MOST_BINS`` distinct values
(``sex`` in the diabetes data) gets a bin per value, with edges halfway between them; any other column gets quantile
bins (deciles, fewer where values tie), open at both ends, so a value beyond the reference's range falls in an end
bin. Recent rows are counted in the same bins, and ``psi`` scores how far their shares are from the reference's.

Why PSI (the population stability index): it needs only counts per bin, which replicas add up and send through files;
it has no unit, so one threshold fits every column; and over quantile bins, with a window of ``n`` rows from the
reference's distribution, ``n * PSI`` is close to a chi-square with ``bins - 1`` degrees of freedom, which tells how
far above the noise a threshold sits (the README gives the numbers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
MOST_BINS = 10
PREDICTION = "prediction"
SMALLEST_SHARE = 1e-4  # a share of 0 (an empty bin) counts as this much in PSI, which would be infinite otherwise


class ProfileError(ValueError):
    """A profile file that cannot be used: unreadable, malformed, or made for other data."""


@dataclass(frozen=True)
class Column:
    """One feature or the predictions: bin ``i`` holds values ``edges[i-1] <= x < edges[i]`` (open at both ends)."""

    name: str
    edges: tuple[float, ...]
    shares: tuple[float, ...]  # of the reference's rows in each bin: len(edges) + 1 of them, adding up to 1
    by_value: bool  # a bin per distinct value of the reference

    @property
    def bins(self) -> int:
        return len(self.shares)

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value (a NaN goes in the last bin)."""
        return np.searchsorted(np.asarray(self.edges, dtype=np.float64), values, side="right")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "by_value": self.by_value, "edges": list(self.edges), "shares": list(self.shares)}


@dataclass(frozen=True)
class Profile:
    """The reference: one column per feature in message order, then the predictions; what it was made from."""

    columns: tuple[Column, ...]
    rows: int
    source: str
    model_sha256: str  # of the model file it was made for

    @property
    def features(self) -> tuple[Column, ...]:
        return self.columns[:-1]

    @property
    def bins(self) -> int:
        """Bins of every column together: the length of one block of counts."""
        return sum(column.bins for column in self.columns)

    @functools.cached_property
    def id(self) -> str:
        """A short name of exactly this reference: counts made with other bins are never added to its own (kept, as
        it hashes the whole profile and is asked for at every block)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    def count(self, rows: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Counts per bin of every column (concatenated, ``bins`` long) of ``rows`` and their ``predictions``."""
        values = np.column_stack([np.asarray(rows, dtype=np.float64), np.asarray(predictions, dtype=np.float64)])
        return np.concatenate(
            [
                np.bincount(column.bin_of(values[:, index]), minlength=column.bins)
                for index, column in enumerate(self.columns)
            ]
        )

    def split(self, counts: np.ndarray) -> list[np.ndarray]:
        """Counts of every column together, cut into one array per column."""
        return np.split(np.asarray(counts), np.cumsum([column.bins for column in self.columns])[:-1])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "source": self.source,
            "model_sha256": self.model_sha256,
            "columns": [column.to_json() for column in self.columns],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n").encode()

    def save(self, path: Path) -> None:
        """Write beside the target and rename, so that no reader ever sees half a profile."""
        temporary = write_temporary(path, self.to_bytes())
        temporary.replace(path)


def write_temporary(path: Path, data: bytes) -> Path:
    """``data`` in a new file beside ``path`` with a name no other process uses (replicas may all be pid 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(descriptor, 0o644)  # mkstemp makes it 0600: the model image's user and plot must read it
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    return Path(name)


def make(rows: np.ndarray, predictions: np.ndarray, names: list[str], source: str, model_sha256: str) -> Profile:
    """The profile of ``rows`` (one per line) and the model's ``predictions`` for them."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != len(names):
        raise ProfileError(f"a profile needs rows of {len(names)} features, got an array of shape {rows.shape}")
    prediction_name = PREDICTION if PREDICTION not in names else f"{PREDICTION} (model)"
    columns = [column_of(name, rows[:, index]) for index, name in enumerate(names)]
    columns.append(column_of(prediction_name, np.asarray(predictions, dtype=np.float64)))
    return Profile(tuple(columns), len(rows), source, model_sha256)


def column_of(name: str, values: np.ndarray) -> Column:
    """Bins for ``values``: one per distinct value if they are at most MOST_BINS, else quantile bins."""
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    by_value = len(distinct) <= MOST_BINS
    edges = (distinct[:-1] + distinct[1:]) / 2 if by_value else decile_edges(finite)
    bins = np.searchsorted(edges, values, side="right")
    shares = np.bincount(bins, minlength=len(edges) + 1) / len(values)
    return Column(name, tuple(float(edge) for edge in edges), tuple(float(share) for share in shares), by_value)


def decile_edges(values: np.ndarray) -> np.ndarray:
    """For each decile, the value of the column with the share of values below it nearest that decile.

    Edges are values of the column, so a bin [edge, next edge) always holds one; ties give fewer bins, and a value
    held by many rows gets a bin of its own (90 % zeros and the rest 1 to 100: two bins, not one)."""
    distinct, counts = np.unique(values, return_counts=True)
    below = (np.cumsum(counts) - counts) / len(values)  # share of the values below each distinct value
    deciles = np.arange(1, MOST_BINS) / MOST_BINS
    nearest = np.abs(below[np.newaxis, :] - deciles[:, np.newaxis]).argmin(axis=1)
    return np.unique(distinct[nearest[nearest > 0]])  # the smallest value as an edge would leave an empty bin


def psi(reference: np.ndarray | tuple[float, ...], counts: np.ndarray) -> float:
    """The population stability index of ``counts`` (rows per bin) against the ``reference`` shares; 0 for no rows.

    sum over bins of (recent - reference) * ln(recent / reference), each share at least SMALLEST_SHARE."""
    total = float(np.sum(counts))
    if total <= 0:
        return 0.0
    recent = np.maximum(np.asarray(counts, dtype=np.float64) / total, SMALLEST_SHARE)
    expected = np.maximum(np.asarray(reference, dtype=np.float64), SMALLEST_SHARE)
    return float(np.sum((recent - expected) * np.log(recent / expected)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load(path: Path) -> Profile:
    """A profile from its JSON file; ``ProfileError`` saying what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:  # ValueError: not UTF-8, not JSON
        raise ProfileError(f"cannot read a profile from {path}: {error}") from None
    try:
        return from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as error:
        raise ProfileError(f"{path} is no profile of this pipeline ({type(error).__name__}: {error})") from None


def from_json(data: dict[str, Any]) -> Profile:
    if data["format"] != FORMAT:
        raise ValueError(f"format {data['format']!r}, not {FORMAT}")
    columns = tuple(
        Column(
            str(column["name"]),
            tuple(float(edge) for edge in column["edges"]),
            tuple(float(share) for share in column["shares"]),
            bool(column["by_value"]),
        )
        for column in data["columns"]
    )
    for column in columns:
        if len(column.shares) != len(column.edges) + 1 or not math.isclose(sum(column.shares), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"column {column.name!r} has {len(column.edges)} edges and shares adding to {sum(column.shares):g}"
            )
        if list(column.edges) != sorted(column.edges) or not all(math.isfinite(edge) for edge in column.edges):
            raise ValueError(f"column {column.name!r} has edges that are not finite and ascending")
    if len(columns) < 2:
        raise ValueError("it needs at least one feature and the predictions")
    return Profile(columns, int(data["rows"]), str(data["source"]), str(data["model_sha256"]))
