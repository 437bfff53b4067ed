"""OMoE: one-gate Mixture-of-Experts, the MMoE paper's ablation."""

from __future__ import annotations

from typing import Any, Literal

from mtrec.layers.mixture_of_experts import MixtureOfExperts
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor
from mtrec.utils.keras_utils import serializable


@serializable
class OMoE(MultiTaskModel):
    """Shared experts mixed by a single gate that every task shares.

    The MMoE paper (Ma et al., KDD 2018) uses it to show what per-task gates
    add: with one gate all tasks see the same mixture, as in a shared bottom
    whose capacity is split into experts.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        num_experts: int. Defaults to `8`.
        expert_units: list of int. Defaults to `[16]`.
        expert_activation: str. Defaults to `"relu"`.
        expert_dropout: float. Defaults to `0.0`.
        expert_kind: str. `"mlp"` or `"dcn"` (a DCN-v2 cross network, then
            the MLP of `expert_units`; see `CrossExpertBank`). Defaults to `"mlp"`.
        num_cross_layers: int. Cross layers per DCN expert. Defaults to `2`.
        cross_projection_dim: int or None. Low-rank size of the DCN cross
            kernels (None: full rank). Defaults to `None`.
        gate_temperature: float. Defaults to `1.0`.
        **kwargs: base `Model` arguments.

    `gate_weights(x)` returns the one gate under every task's name, so
    analysis code treats OMoE and MMoE alike.
    """

    gated = True

    def __init__(
        self,
        tasks: list,
        feature_layout: dict[str, Any],
        num_experts: int = 8,
        expert_units: list[int] = (16,),
        expert_activation: str = "relu",
        expert_dropout: float = 0.0,
        gate_temperature: float = 1.0,
        expert_kind: Literal["mlp", "dcn"] = "mlp",
        num_cross_layers: int = 2,
        cross_projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(tasks, feature_layout, **kwargs)
        self.embedding = self._make_embedding()
        self.mixture = MixtureOfExperts(
            num_gates=1, num_experts=num_experts, expert_units=expert_units,
            expert_activation=expert_activation, expert_dropout=expert_dropout,
            expert_kind=expert_kind, num_cross_layers=num_cross_layers,
            cross_projection_dim=cross_projection_dim, gate_temperature=gate_temperature, name="mixture",
        )

    def _task_representations(self, inputs: dict[str, Tensor], training: bool | None):
        mixtures, gates = self.mixture(self.embedding(inputs), training=training)
        shared, gate = mixtures[:, 0, :], gates[:, 0, :]
        return [shared] * len(self.tasks), {name: gate for name in self.task_names}

    def get_config(self) -> dict[str, Any]:
        m = self.mixture
        return {
            **super().get_config(),
            "num_experts": m.num_experts,
            "expert_units": m.expert_units,
            "expert_activation": m.expert_activation,
            "expert_dropout": m.expert_dropout,
            "gate_temperature": m.gate_temperature,
            "expert_kind": m.expert_kind,
            "num_cross_layers": m.num_cross_layers,
            "cross_projection_dim": m.cross_projection_dim,
        }
