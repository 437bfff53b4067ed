"""Gate weights grouped by level, with the name of every expert each gate weighs, and their entropy.

What the training loggers record (`mtrec.training.analysis_loggers`) and the
gate analysis builds on (`mtrec.analysis`).

`MultiTaskModel.gate_weights` returns a flat dict: `{task: (n, experts)}`
for MMoE/OMoE/CGC and `{"level<l>/<task or shared>": ...}` for PLE. The
analysis needs more: which gates belong to the same level, and which
expert each column is. In MMoE every gate weighs the same shared experts
(`e0`, `e1`, ...). In CGC/PLE task `t`'s gate weighs `t`'s own experts and
then the shared ones (`<task>/e0`, ..., `shared/e0`, ...), and the shared
gate weighs every expert of the level, task ones first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Gate name of a PLE level's shared gate.
SHARED = "shared"


@dataclasses.dataclass
class GateLevel:
    """The gates of one level.

    Attributes:
        level: `""` for single-level models, else e.g. `"level0"`.
        gates: {gate name (a task, or "shared"): (n, experts)}.
        experts: {gate name: the name of each column's expert}.
    """

    level: str
    gates: dict[str, np.ndarray]
    experts: dict[str, list[str]]

    @property
    def task_gates(self) -> dict[str, np.ndarray]:
        """The tasks' gates, without a PLE level's shared gate."""
        return {k: v for k, v in self.gates.items() if k != SHARED}

    @property
    def all_experts(self) -> list[str]:
        """Every expert of the level, in first-seen order."""
        return list(dict.fromkeys(e for names in self.experts.values() for e in names))

    def key(self, gate: str) -> str:
        """The gate's key in `gate_weights` (`"level0/y0"` or `"y0"`)."""
        return f"{self.level}/{gate}" if self.level else gate


def entropy(distributions: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (natural log) along `axis`, with `0 log 0 = 0`."""
    p = np.asarray(distributions, dtype="float64")
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis)


def _ple_expert_names(model: Any, level: int, gate: str, width: int) -> list[str] | None:
    extraction = model.levels[level]
    own, shared = extraction.num_task_experts, extraction.num_shared_experts
    shared_names = [f"{SHARED}/e{j}" for j in range(shared)]
    if gate == SHARED:
        names = [f"{t}/e{j}" for t in model.task_names for j in range(own)] + shared_names
    else:
        names = [f"{gate}/e{j}" for j in range(own)] + shared_names
    return names if len(names) == width else None


def group_gates(gates: Mapping[str, np.ndarray], model: Any = None) -> list[GateLevel]:
    """Groups `gate_weights` output by level and names each gate's experts.

    Args:
        gates: what `model.gate_weights(features)` returned.
        model: the model; needed to name CGC/PLE experts (task-specific vs
            shared). Without it every gate's columns are called `e0, e1, ...`,
            which is right for MMoE and OMoE only.

    Returns:
        One GateLevel per level, in level order.
    """
    is_ple = model is not None and hasattr(model, "levels") and hasattr(model, "num_levels")
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in gates.items():
        level, _, gate = key.rpartition("/")
        grouped.setdefault(level, {})[gate] = np.asarray(value)
    out = []
    for level, level_gates in grouped.items():
        index = int(level.removeprefix("level")) if level.startswith("level") else 0
        experts = {}
        for gate, value in level_gates.items():
            names = _ple_expert_names(model, index, gate, value.shape[1]) if is_ple else None
            experts[gate] = names or [f"e{j}" for j in range(value.shape[1])]
        out.append(GateLevel(level, level_gates, experts))
    return sorted(out, key=lambda g: g.level)


def collect_gates(model: Any, features: Mapping[str, np.ndarray],
                  batch_size: int = 8192) -> list[GateLevel]:
    """Runs a gated model over encoded features and groups its gates by level.

    Args:
        model: a gated `MultiTaskModel` (`model.gated` is True).
        features: encoded inputs (`FeatureEncoder.transform`).
        batch_size: rows per forward pass.

    Raises:
        TypeError: the model has no gates.
    """
    return group_gates(model.gate_weights(dict(features), batch_size=batch_size), model)
