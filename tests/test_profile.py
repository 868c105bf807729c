"""The reference of the inputs (pipeline.profile): its bins, its file, and the drift score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import profile
from pipeline.profile import MOST_BINS, ProfileError, column_of, psi
from tests.helpers.examples import example


def test_a_column_with_few_values_gets_a_bin_per_value_with_edges_halfway() -> None:
    column = column_of("sex", np.array([1.0, 2.0, 2.0, 1.0, 2.0]))
    assert column.by_value and column.edges == (1.5,) and column.shares == (0.4, 0.6)
    assert column.bin_of(np.array([0.0, 1.0, 1.49, 1.5, 2.0, 7.0])).tolist() == [0, 0, 0, 1, 1, 1]


def test_a_continuous_column_gets_deciles_open_at_both_ends() -> None:
    values = np.random.default_rng(3).normal(0, 1, 10_000)
    column = column_of("x", values)
    assert not column.by_value and column.bins == MOST_BINS
    assert np.allclose(column.shares, 0.1, atol=1e-3)
    assert column.bin_of(np.array([-1e300, 1e300])).tolist() == [0, MOST_BINS - 1]


def test_tied_quantiles_give_fewer_bins_and_shares_that_add_up() -> None:
    values = np.concatenate([np.zeros(900), np.arange(1, 101, dtype=float)])  # 90 % zeros
    column = column_of("mostly zero", values)
    assert column.bins < MOST_BINS and sum(column.shares) == pytest.approx(1.0)
    assert column.shares[0] == pytest.approx(0.9)


def test_count_puts_every_row_once_in_each_column() -> None:
    reference = example()
    rows = np.random.default_rng(9).normal(5, 2, (250, 3))
    counts = reference.count(rows, rows[:, 0])
    assert len(counts) == reference.bins
    assert [int(part.sum()) for part in reference.split(counts)] == [250] * len(reference.columns)


def test_the_predictions_are_the_last_column_and_never_share_a_features_name() -> None:
    assert example().columns[-1].name == "prediction"
    rows = np.ones((3, 1))
    assert profile.make(rows, rows[:, 0], ["prediction"], "s", "0" * 64).columns[-1].name == "prediction (model)"


def test_psi_is_near_zero_for_the_reference_itself_and_large_for_a_shift() -> None:
    reference = example()
    column = reference.columns[0]
    same = np.bincount(column.bin_of(np.random.default_rng(5).normal(5, 2, 100_000)), minlength=column.bins)
    moved = np.bincount(column.bin_of(np.random.default_rng(5).normal(5, 2, 1000) * 1.5), minlength=column.bins)
    assert psi(column.shares, same) < 0.02  # the reference's 2,000 rows: about 9 / 2,000
    assert psi(column.shares, moved) > 0.5
    assert psi(column.shares, np.zeros(column.bins)) == 0.0


def test_an_empty_bin_gives_a_finite_score() -> None:
    assert 0 < psi((0.5, 0.5), np.array([10, 0])) < 10


def test_a_profile_survives_its_file_and_keeps_its_id(tmp_path: Path) -> None:
    reference = example()
    reference.save(tmp_path / "p.json")
    again = profile.load(tmp_path / "p.json")
    assert again == reference and again.id == reference.id
    assert example(seed=2).id != reference.id
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644  # readable by the services' other users


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "cannot read a profile"),
        ('{"format": 1}', "is no profile"),
        ('{"format": 99, "rows": 1, "source": "", "model_sha256": "", "columns": []}', "format 99"),
    ],
)
def test_a_bad_profile_file_says_what_is_wrong(tmp_path: Path, content: str, says: str) -> None:
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(ProfileError, match=says):
        profile.load(tmp_path / "p.json")


def test_shares_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    data = example().to_json()
    data["columns"][0]["shares"][0] += 0.5
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="shares adding to"):
        profile.load(tmp_path / "p.json")
