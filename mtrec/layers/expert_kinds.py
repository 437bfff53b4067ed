"""The kinds of expert a gated model can use, behind one factory."""

from __future__ import annotations

from typing import Any

from mtrec.layers.cross_expert_bank import CrossExpertBank
from mtrec.layers.expert_bank import ExpertBank


EXPERT_KINDS = ("mlp", "dcn")


def make_expert_bank(
    expert_kind: str,
    num_experts: int,
    units: list[int],
    activation: str = "relu",
    dropout: float = 0.0,
    kernel_initializer: Any = "glorot_uniform",
    num_cross_layers: int = 2,
    cross_projection_dim: int | None = None,
    name: str | None = None,
) -> ExpertBank | CrossExpertBank:
    """An expert bank of the given kind: `"mlp"` (`ExpertBank`) or `"dcn"` (`CrossExpertBank`).

    Raises:
        ValueError: an unknown `expert_kind` (the message lists the kinds).
    """
    if expert_kind == "mlp":
        return ExpertBank(num_experts, units, activation=activation, dropout=dropout,
                          kernel_initializer=kernel_initializer, name=name)
    if expert_kind == "dcn":
        return CrossExpertBank(num_experts, units, num_cross_layers=num_cross_layers,
                               projection_dim=cross_projection_dim, activation=activation,
                               dropout=dropout, kernel_initializer=kernel_initializer, name=name)
    raise ValueError(f"expert_kind must be one of {list(EXPERT_KINDS)}, got {expert_kind!r}")
