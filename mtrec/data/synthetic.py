"""The MMoE paper's synthetic multi-task data, with a controllable task correlation.

Ma et al., "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD 2018, section 3.2:

1. two orthogonal unit vectors `u1, u2` in R^d;
2. for a scale `c` and a correlation `-1 <= p <= 1`:
   `w1 = c·u1`, `w2 = c·(p·u1 + sqrt(1 - p²)·u2)`, so `cos(w1, w2) = p`;
3. `x ~ N(0, I_d)`;
4. `y_k = w_kᵀx + Σ_{i=1..m} sin(α_i·w_kᵀx + β_i) + ε_k`, with
   `ε_k ~ N(0, 0.01)` i.i.d. (variance 0.01, so standard deviation 0.1).

The paper uses d = 100 (its section 5.1, "The input dimension is 100") and
calls α_i, β_i "given parameters that control the shape of the sinusoidal
functions" without giving their values, nor c or m. Here:

- `c = 1` and `m = 10` (the defaults `scale=1.0`, `num_sines=10`), as in
  Google Research's open-source generator of this procedure
  (google-research/google-research, "Simple generator for synthetic
  multi-task data"), whose comment notes that the paper leaves α, β open.
- `α_i, β_i ~ N(0, 1)`, drawn once from the seed. (Google Research's
  generator fixes `α_i = i`, `β_i = (i-1)²` instead; with frequencies up to
  10 the sine part is far rougher than the linear part and the labels of two
  tasks decorrelate fast as p drops. Standard-normal α, β keep the sine part
  smooth enough to learn from thousands of rows, and p still orders the
  label correlation.)
- The same α, β are shared by every task, as in the paper's equations (3)
  and (4): tasks differ only through their weight vectors.

More than two tasks: `w_1 = c·u_1` and `w_k = c·(p·u_1 + sqrt(1 - p²)·u_k)`
for k >= 2, with orthonormal `u_1..u_T`. Then `cos(w_1, w_k) = p` for every
k >= 2 and `cos(w_j, w_k) = p²` between two tasks j, k >= 2 (they share
only the `u_1` part). With two tasks this is exactly the paper's recipe.

Reproducibility: the task functions (the u's, α, β) come from the seed
alone, through their own random streams, so they do not depend on
`n_rows`; the rows of a smaller call are the first rows of a larger one
with the same seed and settings; and adding tasks does not change the
earlier tasks' weights.

Example:

```python
frame = make_synthetic(10_000, correlation=0.9, seed=7)   # x0..x99, y0, y1
```
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError

#: The paper's input dimension (section 5.1).
PAPER_NUM_FEATURES = 100
#: Standard deviation of the paper's label noise N(0, 0.01) (variance 0.01).
PAPER_NOISE_STD = 0.1

# Independent random streams spawned from the seed, by purpose.
_STREAM_BASIS, _STREAM_SINES, _STREAM_FEATURES, _STREAM_NOISE = range(4)


@dataclasses.dataclass
class SyntheticConfig:
    """Settings of the synthetic generator (config section `data.synthetic`).

    The fields are the arguments of `make_synthetic`; see there.

    Args:
        n_rows: rows to generate. Defaults to `10000`.
        num_features: input dimension d. Defaults to `100` (the paper's).
        correlation: cosine p between the task weight vectors, in [-1, 1].
            Defaults to `0.5`.
        num_tasks: number of label columns. Defaults to `2`.
        scale: the paper's scale constant c. Defaults to `1.0`.
        num_sines: the paper's m, sine terms per label. Defaults to `10`.
        noise_std: standard deviation of the label noise. Defaults to `0.1`
            (the paper's variance 0.01).
        binarize: turn each label into 0/1 at its median. Defaults to `False`.
        seed: seed of the task functions and the rows. Defaults to `0`.
    """

    n_rows: int = 10000
    num_features: int = PAPER_NUM_FEATURES
    correlation: float = 0.5
    num_tasks: int = 2
    scale: float = 1.0
    num_sines: int = 10
    noise_std: float = PAPER_NOISE_STD
    binarize: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_arguments(prefix="data.synthetic.", **dataclasses.asdict(self))


def _check_arguments(prefix: str = "", **args: Any) -> None:
    """Raises ConfigError naming the first argument that is out of range."""

    def fail(name: str, rule: str) -> None:
        key = f"{prefix}{name}"
        shown = f"'{key}'" if prefix else f"`{key}`"
        raise ConfigError(f"{shown} must be {rule}. Received: {name}={args[name]!r}")

    def is_int(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and math.isfinite(value)

    for name, minimum in (("n_rows", 1), ("num_features", 1), ("num_tasks", 1), ("num_sines", 0)):
        if name in args and (not is_int(args[name]) or args[name] < minimum):
            fail(name, f"an integer >= {minimum}")
    if "seed" in args and (not is_int(args["seed"]) or args["seed"] < 0):
        fail("seed", "a non-negative integer")
    if "correlation" in args and (not is_number(args["correlation"]) or not -1 <= args["correlation"] <= 1):
        fail("correlation", "a number in [-1, 1]")
    if "scale" in args and (not is_number(args["scale"]) or args["scale"] <= 0):
        fail("scale", "a positive number")
    if "noise_std" in args and (not is_number(args["noise_std"]) or args["noise_std"] < 0):
        fail("noise_std", "a non-negative number")
    if "binarize" in args and not isinstance(args["binarize"], (bool, np.bool_)):
        fail("binarize", "true or false")
    if "num_features" in args and "num_tasks" in args and args["num_features"] < args["num_tasks"]:
        key = f"{prefix}num_features"
        raise ConfigError(
            f"{repr(key) if prefix else '`' + key + '`'} must be at least num_tasks "
            f"({args['num_tasks']}): each task needs its own orthogonal direction. "
            f"Received: num_features={args['num_features']}, num_tasks={args['num_tasks']}"
        )


def _streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def _orthonormal_basis(num_features: int, num_tasks: int, rng: np.random.Generator) -> np.ndarray:
    """`num_tasks` orthonormal vectors in R^num_features, shape (num_tasks, num_features).

    Gram-Schmidt (QR with a positive diagonal) of Gaussian rows: vector k
    depends only on the first k rows, so adding tasks keeps the earlier ones.
    """
    gaussian = rng.standard_normal((num_tasks, num_features))
    q, r = np.linalg.qr(gaussian.T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return (q * signs).T


def synthetic_task_weights(num_features: int = PAPER_NUM_FEATURES, correlation: float = 0.5,
                           num_tasks: int = 2, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """The task weight vectors w_k used by `make_synthetic` with the same arguments.

    Args:
        num_features: input dimension d. Defaults to `100`.
        correlation: p, in [-1, 1]. Defaults to `0.5`.
        num_tasks: number of tasks T. Defaults to `2`.
        seed: generator seed. Defaults to `0`.
        scale: the scale constant c (the norm of every w_k). Defaults to `1.0`.

    Returns:
        float64 array of shape `(num_tasks, num_features)`, row k being w_k:
        `cos(w_0, w_k) = p` for k >= 1 and `cos(w_j, w_k) = p²` for
        1 <= j < k.
    """
    _check_arguments(num_features=num_features, correlation=correlation, num_tasks=num_tasks,
                     seed=seed, scale=scale)
    basis = _orthonormal_basis(num_features, num_tasks, _streams(seed)[_STREAM_BASIS])
    p = float(correlation)
    weights = np.empty_like(basis)
    weights[0] = scale * basis[0]
    if num_tasks > 1:
        weights[1:] = scale * (p * basis[0] + math.sqrt(max(0.0, 1.0 - p * p)) * basis[1:])
    return weights


def synthetic_sine_parameters(num_sines: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The α_i and β_i used by `make_synthetic` with the same seed: both ~ N(0, 1).

    Args:
        num_sines: m, the number of sine terms. Defaults to `10`.
        seed: generator seed. Defaults to `0`.

    Returns:
        `(alphas, betas)`, each a float64 array of shape `(num_sines,)`. The
        first values do not depend on `num_sines`.
    """
    _check_arguments(num_sines=num_sines, seed=seed)
    rng = _streams(seed)[_STREAM_SINES]
    draws = rng.standard_normal((num_sines, 2))
    return draws[:, 0].copy(), draws[:, 1].copy()


def make_synthetic(
    n_rows: int,
    num_features: int = PAPER_NUM_FEATURES,
    correlation: float = 0.5,
    num_tasks: int = 2,
    scale: float = 1.0,
    num_sines: int = 10,
    noise_std: float = PAPER_NOISE_STD,
    binarize: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Generates the MMoE paper's synthetic regression (or 0/1) tasks.

    `y_k = w_kᵀx + Σ_i sin(α_i·w_kᵀx + β_i) + ε_k` with `x ~ N(0, I_d)`,
    weights from `synthetic_task_weights` (cosine `correlation` between task
    0 and every other task) and α, β from `synthetic_sine_parameters`. See
    the module docstring for the paper's recipe and the constants chosen.

    Args:
        n_rows: number of rows; at least 1.
        num_features: input dimension d, at least `num_tasks`. Defaults to
            `100` (the paper's).
        correlation: the cosine p of the task weight vectors, in [-1, 1]
            ("task correlation"; the labels' Pearson correlation rises with
            it but is lower, because of the sine terms). Defaults to `0.5`.
        num_tasks: number of label columns. Defaults to `2`.
        scale: the scale constant c, the norm of each weight vector.
            Defaults to `1.0`.
        num_sines: m, the number of sine terms. Defaults to `10`.
        noise_std: standard deviation of ε_k. Defaults to `0.1` (the paper's
            N(0, 0.01) is a variance).
        binarize: when True, each label becomes int8 1 where y_k is above its
            median over the generated rows, else 0 (about half positives).
            Defaults to `False`.
        seed: seed of everything. The task functions depend on the seed
            only, not on `n_rows`. Defaults to `0`.

    Returns:
        A DataFrame with float32 columns `x0..x{d-1}`, then label columns
        `y0..y{T-1}` (float32, or int8 when `binarize`).

    Raises:
        ConfigError: an argument is out of range (the message names it).

    Example:

    ```python
    frame = make_synthetic(20_000, correlation=0.9, seed=1)
    frame[["y0", "y1"]].corr()
    ```
    """
    _check_arguments(n_rows=n_rows, num_features=num_features, correlation=correlation,
                     num_tasks=num_tasks, scale=scale, num_sines=num_sines, noise_std=noise_std,
                     binarize=binarize, seed=seed)
    streams = _streams(seed)
    weights = synthetic_task_weights(num_features, correlation, num_tasks, seed, scale)
    alphas, betas = synthetic_sine_parameters(num_sines, seed)
    x = streams[_STREAM_FEATURES].standard_normal((n_rows, num_features))
    noise = streams[_STREAM_NOISE].standard_normal((n_rows, num_tasks)) * noise_std
    dots = x @ weights.T  # (n, T): w_kᵀx
    labels = dots + np.sin(dots[:, :, None] * alphas + betas).sum(axis=-1) + noise
    columns: dict[str, np.ndarray] = {f"x{j}": x[:, j].astype(np.float32) for j in range(num_features)}
    for k in range(num_tasks):
        y = labels[:, k]
        columns[f"y{k}"] = (y > np.median(y)).astype(np.int8) if binarize else y.astype(np.float32)
    return pd.DataFrame(columns)
