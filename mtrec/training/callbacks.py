"""Callbacks of a training run: per-epoch, per-task metrics written as JSON and CSV; early stopping and
weighting state that survive a resume."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mtrec.utils.atomic import write_json, write_text


def split_task_metrics(logs: dict[str, float], task_names: list[str]) -> dict[str, Any]:
    """Regroups flat Keras logs (`val_click_auc`) as {split: {task: {metric: value}}}.

    Totals that belong to no task (`loss`, `val_loss`) go under the split's
    `"total"` key.
    """
    by_length = sorted(task_names, key=len, reverse=True)  # "y_long" before "y"
    out: dict[str, Any] = {"train": {"total": {}}, "valid": {"total": {}}}
    for key, value in logs.items():
        split, name = ("valid", key[4:]) if key.startswith("val_") else ("train", key)
        for task in by_length:
            if name.startswith(task + "_"):
                out[split].setdefault(task, {})[name[len(task) + 1:]] = float(value)
                break
        else:
            out[split]["total"][name] = float(value)
    return out


class TaskMetricsLogger(keras.callbacks.Callback):
    """Writes `metrics.json` (nested by split and task) and `metrics.csv` (flat) after each epoch.

    Both files are rewritten atomically, so a reader never sees a partial
    file and an interrupted run keeps every finished epoch.

    Args:
        run_dir: the run directory.
        task_names: the model's task names.
    """

    def __init__(self, run_dir: str | Path, task_names: list[str]) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.task_names = list(task_names)
        self.history: list[dict[str, Any]] = self._finished_epochs()
        self._epoch_start = 0.0

    def _finished_epochs(self) -> list[dict[str, Any]]:
        # A resumed run keeps the epochs it logged before the interruption.
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return []
        with path.open(newline="") as f:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
                    for row in csv.DictReader(f)]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        seconds = time.perf_counter() - self._epoch_start
        self.history = [row for row in self.history if row["epoch"] < epoch]
        self.history.append({"epoch": epoch, "seconds": seconds, **{k: float(v) for k, v in logs.items()}})
        nested = [
            {"epoch": row["epoch"], "seconds": row["seconds"],
             **split_task_metrics({k: v for k, v in row.items() if k not in ("epoch", "seconds")},
                                  self.task_names)}
            for row in self.history
        ]
        write_json(self.run_dir / "metrics.json", nested)
        columns = list(dict.fromkeys(k for row in self.history for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.history)
        write_text(self.run_dir / "metrics.csv", buffer.getvalue())


class MainLossLogger(keras.callbacks.Callback):
    """Adds `val_main_loss`: the weighted validation loss of the non-auxiliary tasks.

    Placed before early stopping, so that auxiliary tasks never drive model
    selection.

    Args:
        weights: {task name: loss weight} of the main (non-auxiliary) tasks.
    """

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and all(f"val_{t}_loss" in logs for t in self.weights):
            logs["val_main_loss"] = float(sum(w * logs[f"val_{t}_loss"] for t, w in self.weights.items()))


class SingleTaskLogNames(keras.callbacks.Callback):
    """Adds `<task>_`-prefixed copies of the epoch logs of a one-task model.

    Keras drops the output name from metric names when a model has a single
    output (`val_auc`, not `val_click_auc`); this restores the documented
    names, so early stopping on `val_<task>_<metric>` and the metrics files
    work the same for one task as for several. Placed first.

    Args:
        task_names: the model's task names; does nothing unless there is one.
    """

    def __init__(self, task_names: list[str]) -> None:
        super().__init__()
        self.task = task_names[0] if len(task_names) == 1 else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.task is None or logs is None:
            return
        prefix = f"{self.task}_"
        for key in list(logs):
            stem = key[4:] if key.startswith("val_") else key
            if stem == "loss" or stem.startswith(prefix):
                continue
            renamed = ("val_" if key.startswith("val_") else "") + prefix + stem
            logs.setdefault(renamed, logs[key])
        logs.setdefault(f"{prefix}loss", logs.get("loss"))
        if "val_loss" in logs:
            logs.setdefault(f"val_{prefix}loss", logs["val_loss"])


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping whose state travels with the run's checkpoints.

    Keras keeps the best value, the epochs waited and the best weights in
    memory only, so a run resumed from a checkpoint would forget them: it
    would end on the last epoch's weights, or train past the point where it
    had stopped. `RunCheckpoint.track` saves `checkpoint_state()` beside each
    checkpoint's weights and hands it back to `restore_checkpoint_state` on
    resume; the resumed run then ends with the weights of an uninterrupted one.
    It must run before the checkpoint in the callback list (it does when
    placed by `mtrec.training.checkpoints.track_training_state`).

    Takes Keras' `EarlyStopping` arguments.
    """

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The state after the last finished epoch, as arrays (best value, wait, epochs, best weights)."""
        state = {
            "has_best": np.array(self.best is not None),
            "best": np.array(float(self.best) if self.best is not None else np.nan, "float64"),
            "wait": np.array(self.wait, "int64"),
            "stopped_epoch": np.array(self.stopped_epoch, "int64"),
            "best_epoch": np.array(getattr(self, "best_epoch", 0), "int64"),
        }
        for i, weights in enumerate(self.best_weights or []):
            state[f"best_weights_{i:05d}"] = np.asarray(weights)
        return state

    def restore_checkpoint_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `checkpoint_state` saved (after Keras' own reset at the start of `fit`)."""
        self.best = float(state["best"]) if bool(state["has_best"]) else None
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_epoch = int(state["best_epoch"])
        weights = [state[k] for k in sorted(state) if k.startswith("best_weights_")]
        self.best_weights = weights or None


class WeightingState:
    """The state of a task weighting strategy that lives outside the model's weights, for checkpoints.

    A strategy's variables (uncertainty's log-variances, GradNorm's and DWA's
    weights, step counters) and its own optimizer are not saved by
    `model.save_weights`: gradient-level strategies hang on the model as a
    plain attribute, and the `TaskLossWeights` layer of loss-level ones
    saves nothing; DWA also keeps its per-epoch losses in a Python list. This gathers all of
    them as arrays (`checkpoint_state`) and puts them back
    (`restore_checkpoint_state`); `RunCheckpoint.track` saves them with each
    checkpoint.

    Args:
        strategy: an attached `mtrec.weighting.WeightingStrategy`.
    """

    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy

    def _variables(self) -> dict[str, Any]:
        found = {}
        for name, value in sorted(vars(self.strategy).items()):
            if isinstance(value, keras.Variable):
                found[name] = value
            elif isinstance(value, keras.optimizers.Optimizer) and value.built:
                for i, variable in enumerate(value.variables):
                    found[f"{name}_{i:04d}"] = variable
        return found

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """Every variable of the strategy (and of its optimizer) and DWA's loss history."""
        state = {name: keras.ops.convert_to_numpy(v) for name, v in self._variables().items()}
        history = getattr(self.strategy, "loss_history", None)
        if history is not None:
            n = len(self.strategy.task_names)
            state["loss_history"] = np.array(history, "float64").reshape(len(history), n)
        return state

    def restore_checkpoint_state(self, state: dict[str, np.ndarray]) -> None:
        """Assigns the saved values back; a variable the checkpoint lacks keeps its value."""
        for name, variable in self._variables().items():
            if name in state:
                variable.assign(state[name])
        if "loss_history" in state and hasattr(self.strategy, "loss_history"):
            self.strategy.loss_history = [row.copy() for row in state["loss_history"]]
