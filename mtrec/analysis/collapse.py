"""The expert-collapse alarm, and a way to induce a collapse on purpose.

A mixture of experts has collapsed when its gates stop using the experts
it has. The alarm checks two symptoms on the gates of one level:

1. **Dominant expert**: every task's gate puts more than `dominant_share`
   (default 0.9) of its mean weight on a single expert. The model then
   behaves like one network per task (or, if it is the same expert, a
   shared bottom), whatever the number of experts.
2. **Dead expert**: an expert that every gate seeing it weighs below
   `dead_share` (default 0.1) times a uniform gate's share `1/k`, i.e.
   below 1.25% with 8 experts. Its parameters are trained for nothing.

Either symptom fires the alarm. Both thresholds are set through
`CollapseThresholds` (and `--dominant-share` / `--dead-share` on the
`mtrec gates` command).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from mtrec.analysis.gate_stats import check_gates
from mtrec.errors import ConfigError
from mtrec.training.gates import GateLevel, group_gates


@dataclasses.dataclass
class CollapseThresholds:
    """Thresholds of the collapse alarm.

    Args:
        dominant_share: a task's gate is dominated when its mean weight on
            one expert exceeds this; the alarm fires when every task's gate
            is. In (0, 1]. Defaults to `0.9`.
        dead_share: an expert is dead when every gate that sees it gives it
            a mean weight below `dead_share / k` (k: the gate's number of
            experts, so `1/k` is a uniform gate's share). In [0, 1).
            Defaults to `0.1`.
    """

    dominant_share: float = 0.9
    dead_share: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.dominant_share <= 1:
            raise ConfigError(f"dominant_share must be in (0, 1]. Received: {self.dominant_share}")
        if not 0 <= self.dead_share < 1:
            raise ConfigError(f"dead_share must be in [0, 1). Received: {self.dead_share}")


@dataclasses.dataclass
class CollapseAlarm:
    """The alarm's verdict on one level of gates.

    Attributes:
        level: the level (`""` for single-level models).
        fired: whether any symptom was found.
        dominant: {task: (expert, mean share)} of each task's top expert.
        dead_experts: experts every gate weighs below the dead threshold.
        reasons: one sentence per symptom found.
        thresholds: the thresholds used.
    """

    level: str
    fired: bool
    dominant: dict[str, tuple[str, float]]
    dead_experts: list[str]
    reasons: list[str]
    thresholds: CollapseThresholds

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {
            "level": self.level, "fired": self.fired,
            "dominant": {t: {"expert": e, "share": s} for t, (e, s) in self.dominant.items()},
            "dead_experts": self.dead_experts, "reasons": self.reasons,
            "thresholds": dataclasses.asdict(self.thresholds),
        }


def check_collapse(gates: GateLevel | Mapping[str, np.ndarray],
                   thresholds: CollapseThresholds | None = None) -> CollapseAlarm:
    """Checks one level of gates for a dominant expert in every task, or dead experts.

    Args:
        gates: a GateLevel (from `collect_gates`), or {task: (n, experts)}
            for a single-level model whose gates all weigh the same experts.
        thresholds: defaults to `CollapseThresholds()`.

    Returns:
        A CollapseAlarm; `alarm.fired` says whether the level collapsed.
    """
    thresholds = thresholds or CollapseThresholds()
    level = gates if isinstance(gates, GateLevel) else group_gates(gates)[0]
    utilization = {g: check_gates(v, level.key(g)).mean(axis=0) for g, v in level.gates.items()}

    dominant = {}
    for task in level.task_gates:
        top = int(utilization[task].argmax())
        dominant[task] = (level.experts[task][top], float(utilization[task][top]))
    reasons = []
    if dominant and all(share > thresholds.dominant_share for _, share in dominant.values()):
        experts = sorted({e for e, _ in dominant.values()})
        reasons.append(
            f"every task puts more than {thresholds.dominant_share:.0%} of its gate weight on one "
            f"expert ({', '.join(f'{t}: {e} {s:.1%}' for t, (e, s) in dominant.items())})"
            + ("; all on the same expert" if len(experts) == 1 else ""))

    # Most any gate gives each expert, relative to that gate's uniform share.
    best_relative: dict[str, float] = {}
    for gate, names in level.experts.items():
        k = len(names)
        for name, share in zip(names, utilization[gate]):
            best_relative[name] = max(best_relative.get(name, 0.0), float(share) * k)
    dead = [name for name in level.all_experts if best_relative[name] < thresholds.dead_share]
    if dead:
        reasons.append(
            f"{len(dead)} of {len(best_relative)} experts get less than {thresholds.dead_share:g} x "
            f"the uniform share from every gate: {', '.join(dead)}")
    return CollapseAlarm(level.level, bool(reasons), dominant, dead, reasons, thresholds)


def check_collapse_levels(levels: list[GateLevel],
                          thresholds: CollapseThresholds | None = None) -> list[CollapseAlarm]:
    """`check_collapse` on every level (PLE has one per level)."""
    return [check_collapse(level, thresholds) for level in levels]


def saturate_gates(model: Any, expert: int = 0, margin: float = 2.0) -> int:
    """Induces an expert collapse: every gate starts out preferring one expert.

    Sets each `SoftmaxGate`'s kernel to zero and its bias to `margin` on
    `expert` (0 elsewhere), so each gate ignores its input. With a small
    gate temperature the softmax saturates: a 2-logit lead at temperature
    0.05 is a 40-logit lead, which leaves the other experts ~1e-17 of the
    weight; the gradient through the saturated softmax (of that order) is
    far below Adam's epsilon, so training cannot undo it. (A 1-logit lead,
    ~1e-9, can leak: Adam rescales small gradients.) Useful to demonstrate
    and test the collapse alarm; never for a real model.

    Args:
        model: a built gated model.
        expert: column index of the favoured expert in every gate.
        margin: its logit lead, before the temperature. Defaults to `2.0`.

    Returns:
        How many gates were changed.

    Raises:
        ValueError: the model is not built or has no gates.
    """
    from mtrec.layers.softmax_gate import SoftmaxGate

    if not model.built:
        raise ValueError("Build the model (call it on a batch) before saturating its gates.")
    gates = [layer for layer in model._flatten_layers() if isinstance(layer, SoftmaxGate)]
    if not gates:
        raise ValueError(f"{type(model).__name__} has no SoftmaxGate layers.")
    for gate in gates:
        gate.kernel.assign(np.zeros(tuple(gate.kernel.shape), dtype="float32"))
        bias = np.zeros(tuple(gate.bias.shape), dtype="float32")
        bias[expert] = margin
        gate.bias.assign(bias)
    return len(gates)
