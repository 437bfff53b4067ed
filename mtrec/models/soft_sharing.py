"""SoftSharing: one network per task, tied by an L2 penalty between corresponding weights."""

from __future__ import annotations

from typing import Any

from keras import ops

from mtrec.models.single_task import SingleTask
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class SoftSharing(SingleTask):
    """Soft parameter sharing (Duong et al. 2015; Ruder 2017's overview).

    Each task has its own embeddings and bottom MLP, as in `SingleTask`; the
    loss adds `penalty * sum over task pairs (s, t) of ||w_s - w_t||²` over
    every pair of corresponding embedding and bottom weights. Towers are not
    tied (their output widths differ between tasks). With `penalty = 0` the
    model is exactly `SingleTask`.

    Args:
        tasks, feature_layout, bottom_units, bottom_activation,
            bottom_dropout, tower_*: see `SingleTask`.
        penalty: float. Strength of the L2 tie. Defaults to `1e-3`.
        **kwargs: base `Model` arguments.
    """

    def __init__(self, tasks: list, feature_layout: dict[str, Any], penalty: float = 1e-3,
                 **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty < 0:
            raise ValueError(f"`penalty` must be a number >= 0. Received: penalty={penalty!r}")
        self.penalty = float(penalty)

    def tied_weights(self) -> list[list[Any]]:
        """Groups of corresponding weights, one per task in each group."""
        per_task = [embedding.weights + bottom.weights
                    for embedding, bottom in zip(self.embeddings, self.bottoms)]
        return [list(group) for group in zip(*per_task)]

    def weight_distance(self) -> Tensor:
        """Sum over task pairs and tied weights of the squared L2 distance, in float32.

        Under a mixed-precision policy the weights read inside `call` are
        the compute-dtype copies; the sum is still accumulated in float32.
        """
        total = ops.convert_to_tensor(0.0, dtype="float32")
        for group in self.tied_weights():
            for s in range(len(group)):
                for t in range(s + 1, len(group)):
                    diff = ops.cast(group[s], "float32") - ops.cast(group[t], "float32")
                    total = total + ops.sum(ops.square(diff))
        return total

    def call(self, inputs: dict[str, Tensor], training: bool | None = None) -> dict[str, Tensor]:
        outputs = super().call(inputs, training=training)
        if self.penalty > 0 and len(self.tasks) > 1:
            self.add_loss(self.penalty * self.weight_distance())
        return outputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "penalty": self.penalty}
