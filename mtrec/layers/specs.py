"""Serializable specs of the blocks a model repeats: its experts (`ExpertSpec`) and its bottom MLPs (`BottomSpec`).

A spec is a small frozen dataclass: the `expert:` or `bottom:` mapping of a
model config, checked in one place and turned into layers by `build`. Models
and blocks take the spec (or its config dict) as one argument, so a new
expert setting is added here once, not to every constructor.

Example:
```python
spec = ExpertSpec.get({"kind": "dcn", "units": [32], "projection_dim": 8})
bank = spec.build(num_experts=8, name="experts")  # a CrossExpertBank
MMoE(tasks, layout, num_experts=8, expert=spec)
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, TypeVar

from mtrec.layers.cross_expert_bank import CrossExpertBank
from mtrec.layers.expert_bank import ExpertBank
from mtrec.layers.mlp import MLP
from mtrec.utils.keras_utils import check_positive_int, check_rate, check_units

#: The kinds of expert (`ExpertSpec.kind`).
EXPERT_KINDS = ("mlp", "dcn")

S = TypeVar("S", bound="LayerSpec")


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """Base of the specs: config round trip, and the flat keys of mtrec 0.1 folded in."""

    #: The constructor argument that takes the spec (for messages).
    argument: ClassVar[str] = ""
    #: Flat constructor keys of mtrec 0.1 -> spec field; still accepted (old configs, saved models).
    legacy_keys: ClassVar[dict[str, str]] = {}

    def get_config(self) -> dict[str, Any]:
        """The spec as plain values (lists, not tuples)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls: type[S], config: dict[str, Any]) -> S:
        return cls(**config)

    @classmethod
    def get(cls: type[S], value: Any = None, legacy: dict[str, Any] | None = None,
            default: S | None = None) -> S:
        """The spec from a spec, its config dict or None, with old flat keys folded in.

        Args:
            value: a spec, a dict of its fields, or None for `default`.
            legacy: constructor keyword arguments; the flat keys of mtrec 0.1
                (`expert_units`, `bottom_dropout`, ...) are popped from it
                and override the matching field (so an override such as
                `model.expert_units=[8]` still applies to a config that
                writes `expert: {units: [16]}`).
            default: the spec when `value` is None, and the fields a dict
                leaves out. Defaults to `cls()`.

        Raises:
            ValueError: `value` is of another type, names an unknown field,
                or a field breaks its rule.
        """
        if value is None:
            config = (default or cls()).get_config()
        elif isinstance(value, cls):
            config = value.get_config()
        elif isinstance(value, dict):
            config = {**(default or cls()).get_config(), **value}
        else:
            raise ValueError(f"`{cls.argument}` must be a {cls.__name__} or a dict of its fields "
                             f"{[f.name for f in dataclasses.fields(cls)]}. Received: {cls.argument}={value!r}")
        for old, new in cls.legacy_keys.items():
            if legacy is not None and old in legacy:
                config[new] = legacy.pop(old)
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in fields:
                raise ValueError(f"`{cls.argument}` has no field '{key}'. Fields: {fields}")
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class ExpertSpec(LayerSpec):
    """What every expert of a gated model is.

    Args:
        kind: str. `"mlp"` (`ExpertBank`) or `"dcn"` (a DCN-v2 cross network,
            then the MLP; `CrossExpertBank`). Defaults to `"mlp"`.
        units: list of int. Widths of each expert's MLP. Defaults to `[16]`
            (the MMoE paper's experts).
        activation: str. Activation of the MLP layers. Defaults to `"relu"`.
        dropout: float. Dropout after each MLP layer. Defaults to `0.0`.
        num_cross_layers: int. Cross layers of a `"dcn"` expert. Defaults to `2`.
        projection_dim: int or None. Low-rank size of a `"dcn"` expert's cross
            kernels; None for full rank. Defaults to `None`.
    """

    argument: ClassVar[str] = "expert"
    legacy_keys: ClassVar[dict[str, str]] = {
        "expert_kind": "kind", "expert_units": "units", "expert_activation": "activation",
        "expert_dropout": "dropout", "num_cross_layers": "num_cross_layers",
        "cross_projection_dim": "projection_dim",
    }

    kind: Literal["mlp", "dcn"] = "mlp"
    units: list[int] = dataclasses.field(default_factory=lambda: [16])
    activation: str = "relu"
    dropout: float = 0.0
    num_cross_layers: int = 2
    projection_dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXPERT_KINDS:
            raise ValueError(f"`expert.kind` must be one of {list(EXPERT_KINDS)}. Received: kind={self.kind!r}")
        object.__setattr__(self, "units", check_units(self.units, "expert.units", allow_empty=False))
        object.__setattr__(self, "dropout", check_rate(self.dropout, "expert.dropout"))
        check_positive_int(self.num_cross_layers, "expert.num_cross_layers")
        if self.projection_dim is not None:
            check_positive_int(self.projection_dim, "expert.projection_dim")

    def build(self, num_experts: int, name: str | None = None, kernel_initializer: Any = "glorot_uniform",
              dtype: Any = None) -> ExpertBank | CrossExpertBank:
        """A bank of `num_experts` experts of this spec."""
        common = dict(activation=self.activation, dropout=self.dropout,
                      kernel_initializer=kernel_initializer, dtype=dtype, name=name)
        if self.kind == "dcn":
            return CrossExpertBank(num_experts, self.units, num_cross_layers=self.num_cross_layers,
                                   projection_dim=self.projection_dim, **common)
        return ExpertBank(num_experts, self.units, **common)


@dataclasses.dataclass(frozen=True)
class BottomSpec(LayerSpec):
    """The bottom MLP of SharedBottom, of each task in SingleTask and SoftSharing, and of CrossStitch's task networks.

    Args:
        units: list of int. Widths of the bottom's layers (empty: the
            identity). Defaults to `[64]`.
        activation: str. Defaults to `"relu"`.
        dropout: float. Dropout after each layer. Defaults to `0.0`.
    """

    argument: ClassVar[str] = "bottom"
    legacy_keys: ClassVar[dict[str, str]] = {
        "bottom_units": "units", "bottom_activation": "activation", "bottom_dropout": "dropout"}

    units: list[int] = dataclasses.field(default_factory=lambda: [64])
    activation: str = "relu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", check_units(self.units, "bottom.units"))
        object.__setattr__(self, "dropout", check_rate(self.dropout, "bottom.dropout"))

    def build(self, name: str | None = None, dtype: Any = None) -> MLP:
        """The bottom MLP."""
        return MLP(self.units, activation=self.activation, dropout=self.dropout, dtype=dtype, name=name)
