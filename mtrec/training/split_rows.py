"""Which rows went to which split: `RUN_DIR/splits.parquet`, written when a run starts training.

One row per table row used, in split order then table order:

    split   "train", "valid" or "test"
    row     the row's position in the table the run read (0-based, int64)
    <id>    the values of `data.id_columns`, when set

and `RUN_DIR/splits.json`: where the rows came from (`data.path`, the
synthetic generator, or a DataFrame passed to `train`), the table's row count
and the id columns. `mtrec score --split test RUN_DIR OUT`
(`mtrec.scoring.run_split`) reads them to score the run's own test rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec.data.io import read_table, write_parquet
from mtrec.errors import DataError
from mtrec.utils.atomic import write_json

SPLITS_FILE = "splits.parquet"
SPLITS_INFO = "splits.json"
SPLIT_NAMES = ("train", "valid", "test")


def split_positions(prepared: Any, name: str) -> np.ndarray:
    """The table positions of one split's rows (int64).

    In memory they are the split's `index`; streamed (`prepared.shards`
    set), the prepared shards' `row` column, since the split then holds only
    a sample in memory.
    """
    shards = getattr(prepared, "shards", None)
    if shards is not None:
        from mtrec.preparation.reader import read_prepared_arrays

        return np.asarray(read_prepared_arrays(shards, name, columns=["row"])["row"], dtype="int64")
    return np.asarray(prepared.splits[name].index, dtype="int64")


def save_split_rows(config: Any, prepared: Any, frame: pd.DataFrame | None, run_dir: str | Path) -> Path:
    """Writes `splits.parquet` and `splits.json` into the run directory.

    Args:
        config: the experiment (`data.path`, `data.id_columns`, `data.na_values`).
        prepared: the run's encoded splits (`PreparedData`).
        frame: the rows passed to `train`, or None when they came from `config.data`.
        run_dir: the run directory.

    Returns:
        The path of `splits.parquet`.
    """
    run_dir = Path(run_dir)
    positions = {name: split_positions(prepared, name) for name in SPLIT_NAMES}
    out: dict[str, Any] = {
        "split": np.concatenate([np.full(len(p), name) for name, p in positions.items()]).astype(object),
        "row": np.concatenate(list(positions.values())).astype("int64"),
    }
    ids = list(config.data.id_columns)
    if ids:
        table = frame if frame is not None else _id_table(config, ids)
        for column in ids:
            out[column] = table[column].to_numpy()[out["row"]]
    source = "frame" if frame is not None else ("path" if config.data.path else "synthetic")
    rows = len(frame) if frame is not None else int(len(out["row"]))
    write_json(run_dir / SPLITS_INFO, {"source": source, "path": config.data.path, "rows": rows,
                                        "id_columns": ids,
                                        "splits": {name: len(p) for name, p in positions.items()}})
    return write_parquet(pd.DataFrame(out), run_dir / SPLITS_FILE)


def _id_table(config: Any, ids: list[str]) -> pd.DataFrame:
    if config.data.path:
        return read_table(config.data.path, columns=ids, na_values=config.data.na_values)
    from mtrec.training.prepare import load_frame

    return load_frame(config)[0]


def read_split_rows(run_dir: str | Path, split: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A run's `splits.parquet` (one split's rows, or all) and `splits.json`.

    Raises:
        DataError: the run has no split record (trained before it was kept),
            or `split` is not one of train, valid, test.
    """
    run_dir = Path(run_dir)
    path, info_path = run_dir / SPLITS_FILE, run_dir / SPLITS_INFO
    if not path.is_file() or not info_path.is_file():
        raise DataError(f"{run_dir} has no {SPLITS_FILE}: the run was trained before mtrec kept its split rows, "
                        "or did not get past loading its data. Retrain it, or score a file with "
                        "`mtrec score RUN_DIR INPUT OUTPUT`.")
    if split is not None and split not in SPLIT_NAMES:
        raise DataError(f"Unknown split '{split}'; one of {list(SPLIT_NAMES)}.")
    import json

    info = json.loads(info_path.read_text())
    rows = pd.read_parquet(path)
    if split is not None:
        rows = rows[rows["split"] == split].reset_index(drop=True)
    return rows, info
