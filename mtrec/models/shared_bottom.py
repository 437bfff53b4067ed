"""SharedBottom: hard parameter sharing, one bottom network feeding every task tower."""

from __future__ import annotations

from typing import Any

from mtrec.layers.mlp import MLP
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import check_units, serializable


@serializable
class SharedBottom(MultiTaskModel):
    """Shared embeddings and a shared bottom MLP; a tower per task.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        bottom_units: list of int. Widths of the shared bottom. Defaults to
            `[64]`.
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
        self.embedding = self._make_embedding()
        self.bottom = MLP(self.bottom_units, activation=bottom_activation,
                          dropout=bottom_dropout, name="bottom")

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        shared = self.bottom(self.embedding(inputs), training=training)
        return [shared] * len(self.tasks), {}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "bottom_units": self.bottom_units,
            "bottom_activation": self.bottom_activation,
            "bottom_dropout": self.bottom_dropout,
        }
