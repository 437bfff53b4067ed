"""Weighted moments of label values, mergeable across chunks of rows.

A task's label state (a regression's mean and sd, a count's offset) is a function of the
weighted count, mean and variance of its training labels. In memory they are computed from the
whole column at once (`Moments.of`, NumPy's weighted averages); streamed from prepared shards,
from one chunk at a time, merged with the pairwise update of Chan, Golub and LeVeque ("Updating
Formulae and a Pairwise Algorithm for Computing Sample Variances", 1979), so memory does not
grow with the rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Moments:
    """The total weight, weighted mean and weighted (population) variance of some values.

    Args:
        weight: the sum of the weights (the count, unweighted); 0 for no values.
        mean: the weighted mean (0 for no values).
        var: the weighted mean squared deviation from `mean` (0 for no values).
    """

    weight: float = 0.0
    mean: float = 0.0
    var: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """The moments of `values` (1-d, no NaN), weighted by `weights` when given.

        The mean and variance are NumPy's weighted averages, as a fit on the whole column
        computes them.
        """
        values = np.asarray(values, dtype="float64").ravel()
        total = float(len(values) if weights is None else np.sum(weights, dtype="float64"))
        if total <= 0:
            return cls(total, 0.0, 0.0)
        mean = float(np.average(values, weights=weights))
        return cls(total, mean, float(np.average((values - mean) ** 2, weights=weights)))

    def merge(self, other: Moments) -> Moments:
        """The moments of the union of the two sets of values."""
        if other.weight <= 0:
            return self
        if self.weight <= 0:
            return other
        total = self.weight + other.weight
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.weight / total)
        squares = self.var * self.weight + other.var * other.weight + delta * delta * self.weight * other.weight / total
        return Moments(total, mean, squares / total)


__all__ = ["Moments"]
