"""Where a pipeline's table comes from, and what a data set adds to the generic pipeline.

Every pipeline reads one table and runs the same steps on it. The table is
named in one of two ways:

- `experiment.data.path`: a Parquet/CSV file, a folder of Parquet files, or a
  list of them, read as `mtrec train` reads it (`mtrec.data.io.read_table`,
  with the experiment's `data.na_values`). No code: this is how your own
  data goes in (`mtrec pipeline -c my.yaml`).
- `dataset`: a data set with hooks. Its optional loader turns the raw files
  in `<data_dir>/<dataset>/` into the typed table; the five shipped data sets
  (`mtrec.data.datasets.LOADERS`) use it because their raw files need parsing
  (fixed-width census records, MovieLens's three files, daily prices turned
  into features). A data set may also add metrics that need more than one
  task's labels (the S&P 500 daily rank IC) and reference predictors beyond
  the constant one (persistence, the historical mean).

Everything downstream (split, features, training, LightGBM, the constant
predictor, gains, `evaluation.md`) is the same for both.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError
from mtrec.utils.validation import closest

#: `(test_frame, predictions by task) -> {task: {metric: value}}`.
ExtraMetrics = Callable[[pd.DataFrame, dict[str, np.ndarray]], dict[str, dict[str, float]]]
#: `(train_frame, test_frame) -> {predictor name: {task: predictions}}`.
ReferencePredictors = Callable[[pd.DataFrame, pd.DataFrame], dict[str, dict[str, np.ndarray]]]
#: `(data_dir, *, nrows, max_malformed_fraction) -> the typed table` (see `mtrec.data.datasets`).
Loader = Callable[..., pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class DatasetHooks:
    """What a data set adds to the generic pipeline (every field optional).

    Args:
        loader: reads `<data_dir>/<dataset>/` into the typed table (None: the
            table comes from `experiment.data.path`).
        extra_metrics: more test metrics per task, from the test rows and
            one model's predictions.
        reference_predictors: simple predictors reported beside the models.
        extra_columns: test-frame columns the hooks read (kept when the
            test split is loaded for evaluation).
    """

    loader: Loader | None = None
    extra_metrics: ExtraMetrics | None = None
    reference_predictors: ReferencePredictors | None = None
    extra_columns: tuple[str, ...] = ()


#: Data set folder -> the module of this package that defines its metric and predictor `HOOKS`.
HOOK_MODULES = {"sp500_stocks_5yr": "sp500"}


def known_datasets() -> list[str]:
    """The data sets with hooks: the shipped loaders' folders and those with hook modules."""
    from mtrec.data.datasets import LOADERS

    return sorted(set(LOADERS) | set(HOOK_MODULES))


def hooks_for(dataset: str | None) -> DatasetHooks:
    """The hooks of a data set (its loader from `mtrec.data.datasets.LOADERS`); none for `None`."""
    if dataset is None:
        return DatasetHooks()
    from mtrec.data.datasets import LOADERS

    module = HOOK_MODULES.get(dataset)
    hooks = importlib.import_module(f"mtrec.pipelines.{module}").HOOKS if module else DatasetHooks()
    return dataclasses.replace(hooks, loader=hooks.loader or LOADERS.get(dataset))


def hook_sources(dataset: str | None) -> list[Path]:
    """Source files of a data set's metric and predictor hooks (part of the evaluate step's fingerprint)."""
    module = HOOK_MODULES.get(dataset) if dataset else None
    return [Path(__file__).with_name(f"{module}.py")] if module else []


def check_source(dataset: str | None, data_path: Any) -> None:
    """Refuses a pipeline whose table is named nowhere, or twice.

    Raises:
        ConfigError: neither `experiment.data.path` nor a `dataset` with a
            loader; or both a path and a loader (which one would be read?).
    """
    loader = hooks_for(dataset).loader if dataset else None
    if data_path and loader is not None:
        raise ConfigError(
            f"The pipeline names its table twice: experiment.data.path ({data_path}) and dataset "
            f"'{dataset}', whose loader reads <data_dir>/{dataset}/. Keep one.")
    if not data_path and loader is None:
        if dataset:
            raise ConfigError(
                f"dataset '{dataset}' has no loader.{closest(dataset, known_datasets())} Name your own table "
                "with experiment.data.path (a Parquet/CSV file, a folder of Parquet files or a list); "
                f"data sets with a loader: {known_datasets()}")
        raise ConfigError("The pipeline names no table: set experiment.data.path (a Parquet/CSV file, a folder "
                          f"of Parquet files or a list), or dataset (one of {known_datasets()}).")


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data sets folder: `data_dir` when given, else the loaders' `default_data_dir()`."""
    if data_dir:
        return Path(data_dir).expanduser()
    from mtrec.data.datasets import default_data_dir
    return Path(default_data_dir())


@dataclasses.dataclass(frozen=True)
class TableSource:
    """The table a pipeline reads.

    Args:
        description: where it comes from, for messages and reports.
        location: the file, folder or list of paths read (shown in the manifest).
        files: the files it depends on (their stats enter the prepare fingerprint).
        code: source files or folders of the code that reads it (also in the fingerprint).
        read: `(nrows, max_malformed_fraction) -> the typed table`.
    """

    description: str
    location: str | list[str]
    files: list[Path]
    code: list[Path]
    read: Callable[[int | None, float], pd.DataFrame]


def table_source(dataset: str | None, data_path: Any, na_values: list[str] | None,
                 data_dir: Path) -> TableSource:
    """The table of a pipeline: `data_path` read as `mtrec train` reads it, else the data set's loader.

    Raises:
        ConfigError: see `check_source`.
    """
    check_source(dataset, data_path)
    if data_path:
        from mtrec.data import io

        paths = [Path(p).expanduser() for p in (data_path if isinstance(data_path, list) else [data_path])]
        # A folder is read recursively (hive partitions), so its fingerprint covers every file below it.
        files = [f for p in paths for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])]

        def read(nrows: int | None, max_malformed_fraction: float) -> pd.DataFrame:
            frame = io.read_table(data_path, na_values=na_values)
            return frame.head(nrows).reset_index(drop=True) if nrows else frame

        location = [str(p) for p in paths] if isinstance(data_path, list) else str(paths[0])
        return TableSource(f"{data_path}", location, files, [Path(io.__file__)], read)

    import mtrec.data.datasets as loaders

    loader = hooks_for(dataset).loader
    folder = data_dir / dataset

    def read_loader(nrows: int | None, max_malformed_fraction: float) -> pd.DataFrame:
        return loader(data_dir, nrows=nrows, max_malformed_fraction=max_malformed_fraction)

    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return TableSource(f"the {dataset} table", str(folder.resolve()), files,
                       [Path(loaders.__file__).parent], read_loader)
