"""Label correlation between tasks: how related are the targets before any model is trained?

Pearson correlation on the rows where both labels are present; for two
binary (0/1) labels Pearson's r is the phi coefficient, and it is reported
as such. Multiclass labels have no meaningful linear correlation with a
class index and are left out (method `"skipped"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mtrec.data.splits import make_splits
from mtrec.tasks import MulticlassTask


def _is_binary(values: np.ndarray) -> bool:
    return values.size > 0 and bool(np.isin(values, (0.0, 1.0)).all())


def pair_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """Pearson correlation of two label columns on rows where both are present.

    Args:
        a, b: label arrays of the same length, NaN where missing.

    Returns:
        (correlation, rows used); NaN when fewer than 2 rows or a constant column.
    """
    a = np.asarray(a, dtype="float64").ravel()
    b = np.asarray(b, dtype="float64").ravel()
    if a.shape != b.shape:
        raise ValueError(f"Label columns differ in length: {a.size} vs {b.size}.")
    both = ~(np.isnan(a) | np.isnan(b))
    x, y = a[both], b[both]
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan"), int(x.size)
    return float(np.corrcoef(x, y)[0, 1]), int(x.size)


def label_correlation(labels: Mapping[str, np.ndarray],
                      skip: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Correlation between every pair of task labels.

    Args:
        labels: {task: labels}, aligned rows, NaN where missing.
        skip: tasks to leave out (multiclass).

    Returns:
        One row per pair: `task_a`, `task_b`, `method` ("phi" for two binary
        labels, "pearson" otherwise, "skipped"), `correlation`, `rows`.
    """
    names = list(labels)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a in skip or b in skip:
                rows.append({"task_a": a, "task_b": b, "method": "skipped",
                             "correlation": float("nan"), "rows": 0})
                continue
            # Column 0 is the label (a task with sample_weight carries its weights beside it).
            va, vb = (np.asarray(labels[t], dtype="float64").reshape(len(labels[t]), -1)[:, 0] for t in (a, b))
            r, n = pair_correlation(va, vb)
            binary = _is_binary(va[~np.isnan(va)]) and _is_binary(vb[~np.isnan(vb)])
            rows.append({"task_a": a, "task_b": b, "method": "phi" if binary else "pearson",
                         "correlation": r, "rows": n})
    return pd.DataFrame(rows, columns=["task_a", "task_b", "method", "correlation", "rows"])


def correlation_matrix(pairs: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """The pairs of `label_correlation` as a symmetric task x task matrix (1 on the diagonal)."""
    out = pd.DataFrame(np.eye(len(tasks)), index=tasks, columns=tasks)
    for row in pairs.itertuples():
        out.loc[row.task_a, row.task_b] = out.loc[row.task_b, row.task_a] = row.correlation
    return out


def training_label_correlation(config: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """`label_correlation` on the training split of a config's data.

    Args:
        config: an ExperimentConfig (or a loaded run's `config`).
        frame: the full table; split as in training (`config.data.split`).
    """
    from mtrec.training.prepare import encode_labels

    train = frame.iloc[make_splits(frame, config.data.split).train]
    labels = encode_labels(config.tasks, train, "the training split")
    skip = {t.name for t in config.tasks if isinstance(t, MulticlassTask)}
    return label_correlation(labels, skip=skip)
