"""Tests of mtrec.data.io: reading and writing Parquet and CSV tables."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtrec.data.io import ParquetBatchWriter, count_rows, iter_parquet_batches, read_schema, read_table, write_parquet
from mtrec.errors import DataError, SchemaError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "user_id": np.arange(50, dtype=np.int64),
        "click": rng.integers(0, 2, 50).astype(np.int64),
        "score": rng.normal(size=50),
        "city": [f"c{i % 7}" for i in range(50)],
    })


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)


# --------------------------------------------------------------------------- round trips


def test_parquet_round_trip(tmp_path, frame):
    path = write_parquet(frame, tmp_path / "rows.parquet")
    assert path == tmp_path / "rows.parquet"
    back = read_table(path)
    assert_same(back, frame)
    assert back["user_id"].dtype == np.int64
    assert read_schema(path).names == list(frame.columns)
    assert count_rows(path) == 50


@pytest.mark.parametrize("name, sep", [("rows.csv", ","), ("rows.tsv", "\t"), ("rows.csv.gz", ",")])
def test_csv_round_trip(tmp_path, frame, name, sep):
    path = tmp_path / name
    frame.to_csv(path, sep=sep, index=False)
    assert_same(read_table(path), frame)
    assert read_schema(path).names == list(frame.columns)
    assert_same(read_table(str(path), columns=["score", "user_id"]), frame[["score", "user_id"]])


def test_read_columns_keeps_requested_order(tmp_path, frame):
    path = write_parquet(frame, tmp_path / "rows.pq")
    back = read_table(path, columns=["city", "user_id"])
    assert list(back.columns) == ["city", "user_id"]
    assert_same(back, frame[["city", "user_id"]])


def test_list_of_paths_is_concatenated(tmp_path, frame):
    first = write_parquet(frame.iloc[:20], tmp_path / "a.parquet")
    second = tmp_path / "b.csv"
    frame.iloc[20:].to_csv(second, index=False)
    back = read_table([first, second])
    assert_same(back, frame)
    assert list(back.index) == list(range(50))


def test_list_with_different_columns_is_a_schema_error(tmp_path, frame):
    first = write_parquet(frame, tmp_path / "a.parquet")
    second = write_parquet(frame.drop(columns=["city"]), tmp_path / "b.parquet")
    with pytest.raises(SchemaError, match=r"b\.parquet.*lacks \['city'\]"):
        read_table([first, second])


def test_folder_of_parquet_files(tmp_path, frame):
    folder = tmp_path / "parts"
    write_parquet(frame.iloc[:30], folder / "part-0.parquet")
    write_parquet(frame.iloc[30:], folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")  # marker files are skipped
    back = read_table(folder).sort_values("user_id")
    assert_same(back, frame)
    assert count_rows(folder) == 50
    assert read_schema(folder).names == list(frame.columns)


def test_folder_without_parquet_files(tmp_path):
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"holds no Parquet files.*notes\.txt"):
        read_table(folder)


# --------------------------------------------------------------------------- errors


def test_missing_file_names_the_path_and_close_files(tmp_path, frame):
    write_parquet(frame, tmp_path / "train.parquet")
    missing = tmp_path / "trian.parquet"
    with pytest.raises(DataError) as info:
        read_table(missing)
    message = str(info.value)
    assert f"No such file: {missing.resolve()}" in message
    assert "train.parquet" in message  # the close name in the same folder


def test_missing_file_in_missing_folder(tmp_path):
    missing = tmp_path / "nowhere" / "rows.parquet"
    with pytest.raises(DataError, match="does not exist either"):
        read_schema(missing)


@pytest.mark.parametrize("name", ["empty.parquet", "empty.csv"])
def test_zero_byte_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty \(0 bytes\)") as info:
        read_table(path)
    assert str(path.resolve()) in str(info.value)


def test_parquet_with_zero_rows(tmp_path, frame):
    path = write_parquet(frame.head(0), tmp_path / "none.parquet")
    with pytest.raises(DataError, match="has 0 rows"):
        read_table(path)
    assert read_schema(path).names == list(frame.columns)  # the schema is still readable


def test_csv_with_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="header but no rows"):
        read_table(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "garbage.parquet"
    path.write_bytes(np.random.default_rng(1).bytes(256))
    for read in (read_table, read_schema, count_rows):
        with pytest.raises(DataError, match=r"Cannot read .*garbage\.parquet as Parquet: "):
            read(path)


def test_corrupt_gzip_csv(tmp_path):
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"Cannot read .*rows\.csv\.gz as CSV"):
        read_table(path)


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'.*\.parquet.*\.csv"):
        read_table(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_missing_column_suggests_the_closest(tmp_path, frame, suffix):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        write_parquet(frame, path)
    with pytest.raises(SchemaError) as info:
        read_table(path, columns=["user_id", "clik"])
    message = str(info.value)
    assert "'clik'" in message
    assert "Did you mean 'click'?" in message
    assert str(list(frame.columns)) in message
    assert str(path.resolve()) in message


def test_count_rows_refuses_csv(tmp_path, frame):
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="only Parquet"):
        count_rows(path)


# --------------------------------------------------------------------------- batches


def test_batches_cover_all_rows_in_order(tmp_path, frame):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=16)
    batches = list(iter_parquet_batches(path, batch_size=7, columns=["user_id", "score"]))
    assert all(0 < len(b) <= 7 for b in batches)
    assert all(list(b.columns) == ["user_id", "score"] for b in batches)
    assert_same(pd.concat(batches), frame[["user_id", "score"]])
    assert sum(len(b) for b in batches) == count_rows(path) == 50


def test_batches_over_a_list_and_a_folder(tmp_path, frame):
    folder = tmp_path / "parts"
    write_parquet(frame.iloc[:25], folder / "part-0.parquet")
    write_parquet(frame.iloc[25:], folder / "part-1.parquet")
    single = write_parquet(frame, tmp_path / "all.parquet")
    batches = list(iter_parquet_batches([folder, single], batch_size=10))
    got = pd.concat(batches)
    assert len(got) == 100
    assert sorted(got["user_id"]) == sorted(list(frame["user_id"]) * 2)


def test_batches_check_columns_and_batch_size_before_reading(tmp_path, frame):
    path = write_parquet(frame, tmp_path / "rows.parquet")
    with pytest.raises(SchemaError, match="Did you mean 'score'"):
        iter_parquet_batches(path, 10, columns=["scor"])
    with pytest.raises(ValueError, match="batch_size=0"):
        iter_parquet_batches(path, 0)
    csv = tmp_path / "rows.csv"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError, match="Parquet only"):
        iter_parquet_batches(csv, 10)


# --------------------------------------------------------------------------- writing


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_write_parquet_leaves_no_file_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    bad = pd.DataFrame({"mixed": [1, "a", 2.5]})  # Arrow cannot convert mixed objects
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        write_parquet(bad, target)
    assert _files(tmp_path) == []


def test_write_parquet_replaces_atomically(tmp_path, frame):
    target = write_parquet(frame, tmp_path / "out.parquet")
    write_parquet(frame.iloc[:5], target)
    assert len(read_table(target)) == 5
    assert _files(tmp_path) == ["out.parquet"]


def test_batch_writer_writes_all_batches(tmp_path, frame):
    target = tmp_path / "sub" / "scores.parquet"
    with ParquetBatchWriter(target) as writer:
        for start in range(0, 50, 16):
            writer.write(frame.iloc[start:start + 16])
            # Nothing is at the target until the block ends.
            assert not target.exists()
    assert writer.rows_written == 50
    assert_same(read_table(target), frame)
    assert _files(target.parent) == ["scores.parquet"]


def test_batch_writer_leaves_nothing_on_exception(tmp_path, frame):
    target = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError, match="scoring failed"):
        with ParquetBatchWriter(target) as writer:
            writer.write(frame)
            raise RuntimeError("scoring failed")
    assert _files(tmp_path) == []


def test_batch_writer_keeps_the_old_file_on_exception(tmp_path, frame):
    target = write_parquet(frame, tmp_path / "scores.parquet")
    with pytest.raises(KeyError):
        with ParquetBatchWriter(target) as writer:
            writer.write(frame.iloc[:3])
            raise KeyError("boom")
    assert_same(read_table(target), frame)
    assert _files(tmp_path) == ["scores.parquet"]


def test_batch_writer_casts_and_rejects_batches(tmp_path, frame):
    target = tmp_path / "scores.parquet"
    with ParquetBatchWriter(target) as writer:
        writer.write(frame)
        writer.write(frame.astype({"user_id": np.int32})[list(reversed(frame.columns))])
    assert read_table(target)["user_id"].dtype == np.int64
    assert count_rows(target) == 100
    with pytest.raises(SchemaError, match="Column 'score' of a batch"):
        with ParquetBatchWriter(tmp_path / "bad.parquet") as writer:
            writer.write(frame)
            writer.write(frame.assign(score="high"))
    assert not (tmp_path / "bad.parquet").exists()
    with pytest.raises(SchemaError, match=r"missing \['city'\]"):
        with ParquetBatchWriter(tmp_path / "bad.parquet") as writer:
            writer.write(frame)
            writer.write(frame.drop(columns=["city"]))
    assert _files(tmp_path) == ["scores.parquet"]


def test_batch_writer_without_batches_writes_an_empty_file(tmp_path, frame):
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    target = tmp_path / "empty.parquet"
    with ParquetBatchWriter(target, schema=schema):
        pass
    assert count_rows(target) == 0
    assert read_schema(target).names == list(frame.columns)


def test_gzip_csv_written_by_hand(tmp_path):
    path = tmp_path / "hand.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("a,b\n1,x\n2,y\n")
    expected = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert_same(read_table(path), expected)
