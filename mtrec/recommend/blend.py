"""The blend: several task scores turned into one ranking score (config section `blend`).

Two forms, with a weight per score column:

- `sum`:     score = sum_t w_t * s_t
- `product`: score = prod_t max(s_t, 1e-12) ** w_t   (a weighted geometric form;
  a weight of 0 ignores the task, 2 makes it count twice as much)

Score columns are those the ranker writes: one per task (`click`, `like`,
`rating`) and `<task>_conditional` for ESMM-chained tasks (`like_conditional`
is p(like | click), while `like` is the joint p(click and like)).

Example:

```python
blend = Blend(BlendConfig(kind="product", weights={"click": 1.0, "like_conditional": 2.0}))
scores["score"] = blend(scores)
```
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, SchemaError
from mtrec.utils.validation import closest

#: Scores are clipped to this before a product, so a 0 or a negative regression output stays finite.
PRODUCT_FLOOR = 1e-12


@dataclasses.dataclass
class BlendConfig:
    """How task scores combine.

    Args:
        kind: `"sum"` (weighted sum) or `"product"` (product of scores
            raised to their weights). Defaults to `"product"`.
        weights: `{score column: weight}`. Defaults to
            `{"click": 1.0, "like": 1.0}`.

    Raises:
        ConfigError: no weights, or a negative weight.
    """

    kind: Literal["sum", "product"] = "product"
    weights: dict[str, float] = dataclasses.field(default_factory=lambda: {"click": 1.0, "like": 1.0})

    def __post_init__(self) -> None:
        if not self.weights:
            raise ConfigError("blend.weights must name at least one score column, e.g. {click: 1.0}.")
        for name, weight in self.weights.items():
            if weight < 0:
                raise ConfigError(f"blend.weights.{name} must be >= 0. Received: {weight}")


class Blend:
    """Applies a BlendConfig to a table of scores.

    Args:
        config: the blend settings.
    """

    def __init__(self, config: BlendConfig) -> None:
        self.config = config

    def check(self, columns: list[str], source: str = "the ranker's scores") -> None:
        """Raises SchemaError when a weighted column is not among `columns`."""
        for name in self.config.weights:
            if name not in columns:
                raise SchemaError(
                    f"blend.weights names score column '{name}', which is not among {source}."
                    f"{closest(name, columns)} Score columns: {columns}")

    def __call__(self, scores: pd.DataFrame) -> np.ndarray:
        """The blended score of each row (float64).

        Args:
            scores: one column per weighted score.

        Raises:
            SchemaError: a weighted column is missing.
        """
        self.check(list(scores.columns))
        if self.config.kind == "sum":
            total = np.zeros(len(scores))
            for name, weight in self.config.weights.items():
                total += weight * scores[name].to_numpy("float64")
            return total
        # Summing logs is the product without underflow across many tasks.
        log_total = np.zeros(len(scores))
        for name, weight in self.config.weights.items():
            log_total += weight * np.log(np.maximum(scores[name].to_numpy("float64"), PRODUCT_FLOOR))
        return np.exp(log_total)


def top_n(frame: pd.DataFrame, user: str, score: str, n: int) -> pd.DataFrame:
    """The n highest-`score` rows of each user, ranked 1..n (ties keep the input order).

    Returns:
        The selected rows with a `rank` column, sorted by user then rank.
    """
    ordered = frame.sort_values([user, score], ascending=[True, False], kind="stable")
    best = ordered.groupby(user, sort=False).head(n).copy()
    best["rank"] = (best.groupby(user, sort=False).cumcount() + 1).astype("int32")
    return best.reset_index(drop=True)
