"""Callbacks that record gate statistics and gradient cosines while a model trains (`training.analysis`).

Both add their values to the epoch's Keras logs, so when they come before
`TaskMetricsLogger` and `TensorBoard` in the callback list (as in
`mtrec.training.run.fit_model`), the values land in `metrics.json` / `metrics.csv`
and in TensorBoard's scalars, epoch by epoch: a collapse, or tasks whose
gradients start to conflict, is visible over time. Each callback also keeps
its own `history` (a list of dicts) for notebooks.

Log keys put the task first, so `metrics.json` files them under the task:

- `GateStatsLogger`: `<task>_gate_entropy`, `<task>_gate_effective_experts`,
  `<task>_gate_util_<expert>` (with `_<level>` after `gate` for PLE), on a
  fixed sample of rows; `prefix="val_"` when those rows are validation rows.
- `GradientCosineLogger`: `grad_cosine_<task a>_<task b>`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from mtrec.training.gates import collect_gates, entropy

logger = logging.getLogger(__name__)


def sample_rows(arrays: Mapping[str, np.ndarray], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed random sample of at most `rows` rows of aligned arrays (all of them if fewer)."""
    n = len(next(iter(arrays.values())))
    if n <= rows:
        return dict(arrays)
    index = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
    return {k: np.asarray(v)[index] for k, v in arrays.items()}


def gate_log_values(levels: list, prefix: str = "") -> dict[str, float]:
    """Per-gate entropy, effective experts and utilization as flat log keys (see the module doc)."""
    values = {}
    for level in levels:
        tag = f"gate_{level.level}" if level.level else "gate"
        for gate, weights in level.gates.items():
            g = np.asarray(weights, dtype="float64")
            mean_entropy = float(entropy(g, axis=1).mean())
            values[f"{prefix}{gate}_{tag}_entropy"] = mean_entropy
            values[f"{prefix}{gate}_{tag}_effective_experts"] = float(np.exp(mean_entropy))
            for name, share in zip(level.experts[gate], g.mean(axis=0)):
                values[f"{prefix}{gate}_{tag}_util_{name.replace('/', '.')}"] = float(share)
    return values


class GateStatsLogger(keras.callbacks.Callback):
    """Records each gate's entropy, effective experts and expert utilization every epoch.

    Args:
        features: encoded rows the gates are computed on (keep it small:
            a few thousand rows cost a few milliseconds per epoch).
        prefix: prepended to every key; `"val_"` when `features` are
            validation rows (TensorBoard then files them under validation).
        every: record every `every` epochs. Defaults to `1`.

    Attributes:
        history: one dict per recorded epoch: `epoch` and the logged values.
    """

    def __init__(self, features: Mapping[str, np.ndarray], prefix: str = "", every: int = 1) -> None:
        super().__init__()
        self.features = dict(features)
        self.prefix = prefix
        self.every = max(1, int(every))
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch % self.every:
            return
        values = gate_log_values(collect_gates(self.model, self.features), self.prefix)
        self.history.append({"epoch": epoch, **values})
        if logs is not None:
            logs.update(values)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors; NaN when either is zero."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


def gradient_cosines(model: Any, features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                     variables: list | None = None) -> dict[tuple[str, str], float]:
    """Cosine between each pair of tasks' loss gradients on the shared variables, on one batch.

    Uses `mtrec.weighting.gradients.per_task_gradients` (TensorFlow backend).

    Args:
        model: a `MultiTaskModel`.
        features: encoded rows of one batch.
        labels: {task: labels} of those rows (NaN = missing).
        variables: the shared variables (default: found from the graph).

    Returns:
        {(task a, task b): cosine}, NaN for a task with a zero gradient.
    """
    from mtrec.weighting.gradients import flatten, per_task_gradients

    _, grads, _ = per_task_gradients(model, dict(features), dict(labels), variables=variables,
                                     training=False)
    flat = {t: keras.ops.convert_to_numpy(flatten(g)).astype("float64") for t, g in grads.items()}
    names = list(model.task_names)
    return {(a, b): cosine(flat[a], flat[b]) for i, a in enumerate(names) for b in names[i + 1:]}


class GradientCosineLogger(keras.callbacks.Callback):
    """Records the cosine between every pair of tasks' gradients on the shared parameters.

    A positive cosine means the tasks pull the shared parameters the same
    way; a negative one, that they conflict. Measured on a fixed sample of
    training rows, before training (epoch -1) and after every epoch (and
    every `every_batches` batches, if set), with the model in inference mode.
    TensorFlow backend only.

    Args:
        features: encoded training rows (one batch; e.g. 1,024 rows).
        labels: their labels by task.
        every_batches: also record every this many training batches (the
            hook fires once per `steps_per_execution` batches). Defaults to
            None (per epoch only).

    Attributes:
        history: one dict per measurement: `epoch`, `step` (batches seen)
            and `grad_cosine_<a>_<b>` per pair.
    """

    def __init__(self, features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                 every_batches: int | None = None) -> None:
        super().__init__()
        from mtrec.weighting.gradients import check_gradient_backend

        check_gradient_backend("Gradient cosines between tasks")
        self.features = dict(features)
        self.labels = {k: np.asarray(v, dtype="float32") for k, v in labels.items()}
        self.every_batches = every_batches
        self.history: list[dict[str, float]] = []
        self._variables: list | None = None
        self._epoch = -1
        self._steps = 0
        self._epoch_start_step = 0

    def _measure(self) -> dict[str, float]:
        from mtrec.weighting.gradients import split_variables

        if self._variables is None:
            self._variables = split_variables(self.model, self.features)[0]
            if not self._variables:
                logger.warning("%s shares no variables between tasks: no gradient cosines to record.",
                               type(self.model).__name__)
        if not self._variables:
            return {}
        pairs = gradient_cosines(self.model, self.features, self.labels, self._variables)
        values = {f"grad_cosine_{a}_{b}": c for (a, b), c in pairs.items()}
        self.history.append({"epoch": self._epoch, "step": self._steps, **values})
        return values

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._measure()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_start_step = self._steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # With steps_per_execution > 1 Keras calls this once per execution, `batch`
        # being the last batch index of the epoch that the execution ran.
        previous = self._steps
        self._steps = self._epoch_start_step + batch + 1
        if self.every_batches and self._steps // self.every_batches > previous // self.every_batches:
            self._measure()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = self._measure()
        if logs is not None:
            logs.update(values)


def analysis_callbacks(settings: Any, model: Any, train_split: Any, valid_split: Any) -> list:
    """The analysis callbacks a run's `training.analysis` settings ask for.

    Args:
        settings: `TrainingAnalysisConfig`.
        model: the built model.
        train_split, valid_split: the run's `EncodedSplit`s.

    Returns:
        Callbacks to place before the metrics logger and TensorBoard.

    Raises:
        ConfigError: gate statistics asked for a model without gates, or
            gradient cosines on a backend other than TensorFlow.
    """
    from mtrec.errors import ConfigError

    callbacks: list = []
    if settings.gate_stats:
        if not getattr(model, "gated", False):
            raise ConfigError(
                f"training.analysis.gate_stats needs a gated model (mmoe, omoe, cgc, ple); "
                f"this run's model is {type(model).__name__}.")
        use_valid = len(valid_split) > 0
        rows = (valid_split if use_valid else train_split).features
        callbacks.append(GateStatsLogger(sample_rows(rows, settings.rows), prefix="val_" if use_valid else ""))
    if settings.gradient_cosine:
        sample = sample_rows({**{f"x:{k}": v for k, v in train_split.features.items()},
                              **{f"y:{k}": v for k, v in train_split.labels.items()}}, settings.rows)
        callbacks.append(GradientCosineLogger(
            {k[2:]: v for k, v in sample.items() if k.startswith("x:")},
            {k[2:]: v for k, v in sample.items() if k.startswith("y:")}))
    return callbacks
