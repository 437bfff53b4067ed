"""SeedEnsemble: k trained models of one config (seeds seed, seed+1, ...) whose predictions are averaged.

`model.ensemble: k` (`mtrec.training.ensemble`) fits k members exactly as a
single run fits one, then wraps them in this model and saves it as the run's
one `model.keras`; scoring, `load_run`, `mtrec export` and the report go
through it unchanged.

Each task's output is the mean of the members' outputs in label units (after
`Task.finish_output`): a binary task's probability, a regression task's
value, a count's rate, a multiclass task's class probabilities (the class a
scorer reports is the argmax of the averaged probabilities, as for one
model). An ESMM-chained task averages the members' products p(after) *
p(this | after).

Gates are not averaged: expert j of one seed has nothing to do with expert j
of another, so `gate_weights` (and an export's `--gates`) report the first
member's gates.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class SeedEnsemble(keras.Model):
    """The mean of several trained `MultiTaskModel`s of the same tasks and features.

    Args:
        members: the trained models (at least one), all with the same task names.
        **kwargs: base `Model` arguments (e.g. `name`).

    Calling the model on a feature dict returns `{task name: mean prediction}`.
    """

    def __init__(self, members: list[MultiTaskModel], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        members = [keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in members]
        if not members:
            raise ValueError("`members` must hold at least one model. Received: members=[]")
        names = [list(m.task_names) for m in members]
        if any(n != names[0] for n in names):
            raise ValueError(f"Every member must have the same tasks. Received task names: {names}")
        self.members = list(members)

    # The members' description: what run code and load_run read off a model.
    @property
    def tasks(self) -> list[Any]:
        return self.members[0].tasks

    @property
    def task_names(self) -> list[str]:
        return list(self.members[0].task_names)

    @property
    def feature_layout(self) -> dict[str, Any]:
        return self.members[0].feature_layout

    @property
    def chained_tasks(self) -> dict[str, str]:
        return self.members[0].chained_tasks

    @property
    def gated(self) -> bool:
        return bool(self.members[0].gated)

    def call(self, inputs: dict[str, Tensor], training: bool | None = None) -> dict[str, Tensor]:
        outputs = [member(inputs, training=training) for member in self.members]
        scale = 1.0 / len(outputs)
        # Summed then scaled (not keras.ops.mean over a stack): no extra copy of every member's output.
        return {name: keras.ops.multiply(sum(out[name] for out in outputs[1:]) + outputs[0][name], scale)
                for name in outputs[0]}

    def _task_representations(self, inputs: dict[str, Tensor],
                              training: bool | None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """The first member's (representations, gates): what `mtrec export --gates` reads."""
        return self.members[0]._task_representations(inputs, training)

    def gate_weights(self, inputs: dict[str, Any], batch_size: int = 8192) -> dict[str, np.ndarray]:
        """The first member's `gate_weights` (experts of different seeds do not correspond)."""
        return self.members[0].gate_weights(inputs, batch_size)

    def compile_for_tasks(self, optimizer: Any = "adam", **kwargs: Any) -> None:
        """Compiles with the tasks' losses and metrics, as a `MultiTaskModel` (for `evaluate`)."""
        tasks = self.tasks
        self.compile(optimizer=optimizer, loss={t.name: t.make_loss() for t in tasks},
                     loss_weights={t.name: float(t.weight) for t in tasks},
                     metrics={t.name: t.make_metrics() for t in tasks}, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "members": [keras.saving.serialize_keras_object(m) for m in self.members]}
