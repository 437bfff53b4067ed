"""SingleTask: one independent network per task, the baseline of every MTL result."""

from __future__ import annotations

from typing import Any

from mtrec.models.bottom_model import BottomModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class SingleTask(BottomModel):
    """Each task gets its own embeddings, its own bottom MLP and its own tower.

    Nothing is shared, so the tasks only share a training loop: this is the
    "learned alone" reference against which negative transfer is measured.

    Args:
        tasks, feature_layout, tower_*: see `MultiTaskModel`.
        bottom: see `BottomModel`; each task's bottom. Defaults to `{"units": [64]}`.
        **kwargs: base `Model` arguments.
    """

    def __init__(self, tasks: list, feature_layout: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.embeddings = [self._make_embedding(f"embedding_{n}") for n in self.task_names]
        self.bottoms = [self.bottom_spec.build(f"bottom_{n}", dtype=self.dtype_policy) for n in self.task_names]

    def task_variables(self) -> dict[str, list]:
        """{task: the variables of its own network}: its embeddings, bottom and tower.

        The networks share no variable, so each can keep the weights of its
        own best epoch (`mtrec.training.per_task_stopping`).
        """
        return {name: [*embedding.variables, *bottom.variables, *tower.variables]
                for name, embedding, bottom, tower in zip(self.task_names, self.embeddings, self.bottoms, self.towers)}

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        reps = [
            bottom(embedding(inputs), training=training)
            for embedding, bottom in zip(self.embeddings, self.bottoms)
        ]
        return reps, {}
