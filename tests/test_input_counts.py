"""Counts of the inputs from model replicas to plot (pipeline.input_counts): blocks, files, the reader."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline import input_counts
from pipeline.input_counts import BLOCK_ROWS, CountsReader, CountsWriter, keep_learned, learned
from tests.helpers.examples import example


def rows(count: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    data = np.random.default_rng(seed).normal(5, 2, (count, 3))
    return data, data[:, 0]


def test_blocks_of_at_most_block_rows_cover_every_row_in_order(tmp_path: Path) -> None:
    reference = example()
    writer = CountsWriter(tmp_path, reference, replica="a")
    data, predictions = rows(1234)
    writer.add(data[:50], predictions[:50])
    writer.add(data[50:], predictions[50:])
    writer.close()
    blocks = CountsReader(tmp_path).read_new()
    assert [block.rows for block in blocks] == [BLOCK_ROWS] * 12 + [34]
    assert np.sum([block.counts for block in blocks], axis=0).tolist() == reference.count(data, predictions).tolist()
    assert {block.ref for block in blocks} == {reference.id} and writer.counted == 1234
    assert CountsReader(tmp_path).reference(reference.id) == reference


def test_the_reader_adds_every_replica_and_reads_only_what_is_new(tmp_path: Path) -> None:
    reference = example()
    writers = [CountsWriter(tmp_path, reference, replica=name) for name in "abc"]
    reader = CountsReader(tmp_path)
    for index, writer in enumerate(writers):
        writer.add(*rows(BLOCK_ROWS, seed=index))
        writer.flush()
    assert sorted(block.replica for block in reader.read_new()) == ["a", "b", "c"]
    assert reader.read_new() == []
    writers[1].add(*rows(BLOCK_ROWS, seed=7))
    writers[1].flush()
    assert [block.replica for block in reader.read_new()] == ["b"]


def test_a_file_renamed_away_is_read_to_its_end_before_the_new_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(input_counts, "MOST_FILE_BYTES", 2000)
    writer = CountsWriter(tmp_path, example(), replica="a")
    reader = CountsReader(tmp_path)
    writer.add(*rows(BLOCK_ROWS))
    writer.flush()
    seen = len(reader.read_new())
    for seed in range(12):  # past the limit: the file is renamed and a new one begun
        writer.add(*rows(BLOCK_ROWS, seed=seed))
        writer.flush()
    assert (tmp_path / "counts-a.jsonl.1").exists()
    seen += len(reader.read_new())
    assert seen == 13


def test_a_torn_line_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    writer = CountsWriter(tmp_path, example(), replica="a")
    writer.add(*rows(BLOCK_ROWS))
    writer.close()
    with (tmp_path / "counts-a.jsonl").open("ab") as file:
        file.write(b'{"t": 1, "ref": "x", "rows"\n')
    reader = CountsReader(tmp_path)
    assert len(reader.read_new()) == 1 and reader.skipped == 1


def test_counts_that_cannot_be_written_are_dropped_with_one_warning_each_way(tmp_path: Path, caplog) -> None:
    blocked = tmp_path / "inputs"
    blocked.write_text("a file where the folder should be")
    writer = CountsWriter(blocked, example(), replica="a")
    with caplog.at_level(logging.WARNING):
        for seed in range(3):
            writer.add(*rows(BLOCK_ROWS, seed=seed))
            writer.flush()
        assert writer.dropped == 3
        blocked.unlink()
        writer.add(*rows(BLOCK_ROWS))
        writer.flush()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2 and "dropping them" in warnings[0] and "3 blocks were dropped" in warnings[1]
    assert [block.rows for block in CountsReader(blocked).read_new()] == [BLOCK_ROWS]


def test_of_replicas_that_learn_at_once_the_first_reference_kept_wins(tmp_path: Path) -> None:
    first, second = example(seed=1), example(seed=2)
    assert learned(tmp_path, first.model_sha256) is None
    assert keep_learned(tmp_path, first) == first
    assert keep_learned(tmp_path, second) == first
    assert learned(tmp_path, first.model_sha256) == first
    assert [path.name for path in tmp_path.iterdir()] == [f"learned-{first.model_sha256[:16]}.json"]


def test_files_untouched_for_a_week_are_removed_when_a_replica_starts(tmp_path: Path) -> None:
    old = tmp_path / "counts-gone-1.jsonl"
    old.write_text("")
    os.utime(old, (0, 0))
    writer = CountsWriter(tmp_path, example(), replica="a")
    writer.add(*rows(BLOCK_ROWS))
    writer.flush()
    assert not old.exists() and (tmp_path / "counts-a.jsonl").exists()


@pytest.mark.parametrize(
    "line",
    [
        b"[]",
        b'{"t": 1, "ref": "r", "rows": 5, "counts": [1, -2]}',
        b"\xff",
        b'{"t": 1, "ref": "r", "rows": 1e999, "counts": [1]}',
        b'{"t": 1, "ref": "r", "rows": 1, "counts": [99999999999999999999]}',
        b"[" * 100_000,
    ],
)
def test_lines_that_are_no_block_are_counted_not_read(tmp_path: Path, line: bytes) -> None:
    (tmp_path / "counts-x.jsonl").write_bytes(line + b"\n")
    reader = CountsReader(tmp_path)
    assert reader.read_new() == [] and reader.skipped == 1


def test_a_file_renamed_away_while_the_reader_is_behind_is_read_to_its_end_and_then_caught_up(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(input_counts, "READ_LIMIT", 4000)
    writer = CountsWriter(tmp_path, example(), replica="a")
    for seed in range(30):
        writer.add(*rows(BLOCK_ROWS, seed=seed))
    writer.close()
    reader = CountsReader(tmp_path)
    seen = len(reader.read_new())
    assert not reader.caught_up
    os.replace(tmp_path / "counts-a.jsonl", tmp_path / "counts-a.jsonl.1")  # rotated, and no new file yet
    for _ in range(100):  # plot reads until caught up: that must end
        seen += len(reader.read_new())
        if reader.caught_up:
            break
    assert reader.caught_up and seen == 30


def test_a_write_that_stops_part_way_costs_the_torn_line_only(tmp_path: Path, monkeypatch) -> None:
    """A full disk in the middle of a batch: the writer never cuts the file plot may be reading; the next batch
    starts on a line of its own, so every whole block written is read."""

    class DiskFillsOnce:
        failed = False

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def write(self, fd: int, data: memoryview) -> int:
            if not DiskFillsOnce.failed and len(data) > 300:  # the second batch, of three blocks
                DiskFillsOnce.failed = True
                os.write(fd, data[: len(data) // 2])
                raise OSError(28, "No space left on device")
            return os.write(fd, data)

    writer = CountsWriter(tmp_path, example(), replica="a")
    writer.add(*rows(BLOCK_ROWS, seed=1))
    writer.flush()
    monkeypatch.setattr(input_counts, "os", DiskFillsOnce())
    writer.add(*rows(3 * BLOCK_ROWS, seed=2))
    writer.flush()
    assert writer.dropped == 3
    writer.add(*rows(2 * BLOCK_ROWS, seed=3))
    writer.flush()
    reader = CountsReader(tmp_path)
    blocks = reader.read_new()
    assert reader.skipped == 1  # the torn line
    assert len(blocks) >= 3 and sum(block.rows for block in blocks[-2:]) == 2 * BLOCK_ROWS


def test_a_replica_whose_file_was_removed_writes_a_new_one(tmp_path: Path) -> None:
    writer = CountsWriter(tmp_path, example(), replica="a")
    writer.add(*rows(BLOCK_ROWS))
    writer.flush()
    (tmp_path / "counts-a.jsonl").unlink()  # removed as stale while the replica was idle
    writer.add(*rows(BLOCK_ROWS, seed=2))
    writer.flush()
    assert len(CountsReader(tmp_path).read_new()) == 1


class PidOne:
    """The os module as a replica in a container sees it: its pid is 1, as every other replica's."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def getpid() -> int:
        return 1


def keep_one(folder: Path, seed: int, start, kept) -> None:  # a replica learning in a process of its own
    input_counts.os = PidOne()  # type: ignore[assignment]  # in this forked child only
    candidate = example(seed=seed)
    start.wait()
    kept.put(keep_learned(folder, candidate).id)


def test_replicas_learning_at_the_same_moment_keep_one_whole_reference(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for trial in range(30):
        folder = tmp_path / str(trial)
        start, kept = context.Barrier(2), context.Queue()
        processes = [context.Process(target=keep_one, args=(folder, seed, start, kept)) for seed in (1, 2)]
        for process in processes:
            process.start()
        ids = {kept.get(timeout=60), kept.get(timeout=60)}
        for process in processes:
            process.join()
        reference = learned(folder, example().model_sha256)
        assert reference is not None and ids == {reference.id}
        assert [path.name for path in folder.iterdir()] == [f"learned-{reference.model_sha256[:16]}.json"]
