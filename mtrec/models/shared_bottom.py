"""SharedBottom: hard parameter sharing, one bottom network feeding every task tower."""

from __future__ import annotations

from typing import Any

from mtrec.models.bottom_model import BottomModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class SharedBottom(BottomModel):
    """Shared embeddings and a shared bottom MLP; a tower per task.

    Args:
        tasks, feature_layout, tower_*: see `MultiTaskModel`.
        bottom: see `BottomModel`. Defaults to `{"units": [64]}`.
        **kwargs: base `Model` arguments.
    """

    def __init__(self, tasks: list, feature_layout: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.embedding = self._make_embedding()
        self.bottom = self.bottom_spec.build("bottom", dtype=self.dtype_policy)

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        shared = self.bottom(self.embedding(inputs), training=training)
        return [shared] * len(self.tasks), {}
