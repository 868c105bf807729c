"""model's side of the input drift: the reference it counts its rows against, and the counting.

The reference is the model's profile, beside the model file (or at MODEL_PROFILE), made by `make train` or `make
profile` from the training data. Without one, the first INPUT_REFERENCE_ROWS rows of the stream and their predictions
are the reference, kept in ``LOGS_DIR/inputs/learned-<model hash>.json`` so that every replica, and every later start,
counts in the same bins. Each row whose prediction is published is counted in the reference's bins, and the counts go
to ``LOGS_DIR/inputs`` (``pipeline.input_counts``), where plot reads them. A profile that does not fit the model stops
model at start; counting itself never stops predictions: counts that cannot be written are dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from default_model import profile_path

from pipeline import input_counts, profile
from pipeline.input_counts import CountsWriter
from pipeline.profile import Profile, ProfileError
from pipeline.settings import SettingsError, env_choice, env_int, env_str

LOGGER = logging.getLogger("model")

DEFAULT_REFERENCE_ROWS = 1000
FEWEST_REFERENCE_ROWS = 100  # fewer would give deciles of a handful of rows each
MOST_REFERENCE_ROWS = 100_000  # they wait in memory until the reference is made (1,000,000 took 600 MB)
FLUSH_INTERVAL = 0.25  # seconds between writes of the counts


@dataclass(frozen=True)
class InputSettings:
    """Where the counts go, and the reference: a profile, or None to learn it from the stream."""

    folder: Path  # LOGS_DIR/inputs
    model_sha256: str
    feature_names: list[str]  # the columns of a reference learned from the stream
    profile: Profile | None
    profile_path: Path
    reference_rows: int


def load_input_settings(model: Any, model_path: str, logs_dir: str) -> InputSettings | None:
    """INPUT_DRIFT, INPUT_REFERENCE_ROWS and MODEL_PROFILE; None when INPUT_DRIFT is off."""
    enabled = env_choice("INPUT_DRIFT", "on", ("on", "off")) == "on"
    reference_rows = env_int(
        "INPUT_REFERENCE_ROWS", DEFAULT_REFERENCE_ROWS, minimum=FEWEST_REFERENCE_ROWS, maximum=MOST_REFERENCE_ROWS
    )
    chosen = env_str("MODEL_PROFILE", "").strip()
    if not enabled:
        return None
    model_sha256 = profile.sha256_of(Path(model_path))
    path = Path(chosen) if chosen else profile_path(model_path)
    if not path.exists():
        if chosen:
            raise SettingsError(f"MODEL_PROFILE: no profile at {path} (make one with `make profile`)")
        reference = None
    else:
        reference = load_profile(path, model, model_sha256)
    folder = Path(logs_dir) / input_counts.FOLDER
    return InputSettings(folder, model_sha256, feature_names(model), reference, path, reference_rows)


def load_profile(path: Path, model: Any, model_sha256: str) -> Profile:
    """The profile at ``path``, checked against the model; a ``SettingsError`` naming MODEL_PROFILE if it is unfit."""
    try:
        reference = profile.load(path)
    except ProfileError as error:
        raise SettingsError(f"MODEL_PROFILE: {error}") from None
    problem = mismatch(reference, model, model_sha256)
    if problem:
        raise SettingsError(f"MODEL_PROFILE: {path} {problem}")
    return reference


def mismatch(reference: Profile, model: Any, model_sha256: str) -> str | None:
    """What makes ``reference`` unfit for ``model`` (whose file has the hash ``model_sha256``); None if nothing."""
    names = [column.name for column in reference.features]
    expected = int(model.n_features_in_)
    if len(names) != expected:
        return f"has {len(names)} feature columns but the model at MODEL_PATH expects {expected}"
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and [str(name) for name in fitted] != names:
        return f"names the features {', '.join(names)} but the model was fitted on {', '.join(map(str, fitted))}"
    if reference.model_sha256 != model_sha256:
        return (
            "was made for another model file; run `make train` or `make profile`, or remove it to learn the "
            "reference from the stream"
        )
    return None


def feature_names(model: Any) -> list[str]:
    """The names the estimator was fitted with, or "feature 1" … "feature n"."""
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None:
        return [str(name) for name in fitted]
    return [f"feature {index}" for index in range(1, int(model.n_features_in_) + 1)]


class InputCounter:
    """Counts every row whose prediction is published; without a reference, learns one from the first rows first.

    ``add`` only notes the rows: ``flush`` counts them, every FLUSH_INTERVAL, so that a batch of one row costs no more
    than a list append. Rows that come while the reference is being learned wait in memory and are counted once it is
    made, so that no row goes uncounted."""

    def __init__(self, settings: InputSettings, replica: str | None = None) -> None:
        self._settings = settings
        self._replica = replica
        self._writer: CountsWriter | None = None
        self._pending_rows: list[np.ndarray] = []  # noted since the last flush, or while learning the reference
        self._pending_predictions: list[np.ndarray] = []
        self._pending = 0
        self._failed = False
        reference = settings.profile or self._learned_before()
        if reference is not None:
            self._writer = CountsWriter(settings.folder, reference, replica)
        self._origin = self._describe(reference)

    @property
    def reference(self) -> Profile | None:
        return self._writer.reference if self._writer else None

    def describe(self) -> str:
        """Which reference is in use, for the start line."""
        return self._origin

    def status(self) -> str:
        """How far the counting is, for the heartbeat."""
        if self._failed:
            return "input counting failed"
        if self._writer is None:
            return f"learning the input reference ({self._pending} of {self._settings.reference_rows} rows)"
        return f"{self._writer.counted} rows counted for input drift"

    def add(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        """Note ``rows`` (one per line) and their published ``predictions``, in order, for the next flush."""
        if self._failed or len(rows) == 0:
            return
        self._pending_rows.append(np.asarray(rows, dtype=np.float64))
        self._pending_predictions.append(np.asarray(predictions, dtype=np.float64))
        self._pending += len(rows)

    def flush(self) -> None:
        """Count the rows noted since the last flush (first learning the reference, once enough rows have come) and
        write the blocks closed so far."""
        if self._failed:
            return
        try:
            self._count_pending()
            if self._writer is not None:
                self._writer.flush()
        except Exception:  # the counts are statistics: a fault of ours here must not stop predictions
            self._fail()

    def close(self) -> None:
        """Count and write what is left; never raises."""
        if not self._failed:
            try:
                self._count_pending()
            except Exception:  # as in flush
                self._fail()
        if self._writer is not None:
            self._writer.close()
        elif self._pending:
            LOGGER.info(
                "input drift: stopped before %d rows came to learn the reference from; %d rows were not counted",
                self._settings.reference_rows,
                self._pending,
            )

    def _count_pending(self) -> None:
        learning = self._writer is None
        if not self._pending or (learning and self._pending < self._settings.reference_rows):
            return
        rows, predictions = np.concatenate(self._pending_rows), np.concatenate(self._pending_predictions)
        self._pending_rows, self._pending_predictions, self._pending = [], [], 0
        if self._writer is None:
            reference = self._keep(self._make(rows, predictions))
            self._writer = CountsWriter(self._settings.folder, reference, self._replica)
        self._writer.add(rows, predictions)

    def _make(self, rows: np.ndarray, predictions: np.ndarray) -> Profile:
        first = self._settings.reference_rows
        source = f"the first {first} rows of the stream"
        names = self._settings.feature_names
        return profile.make(rows[:first], predictions[:first], names, source, self._settings.model_sha256)

    def _keep(self, candidate: Profile) -> Profile:
        """Keep the reference for the other replicas and later starts; adopt one another replica kept first."""
        path = self._learned_path
        try:
            kept = input_counts.keep_learned(self._settings.folder, candidate)
        except OSError as error:
            LOGGER.warning("input drift: cannot keep the learned reference in %s (%s); using it anyway", path, error)
            return candidate
        if kept is not candidate and self._fits(kept):
            LOGGER.info("input drift: adopted the reference another replica learned first, %s", path)
            return kept
        LOGGER.info("input drift: learned the reference from %s; kept in %s", candidate.source, path)
        return candidate

    @property
    def _learned_path(self) -> Path:
        return input_counts.learned_path(self._settings.folder, self._settings.model_sha256)

    def _learned_before(self) -> Profile | None:
        """The reference learned from the stream for this model file before, by this replica or another."""
        try:
            reference = input_counts.learned(self._settings.folder, self._settings.model_sha256)
        except OSError:  # a folder we may not look into: learn as if there were none
            return None
        return reference if reference is not None and self._fits(reference) else None

    def _fits(self, reference: Profile) -> bool:
        return len(reference.features) == len(self._settings.feature_names)

    def _describe(self, reference: Profile | None) -> str:
        settings = self._settings
        if settings.profile is not None:
            made_from = f"{settings.profile.rows} rows of {settings.profile.source}"
            return f"counting each row against the profile {settings.profile_path}, made from {made_from}"
        if reference is not None:
            learned_from = f"{reference.source}, {self._learned_path}"
            return f"counting each row against the reference learned before from {learned_from}"
        return (
            f"no profile at {settings.profile_path}: the reference is learned from the first "
            f"{settings.reference_rows} rows of the stream"
        )

    def _fail(self) -> None:
        LOGGER.exception("input drift: counting failed; this replica counts no more rows, predictions go on")
        self._failed = True
        self._pending_rows, self._pending_predictions, self._pending = [], [], 0
