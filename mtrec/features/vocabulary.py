"""Categorical values as strings, and the id lookup of one embedding table.

Id convention (the model's embedding layer depends on it):

* 0: padding (only used to pad multi-valued lists),
* 1: out-of-vocabulary (unseen at fit time, rarer than `min_count`, or cut
  by `max_vocab_size`),
* 2 and up: the vocabulary, by decreasing training count, ties broken by
  value; or, when hashing, `2 + stable_hash(value) % hash_buckets`.

Values are compared as strings, so the int `5`, the float `5.0` and the string
`"5"` are one category; a missing value is the category `"<missing>"`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtrec.features.partial import ValueCounts

PAD_ID = 0
OOV_ID = 1
FIRST_ID = 2
MISSING = "<missing>"

# pandas.util.hash_array: SipHash-2-4 of the UTF-8 bytes with this fixed key, so
# the same value hashes the same in every process (unlike Python's salted hash).
_HASH_KEY = "0123456789123456"
_NUMERIC_OBJECT_TYPES = ("integer", "floating", "mixed-integer-float", "decimal")


def as_strings(values: pd.Series | np.ndarray | list) -> np.ndarray:
    """Converts values to category strings, vectorized.

    Missing values (None, NaN, NaT, pd.NA) become `"<missing>"`. Integral
    floats are written as integers, so a column that became float because of
    a NaN still matches its int version (`5.0` -> `"5"`).

    Args:
        values: a Series, array or list of scalars.

    Returns:
        A 1-d numpy object array of str.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    series = series.reset_index(drop=True)
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if dtype == object and not missing.all():
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind in _NUMERIC_OBJECT_TYPES:
            series = pd.to_numeric(series, errors="coerce")
            dtype = series.dtype
        elif kind == "boolean":
            series = series.astype("boolean")
            dtype = series.dtype
    if pd.api.types.is_float_dtype(dtype):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out = series.astype(str).to_numpy(dtype=object)
        integral = np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) < 2**63)
        if integral.any():
            out[integral] = floats[integral].astype(np.int64).astype(str).astype(object)
    elif pd.api.types.is_bool_dtype(dtype):
        # "True"/"False" whether the column is numpy bool, nullable boolean or object.
        out = series.astype(object).astype(str).to_numpy(dtype=object)
    else:
        out = series.astype(str).to_numpy(dtype=object)
    if missing.any():
        out[missing] = MISSING
    return out


def factorize_strings(values: pd.Series | np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """Category strings of a column, as unique strings and one code per value.

    Only the unique raw values are converted to strings, so a 600k-row
    column costs one hash pass. Raw values that give the same string (e.g.
    `5` and `"5"`) share a code; missing values get the code of
    `"<missing>"`.

    Args:
        values: a Series, array or list of scalars.

    Returns:
        `(uniques, codes)`: a 1-d object array of distinct str, and int64
        codes into it, one per value.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    try:
        codes, raw = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable cells (e.g. lists): convert every value
        codes, raw = pd.factorize(as_strings(series))
    strings = as_strings(pd.Series(raw))
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    if missing.any():
        strings = np.append(strings, np.array([MISSING], dtype=object))
        codes[missing] = len(strings) - 1
    return merge_equal(strings, codes)


def merge_equal(strings: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merges equal strings of `strings`, remapping `codes` into the distinct ones."""
    merged, distinct = pd.factorize(np.asarray(strings, dtype=object))
    if len(distinct) == len(strings):
        return np.asarray(strings, dtype=object), codes
    return np.asarray(distinct, dtype=object), merged.astype(np.int64)[codes]


def hash_ids(strings: np.ndarray, hash_buckets: int) -> np.ndarray:
    """Stable hashed ids: `2 + siphash(value) % hash_buckets`, as int64."""
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64)
    hashes = pd.util.hash_array(np.asarray(strings, dtype=object), encoding="utf8",
                                hash_key=_HASH_KEY, categorize=False)
    return (hashes % np.uint64(hash_buckets)).astype(np.int64) + FIRST_ID


_CANONICAL_INTEGER = r"(?:0|-?[1-9][0-9]{0,17})"


def _integer_index(values: list[str]) -> tuple[pd.Index, np.ndarray]:
    """The values that are canonical integer strings (`str(k)`), as an int64 Index, and their positions."""
    strings = pd.Series(np.asarray(values, dtype=object), dtype=object)
    mask = strings.str.fullmatch(_CANONICAL_INTEGER).fillna(False).to_numpy(dtype=bool) \
        if len(strings) else np.zeros(0, dtype=bool)
    positions = np.flatnonzero(mask)
    integers = strings[mask].astype(np.int64).to_numpy() if len(positions) else np.zeros(0, dtype=np.int64)
    return pd.Index(integers), positions


class Vocabulary:
    """The id lookup of one embedding table: a fitted vocabulary, or hashing.

    Args:
        values: the kept values, most frequent first (ids 2, 3, ...).
        counts: their training counts.
        excluded: values seen in training but sent to the OOV id (too rare,
            or cut by `max_vocab_size`) with their counts; kept so that OOV
            counts at transform time report only truly unseen values.
        hash_buckets: when set, the table hashes and `values` is empty.
    """

    def __init__(
        self,
        values: list[str] | None = None,
        counts: list[int] | None = None,
        excluded: dict[str, int] | None = None,
        hash_buckets: int | None = None,
    ) -> None:
        self.values = list(values or [])
        self.counts = list(counts or [0] * len(self.values))
        self.excluded = dict(excluded or {})
        self.hash_buckets = hash_buckets
        self._index = pd.Index(np.asarray(self.values, dtype=object), dtype=object)
        self._excluded_index = pd.Index(np.asarray(list(self.excluded), dtype=object), dtype=object)
        self._integer_index: tuple[pd.Index, np.ndarray] | None = None
        self._integer_excluded: tuple[pd.Index, np.ndarray] | None = None

    @classmethod
    def fit(cls, parts: list[tuple[np.ndarray, np.ndarray]], min_count: int = 1,
            max_vocab_size: int | None = None) -> Vocabulary:
        """Fits on the union of the training values of a table's columns.

        Args:
            parts: one `(uniques, codes)` pair (see `factorize_strings`) per
                member column; every code is one occurrence.
            min_count: minimum training count to get an own id.
            max_vocab_size: keep at most this many values.

        Returns:
            The Vocabulary, values by decreasing count, ties by value.
        """
        counts = ValueCounts()
        for uniques, codes in parts:
            counts.merge(ValueCounts.of_codes(uniques, codes))
        return cls.from_counts(counts, min_count, max_vocab_size)

    @classmethod
    def from_counts(cls, counts: ValueCounts, min_count: int = 1,
                    max_vocab_size: int | None = None) -> Vocabulary:
        """Fits on the (merged) training counts of a table's category strings.

        Args:
            counts: how often each category string occurred in training.
            min_count: minimum training count to get an own id.
            max_vocab_size: keep at most this many values.

        Returns:
            The Vocabulary, values by decreasing count, ties by value.
        """
        values, totals = counts.aggregate()
        frame = pd.DataFrame({"value": np.asarray(values, dtype=object), "count": totals})
        frame = frame.sort_values(["count", "value"], ascending=[False, True], kind="mergesort")
        keep = np.array(frame["count"] >= min_count, dtype=bool)
        if max_vocab_size is not None:
            keep &= np.cumsum(keep) <= max_vocab_size
        kept, dropped = frame[keep], frame[~keep]
        return cls(
            values=kept["value"].tolist(),
            counts=[int(c) for c in kept["count"]],
            excluded=dict(zip(dropped["value"].tolist(), (int(c) for c in dropped["count"]))),
        )

    @classmethod
    def hashed(cls, hash_buckets: int) -> Vocabulary:
        """A table that hashes into `hash_buckets` buckets."""
        return cls(hash_buckets=hash_buckets)

    @property
    def input_dim(self) -> int:
        """Rows of the embedding table: padding, OOV, then one per value or bucket."""
        return FIRST_ID + (self.hash_buckets if self.hash_buckets is not None else len(self.values))

    def lookup(self, strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maps category strings to ids.

        Args:
            strings: a 1-d object array of category strings (e.g. the
                uniques of `factorize_strings`).

        Returns:
            The int64 ids, and a boolean mask of the values that went to the
            OOV id because they were never seen at fit time (not missing, not
            merely rare or cut by `max_vocab_size`). Hashing has no OOV.
        """
        if self.hash_buckets is not None:
            return hash_ids(strings, self.hash_buckets), np.zeros(len(strings), dtype=bool)
        positions = self._index.get_indexer(strings)
        ids = positions.astype(np.int64) + FIRST_ID
        oov = positions < 0
        ids[oov] = OOV_ID
        unseen = np.zeros(len(strings), dtype=bool)
        if oov.any():
            where = np.flatnonzero(oov)
            rest = strings[where]
            unseen[where] = (rest != MISSING) & (self._excluded_index.get_indexer(rest) < 0)
        return ids, unseen

    def lookup_integers(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`lookup` of integers, whose category strings are `str(k)`, without making the strings.

        Args:
            values: int64 values (e.g. the uniques of an integer column).

        Returns:
            The same ids and unseen mask as `lookup(as_strings(values))`.
        """
        if self.hash_buckets is not None:
            return self.lookup(as_strings(pd.Series(values)))
        if self._integer_index is None:
            self._integer_index = _integer_index(self.values)
            self._integer_excluded = _integer_index(list(self.excluded))
        index, positions = self._integer_index
        found = index.get_indexer(values)
        unseen = found < 0
        ids = np.full(len(values), OOV_ID, dtype=np.int64)
        ids[~unseen] = positions[found[~unseen]] + FIRST_ID
        if unseen.any():
            excluded, _ = self._integer_excluded
            unseen &= excluded.get_indexer(values) < 0
        return ids, unseen

    def get_config(self) -> dict[str, Any]:
        """JSON-able state: `{value: count}` in id order, and the excluded values."""
        if self.hash_buckets is not None:
            return {"hash_buckets": self.hash_buckets}
        return {"vocabulary": dict(zip(self.values, self.counts)), "excluded": dict(self.excluded)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Vocabulary:
        """Rebuilds a Vocabulary from `get_config`'s output."""
        if config.get("hash_buckets") is not None:
            return cls.hashed(int(config["hash_buckets"]))
        vocabulary = config.get("vocabulary", {})
        return cls(values=list(vocabulary), counts=[int(c) for c in vocabulary.values()],
                   excluded={k: int(v) for k, v in config.get("excluded", {}).items()})
