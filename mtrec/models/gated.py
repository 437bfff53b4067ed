"""GatedModel: the base of the models whose experts are mixed by softmax gates (MMoE, OMoE, CGC, PLE)."""

from __future__ import annotations

from typing import Any

from mtrec.layers.specs import ExpertSpec
from mtrec.models.base import MultiTaskModel
from mtrec.types import Tensor


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
        gate_inputs: list of str or None. Multi-domain models: names of
            categorical features (e.g. a campaign or country column) whose
            embeddings, concatenated, are what every gate reads *instead of*
            the shared input, so each domain gets its own mixture of the
            shared experts per task. The experts still read every feature,
            these included. The embeddings are the features' own tables,
            trained with the model. Defaults to `None` (gates read the shared
            input, as in the papers).
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
        gate_inputs: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        spec = ExpertSpec.get(expert, kwargs)
        super().__init__(tasks, feature_layout, **kwargs)
        self.expert_spec = spec
        self.gate_temperature = gate_temperature
        self.embedding = self._make_embedding()
        self.gate_inputs = list(gate_inputs) if gate_inputs else None
        #: Width of the gates' own input (None: they read the shared input).
        self.gate_input_dim = self.embedding.feature_width(self.gate_inputs) if self.gate_inputs else None

    def _gate_input(self, inputs: dict[str, Tensor]) -> Tensor | None:
        """What the gates read besides the shared input: the `gate_inputs` embeddings, or None."""
        return self.embedding.embed(inputs, self.gate_inputs) if self.gate_inputs else None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "expert": self.expert_spec.get_config(),
                "gate_temperature": float(self.gate_temperature), "gate_inputs": self.gate_inputs}


def check_gate_inputs(gate_inputs: Any, features: list, where: str = "model.gate_inputs") -> None:
    """Checks at config time that `gate_inputs` names declared embedded (non-numeric) features.

    Args:
        gate_inputs: the config value (a list of feature names, or None).
        features: the parsed feature specs.
        where: the config key, for messages.

    Raises:
        ConfigError: naming the key and the offending name, with the features it may name.
    """
    from mtrec.errors import ConfigError
    from mtrec.features import NumericFeature

    if gate_inputs is None:
        return
    if isinstance(gate_inputs, str) or not isinstance(gate_inputs, (list, tuple)) or not gate_inputs:
        raise ConfigError(f"Config key '{where}' must be a non-empty list of feature names, e.g. "
                          f"[segment]. Received: {gate_inputs!r}.")
    embedded = [f.name for f in features if not isinstance(f, NumericFeature)]
    numeric = {f.name for f in features if isinstance(f, NumericFeature)}
    for i, name in enumerate(gate_inputs):
        if name in numeric:
            raise ConfigError(f"Config key '{where}[{i}]': '{name}' is a numeric feature; gates are "
                              f"conditioned on embedded features. Declare it with kind: categorical.")
        if name not in embedded:
            raise ConfigError(f"Config key '{where}[{i}]': '{name}' is not a declared feature. Declare the "
                              f"column under 'features' (kind: categorical). Embedded features: {embedded}.")
    if len(set(gate_inputs)) != len(gate_inputs):
        raise ConfigError(f"Config key '{where}' names a feature twice: {list(gate_inputs)!r}.")
