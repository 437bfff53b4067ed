"""OMoE: one-gate Mixture-of-Experts, the MMoE paper's ablation."""

from __future__ import annotations

from mtrec.models.mmoe import MMoE
from mtrec.utils.keras_utils import serializable


@serializable
class OMoE(MMoE):
    """MMoE with a single gate that every task shares.

    The MMoE paper (Ma et al., KDD 2018) uses it to show what per-task gates
    add: with one gate all tasks see the same mixture, as in a shared bottom
    whose capacity is split into experts.

    Args: as `MMoE`. `gate_weights(x)` returns the one gate under every
    task's name, so analysis code treats OMoE and MMoE alike.
    """

    one_gate = True
