"""MMoE: Multi-gate Mixture-of-Experts (Ma et al., KDD 2018)."""

from __future__ import annotations

from typing import Any

from mtrec.layers.mixture_of_experts import MixtureOfExperts
from mtrec.models.gated import GatedModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class MMoE(GatedModel):
    """Shared experts; each task mixes them with its own softmax gate.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        num_experts: int. Defaults to `8` (the paper's synthetic setting).
        expert, gate_temperature: see `GatedModel` (`expert` is an
            `ExpertSpec` or its dict: `kind` `"mlp"` or `"dcn"`, `units`,
            `activation`, `dropout`, `num_cross_layers`, `projection_dim`).
        **kwargs: base `Model` arguments.

    `gate_weights(x)` returns `{task: (num_examples, num_experts)}`.

    Example:
    ```python
    model = MMoE(tasks=[RegressionTask("y0"), RegressionTask("y1")],
                 feature_layout=encoder.layout(), num_experts=8,
                 expert={"units": [16], "dropout": 0.1}, tower_units=[8])
    ```
    """

    #: Whether every task reads the same gate (OMoE).
    one_gate: bool = False

    def __init__(self, tasks: list, feature_layout: dict[str, Any], num_experts: int = 8, **kwargs: Any) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.mixture = MixtureOfExperts(
            num_gates=1 if self.one_gate else len(self.tasks), num_experts=num_experts, expert=self.expert_spec,
            gate_temperature=self.gate_temperature, gate_input_dim=self.gate_input_dim,
            dtype=self.dtype_policy, name="mixture",
        )

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        mixtures, gates = self.mixture(self.embedding(inputs), training=training,
                                       gate_inputs=self._gate_input(inputs))
        index = [0 if self.one_gate else i for i in range(len(self.tasks))]
        reps = [mixtures[:, g, :] for g in index]
        return reps, {name: gates[:, g, :] for name, g in zip(self.task_names, index)}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_experts": self.mixture.num_experts}
