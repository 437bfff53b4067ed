"""Categorical values as strings, and the id lookup of one embedding table.

Id convention (the model's embedding layer depends on it):

* 0: padding (only used to pad multi-valued lists),
* 1: out-of-vocabulary (unseen at fit time, rarer than `min_count`, or cut
  by `max_vocab_size`),
* 2 and up: the vocabulary, by decreasing training count, ties broken by
  value; or, when hashing, `2 + stable_hash(value) % hash_buckets`.

Values are compared as strings, so the int `5`, the float `5.0` and the string
`"5"` are one category; a missing value is the category `"<missing>"`.

A vocabulary fitted on integer columns only holds its values as int64s (16
bytes a value with its count, where a Python string and its dict entry take
about ten times that: a 1,000,000-value id column), and makes their strings
only for `values` or `get_config`; its ids, unseen masks and state are those
of the same values counted as strings.
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

#: An integer column is looked up in a dense table (one int32 per integer between the vocabulary's
#: smallest and largest value) when that range has at most this many integers (4 MB), or at most
#: `DENSE_PER_VALUE` per value of the vocabulary (16 bytes a value, what its int64s already take).
DENSE_MAX_RANGE = 1 << 20
DENSE_PER_VALUE = 4
_UNSEEN = -1  # in the dense table: an integer never seen in training

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


#: `str(k)` of an int64 `k`: no leading zeros, no "+", no "-0" (19 digits at most; the range is checked).
_CANONICAL_INTEGER = r"(?:0|-?[1-9][0-9]{0,18})"
#: 10**0 ... 10**19, all below 2**64.
_POWERS_OF_TEN = np.array([10**k for k in range(20)], dtype=np.uint64)


def _canonical_integers(strings: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the strings that are `str(k)` of an int64 `k`, and those `k`.

    Args:
        strings: category strings.

    Returns:
        `(positions, integers)`: int64 positions into `strings` and their int64 values.
    """
    series = pd.Series(np.asarray(strings, dtype=object), dtype=object)
    if not len(series):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    mask = series.str.fullmatch(_CANONICAL_INTEGER).fillna(False).to_numpy(dtype=bool)
    positions = np.flatnonzero(mask)
    try:
        integers = series[mask].astype(np.int64).to_numpy()
    except (OverflowError, ValueError):
        # 19 digits beyond int64's range: such a string is no int64's category string.
        numbers = [int(text) for text in series[mask]]
        fits = np.array([-(2**63) <= n < 2**63 for n in numbers], dtype=bool)
        positions = positions[fits]
        integers = np.array([n for n, ok in zip(numbers, fits) if ok], dtype=np.int64)
    return positions, integers


def _string_order(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The order of `(count descending, str(value) ascending)` over int64 values, without the strings.

    `str(k)` compares as its sign ("-" sorts before every digit), then its
    digits padded on the right to 19 places, then its length (a prefix sorts
    first): the order that sorting the category strings gives.

    Args:
        values: distinct int64 values.
        counts: one count per value.

    Returns:
        The int64 permutation that sorts them.
    """
    values = np.asarray(values, dtype=np.int64)
    negative = values < 0
    magnitude = values.view(np.uint64).copy()
    magnitude[negative] = ~magnitude[negative] + np.uint64(1)  # |k| in two's complement, exact for -2**63
    digits = np.maximum(np.searchsorted(_POWERS_OF_TEN, magnitude, side="right"), 1)
    padded = magnitude * _POWERS_OF_TEN[19 - digits]
    return np.lexsort((digits, padded, ~negative, -np.asarray(counts, dtype=np.int64)))


class _IntegerValues:
    """Values whose category strings are `str(k)` of int64s, with their counts: 16 bytes a value
    where a Python string takes about 60, and a lookup by binary search (16 more bytes a value:
    the sorting order and the sorted values).

    Args:
        values: distinct int64 values, in id order.
        counts: their int64 training counts.
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)
        # The binary search's index, built on the first lookup: the sorting order and the sorted values.
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def strings(self) -> list[str]:
        """The category strings, `str(k)` (as `as_strings` writes integers)."""
        return list(map(str, self.values.tolist()))

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Position of each int64 query among the values, -1 where absent."""
        if not len(self.values):
            return np.full(len(queries), -1, dtype=np.int64)
        if self._sorted is None:
            order = np.argsort(self.values, kind="stable")
            self._sorted = order, self.values[order]
        order, ordered = self._sorted
        at = np.minimum(np.searchsorted(ordered, queries), len(ordered) - 1)
        return np.where(ordered[at] == queries, order[at], -1)


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
        self._values: list[str] | None = list(values or [])
        self._counts: list[int] | None = list(counts or [0] * len(self._values))
        self._excluded: dict[str, int] | None = dict(excluded or {})
        self.hash_buckets = hash_buckets
        # The compact form (`from_counts` on integer columns): every value is `str(k)` of an int64,
        # kept as int64s; the strings above are made only when asked for.
        self._compact: tuple[_IntegerValues, _IntegerValues] | None = None
        # The integer lookup: kept and excluded integers, and the ids' positions (None: in order).
        self._integers: tuple[_IntegerValues, _IntegerValues, np.ndarray | None] | None = None
        self._index: pd.Index | None = None
        self._excluded_index: pd.Index | None = None
        # `lookup_integer_column`'s table: (smallest value, largest value, ids), or False where the
        # range is too wide for one; built on the first call.
        self._dense: tuple[int, int, np.ndarray] | bool | None = None

    @classmethod
    def _of_integers(cls, kept: _IntegerValues, excluded: _IntegerValues) -> Vocabulary:
        """The compact form: kept values (ids 2, 3, ...) and excluded values, all integers."""
        vocabulary = cls()
        vocabulary._values = vocabulary._counts = vocabulary._excluded = None
        vocabulary._compact = (kept, excluded)
        vocabulary._integers = (kept, excluded, None)
        return vocabulary

    @property
    def values(self) -> list[str]:
        """The kept values' category strings, in id order (made once when compact)."""
        if self._values is None:
            self._values = self._compact[0].strings()
        return self._values

    @property
    def counts(self) -> list[int]:
        """The kept values' training counts."""
        if self._counts is None:
            self._counts = self._compact[0].counts.tolist()
        return self._counts

    @property
    def excluded(self) -> dict[str, int]:
        """`{value: training count}` of the values seen in training but sent to the OOV id."""
        if self._excluded is None:
            excluded = self._compact[1]
            self._excluded = dict(zip(excluded.strings(), excluded.counts.tolist()))
        return self._excluded

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
        integers = counts.integer_totals()
        if integers is not None:
            return cls._fit_integers(*integers, min_count, max_vocab_size)
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
    def _fit_integers(cls, values: np.ndarray, totals: np.ndarray, min_count: int,
                      max_vocab_size: int | None) -> Vocabulary:
        """`from_counts` of int64 values, in the compact form: the same ids, in the same order."""
        order = _string_order(values, totals)
        values, totals = values[order], totals[order]
        keep = totals >= min_count
        if max_vocab_size is not None:
            keep &= np.cumsum(keep) <= max_vocab_size
        return cls._of_integers(_IntegerValues(values[keep], totals[keep]),
                                _IntegerValues(values[~keep], totals[~keep]))

    @classmethod
    def hashed(cls, hash_buckets: int) -> Vocabulary:
        """A table that hashes into `hash_buckets` buckets."""
        return cls(hash_buckets=hash_buckets)

    @property
    def input_dim(self) -> int:
        """Rows of the embedding table: padding, OOV, then one per value or bucket."""
        if self.hash_buckets is not None:
            return FIRST_ID + self.hash_buckets
        size = len(self._compact[0]) if self._compact is not None else len(self.values)
        return FIRST_ID + size

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
        strings = np.asarray(strings, dtype=object)
        if self._compact is not None:
            # Only `str(k)` strings can be in a compact vocabulary; any other is unseen unless missing.
            ids = np.full(len(strings), OOV_ID, dtype=np.int64)
            unseen = strings != MISSING
            where, integers = _canonical_integers(strings)
            if len(where):
                ids[where], unseen[where] = self.lookup_integers(integers)
            return ids, unseen
        if self._index is None:
            # The excluded index first: another thread that sees `_index` set may read it at once.
            self._excluded_index = pd.Index(np.asarray(list(self.excluded), dtype=object), dtype=object)
            self._index = pd.Index(np.asarray(self.values, dtype=object), dtype=object)
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
        kept, excluded, positions = self._integer_values()
        values = np.asarray(values, dtype=np.int64)
        found = kept.find(values)
        unseen = found < 0
        ids = np.full(len(values), OOV_ID, dtype=np.int64)
        hits = found[~unseen]
        ids[~unseen] = (hits if positions is None else positions[hits]) + FIRST_ID
        if unseen.any():
            unseen &= excluded.find(values) < 0
        return ids, unseen

    def _integer_values(self) -> tuple[_IntegerValues, _IntegerValues, np.ndarray | None]:
        """The kept and excluded values that are integers, and the kept ones' positions (None: in order)."""
        if self._integers is None:
            # A vocabulary of strings: its `str(k)` values, indexed as integers once.
            positions, integers = _canonical_integers(self.values)
            excluded = _canonical_integers(list(self.excluded))[1]
            self._integers = (_IntegerValues(integers, np.zeros(len(integers), dtype=np.int64)),
                              _IntegerValues(excluded, np.zeros(len(excluded), dtype=np.int64)), positions)
        return self._integers

    def lookup_integer_column(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """The ids of a whole integer column, and how many of its values were never seen.

        The ids are `lookup_integers`' row by row. Where the vocabulary's
        integers span a narrow enough range (`DENSE_MAX_RANGE`,
        `DENSE_PER_VALUE`), each row is one read of a dense table instead of
        a factorize and a binary search: this runs on every batch scored
        or prepared, and id columns are often small integers.

        Args:
            values: a 1-d integer array (no missing values), e.g. a column of ids.

        Returns:
            `(ids, unseen)`: int32 ids, and the number of rows whose value
            was never seen at fit time (rare or cut values are not counted).
        """
        values = np.asarray(values).astype(np.int64, copy=False)
        dense = self._dense_table() if self.hash_buckets is None else False
        if not dense:
            codes, uniques = pd.factorize(values)
            ids, unseen = self.lookup_integers(uniques)
            return ids.astype(np.int32)[codes], int(unseen[codes].sum())
        low, high, table = dense
        inside = (values >= low) & (values <= high)
        # Offsets are taken inside the range only: outside it `values - low` could overflow int64.
        found = table[np.where(inside, values, low) - low]
        found[~inside] = _UNSEEN
        unseen = found == _UNSEEN
        found[unseen] = OOV_ID
        return found, int(np.count_nonzero(unseen))

    def _dense_table(self) -> tuple[int, int, np.ndarray] | bool:
        """`(low, high, ids)` of the integers from low to high (`_UNSEEN` where never seen), or False."""
        if self._dense is None:
            kept, excluded, positions = self._integer_values()
            every = np.concatenate([kept.values, excluded.values])
            span = int(every.max()) - int(every.min()) + 1 if len(every) else 0
            if not len(every) or span > max(DENSE_MAX_RANGE, DENSE_PER_VALUE * len(every)):
                self._dense = False
            else:
                low = int(every.min())
                table = np.full(span, _UNSEEN, dtype=np.int32)
                table[excluded.values - low] = OOV_ID
                ids = np.arange(len(kept), dtype=np.int64) if positions is None else np.asarray(positions)
                table[kept.values - low] = ids + FIRST_ID
                self._dense = (low, low + span - 1, table)  # one assignment: threads see all or none
        return self._dense

    def get_config(self) -> dict[str, Any]:
        """JSON-able state: `{value: count}` in id order, and the excluded values."""
        if self.hash_buckets is not None:
            return {"hash_buckets": self.hash_buckets}
        if self._compact is None:
            return {"vocabulary": dict(zip(self.values, self.counts)), "excluded": dict(self.excluded)}
        # Compact: the strings are made for the config only, not kept (the lookups need none).
        kept, excluded = self._compact
        values = self._values if self._values is not None else kept.strings()
        return {"vocabulary": dict(zip(values, kept.counts.tolist())),
                "excluded": dict(zip(excluded.strings(), excluded.counts.tolist()))}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Vocabulary:
        """Rebuilds a Vocabulary from `get_config`'s output."""
        if config.get("hash_buckets") is not None:
            return cls.hashed(int(config["hash_buckets"]))
        vocabulary = config.get("vocabulary", {})
        return cls(values=list(vocabulary), counts=[int(c) for c in vocabulary.values()],
                   excluded={k: int(v) for k, v in config.get("excluded", {}).items()})
