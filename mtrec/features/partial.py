"""Mergeable partial fit states: what the encoder learns from some rows, summed batch by batch.

`FeatureEncoder.fit` is one road with two speeds: the in-memory fit is
`partial_fit` over the whole table followed by `finish_fit`, and a streamed
fit (`mtrec prepare`) is `partial_fit` per record batch, merged with
`PartialFit.merge`, then the same `finish_fit`. Each piece merges exactly:

- vocabularies: per table, the count of every category string (`ValueCounts`);
- numeric columns: count, mean and sum of squared deviations (`Moments`,
  merged with Chan et al.'s formula), the number of missing values, and for
  `impute: median` the count of every distinct value (exact median);
- multi-valued features: the longest list seen.

Counts, vocabularies, lengths, indicators and medians merge to exactly the
in-memory result; means and standard deviations agree to floating-point
rounding (relative 1e-15 on ordinary data), since a merge adds the batches in
another order than numpy's pairwise sum over one array. A single batch gives
numpy's figures bit for bit.

Example:

```python
state = None
for batch in batches:
    part = encoder.partial_fit(batch)
    state = part if state is None else state.merge(part)
encoder.finish_fit(state)
```
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

#: Rows of pending partial counts that trigger a compaction of `ValueCounts`.
_COMPACT_ROWS = 1 << 20


@dataclasses.dataclass
class Moments:
    """Count, mean and sum of squared deviations of some values, optionally weighted; merges exactly in count.

    The numeric features' state, and a task's label state (a regression's mean and sd, a count's
    offset: `Task.label_moments`), which weighs each label by its sample weight.

    Args:
        count: number of values, or the sum of their weights.
        mean: their (weighted) mean (0 when `count` is 0).
        m2: (weighted) sum of `(x - mean) ** 2`; `sqrt(m2 / count)` is numpy's `std`
            (unweighted) or the square root of `np.average((x - mean) ** 2, weights=w)`.
    """

    count: float = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> Moments:
        """The moments of a float64 array without missing values, computed the way numpy does.

        With `weights`, NumPy's weighted averages (`np.average`) as a fit on the whole column
        computes them; weights that sum to 0 or less give no values.
        """
        if len(values) == 0:
            return cls()
        if weights is None:
            mean = values.mean()
            deviations = values - mean
            return cls(count=len(values), mean=float(mean), m2=float(np.multiply(deviations, deviations).sum()))
        total = np.sum(weights, dtype="float64")
        if total <= 0:
            return cls()
        mean = np.average(values, weights=weights)
        return cls(count=float(total), mean=float(mean), m2=float(np.multiply((values - mean) ** 2, weights).sum()))

    def merge(self, other: Moments) -> Moments:
        """Chan, Golub and LeVeque's pairwise update; an empty side returns the other unchanged."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / count)
        return Moments(count=count, mean=mean, m2=m2)

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's `std`, `ddof=0`)."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


def _summed(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """`(values, counts)` pairs summed into one: each distinct value once, with its total count."""
    values = np.concatenate([v for v, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    codes, distinct = pd.factorize(values)
    # float64 weights are exact up to 2**53 occurrences of one value.
    totals = np.bincount(codes, weights=counts, minlength=len(distinct)).astype(np.int64)
    return np.asarray(distinct), totals


class ValueCounts:
    """How often each value occurred: unique values and int64 counts, merged lazily.

    Merging appends; the pairs are aggregated (one factorize) only when the
    pending rows grow past the aggregated size, so merging many batches costs
    about twice the final number of distinct values, not that times the
    number of batches.

    Args:
        values: the values (may repeat until aggregated).
        counts: one int64 count per value.
    """

    def __init__(self, values: np.ndarray | None = None, counts: np.ndarray | None = None) -> None:
        values = np.zeros(0, dtype=object) if values is None else values
        counts = np.zeros(len(values), dtype=np.int64) if counts is None else counts
        self._parts: list[tuple[np.ndarray, np.ndarray]] = [(values, np.asarray(counts, dtype=np.int64))]
        self._ints: list[tuple[np.ndarray, np.ndarray]] = []
        self._aggregated = len(values)
        self._pending = 0

    @classmethod
    def of_codes(cls, uniques: np.ndarray, codes: np.ndarray) -> ValueCounts:
        """Counts from `(uniques, codes)`, one occurrence per code (see `factorize_strings`)."""
        return cls(np.asarray(uniques, dtype=object), np.bincount(codes, minlength=len(uniques)))

    @classmethod
    def of_integer_column(cls, values: np.ndarray) -> ValueCounts:
        """Category counts of an integer column, kept as integers until `aggregate`.

        Converting integers to their category strings (`str(k)`) is the
        costly part of counting; deferring it converts each distinct value
        once instead of once per batch. The result is the same as counting
        `factorize_strings(values)`.
        """
        counts = cls()
        codes, uniques = pd.factorize(values)
        counts._ints.append((np.asarray(uniques, dtype=np.int64), np.bincount(codes, minlength=len(uniques))))
        counts._pending = len(uniques)
        return counts

    @classmethod
    def of_values(cls, values: np.ndarray) -> ValueCounts:
        """Counts of the values of a numeric array."""
        uniques, counts = np.unique(values, return_counts=True)
        return cls(uniques, counts)

    def merge(self, other: ValueCounts) -> ValueCounts:
        """Adds `other`'s counts to these (in place) and returns self."""
        for part in other._parts:
            self._parts.append(part)
            self._pending += len(part[0])
        for part in other._ints:
            self._ints.append(part)
            self._pending += len(part[0])
        if self._pending > max(_COMPACT_ROWS, self._aggregated):
            self._compact()
        return self

    def _compact(self) -> None:
        """Sums equal values while merging; integer values stay integers (16 bytes a value, where
        their category strings take about ten times that: the counts of a 1,000,000-value id column
        would otherwise hold a million Python strings through the whole streamed fit)."""
        if len(self._ints) > 1:
            self._ints = [_summed(self._ints)]
        if len(self._parts) > 1:
            self._parts = [_summed(self._parts)]
        self._aggregated = sum(len(v) for v, _ in self._ints + self._parts)
        self._pending = 0

    def aggregate(self) -> tuple[np.ndarray, np.ndarray]:
        """Sums the counts of equal values; returns `(distinct values, counts)`, zero counts dropped."""
        if self._ints:
            from mtrec.features.vocabulary import as_strings

            distinct, totals = _summed(self._ints)
            self._parts.append((as_strings(pd.Series(distinct)), totals))
            self._ints = []
            self._pending += 1
        if len(self._parts) > 1 or self._pending:
            distinct, totals = _summed(self._parts)
            keep = totals > 0
            distinct = distinct[keep]
            self._parts = [(distinct, totals[keep])]
            self._aggregated, self._pending = len(distinct), 0
        values, counts = self._parts[0]
        keep = counts > 0
        if not keep.all():
            values, counts = values[keep], counts[keep]
            self._parts = [(values, counts)]
        return values, counts

    def integer_totals(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`aggregate()` of counts that hold only integers, with the values left as int64.

        Returns:
            `(distinct int64 values, counts)`, zero counts dropped, whose
            category strings are `str(k)`; None when some counted values are
            strings (then `aggregate` serves).
        """
        if not self._ints or any(np.count_nonzero(counts) for _, counts in self._parts):
            return None
        if len(self._ints) > 1:
            self._compact()
        values, counts = self._ints[0]
        keep = counts > 0
        return (values, counts) if keep.all() else (values[keep], counts[keep])

    def __len__(self) -> int:
        return len(self.aggregate()[0])


@dataclasses.dataclass
class NumericPartial:
    """The partial statistics of one numeric column (transformed by log1p and clip).

    Args:
        moments: of the present values.
        missing: number of missing values.
        values: counts of each distinct present value, kept for `impute: median` only.
    """

    moments: Moments = dataclasses.field(default_factory=Moments)
    missing: int = 0
    values: ValueCounts | None = None

    def merge(self, other: NumericPartial) -> NumericPartial:
        values = self.values
        if values is not None and other.values is not None:
            values = values.merge(other.values)
        return NumericPartial(self.moments.merge(other.moments), self.missing + other.missing, values)

    def median(self) -> float:
        """The exact median of the present values, as `numpy.median` gives it."""
        assert self.values is not None
        values, counts = self.values.aggregate()
        order = np.argsort(values, kind="mergesort")
        values, ends = values[order], np.cumsum(counts[order])
        n = int(ends[-1])
        ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
        middle = values[np.searchsorted(ends, np.array(ranks), side="right")].astype(np.float64)
        return float(middle.mean())


@dataclasses.dataclass
class PartialFit:
    """What `FeatureEncoder.partial_fit` learnt from some rows; `merge` adds more rows.

    Args:
        numeric: `(column, feature)` of every expanded numeric column.
        numeric_stats: one `NumericPartial` per numeric column.
        tables: `{table: ValueCounts}` of category strings (none for hashed tables).
        longest: `{multi-valued feature: longest list}`.
        rows: number of rows seen.
    """

    numeric: list[tuple[str, str]]
    numeric_stats: list[NumericPartial]
    tables: dict[str, ValueCounts]
    longest: dict[str, int]
    rows: int

    def merge(self, other: PartialFit) -> PartialFit:
        """Adds `other`'s rows to these (the vocabularies in place) and returns the sum.

        Raises:
            ValueError: the two states expanded the numeric features to
                different columns (batches of different tables).
        """
        if other.numeric != self.numeric:
            raise ValueError(
                f"Cannot merge partial fits of different numeric columns: {self.numeric} "
                f"and {other.numeric}.")
        return PartialFit(
            numeric=self.numeric,
            numeric_stats=[a.merge(b) for a, b in zip(self.numeric_stats, other.numeric_stats)],
            tables={t: counts.merge(other.tables[t]) for t, counts in self.tables.items()},
            longest={f: max(n, other.longest[f]) for f, n in self.longest.items()},
            rows=self.rows + other.rows,
        )
