"""CrossStitch: per-task networks whose layers exchange activations through cross-stitch units."""

from __future__ import annotations

from typing import Any

import keras

from mtrec.layers.cross_stitch import CrossStitchUnit
from mtrec.layers.specs import BottomSpec
from mtrec.models.bottom_model import BottomModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class CrossStitch(BottomModel):
    """Cross-stitch networks (Misra et al., CVPR 2016) for tabular and recommendation inputs.

    Each task has its own embeddings and its own stack of dense layers (the
    `bottom` spec); after every dense layer a `CrossStitchUnit` mixes the
    tasks' activations with learned weights that start near the identity.

    Args:
        tasks, feature_layout, tower_*: see `MultiTaskModel`.
        bottom: see `BottomModel`; its `units` must not be empty. Defaults
            to `{"units": [64, 32]}`.
        self_weight: float. Initial diagonal of the cross-stitch units. Defaults to `0.9`.
        **kwargs: base `Model` arguments.
    """

    default_bottom = BottomSpec(units=[64, 32])

    def __init__(self, tasks: list, feature_layout: dict[str, Any], self_weight: float = 0.9,
                 **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        spec = self.bottom_spec
        if not spec.units:
            raise ValueError(f"`bottom.units` of CrossStitch must not be empty. Received: units={spec.units}")
        self.self_weight = float(self_weight)
        n = len(self.tasks)
        self.embeddings = [self._make_embedding(f"embedding_{name}") for name in self.task_names]
        self.dense = [[keras.layers.Dense(width, activation=spec.activation, dtype=self.dtype_policy,
                                          name=f"dense_{l}_{name}")
                       for name in self.task_names] for l, width in enumerate(spec.units)]
        self.stitches = [CrossStitchUnit(n, self_weight, dtype=self.dtype_policy, name=f"cross_stitch_{l}")
                         for l in range(len(spec.units))]
        self.dropout = (keras.layers.Dropout(spec.dropout, dtype=self.dtype_policy, name="dropout")
                        if spec.dropout > 0 else None)

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        streams = [embedding(inputs) for embedding in self.embeddings]
        for layers, stitch in zip(self.dense, self.stitches):
            streams = [layer(x) for layer, x in zip(layers, streams)]
            if self.dropout is not None:
                streams = [self.dropout(x, training=training) for x in streams]
            streams = stitch(streams)
        return streams, {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "self_weight": self.self_weight}
