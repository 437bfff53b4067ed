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

    The log-variances are trained with the model, by the model's optimizer
    (Keras' own train step, any backend). A separate `learning_rate` is
    obtained by parametrizing `s_t = c * v_t` with `c = learning_rate /
    training.learning_rate` and training `v_t`: Adam-type optimizers (Adam,
    AdamW, ...) move each variable by about its learning rate whatever the
    gradient's scale, so `s_t` moves `c` times as fast as the model's
    weights, and the learning-rate schedule applies to both alike (with SGD
    the factor is `c²`).

    Args:
        learning_rate: float or None. Learning rate of the `s_t`; None uses
            the run's `training.learning_rate`. Defaults to `None`.
        initial_log_variance: float. Starting `s_t` for every task (0 gives
            weight 1). Defaults to `0.0`.

    Example:
    ```yaml
    weighting: {kind: uncertainty, learning_rate: 0.01}
    ```
    """

    kind: ClassVar[str] = "uncertainty"
    loss_level: ClassVar[bool] = True
    custom_step: ClassVar[bool] = False
    _trainable_values: ClassVar[bool] = True

    def __init__(self, learning_rate: float | None = None, initial_log_variance: float = 0.0) -> None:
        super().__init__()
        if learning_rate is not None and not learning_rate > 0:
            raise ConfigError(f"weighting.learning_rate must be > 0. Received: {learning_rate!r}")
        self.learning_rate = learning_rate
        self.initial_log_variance = float(initial_log_variance)

    def _initial_values(self, learning_rate: float) -> np.ndarray:
        # s = scale * v: v is what the model's optimizer trains (see the class docstring).
        self._scale = float(self.learning_rate / learning_rate) if self.learning_rate else 1.0
        return np.full(len(self.task_names), self.initial_log_variance / self._scale, "float32")

    @property
    def log_variances(self) -> Tensor:
        """The `s_t`, `(num_tasks,)`."""
        return self.values * self._scale if self._scale != 1.0 else ops.convert_to_tensor(self.values)

    def current_weights(self) -> np.ndarray:
        return np.exp(-keras.ops.convert_to_numpy(self.log_variances))

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        log_variances = self.log_variances
        weights = ops.exp(-log_variances)
        return ops.sum(weights * losses + log_variances), ops.stop_gradient(weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "learning_rate": self.learning_rate,
                "initial_log_variance": self.initial_log_variance}
