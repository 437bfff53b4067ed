"""Streamed scoring of a folder of shards: one output shard per input shard, restartable, bounded reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtrec.config import parse_config
from mtrec.data.click_log import make_click_log
from mtrec.data.io import read_table, write_parquet
from mtrec.errors import DataError, SchemaError
from mtrec.scoring import score_file, score_folder, score_frame
from mtrec.scoring.shards import MARKERS
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

ROOT = Path(__file__).resolve().parents[1]
SCORES = ["row_id", "click", "purchase", "purchase_conditional", "dwell_time"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A click-log MMoE trained for one epoch on 2,000 rows (numeric and categorical features)."""
    folder = tmp_path_factory.mktemp("streamed_scoring")
    frame = make_click_log(2000, seed=1)
    frame["row_id"] = np.arange(len(frame))
    write_parquet(frame, folder / "train.parquet")
    config = parse_config({
        "name": "score_shards",
        "data": {"path": str(folder / "train.parquet"), "id_columns": ["row_id"],
                 "split": {"kind": "hash", "seed": 1}},
        "features": [{"name": "n*", "kind": "numeric"}]
        + [{"name": f"c{i}", "kind": "categorical", "embedding_dim": 4} for i in range(4)],
        "tasks": [{"name": "click", "kind": "binary"},
                  {"name": "purchase", "kind": "binary", "after": "click"},
                  {"name": "dwell_time", "kind": "regression"}],
        "model": {"kind": "mmoe", "num_experts": 2, "expert": {"units": [8]}, "tower_units": [4]},
        "training": {"epochs": 1, "batch_size": 256, "verbose": 0, "early_stopping": None},
    })
    train(config, folder / "run")
    return folder / "run"


def _rows(n: int, seed: int) -> pd.DataFrame:
    frame = make_click_log(n, seed=seed).drop(columns=["click", "purchase", "dwell_time"])
    frame["row_id"] = np.arange(n) + 10_000 * seed
    return frame


def _shards(folder: Path) -> dict[str, pd.DataFrame]:
    """Three shards: two Parquet files (one in a hive folder) and a CSV file."""
    shards = {"part-0.parquet": _rows(700, 1), "day=2/part-1.parquet": _rows(300, 2), "part-2.csv": _rows(450, 3)}
    for name, frame in shards.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(frame, path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return shards


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.parquet")}


def test_a_folder_is_scored_shard_by_shard_as_score_frame_scores_it(run_dir, tmp_path):
    shards = _shards(tmp_path / "in")
    done = score_folder(run_dir, tmp_path / "in", tmp_path / "out", batch_size=128, progress=False)
    assert (done.shards, done.scored, done.skipped, done.rows) == (3, 3, 0, 1450)
    run = load_run(run_dir)
    for name, frame in shards.items():
        out = tmp_path / "out" / name.replace(".csv", ".parquet")
        scored = pq.read_table(out).to_pandas()
        assert list(scored.columns) == SCORES
        # The same numbers as the in-memory path on the rows as mtrec reads them (CSV in chunks of 128).
        expected = score_frame(run, read_table(tmp_path / "in" / name, na_values=run.config.data.na_values))
        np.testing.assert_array_equal(scored["row_id"], frame["row_id"])
        np.testing.assert_allclose(scored[SCORES[1:]], expected[SCORES[1:]], rtol=1e-6, atol=1e-7)
    # A Parquet reader of the output folder sees the scores only (markers are `_`-prefixed).
    assert len(pq.read_table(tmp_path / "out")) == 1450
    assert sorted(p.name for p in (tmp_path / "out" / MARKERS).rglob("*.json")) == [
        "part-0.parquet.json", "part-1.parquet.json", "part-2.parquet.json"]


def test_workers_score_a_folder_as_one_process_does(run_dir, tmp_path):
    # `mtrec score --workers 2`: two spawned processes score whole shards; the outputs, markers and
    # counts are one process's, a rerun skips every shard, and the workers print none of
    # TensorFlow's start-up lines (the command runs as a user runs it, without TF_CPP_MIN_LOG_LEVEL).
    from mtrec.utils.framework_logs import is_framework_line

    _shards(tmp_path / "in")
    one = score_folder(run_dir, tmp_path / "in", tmp_path / "one", batch_size=128, progress=False)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "mtrec.cli", "score", str(run_dir), str(tmp_path / "in"),
                           str(tmp_path / "two"), "--batch-size", "128", "--workers", "2", "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Scored 3 of 3 shards (0 already done): 1,450 rows" in done.stdout
    assert not [line for line in (done.stdout + done.stderr).splitlines() if is_framework_line(line)], done.stderr
    for name in ("part-0.parquet", "day=2/part-1.parquet", "part-2.parquet"):
        pd.testing.assert_frame_equal(pq.read_table(tmp_path / "two" / name).to_pandas(),
                                      pq.read_table(tmp_path / "one" / name).to_pandas())
    assert sorted(p.name for p in (tmp_path / "two" / MARKERS).rglob("*.json")) == sorted(
        p.name for p in (tmp_path / "one" / MARKERS).rglob("*.json"))
    again = score_folder(run_dir, tmp_path / "in", tmp_path / "two", progress=False, workers=2)
    assert (again.scored, again.skipped) == (0, 3) and one.rows == 1450
    with pytest.raises(DataError, match="workers"):
        score_folder(run_dir, tmp_path / "in", tmp_path / "x", workers=0)


def test_a_rerun_skips_finished_shards_and_rescores_a_changed_one(run_dir, tmp_path):
    _shards(tmp_path / "in")
    score_folder(run_dir, tmp_path / "in", tmp_path / "out", progress=False)
    before = _mtimes(tmp_path / "out")
    again = score_folder(run_dir, tmp_path / "in", tmp_path / "out", progress=False)
    assert (again.scored, again.skipped, again.rows) == (0, 3, 0)
    assert _mtimes(tmp_path / "out") == before
    write_parquet(_rows(50, 7), tmp_path / "in" / "part-0.parquet")  # rewritten upstream
    (tmp_path / "out" / "part-2.parquet").unlink()  # lost
    third = score_folder(run_dir, tmp_path / "in", tmp_path / "out", progress=False)
    assert (third.scored, third.skipped, third.rows) == (2, 1, 50 + 450)
    assert len(pq.read_table(tmp_path / "out" / "part-0.parquet")) == 50
    assert _mtimes(tmp_path / "out")["day=2/part-1.parquet"] == before["day=2/part-1.parquet"]


def test_a_killed_job_leaves_no_final_shard_and_a_rerun_completes(run_dir, tmp_path):
    _shards(tmp_path / "in")
    # SIGKILL at the first batch of the second shard (sorted: day=2/part-1 first, then part-0).
    script = textwrap.dedent(f"""
        import os, signal
        import mtrec.data.io as io
        write, seen = io.ParquetBatchWriter.write, set()
        def dying_write(self, batch):
            seen.add(self.path.name)
            if len(seen) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            write(self, batch)
        io.ParquetBatchWriter.write = dying_write
        from mtrec.scoring import score_folder
        score_folder({str(run_dir)!r}, {str(tmp_path / "in")!r}, {str(tmp_path / "out")!r},
                     batch_size=100, progress=False)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=180, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet") if not p.name.startswith(".")) == [
        "day=2/part-1.parquet"]
    done = score_folder(run_dir, tmp_path / "in", out, progress=False)
    assert (done.scored, done.skipped, done.rows) == (2, 1, 700 + 450)
    assert len(pq.read_table(out)) == 1450
    assert [p for p in out.rglob(".*")] == []  # the killed writer's temporary file is gone


def test_bad_folders_are_named(run_dir, tmp_path, capsys):
    from mtrec.cli import main

    _shards(tmp_path / "in")
    with pytest.raises(DataError, match="lies inside the input folder"):
        score_folder(run_dir, tmp_path / "in", tmp_path / "in" / "scores", progress=False)
    write_parquet(_rows(20, 4).drop(columns=["c2"]), tmp_path / "in" / "part-9.parquet")
    with pytest.raises(SchemaError, match="c2.*part-9.parquet|part-9.parquet.*c2"):
        score_folder(run_dir, tmp_path / "in", tmp_path / "out", progress=False)
    # The shards before it are finished and kept; the CLI says it in one line.
    assert (tmp_path / "out" / "part-2.parquet").is_file()
    (tmp_path / "in" / "part-9.parquet").write_bytes(b"PAR1 cut short")
    assert main(["score", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtrec score: error:") and "part-9.parquet" in err, err
    (tmp_path / "in" / "part-9.parquet").unlink()
    assert main(["score", str(run_dir), str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]) == 0
    assert "Scored 0 of 3 shards (3 already done): 0 rows" in capsys.readouterr().out
    # A folder scored into one file stays what it was.
    summary = score_file(run_dir, tmp_path / "in" / "day=2", tmp_path / "one.parquet", progress=False)
    assert summary.rows == 300


def test_ordered_map_keeps_the_order_and_raises_errors_where_their_items_are():
    import time

    from mtrec.scoring.score import ordered_map

    def slow_square(k):
        time.sleep(0.02 * (k % 3))  # later items often finish first
        if k == 7:
            raise DataError("item 7")
        return k * k

    assert list(ordered_map(slow_square, range(7), threads=3)) == [k * k for k in range(7)]
    seen = []
    with pytest.raises(DataError, match="item 7"):
        for value in ordered_map(slow_square, range(20), threads=3):
            seen.append(value)
    assert seen == [k * k for k in range(7)]  # every result before the failing item, none after

    def items_then_unreadable():
        yield from range(5)
        raise DataError("unreadable")

    seen = []
    with pytest.raises(DataError, match="unreadable"):
        for value in ordered_map(slow_square, items_then_unreadable(), threads=2):
            seen.append(value)
    assert seen == [k * k for k in range(5)]

    # A caller that stops early stops the thread taking the items, a bounded number of items ahead.
    taken = []

    def counted():
        for k in range(1000):
            taken.append(k)
            yield k

    results = ordered_map(slow_square, counted(), threads=2)
    assert next(results) == 0
    results.close()
    settled = len(taken)
    time.sleep(0.1)
    assert len(taken) == settled <= 8
