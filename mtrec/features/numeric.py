"""The fitted statistics of one numeric column: log1p, clip, impute, standardize."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mtrec.errors import DataError
from mtrec.features.partial import Moments, NumericPartial, ValueCounts
from mtrec.features.specs import NumericFeature

MISSING_SUFFIX = "__missing"
_CHUNK_ROWS = 8192  # rows encoded at a time: the working set stays in cache


@dataclasses.dataclass
class NumericColumn:
    """How one numeric column is encoded, with the statistics fit on the training split.

    The steps, in order: `log1p` (optional), `clip` (optional), missing
    values (NaN, None, +/-inf) replaced by `fill`, then `(x - mean) / std`.
    `fill`, `mean` and `std` are on the transformed (log1p, clipped) scale,
    so imputing the mean gives a standardized 0.

    Args:
        column: the raw column.
        feature: the name of the feature that declared it (a glob or the column).
        log1p: apply `log(1 + x)`.
        clip: `[lo, hi]` or None.
        impute: `"mean"`, `"median"` or `"zero"`.
        mean: training mean of the transformed values.
        std: their standard deviation (population); 1 for a constant column.
        fill: the value that replaces a missing one.
        indicator: whether a `<column>__missing` 0/1 column is added.
    """

    column: str
    feature: str
    log1p: bool = False
    clip: list[float] | None = None
    impute: str = "mean"
    mean: float = 0.0
    std: float = 1.0
    fill: float = 0.0
    indicator: bool = False

    @property
    def indicator_name(self) -> str:
        """Name of the missing-indicator column."""
        return f"{self.column}{MISSING_SUFFIX}"

    @classmethod
    def fit(cls, values: np.ndarray, spec: NumericFeature, column: str, source: str) -> NumericColumn:
        """Fits the statistics on the training values of a column.

        Args:
            values: float64 training values, NaN for missing.
            spec: the feature that declared the column.
            column: the column name.
            source: description of the table, for messages.

        Returns:
            The fitted NumericColumn.
        """
        return cls.from_partial(cls.partial(values, spec, column, source), spec, column)

    @classmethod
    def partial(cls, values: np.ndarray, spec: NumericFeature, column: str, source: str) -> NumericPartial:
        """The mergeable statistics of some training values (see `mtrec.features.partial`).

        Args:
            values: float64 values, NaN for missing.
            spec: the feature that declared the column.
            column: the column name.
            source: description of the table, for messages.

        Raises:
            DataError: log1p meets a value <= -1.
        """
        x, missing = cls._new(spec, column)._transform_raw(values, source)
        present = x[~missing]
        return NumericPartial(moments=Moments.of(present), missing=int(missing.sum()),
                              values=ValueCounts.of_values(present) if spec.impute == "median" else None)

    @classmethod
    def from_partial(cls, partial: NumericPartial, spec: NumericFeature, column: str) -> NumericColumn:
        """The fitted column from the (merged) statistics of all training values."""
        state = cls._new(spec, column)
        moments = partial.moments
        if moments.count:
            mean, std = moments.mean, moments.std
            if spec.impute == "mean":
                fill = mean
            elif spec.impute == "median":
                fill = partial.median()
            else:
                fill = 0.0
        else:  # no value at all: every row is imputed, and becomes 0
            mean, std, fill = 0.0, 1.0, 0.0
        if spec.impute == "zero" and state.clip is not None:
            fill = float(np.clip(fill, *state.clip))
        if not np.isfinite(std) or std == 0.0 or std <= 1e-12 * abs(mean):
            std = 1.0  # a constant column
        state.mean, state.std, state.fill = mean, std, fill
        state.indicator = spec.missing_indicator == "always" or (
            spec.missing_indicator == "auto" and partial.missing > 0)
        return state

    @classmethod
    def _new(cls, spec: NumericFeature, column: str) -> NumericColumn:
        return cls(column=column, feature=spec.name, log1p=spec.log1p,
                   clip=list(spec.clip) if spec.clip is not None else None, impute=spec.impute)

    def _transform_raw(self, values: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.array(values, dtype=np.float64, copy=True)
        missing = ~np.isfinite(x)
        if self.log1p:
            self.check_log1p(x, source)
            with np.errstate(invalid="ignore"):
                x = np.log1p(x)
        if self.clip is not None:
            x = np.clip(x, self.clip[0], self.clip[1])
        return x, missing

    def check_log1p(self, values: np.ndarray, source: str) -> None:
        """Raises DataError when `values` (raw, NaN for missing) has a value <= -1."""
        bad = np.isfinite(values) & (values <= -1.0)
        if bad.any():
            raise DataError(
                f"Column '{self.column}' (numeric feature '{self.feature}', log1p: true) has "
                f"{int(bad.sum())} value(s) <= -1 in {source}, e.g. {values[bad][:3].tolist()}; "
                f"log1p needs values > -1. Shift or clean the column, or set log1p: false.")

    def get_config(self) -> dict[str, Any]:
        """JSON-able state."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NumericColumn:
        """Rebuilds from `get_config`'s output."""
        return cls(**config)


def encode_numeric(states: list[NumericColumn], values: np.ndarray, source: str) -> np.ndarray:
    """Encodes a float64 matrix of raw columns with their fitted states, vectorized.

    Args:
        states: one fitted NumericColumn per column of `values`.
        values: float64 `(n, len(states))`, NaN (or +/-inf) for missing.
        source: description of the table, for messages.

    Returns:
        float32 `(n, len(states) + number of indicators)`: the standardized
        columns, then the 0/1 missing indicators of the states that have one.

    Raises:
        DataError: a log1p column has a value <= -1.
    """
    n, width = values.shape
    indicators = np.array([i for i, s in enumerate(states) if s.indicator], dtype=np.int64)
    out = np.empty((n, width + len(indicators)), dtype=np.float32)
    log1p = np.array([s.log1p for s in states], dtype=bool)
    lo = np.array([s.clip[0] if s.clip is not None else -np.inf for s in states])
    hi = np.array([s.clip[1] if s.clip is not None else np.inf for s in states])
    clip = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
    fill = np.array([s.fill for s in states])
    mean = np.array([s.mean for s in states])
    std = np.array([s.std for s in states])
    for start in range(0, n, _CHUNK_ROWS):
        x = np.array(values[start:start + _CHUNK_ROWS], dtype=np.float64, copy=True)
        missing = ~np.isfinite(x)
        if log1p.any():
            part = x[:, log1p]
            bad = ~missing[:, log1p] & (part <= -1.0)
            if bad.any():
                j = int(np.flatnonzero(log1p)[np.flatnonzero(bad.any(axis=0))[0]])
                states[j].check_log1p(values[:, j], source)
            with np.errstate(invalid="ignore"):
                x[:, log1p] = np.log1p(part)
        if clip:
            np.clip(x, lo, hi, out=x)
        if missing.any():
            np.copyto(x, np.broadcast_to(fill, x.shape), where=missing)
        x -= mean
        x /= std
        out[start:start + len(x), :width] = x
        if len(indicators):
            out[start:start + len(x), width:] = missing[:, indicators]
    return out
