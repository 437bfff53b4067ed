"""Per-task evaluation in NumPy: the numbers that go into reports.

Missing labels (NaN) are dropped per task, as in training. Each task also
gets the metric of a constant predictor fit on the training labels, so a
report always shows whether the model beats the trivial baseline. A task
with `sample_weight` (label arrays `(n, 2)`: label, weight) gets its plain
metrics and, beside them, the same metrics weighted (`weighted_<metric>`),
and a constant baseline at the weighted training mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtrec.tasks import BinaryTask, CountTask, MulticlassTask, RegressionTask, Task

_EPS = 1e-7


def roc_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (ties get half credit), NaN with a single class present.

    With `weights`, each (positive, negative) pair counts with the product of
    their weights (ties half), as weighted ROC AUC does in scikit-learn.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype="float64").ravel()
    w = np.ones(labels.size) if weights is None else np.asarray(weights, dtype="float64").ravel()
    positives = w[labels].sum()
    negatives = w[~labels].sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_labels, sorted_w = scores[order], labels[order], w[order]
    # Per distinct score: the negative weight strictly below it, plus half the tied negative weight.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    neg_w = np.where(sorted_labels, 0.0, sorted_w)
    pos_w = np.where(sorted_labels, sorted_w, 0.0)
    neg_group = np.add.reduceat(neg_w, starts)
    pos_group = np.add.reduceat(pos_w, starts)
    below = np.cumsum(neg_group) - neg_group
    return float(np.sum(pos_group * (below + neg_group / 2)) / (positives * negatives))


def log_loss(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean binary cross-entropy (weighted mean with `weights`)."""
    p = np.clip(np.asarray(probabilities, dtype="float64").ravel(), _EPS, 1 - _EPS)
    y = np.asarray(labels, dtype="float64").ravel()
    return float(-np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=weights))


def regression_metrics(labels: np.ndarray, predictions: np.ndarray,
                       weights: np.ndarray | None = None) -> dict[str, float]:
    """RMSE, MAE and R² (1 - SSE / SST around the labels' own mean); weighted means with `weights`."""
    y = np.asarray(labels, dtype="float64").ravel()
    p = np.asarray(predictions, dtype="float64").ravel()
    error = p - y
    sst = np.average((y - np.average(y, weights=weights)) ** 2, weights=weights)
    mse = np.average(error ** 2, weights=weights)
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.average(np.abs(error), weights=weights)),
        "r2": float(1 - mse / sst) if sst > 0 else float("nan"),
    }


def poisson_deviance(labels: np.ndarray, rates: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean Poisson deviance 2 (y log(y / mu) - (y - mu)), with y log y = 0 at y = 0."""
    y = np.asarray(labels, dtype="float64").ravel()
    mu = np.maximum(np.asarray(rates, dtype="float64").ravel(), _EPS)
    ratio = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(np.average(2 * (ratio - (y - mu)), weights=weights))


def _metrics(task: Task, y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    """One task's metrics on labelled rows (weighted with `w`)."""
    if isinstance(task, BinaryTask):
        return {"auc": roc_auc(y, p, w), "logloss": log_loss(y, p, w),
                "positive_rate": float(np.average(y, weights=w))}
    if isinstance(task, CountTask):
        return {**regression_metrics(y, p, w), "poisson_deviance": poisson_deviance(y, p, w)}
    if isinstance(task, RegressionTask):
        return regression_metrics(y, p, w)
    if isinstance(task, MulticlassTask):
        probs = np.clip(p.astype("float64"), _EPS, 1.0)
        return {
            "accuracy": float(np.average(probs.argmax(axis=1) == y, weights=w)),
            "crossentropy": float(-np.average(np.log(probs[np.arange(len(y)), y.astype(int)]), weights=w)),
        }
    return {}


def split_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A task's label array as (labels `(n,)`, weights `(n,)` or None): the weight is a second column."""
    labels = np.asarray(labels, dtype="float64").reshape(len(labels), -1)
    return labels[:, 0], (labels[:, 1] if labels.shape[1] > 1 else None)


def task_metrics(task: Task, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The report metrics of one task on rows whose label is present.

    Args:
        task: the task.
        labels: float `(n, 1)` labels, NaN where missing; `(n, 2)` (label,
            weight) for a task with `sample_weight`.
        predictions: the model's output for the task, `(n, units)`.

    Returns:
        Metric name -> value, plus `count` (labelled rows); with weights,
        also `weighted_<metric>` for each metric and `weight_sum`.
    """
    labels, weights = split_labels(labels)
    present = ~np.isnan(labels)
    y, p = labels[present], np.asarray(predictions)[present]
    out: dict[str, float] = {"count": int(present.sum())}
    if not present.any():
        return out
    out.update(_metrics(task, y, p, None))
    if weights is not None:
        w = weights[present]
        out["weight_sum"] = float(w.sum())
        if w.sum() > 0:
            out.update({f"weighted_{k}": v for k, v in _metrics(task, y, p, w).items()})
    return out


def baseline_totals(task: Task, train_labels: np.ndarray) -> np.ndarray:
    """What the constant baseline reads of (a chunk of) the training labels: totals that add up across chunks.

    Args:
        task: the task.
        train_labels: its training labels (`(n, 1)`, or `(n, 2)` with weights), NaN where missing.

    Returns:
        The weight of each class then the total weight (multiclass); else the total weight and
        the weighted sum of the labels. Sum the totals of chunks of rows for the whole split.
    """
    train, train_w = split_labels(train_labels)
    keep = ~np.isnan(train)
    train = train[keep]
    train_w = np.ones(len(train)) if train_w is None else train_w[keep]
    if isinstance(task, MulticlassTask):
        return np.append(np.bincount(train.astype(int), weights=train_w, minlength=task.num_classes), train_w.sum())
    return np.array([train_w.sum(), np.sum(train * train_w)])


def constant_baseline(task: Task, train_labels: np.ndarray | None, labels: np.ndarray,
                      totals: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of predicting the training mean (or class frequencies) for every row.

    With sample weights, the constant is the weighted training mean (or
    weighted class frequencies), the best constant for the weighted metrics.

    Args:
        task: the task.
        train_labels: its training labels; or None with `totals`.
        labels: the labels of the rows to evaluate.
        totals: `baseline_totals` of the training labels (summed over chunks), instead of them.
    """
    totals = baseline_totals(task, train_labels) if totals is None else totals
    n = len(labels)
    if isinstance(task, MulticlassTask):
        total = totals[-1]
        constant = np.tile(totals[:-1] / (total or 1.0), (n, 1))
    else:
        total = totals[0]
        constant = np.full((n, 1), float(totals[1] / total) if total > 0 else 0.0)
    metrics = task_metrics(task, labels, constant)
    for key in ("count", "positive_rate", "weight_sum", "weighted_positive_rate"):
        metrics.pop(key, None)
    return metrics


def evaluate_predictions(
    tasks: list[Task],
    labels: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
    train_labels: dict[str, np.ndarray] | None = None,
    train_totals: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-task metrics, and the constant baseline's when the training labels (or their
    `baseline_totals`, by task) are given."""
    report: dict[str, Any] = {}
    for task in tasks:
        entry = task_metrics(task, labels[task.name], predictions[task.name])
        if train_labels is not None or train_totals is not None:
            entry["constant_baseline"] = constant_baseline(
                task, None if train_labels is None else train_labels[task.name], labels[task.name],
                None if train_totals is None else train_totals[task.name])
        report[task.name] = entry
    return report
