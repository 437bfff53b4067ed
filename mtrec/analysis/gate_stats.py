"""Statistics of gate weights: utilization, entropy, effective experts, divergence between tasks.

Pure NumPy on arrays of shape `(num_examples, num_experts)` whose rows are
probability distributions (what `MultiTaskModel.gate_weights` returns).
Entropies use the natural logarithm, so a uniform gate over `k` experts has
entropy `log(k)` and `k` effective experts, and a one-hot gate has entropy 0
and 1 effective expert.

Two views of "how many experts a task uses":

- `effective_experts`: `exp` of the mean per-example entropy. How many
  experts one example is spread over (1 = hard routing).
- `effective_experts_used`: `exp` of the entropy of the mean gate
  (utilization). How many experts the task uses over the whole data set; a
  task that routes each example to one expert, but different experts for
  different examples, scores high here and 1 above.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mtrec.training.gates import entropy


#: How far a gate row may sum from 1 before it is refused.
_ROW_SUM_TOLERANCE = 1e-3


def check_gates(gates: np.ndarray, name: str = "gates") -> np.ndarray:
    """Checks an array of gate distributions and returns it as float64.

    Args:
        gates: `(num_examples, num_experts)`; rows non-negative, summing to 1.
        name: how the array is called in error messages (e.g. the task).

    Returns:
        The array as float64.

    Raises:
        ValueError: wrong shape, no rows, NaN, negative weights, or rows not
            summing to 1.
    """
    array = np.asarray(gates, dtype="float64")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"Gate weights '{name}' must be a non-empty (examples, experts) array. "
                         f"Received shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"Gate weights '{name}' contain NaN or infinite values.")
    if (array < 0).any():
        raise ValueError(f"Gate weights '{name}' contain negative values (min {array.min():.3g}).")
    sums = array.sum(axis=1)
    worst = float(np.abs(sums - 1).max())
    if worst > _ROW_SUM_TOLERANCE:
        raise ValueError(f"Gate weights '{name}': every row must sum to 1; one sums to "
                         f"{sums[np.abs(sums - 1).argmax()]:.4f}.")
    return array


def expert_utilization(gates: np.ndarray) -> np.ndarray:
    """Mean gate weight of each expert over examples.

    Args:
        gates: `(num_examples, num_experts)` gate distributions.

    Returns:
        `(num_experts,)`, summing to 1: the task's share of each expert.
    """
    return check_gates(gates).mean(axis=0)


def gate_entropy(gates: np.ndarray) -> np.ndarray:
    """Entropy of each example's gate distribution.

    Returns:
        `(num_examples,)`, between 0 (one expert) and `log(num_experts)` (uniform).
    """
    return entropy(check_gates(gates), axis=1)


def effective_experts(gates: np.ndarray) -> float:
    """`exp(mean per-example entropy)`: experts one example is spread over, between 1 and `num_experts`."""
    return float(np.exp(gate_entropy(gates).mean()))


def effective_experts_used(gates: np.ndarray) -> float:
    """`exp(entropy of the utilization)`: experts the task uses over the data set."""
    return float(np.exp(entropy(expert_utilization(gates))))


def js_divergence(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between distributions along `axis`.

    Symmetric, 0 for identical distributions and at most `log(2)` for
    distributions with disjoint support.
    """
    p = np.asarray(p, dtype="float64")
    q = np.asarray(q, dtype="float64")
    m = (p + q) / 2
    return entropy(m, axis) - (entropy(p, axis) + entropy(q, axis)) / 2


def gate_divergence(a: np.ndarray, b: np.ndarray, per_example: bool = True) -> float:
    """How differently two gates route the same examples.

    Args:
        a, b: `(num_examples, num_experts)` gates of two tasks on the same rows.
        per_example: mean Jensen-Shannon divergence between the two gates on
            each example (default); False compares the two utilizations only.

    Returns:
        A divergence between 0 (identical) and `log(2)`.

    Raises:
        ValueError: the gates differ in shape.
    """
    a, b = check_gates(a, "a"), check_gates(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"Gates must have the same shape to be compared: {a.shape} vs {b.shape}.")
    if per_example:
        return float(np.clip(js_divergence(a, b, axis=1), 0.0, None).mean())
    return float(max(js_divergence(a.mean(axis=0), b.mean(axis=0)), 0.0))


def divergence_matrix(gates: Mapping[str, np.ndarray], per_example: bool = True) -> pd.DataFrame:
    """Pairwise `gate_divergence` between gates of the same width.

    Args:
        gates: {task: (num_examples, num_experts)} on the same rows.
        per_example: see `gate_divergence`.

    Returns:
        A symmetric DataFrame indexed and columned by task; NaN where two
        gates weigh different numbers of experts.
    """
    names = list(gates)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i:]:
            if gates[a].shape == gates[b].shape:
                value = 0.0 if a == b else gate_divergence(gates[a], gates[b], per_example)
                out.loc[a, b] = out.loc[b, a] = value
    return out


def summarize_gates(gates: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per gate: entropy, effective experts, the top expert and its share.

    Args:
        gates: {gate name: (num_examples, num_experts)}.

    Returns:
        A DataFrame indexed by gate name with columns `experts`,
        `mean_entropy`, `max_entropy` (`log(experts)`), `effective_experts`,
        `effective_experts_used`, `top_expert` (column index) and `top_share`.
    """
    rows = {}
    for name, value in gates.items():
        g = check_gates(value, name)
        utilization = g.mean(axis=0)
        mean_entropy = float(entropy(g, axis=1).mean())
        rows[name] = {
            "experts": g.shape[1],
            "mean_entropy": mean_entropy,
            "max_entropy": float(np.log(g.shape[1])),
            "effective_experts": float(np.exp(mean_entropy)),
            "effective_experts_used": float(np.exp(entropy(utilization))),
            "top_expert": int(utilization.argmax()),
            "top_share": float(utilization.max()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
