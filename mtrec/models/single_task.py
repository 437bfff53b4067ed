"""SingleTask: one independent network per task, the baseline of every MTL result."""

from __future__ import annotations

from typing import Any

from mtrec.layers.mlp import MLP
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import check_units, serializable


@serializable
class SingleTask(MultiTaskModel):
    """Each task gets its own embeddings, its own bottom MLP and its own tower.

    Nothing is shared, so the tasks only share a training loop: this is the
    "learned alone" reference against which negative transfer is measured.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        bottom_units: list of int. Widths of each task's bottom MLP.
            Defaults to `[64]`.
        bottom_activation: str. Defaults to `"relu"`.
        bottom_dropout: float. Defaults to `0.0`.
        **kwargs: base `Model` arguments.
    """

    def __init__(
        self,
        tasks: list,
        feature_layout: dict[str, Any],
        bottom_units: list[int] = (64,),
        bottom_activation: str = "relu",
        bottom_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.bottom_units = check_units(bottom_units, "bottom_units")
        self.bottom_activation = bottom_activation
        self.bottom_dropout = float(bottom_dropout)
        self.embeddings = [self._make_embedding(f"embedding_{n}") for n in self.task_names]
        self.bottoms = [
            MLP(self.bottom_units, activation=bottom_activation, dropout=bottom_dropout,
                name=f"bottom_{n}")
            for n in self.task_names
        ]

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        reps = [
            bottom(embedding(inputs), training=training)
            for embedding, bottom in zip(self.embeddings, self.bottoms)
        ]
        return reps, {}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "bottom_units": self.bottom_units,
            "bottom_activation": self.bottom_activation,
            "bottom_dropout": self.bottom_dropout,
        }
