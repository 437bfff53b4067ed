"""The optimizer a config asks for: learning-rate schedule, decoupled weight decay, gradient clipping.

`training:` keys (see `TrainingConfig` and `ScheduleConfig` in `mtrec.config`):

- `schedule: {kind: cosine | linear, warmup_epochs, min_fraction}`: a linear
  warm-up from 0 to `learning_rate`, then a cosine or linear decay to
  `min_fraction * learning_rate` at the last epoch (`training.epochs`);
  `schedule: {kind: plateau, factor, patience, min_fraction}` divides the rate
  when the monitored validation value stalls (Keras' `ReduceLROnPlateau`).
- `weight_decay`: decoupled weight decay (AdamW-style: the update subtracts
  `learning_rate * weight_decay * w`); `no_weight_decay` lists name parts of
  variables left alone, e.g. `[embeddings, bias]`.
- `clipnorm` (each gradient) and `global_clipnorm` (all gradients together).

The warm-up and decay are counted in optimizer steps; the number of steps per
epoch is only known once `fit` starts, so `schedule_callbacks` hands it to the
schedule before the first step is traced. A resumed run restores the
optimizer's step counter (and rate), so the schedule continues where it
stopped; the plateau's counters ride in the run's checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from mtrec.errors import ConfigError
from mtrec.utils.keras_utils import serializable


@serializable
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up to the peak rate, then a cosine or linear decay to a floor.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_epochs: epochs of linear warm-up from 0 (may be fractional).
        total_epochs: the epochs of the whole run; the decay ends at the last one.
        decay: `"cosine"` or `"linear"`.
        min_fraction: the final rate as a fraction of `peak`.
        steps_per_epoch: optimizer steps per epoch; set by `schedule_callbacks`
            when `fit` starts (it is saved with the model, so a reloaded
            optimizer keeps it).
    """

    def __init__(self, peak: float, warmup_epochs: float, total_epochs: int, decay: str = "cosine",
                 min_fraction: float = 0.0, steps_per_epoch: int | None = None) -> None:
        self.peak = float(peak)
        self.warmup_epochs = float(warmup_epochs)
        self.total_epochs = int(total_epochs)
        self.decay = decay
        self.min_fraction = float(min_fraction)
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step: Any) -> Any:
        if not self.steps_per_epoch:
            raise ConfigError("training.schedule needs the number of steps per epoch, which this input "
                              "does not tell; use a finite training set")
        step = keras.ops.cast(step, "float32")
        warmup = max(self.warmup_epochs * self.steps_per_epoch, 0.0)
        total = max(float(self.total_epochs * self.steps_per_epoch), warmup + 1.0)
        # Step s is the (s+1)-th update: warm-up reaches the peak on its last step, never applies 0.
        rising = self.peak * keras.ops.minimum((step + 1.0) / max(warmup, 1.0), 1.0)
        progress = keras.ops.clip((step - warmup) / (total - warmup), 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        falling = self.peak * (self.min_fraction + (1.0 - self.min_fraction) * shape)
        return keras.ops.where(step < warmup, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup_epochs": self.warmup_epochs, "total_epochs": self.total_epochs,
                "decay": self.decay, "min_fraction": self.min_fraction,
                "steps_per_epoch": self.steps_per_epoch}


class _ScheduleSteps(keras.callbacks.Callback):
    """Tells the schedule how many optimizer steps an epoch has, before the first step."""

    def __init__(self, schedule: WarmupDecay) -> None:
        super().__init__()
        self.schedule = schedule

    def on_train_begin(self, logs: dict | None = None) -> None:
        steps = (self.params or {}).get("steps")
        if steps:
            self.schedule.steps_per_epoch = int(steps)


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau whose counters travel with the run's checkpoints (`RunCheckpoint.track`).

    The rate itself is an optimizer variable, saved with the weights; the best
    value, the epochs waited and the cooldown live in this callback only.
    """

    def checkpoint_state(self) -> dict[str, Any]:
        """The best value, wait and cooldown counters, as arrays."""
        import numpy as np

        return {"best": np.array(self.best, "float64"), "wait": np.array(self.wait, "int64"),
                "cooldown_counter": np.array(self.cooldown_counter, "int64")}

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Puts back what `checkpoint_state` saved (after Keras' reset at the start of `fit`)."""
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the epoch's learning rate to the logs (history, metrics.csv, TensorBoard) as `learning_rate`.

    Place it before the run's metrics logger and before a plateau callback,
    which changes the rate for the next epoch.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def build_optimizer(training: Any) -> keras.optimizers.Optimizer:
    """The optimizer of a `TrainingConfig`.

    Args:
        training: the config's `training` section.

    Returns:
        A Keras optimizer with its learning rate (or schedule), weight decay,
        excluded variables and clipping.
    """
    schedule = training.schedule
    learning_rate: Any = training.learning_rate
    if schedule is not None and schedule.kind in ("cosine", "linear"):
        learning_rate = WarmupDecay(training.learning_rate, schedule.warmup_epochs, training.epochs,
                                    decay=schedule.kind, min_fraction=schedule.min_fraction)
    options: dict[str, Any] = {"learning_rate": learning_rate}
    if training.weight_decay is not None:
        options["weight_decay"] = training.weight_decay or None
    if training.clipnorm is not None:
        options["clipnorm"] = training.clipnorm
    if training.global_clipnorm is not None:
        options["global_clipnorm"] = training.global_clipnorm
    optimizer = keras.optimizers.get({"class_name": training.optimizer, "config": options})
    if training.no_weight_decay:
        # Keras matches these as regular expressions searched in each variable's name.
        optimizer.exclude_from_weight_decay(var_names=list(training.no_weight_decay))
    return optimizer


def schedule_callbacks(training: Any, model: keras.Model, monitor: str | None,
                       mode: str = "auto") -> list[keras.callbacks.Callback]:
    """The callbacks that drive `training.schedule` during `fit`.

    Args:
        training: the config's `training` section.
        model: the compiled model (its optimizer carries the schedule).
        monitor: the validation value a `plateau` schedule watches (the early
            stopping monitor); None when there is no validation split.
        mode: `"min"`, `"max"` or `"auto"` for `monitor`.

    Returns:
        The callbacks to add to `fit` (none without a schedule); the ones
        with a `checkpoint_state` belong in the run's checkpoints.

    Raises:
        ConfigError: a `plateau` schedule without validation rows to watch.
    """
    schedule = training.schedule
    if schedule is None:
        return []
    if schedule.kind == "plateau":
        if monitor is None:
            raise ConfigError("training.schedule: plateau watches a validation value; this run has no "
                              "validation rows (data.split)")
        return [ResumablePlateau(
            monitor=monitor, mode=mode, factor=schedule.factor, patience=schedule.patience,
            min_lr=training.learning_rate * schedule.min_fraction, verbose=0)]
    # `Optimizer.learning_rate` evaluates the schedule; the schedule object itself is `_learning_rate`.
    learning_rate = getattr(model.optimizer, "_learning_rate", None)
    return [_ScheduleSteps(learning_rate)] if isinstance(learning_rate, WarmupDecay) else []
