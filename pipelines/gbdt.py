"""What a tabular user would pick instead: one LightGBM model per task, on the same splits.

The inputs are the raw columns the mtrec features read (from the prepared
`features.json`): numeric columns as they are (LightGBM handles NaN),
categorical columns as pandas categories (categories fixed on the training
split, so every split codes them alike), multi-valued columns as one 0/1
column per frequent value. Each task gets its own booster, with early
stopping on the validation split (AUC for binary tasks, L2 for regression,
multi-logloss for multiclass). Rows whose label is missing are dropped per
task. A chained (ESMM) task is fit on its own label over all rows, as a
tabular user would.

LightGBM is an optional extra (`pip install mtrec[gbdt]`); without it the
baseline is skipped with a note in the report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from mtrec.features import FeatureEncoder
from mtrec.features.sequences import split_cells
from mtrec.pipelines.config import LightGBMConfig
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask, Task


def lightgbm_available() -> bool:
    """Whether the optional `lightgbm` package can be imported."""
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


class TabularFrame:
    """Builds the LightGBM input table from raw rows, fit on the training split.

    Args:
        encoder: the fitted mtrec feature encoder (which columns, of which kind).
        max_onehot: most frequent values kept per multi-valued column.
        derived: `{token column: its source columns}`: a derived token column
            is replaced by its sources (strings as categories, numbers as numbers).
        types: `{column: dtype}` of the raw table, to type derived sources.
    """

    def __init__(self, encoder: FeatureEncoder, max_onehot: int = 64,
                 derived: dict[str, list[str]] | None = None, types: dict[str, Any] | None = None) -> None:
        derived, types = derived or {}, types or {}
        self.numeric = [state.column for state in encoder.numeric_]
        self.categorical = [spec.name for spec in encoder.categorical_features]
        self.multi = {spec.name: spec.separator for spec in encoder.multi_categorical_features
                      if spec.name not in derived}
        for spec in encoder.multi_categorical_features:
            for column in derived.get(spec.name, []):
                numeric = pd.api.types.is_numeric_dtype(types.get(column, object))
                target = self.numeric if numeric else self.categorical
                if column not in target:
                    target.append(column)
        self.max_onehot = max_onehot

    def fit(self, train: pd.DataFrame) -> TabularFrame:
        """Fixes the categories and the multi-valued columns' kept values on the training rows."""
        self.categories_ = {c: pd.Index(pd.unique(_as_strings(train[c]).dropna())) for c in self.categorical}
        self.tokens_ = {}
        for name, separator in self.multi.items():
            uniques, codes, _ = split_cells(train[name], separator)
            counts = np.bincount(codes, minlength=len(uniques))
            self.tokens_[name] = [str(uniques[i]) for i in np.argsort(-counts, kind="stable")[: self.max_onehot]]
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The LightGBM input columns for any split."""
        columns: dict[str, Any] = {c: pd.to_numeric(frame[c], errors="coerce").astype("float64")
                                   for c in self.numeric}
        for c in self.categorical:
            columns[c] = pd.Categorical(_as_strings(frame[c]), categories=self.categories_[c])
        for name, separator in self.multi.items():
            uniques, codes, lengths = split_cells(frame[name], separator)
            rows = np.repeat(np.arange(len(frame)), lengths)
            tokens = np.asarray([str(u) for u in uniques], dtype=object)[codes]
            for token in self.tokens_[name]:
                flag = np.zeros(len(frame), dtype="float32")
                flag[rows[tokens == token]] = 1.0
                columns[f"{name}={token}"] = flag
        out = pd.DataFrame(columns, index=frame.index)
        # LightGBM refuses some characters in feature names.
        out.columns = [_safe_name(c) for c in out.columns]
        return out


def _as_strings(series: pd.Series) -> pd.Series:
    """Values as strings, missing ones kept missing (LightGBM's own missing-value branch)."""
    return series.astype(object).where(series.isna(), series.astype(str))


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_=-." else "_" for ch in str(name))


def task_objective(task: Task) -> dict[str, Any]:
    """LightGBM objective and early-stopping metric for a task kind."""
    if isinstance(task, BinaryTask):
        return {"objective": "binary", "metric": "auc"}
    if isinstance(task, RegressionTask):
        return {"objective": "regression", "metric": "l2"}
    if isinstance(task, MulticlassTask):
        return {"objective": "multiclass", "num_class": task.num_classes, "metric": "multi_logloss"}
    raise TypeError(f"No LightGBM objective for task kind {type(task).__name__}")


def fit_lightgbm(tasks: list[Task], encoder: FeatureEncoder, frames: dict[str, pd.DataFrame],
                 labels: dict[str, dict[str, np.ndarray]], config: LightGBMConfig,
                 seed: int = 0, derived: dict[str, list[str]] | None = None,
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Trains one booster per task and predicts the test split.

    Args:
        tasks: the tasks (auxiliary ones included; the caller may drop them).
        encoder: the fitted feature encoder (which raw columns, of which kind).
        frames: raw rows by split (`train`, `valid`, `test`).
        labels: `{split: {task: float (n, 1) labels, NaN where missing}}`.
        config: LightGBM settings.
        seed: LightGBM's seed.
        derived: `{token column: source columns}` (see `TabularFrame`).

    Returns:
        `({task: test predictions}, {task: {"best_iteration", "seconds"}})`;
        predictions are probabilities (binary), values (regression) or
        `(n, classes)` probabilities (multiclass).
    """
    import lightgbm as lgb

    builder = TabularFrame(encoder, config.max_onehot_categories, derived,
                           dict(frames["train"].dtypes.items())).fit(frames["train"])
    x = {name: builder.transform(frame) for name, frame in frames.items()}
    predictions: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for task in tasks:
        started = time.perf_counter()
        params = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20,
                  "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
                  # One thread: OpenMP's spinning threads fight TensorFlow's pool (and other
                  # processes) for the cores; on a busy 2-core machine one thread is ~7x faster.
                  "verbosity": -1, "seed": seed, "num_threads": 1,
                  **config.params, **task_objective(task)}
        sets, rows = {}, {}
        for split in ("train", "valid"):
            y = labels[split][task.name].reshape(-1)
            present = ~np.isnan(y)
            rows[split] = int(present.sum())
            sets[split] = lgb.Dataset(x[split].loc[present], label=y[present], free_raw_data=False)
        has_valid = rows["valid"] > 0
        callbacks = [lgb.early_stopping(config.early_stopping_rounds, verbose=False)] if has_valid else []
        booster = lgb.train(params, sets["train"], num_boost_round=config.num_boost_round,
                            valid_sets=[sets["valid"]] if has_valid else None, callbacks=callbacks)
        best = booster.best_iteration or booster.current_iteration()
        predictions[task.name] = np.asarray(booster.predict(x["test"], num_iteration=best))
        info[task.name] = {"best_iteration": int(best), "seconds": round(time.perf_counter() - started, 2)}
    return predictions, info
