"""Early stopping per task for SingleTask: each task's network keeps its own best epoch, as if trained alone.

SingleTask is the reference every transfer figure is measured against. With
one early stop on the sum of the losses, its tasks all stop at the same epoch,
so a task that overfits early (or learns late) is judged at the wrong epoch,
and the "learned alone" baseline is worse than it should be. Its networks share
no variable and Adam's update is per variable, so training them together and
keeping, for each task, its own best weights gives what separate runs would
(apart from clipping by a global norm, which couples them).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mtrec.errors import ConfigError


class PerTaskEarlyStopping(keras.callbacks.Callback):
    """Watches `val_<task>_loss` of each task; stops a task after `patience` epochs without improvement.

    The run ends when every task has stopped (or at the last epoch); then each
    task's network gets the weights of its own best epoch. `checkpoint_state`
    and `restore_checkpoint_state` let the run's checkpoints carry this state,
    as `ResumableEarlyStopping` does for the whole model.

    Args:
        task_variables: {task: the variables of its own network}
            (`SingleTask.task_variables()`).
        patience: epochs without improvement before a task stops.
        min_delta: the smallest decrease of a task's validation loss that
            counts as an improvement.
        verbose: print a line when a task stops.
    """

    def __init__(self, task_variables: dict[str, list], patience: int = 3, min_delta: float = 0.0,
                 verbose: int = 0) -> None:
        super().__init__()
        self.task_variables = dict(task_variables)
        self.patience, self.min_delta, self.verbose = int(patience), float(min_delta), verbose
        self.stopped_epoch = 0
        self._reset()

    def _reset(self) -> None:
        names = list(self.task_variables)
        self.best = {t: np.inf for t in names}
        self.best_epoch = {t: -1 for t in names}
        self.wait = {t: 0 for t in names}
        self.best_weights: dict[str, list[np.ndarray]] = {}

    @property
    def stopped(self) -> dict[str, bool]:
        """{task: whether its patience ran out}."""
        # As Keras' EarlyStopping: `patience` epochs without improvement (at least one).
        return {t: self.wait[t] >= max(self.patience, 1) for t in self.task_variables}

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._reset()
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for task, variables in self.task_variables.items():
            if self.stopped[task]:
                continue
            key = f"val_{task}_loss"
            if key not in logs:
                raise ConfigError(f"Per-task early stopping needs '{key}' in the epoch logs; "
                                  f"this run has no validation rows for task '{task}'")
            value = float(logs[key])
            if value < self.best[task] - self.min_delta or self.best_epoch[task] < 0:
                self.best[task], self.best_epoch[task], self.wait[task] = value, epoch, 0
                self.best_weights[task] = [keras.ops.convert_to_numpy(v) for v in variables]
            else:
                self.wait[task] += 1
                if self.stopped[task] and self.verbose:
                    print(f"Task {task}: stopped at epoch {epoch + 1}, keeping epoch {self.best_epoch[task] + 1}")
        if all(self.stopped.values()):
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        for task, weights in self.best_weights.items():
            for variable, value in zip(self.task_variables[task], weights):
                variable.assign(value)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """Each task's best loss, best epoch, wait and best weights, as arrays."""
        state: dict[str, np.ndarray] = {"stopped_epoch": np.array(self.stopped_epoch, "int64")}
        for i, task in enumerate(self.task_variables):
            state[f"t{i}_best"] = np.array(self.best[task], "float64")
            state[f"t{i}_best_epoch"] = np.array(self.best_epoch[task], "int64")
            state[f"t{i}_wait"] = np.array(self.wait[task], "int64")
            for j, value in enumerate(self.best_weights.get(task, [])):
                state[f"t{i}_w{j:05d}"] = np.asarray(value)
        return state

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Puts back what `checkpoint_state` saved (after `on_train_begin`'s reset)."""
        self.stopped_epoch = int(state["stopped_epoch"])
        for i, task in enumerate(self.task_variables):
            self.best[task] = float(state[f"t{i}_best"])
            self.best_epoch[task] = int(state[f"t{i}_best_epoch"])
            self.wait[task] = int(state[f"t{i}_wait"])
            weights = [state[k] for k in sorted(state) if k.startswith(f"t{i}_w")]
            if weights:
                self.best_weights[task] = weights
