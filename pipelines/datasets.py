"""The data sets the pipelines know: where their loader is, and their extra metrics and baselines.

The loaders live in `mtrec.data.datasets` (`LOADERS`, keyed by the data
set's folder name); a pipeline config names the folder in `dataset`. Most data sets
need nothing more; a data set can add metrics that need more than one task's
labels (the S&P 500 daily rank IC) and reference predictors beyond the
constant one (persistence, the historical mean).
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


@dataclasses.dataclass(frozen=True)
class DatasetHooks:
    """What a data set adds to the generic pipeline.

    Args:
        extra_metrics: more test metrics per task, from the test rows and
            one model's predictions.
        reference_predictors: simple predictors reported beside the models.
        extra_columns: test-frame columns the hooks read (kept when the
            test split is loaded for evaluation).
    """

    extra_metrics: ExtraMetrics | None = None
    reference_predictors: ReferencePredictors | None = None
    extra_columns: tuple[str, ...] = ()


#: Data set folder -> the module of this package that defines its `HOOKS`.
HOOK_MODULES = {"sp500_stocks_5yr": "sp500"}


def hooks_for(dataset: str) -> DatasetHooks:
    """The hooks of a data set folder (none for most)."""
    module = HOOK_MODULES.get(dataset)
    return importlib.import_module(f"mtrec.pipelines.{module}").HOOKS if module else DatasetHooks()


def hook_sources(dataset: str) -> list[Path]:
    """Source files of a data set's hooks (part of the evaluate step's fingerprint)."""
    module = HOOK_MODULES.get(dataset)
    return [Path(__file__).with_name(f"{module}.py")] if module else []


def loader_for(dataset: str) -> Callable[..., pd.DataFrame]:
    """The loader of a data set folder (`mtrec.data.datasets.LOADERS[dataset]`).

    Raises:
        ConfigError: no loader for that folder (the message lists the ones there are).
    """
    from mtrec.data.datasets import LOADERS

    if dataset not in LOADERS:
        raise ConfigError(f"dataset '{dataset}' has no loader in mtrec.data.datasets.LOADERS."
                          f"{closest(dataset, LOADERS)} Data sets with a loader: {sorted(LOADERS)}")
    return LOADERS[dataset]


def loader_source(dataset: str) -> Path:
    """The loaders' package folder, whose source is part of the prepare step's fingerprint."""
    import mtrec.data.datasets as module

    return Path(module.__file__).parent


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data sets folder: `data_dir` when given, else the loaders' `default_data_dir()`."""
    if data_dir:
        return Path(data_dir).expanduser()
    from mtrec.data.datasets import default_data_dir
    return Path(default_data_dir())


def call_loader(dataset: str, data_dir: Path, **kwargs: Any) -> pd.DataFrame:
    """Loads a data set's typed frame with its loader."""
    return loader_for(dataset)(data_dir, **kwargs)
