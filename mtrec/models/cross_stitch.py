"""CrossStitch: per-task networks whose layers exchange activations through cross-stitch units."""

from __future__ import annotations

from typing import Any

import keras

from mtrec.layers.cross_stitch import CrossStitchUnit
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import check_units, serializable


@serializable
class CrossStitch(MultiTaskModel):
    """Cross-stitch networks (Misra et al., CVPR 2016) for tabular and recommendation inputs.

    Each task has its own embeddings and its own stack of dense layers; after
    every dense layer a `CrossStitchUnit` mixes the tasks' activations with
    learned weights that start near the identity.

    Args:
        tasks, feature_layout, tower_*: see `MultiTaskModel`.
        bottom_units: list of int. Widths of each task's layers. Defaults to `[64, 32]`.
        bottom_activation: str. Defaults to `"relu"`.
        self_weight: float. Initial diagonal of the cross-stitch units. Defaults to `0.9`.
        **kwargs: base `Model` arguments.
    """

    def __init__(self, tasks: list, feature_layout: dict[str, Any], bottom_units: list[int] = (64, 32),
                 bottom_activation: str = "relu", self_weight: float = 0.9, **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.bottom_units = check_units(bottom_units, "bottom_units", allow_empty=False)
        self.bottom_activation = bottom_activation
        self.self_weight = float(self_weight)
        n = len(self.tasks)
        self.embeddings = [self._make_embedding(f"embedding_{name}") for name in self.task_names]
        self.dense = [[keras.layers.Dense(width, activation=bottom_activation, name=f"dense_{l}_{name}")
                       for name in self.task_names] for l, width in enumerate(self.bottom_units)]
        self.stitches = [CrossStitchUnit(n, self_weight, name=f"cross_stitch_{l}")
                         for l in range(len(self.bottom_units))]

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        streams = [embedding(inputs) for embedding in self.embeddings]
        for layers, stitch in zip(self.dense, self.stitches):
            streams = stitch([layer(x) for layer, x in zip(layers, streams)])
        return streams, {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bottom_units": self.bottom_units,
                "bottom_activation": self.bottom_activation, "self_weight": self.self_weight}
