"""Scores a run's own split: `mtrec score --split test RUN_DIR OUT`.

The rows are the ones the run trained, validated or tested on, as
`RUN_DIR/splits.parquet` records them (`mtrec.training.split_rows`): the
run's `data.path` is read again as training read it (or the synthetic
generator rerun with the run's settings) and the recorded positions taken.
The output is the split's `row` positions, the id columns, then one column
per task, as `mtrec score` writes them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mtrec.data.io import write_parquet
from mtrec.errors import DataError
from mtrec.scoring.score import ScoreSummary, check_output_path, score_frame
from mtrec.training.split_rows import read_split_rows
from mtrec.training.trained_run import load_run


def score_split(run_dir: str | Path, output_path: str | Path, split: str = "test",
                batch_size: int | None = None) -> ScoreSummary:
    """Scores the rows of one of a run's splits and writes Parquet atomically.

    Args:
        run_dir: the run directory.
        output_path: the Parquet file to write: `row` (the row's position in
            the run's table), the id columns, one column per task.
        split: `"train"`, `"valid"` or `"test"`.
        batch_size: rows per step (default: the run's `scoring.batch_size`).

    Returns:
        A ScoreSummary.

    Raises:
        DataError: the run has no split record, its rows came from a
            DataFrame passed to `train` (nothing to read back), the table
            changed since training (row count or id values differ), or the
            output path is a folder or the input itself.
    """
    run_dir, output_path = Path(run_dir), Path(output_path)
    rows, info = read_split_rows(run_dir, split)
    if info.get("source") == "frame":
        raise DataError(f"The run in {run_dir} trained on a DataFrame passed to train(), not on its data.path: "
                        "there is no table to read its rows back from. Score a file with "
                        "`mtrec score RUN_DIR INPUT OUTPUT` (a pipeline's runs keep their test predictions "
                        "in predictions_test.parquet).")
    if info.get("path"):
        for path in info["path"] if isinstance(info["path"], list) else [info["path"]]:
            check_output_path(Path(path), output_path)
    run = load_run(run_dir)
    started = time.perf_counter()
    from mtrec.training.prepare import load_frame

    table, source = load_frame(run.config)
    if len(table) != info.get("rows"):
        # Every row goes to a split, so the counts agree unless the table changed since training.
        raise DataError(f"{source} has {len(table):,} rows; the run in {run_dir} was trained on "
                        f"{info.get('rows'):,}: the table changed, so its {split} rows are no longer known.")
    positions = rows["row"].to_numpy()
    part = table.iloc[positions].reset_index(drop=True)
    for column in info.get("id_columns") or []:
        if column in rows and not np.array_equal(part[column].to_numpy(), rows[column].to_numpy()):
            raise DataError(f"Id column '{column}' of {source} differs from the values recorded when the run in "
                            f"{run_dir} was trained: the table changed, so its {split} rows are no longer known.")
    scores = score_frame(run, part, batch_size=batch_size)
    scores.insert(0, "row", positions)
    write_parquet(scores, output_path)
    return ScoreSummary(output_path, len(scores), time.perf_counter() - started, {})
