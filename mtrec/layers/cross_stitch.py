"""CrossStitchUnit: learned linear mixing of the task networks' activations (Misra et al., CVPR 2016)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import check_positive_int, serializable


@serializable
class CrossStitchUnit(keras.layers.Layer):
    """`h'_t = sum_s alpha[t, s] * h_s` over the tasks' activations at one layer.

    Args:
        num_tasks: int. Number of task networks.
        self_weight: float. Initial `alpha[t, t]`; the rest of each row is
            spread evenly, so each row starts summing to 1. Near 1 means
            "start close to independent networks". Defaults to `0.9`.
        **kwargs: base `Layer` arguments.

    Call: a list of `num_tasks` tensors of one shape; returns the mixed list.
    """

    def __init__(self, num_tasks: int, self_weight: float = 0.9, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_tasks = check_positive_int(num_tasks, "num_tasks")
        if not 0 <= self_weight <= 1:
            raise ValueError(f"`self_weight` must be in [0, 1]. Received: self_weight={self_weight!r}")
        self.self_weight = float(self_weight)

    def build(self, input_shape: list[Shape]) -> None:
        n = self.num_tasks
        off = (1 - self.self_weight) / (n - 1) if n > 1 else 0.0
        initial = np.full((n, n), off, dtype="float32")
        np.fill_diagonal(initial, self.self_weight if n > 1 else 1.0)
        self.alpha = self.add_weight(name="alpha", shape=(n, n),
                                     initializer=keras.initializers.Constant(initial))
        self.built = True

    def call(self, inputs: list[Tensor]) -> list[Tensor]:
        stacked = ops.stack(inputs, axis=1)  # (batch, tasks, units)
        mixed = ops.einsum("ts,bsu->btu", self.alpha, stacked)
        return [mixed[:, t, :] for t in range(self.num_tasks)]

    def compute_output_shape(self, input_shape: list[Shape]) -> list[Shape]:
        return list(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tasks": self.num_tasks, "self_weight": self.self_weight}
