"""UncertaintyWeighting: learned homoscedastic task uncertainty (Kendall, Gal and Cipolla, CVPR 2018)."""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from mtrec.errors import ConfigError
from mtrec.types import Tensor
from mtrec.weighting.base import WeightingStrategy


class UncertaintyWeighting(WeightingStrategy):
    """Learns one log-variance `s_t` per task and minimizes `sum_t exp(-s_t) L_t + s_t`.

    A task's weight is `exp(-s_t)`; at the optimum of `s_t` it equals
    `1 / L_t`, so a task whose loss stays high (a noisy label) gets a smaller
    weight, and the regularizer `s_t` keeps the weights from collapsing to 0.
    This is the form used for every task kind (as in LibMTL and Liebel &
    Körner 2018). Kendall et al. write `1/(2 sigma²) L + log sigma` for
    regression, which has the same optimum `exp(-s) = 1/L`, and
    `1/sigma² L + log sigma` for classification, whose optimum weight is
    twice as large; with one form the weights of mixed task kinds stay
    comparable.

    Args:
        learning_rate: float or None. Adam learning rate of the `s_t`;
            None uses the run's `training.learning_rate`. Defaults to `None`.
        initial_log_variance: float. Starting `s_t` for every task (0 gives
            weight 1). Defaults to `0.0`.

    Example:
    ```yaml
    weighting: {kind: uncertainty, learning_rate: 0.01}
    ```
    """

    kind: ClassVar[str] = "uncertainty"

    def __init__(self, learning_rate: float | None = None, initial_log_variance: float = 0.0) -> None:
        super().__init__()
        if learning_rate is not None and not learning_rate > 0:
            raise ConfigError(f"weighting.learning_rate must be > 0. Received: {learning_rate!r}")
        self.learning_rate = learning_rate
        self.initial_log_variance = float(initial_log_variance)

    def _build(self, model: Any, sample_inputs: dict[str, Any], learning_rate: float, seed: int) -> None:
        n = len(self.task_names)
        self.log_variances = keras.Variable(
            np.full(n, self.initial_log_variance, "float32"), trainable=True, name="log_variances")
        self._optimizer = keras.optimizers.Adam(self.learning_rate or learning_rate)
        self._optimizer.build([self.log_variances])

    @property
    def trainable_variables(self) -> list:
        return [self.log_variances]

    def current_weights(self) -> np.ndarray:
        return np.exp(-keras.ops.convert_to_numpy(self.log_variances))

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        weights = ops.exp(-self.log_variances)
        return ops.sum(weights * losses + self.log_variances), ops.stop_gradient(weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "learning_rate": self.learning_rate,
                "initial_log_variance": self.initial_log_variance}
