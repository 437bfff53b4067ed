"""Per-task evaluation in NumPy: the numbers that go into reports.

Missing labels (NaN) are dropped per task, as in training. Each task also
gets the metric of a constant predictor fit on the training labels, so a
report always shows whether the model beats the trivial baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask, Task

_EPS = 1e-7


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties get half credit), NaN with a single class present."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype="float64").ravel()
    positives = labels.sum()
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(labels.size, dtype="float64")
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [labels.size]])
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy."""
    p = np.clip(np.asarray(probabilities, dtype="float64").ravel(), _EPS, 1 - _EPS)
    y = np.asarray(labels, dtype="float64").ravel()
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (1 - SSE / SST around the labels' own mean)."""
    y = np.asarray(labels, dtype="float64").ravel()
    p = np.asarray(predictions, dtype="float64").ravel()
    error = p - y
    sst = np.sum((y - y.mean()) ** 2)
    return {
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(1 - np.sum(error ** 2) / sst) if sst > 0 else float("nan"),
    }


def task_metrics(task: Task, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The report metrics of one task on rows whose label is present.

    Args:
        task: the task.
        labels: float `(n, 1)` labels, NaN where missing.
        predictions: the model's output for the task, `(n, units)`.

    Returns:
        Metric name -> value, plus `count` (labelled rows).
    """
    labels = np.asarray(labels, dtype="float64").reshape(len(labels), -1)[:, 0]
    present = ~np.isnan(labels)
    y, p = labels[present], np.asarray(predictions)[present]
    out: dict[str, float] = {"count": int(present.sum())}
    if not present.any():
        return out
    if isinstance(task, BinaryTask):
        out.update(auc=roc_auc(y, p), logloss=log_loss(y, p), positive_rate=float(y.mean()))
    elif isinstance(task, RegressionTask):
        out.update(regression_metrics(y, p))
    elif isinstance(task, MulticlassTask):
        probs = np.clip(p.astype("float64"), _EPS, 1.0)
        out.update(
            accuracy=float(np.mean(probs.argmax(axis=1) == y)),
            crossentropy=float(-np.mean(np.log(probs[np.arange(len(y)), y.astype(int)]))),
        )
    return out


def constant_baseline(task: Task, train_labels: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics of predicting the training mean (or class frequencies) for every row."""
    train = np.asarray(train_labels, dtype="float64").ravel()
    train = train[~np.isnan(train)]
    n = len(labels)
    if isinstance(task, MulticlassTask):
        freq = np.bincount(train.astype(int), minlength=task.num_classes) / max(len(train), 1)
        constant = np.tile(freq, (n, 1))
    else:
        constant = np.full((n, 1), train.mean() if len(train) else 0.0)
    metrics = task_metrics(task, labels, constant)
    metrics.pop("count", None)
    metrics.pop("positive_rate", None)
    return metrics


def evaluate_predictions(
    tasks: list[Task],
    labels: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
    train_labels: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-task metrics (and the constant baseline's, when train labels are given)."""
    report: dict[str, Any] = {}
    for task in tasks:
        entry = task_metrics(task, labels[task.name], predictions[task.name])
        if train_labels is not None:
            entry["constant_baseline"] = constant_baseline(task, train_labels[task.name], labels[task.name])
        report[task.name] = entry
    return report
