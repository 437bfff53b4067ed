"""DynamicWeightAverage: weights from how fast each task's loss falls (Liu, Johns and Davison, CVPR 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from mtrec.errors import ConfigError
from mtrec.types import Tensor
from mtrec.weighting.base import WeightingStrategy


class DynamicWeightAverage(WeightingStrategy):
    """Dynamic Weight Average (DWA): a task whose loss falls slowly gets more weight.

    At epoch `e` the weight of task `k` is
    `K * exp(r_k / T) / sum_i exp(r_i / T)` with `r_k = L_k(e-1) / L_k(e-2)`,
    the ratio of the task's mean training loss over the last two epochs, `K`
    the number of tasks and `T` the temperature. The first two epochs use
    weight 1 (there is no ratio yet). Weights are fixed within an epoch and
    updated at its end from the logged `<task>_loss` (unweighted, as Keras logs it). Unlike the paper's
    code, which averages the loss per batch over a whole epoch, this uses
    Keras' epoch mean of the same quantity.

    Args:
        temperature: float. `T`; larger values flatten the weights towards 1.
            Defaults to `2.0` (the paper's).

    Example:
    ```yaml
    weighting: {kind: dwa, temperature: 2.0}
    ```
    """

    kind: ClassVar[str] = "dwa"
    loss_level: ClassVar[bool] = True
    custom_step: ClassVar[bool] = False

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ConfigError(f"weighting.temperature must be a number > 0. Received: {temperature!r}")
        self.temperature = float(temperature)

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        self.loss_history: list[np.ndarray] = []

    @property
    def task_weights(self) -> Any:
        """The weights of the current epoch: a non-trainable variable the model owns (`TaskLossWeights`)."""
        return self.values

    def current_weights(self) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.task_weights)

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        weights = ops.convert_to_tensor(self.task_weights)
        return ops.sum(weights * losses), weights

    @staticmethod
    def dwa_weights(previous: np.ndarray, before: np.ndarray, temperature: float) -> np.ndarray:
        """The DWA weights from two epochs' mean losses per task.

        Args:
            previous: losses of epoch e-1.
            before: losses of epoch e-2.
            temperature: `T`.

        Returns:
            `(num_tasks,)` weights summing to the number of tasks.
        """
        ratio = np.asarray(previous, "float64") / np.maximum(np.asarray(before, "float64"), 1e-12)
        z = np.exp((ratio - ratio.max()) / temperature)  # shifted: same softmax, no overflow
        return (len(ratio) * z / z.sum()).astype("float32")

    def end_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        keys = [f"{name}_loss" for name in self.task_names]
        if not all(k in logs for k in keys):  # one task: Keras logs no per-task loss
            return
        self.loss_history.append(np.array([logs[k] for k in keys], "float64"))
        if len(self.loss_history) >= 2:
            self.task_weights.assign(self.dwa_weights(self.loss_history[-1], self.loss_history[-2],
                                                 self.temperature))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}
