"""GatedModel: the base of the models whose experts are mixed by softmax gates (MMoE, OMoE, CGC, PLE)."""

from __future__ import annotations

from typing import Any

from mtrec.layers.specs import ExpertSpec
from mtrec.models.base import MultiTaskModel


class GatedModel(MultiTaskModel):
    """Embeddings, then experts of one `ExpertSpec` read through softmax gates, then the towers.

    Args:
        tasks, feature_layout, tower_units, tower_activation, tower_dropout:
            see `MultiTaskModel`.
        expert: `ExpertSpec` or its config dict, e.g. `{"kind": "dcn",
            "units": [32], "dropout": 0.2}`. Defaults to MLP experts of
            `[16]` (the MMoE paper's).
        gate_temperature: float. Softmax temperature of the gates; small
            values push each gate towards a single expert. Defaults to `1.0`.
        **kwargs: base `Model` arguments. The flat expert keys of mtrec 0.1
            (`expert_units`, `expert_activation`, `expert_dropout`,
            `expert_kind`, `num_cross_layers`, `cross_projection_dim`) are
            still accepted, so its configs and saved models load.

    Subclasses build their gated body from `self.expert_spec` and
    `self.gate_temperature` after this constructor has made the embedding.
    """

    gated = True

    def __init__(
        self,
        tasks: list,
        feature_layout: dict[str, Any],
        expert: ExpertSpec | None = None,
        gate_temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        spec = ExpertSpec.get(expert, kwargs)
        super().__init__(tasks, feature_layout, **kwargs)
        self.expert_spec = spec
        self.gate_temperature = gate_temperature
        self.embedding = self._make_embedding()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expert": self.expert_spec.get_config(),
                "gate_temperature": float(self.gate_temperature)}
