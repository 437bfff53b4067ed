"""Train/validation/test splits: random, by group, by time or by hash (config section `data.split`).

A split is three sorted arrays of positional row indices (`Splits`), so it
applies to any table with the same rows (`frame.iloc[splits.train]`).

Tables too large for memory are split batch by batch (`split_codes`, used by
`mtrec prepare`): `time` and `hash` decide each row alone; `group` first
counts the rows of each group (`GroupSplit`, memory by distinct groups) and
then gives the same assignment as in memory; `random` needs a permutation of
every row and is refused there (use `hash`).

Example:

```python
splits = make_splits(frame, SplitConfig(kind="group", column="user_id"))
train = frame.iloc[splits.train]
```
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd

from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.utils.validation import choice, require_columns

SPLIT_KINDS = ("random", "group", "time", "hash")
#: Split kinds that `split_codes` can apply batch by batch.
STREAMED_SPLIT_KINDS = ("group", "time", "hash")
SPLIT_NAMES = ("train", "valid", "test")
_WHERE = "data.split"


@dataclasses.dataclass
class SplitConfig:
    """How rows are split into train, validation and test (config section `data.split`).

    Args:
        kind: `"random"` (rows shuffled with `seed`), `"group"` (whole groups
            of `column` go to one split, so no value of it is in two splits),
            `"time"` (by `column` against `valid_start` and `test_start`) or
            `"hash"` (each row by a seeded hash of its `column` value, or of
            its position when `column` is not set; for tables too large for
            a permutation). Defaults to `"random"`.
        fractions: the train, validation and test fractions: three
            non-negative numbers summing to 1, train above 0. Used by
            `"random"`, `"group"` and `"hash"` (which meets them in
            expectation). Defaults to `[0.8, 0.1, 0.1]`.
        seed: seed of the shuffle (`numpy.random.default_rng(seed)`) or of
            the hash. Defaults to `2018`.
        column: the group or time column; required for `"group"` and
            `"time"`. Optional for `"hash"`: rows with the same value go to
            the same split.
        valid_start: for `"time"`: rows with `column < valid_start` train.
            A date/time (e.g. `"2018-01-01"`; a YAML date is kept as its ISO
            string) for a datetime or date-string column, or a number for a
            numeric column.
        test_start: for `"time"`: rows with `valid_start <= column < test_start`
            validate, rows with `column >= test_start` test. Must not be
            before `valid_start`.

    Raises:
        ConfigError: naming the key (e.g. `data.split.column`) when a value
            is out of range or a required key is missing.
    """

    kind: Literal["random", "group", "time", "hash"] = "random"
    fractions: list[float] = dataclasses.field(default_factory=lambda: [0.8, 0.1, 0.1])
    seed: int = 2018
    column: str | None = None
    valid_start: str | int | float | datetime.date | None = None
    test_start: str | int | float | datetime.date | None = None

    def __post_init__(self) -> None:
        # YAML reads an unquoted 2018-01-01 as a date: keep it as its ISO string.
        for key in ("valid_start", "test_start"):
            value = getattr(self, key)
            if isinstance(value, (datetime.date, pd.Timestamp)):
                setattr(self, key, value.isoformat())
        choice(self.kind, SPLIT_KINDS, f"{_WHERE}.kind")
        self.fractions = _check_fractions(self.fractions)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"Config key '{_WHERE}.seed' must be an integer. Received: {self.seed!r}.")
        if self.kind in ("group", "time") and not self.column:
            raise ConfigError(
                f"{_WHERE}.column is required when {_WHERE}.kind is '{self.kind}': name the "
                f"{'group' if self.kind == 'group' else 'time'} column. Received: column={self.column!r}."
            )
        if self.kind == "time":
            for key in ("valid_start", "test_start"):
                if getattr(self, key) is None:
                    raise ConfigError(
                        f"{_WHERE}.{key} is required when {_WHERE}.kind is 'time' "
                        f"(e.g. {key}: '2018-01-01')."
                    )
            valid = _parse_cutoff(self.valid_start, f"{_WHERE}.valid_start")
            test = _parse_cutoff(self.test_start, f"{_WHERE}.test_start")
            if isinstance(valid, pd.Timestamp) != isinstance(test, pd.Timestamp):
                raise ConfigError(
                    f"{_WHERE}.valid_start and {_WHERE}.test_start must both be dates or both be "
                    f"numbers. Received: valid_start={self.valid_start!r}, test_start={self.test_start!r}."
                )
            try:
                in_order = valid <= test
            except TypeError:  # one tz-aware, one naive
                in_order = valid.tz_localize(None) <= test.tz_localize(None)
            if not in_order:
                raise ConfigError(
                    f"{_WHERE}.valid_start must not be after {_WHERE}.test_start. "
                    f"Received: valid_start={self.valid_start!r}, test_start={self.test_start!r}."
                )


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
    """Positional row indices of the three splits: sorted, disjoint, int64, read-only.

    Args:
        train: rows to fit on.
        valid: rows for early stopping and model selection.
        test: rows for the final evaluation.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            array = np.array(getattr(self, name), dtype=np.int64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def sizes(self) -> dict[str, int]:
        """Rows per split, e.g. `{"train": 800, "valid": 100, "test": 100}`."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


def make_splits(df: pd.DataFrame, config: SplitConfig) -> Splits:
    """Splits the rows of `df` into train, validation and test.

    - `random`: `perm = numpy.random.default_rng(seed).permutation(n)`;
      `perm[:b1]` train, `perm[b1:b2]` valid, `perm[b2:]` test, with the
      boundaries `b1 = floor(n * f_train + 0.5)` and
      `b2 = floor(n * (f_train + f_valid) + 0.5)` (`b2 = n` when the test
      fraction is 0).
    - `group`: the distinct values of `column` (sorted) are shuffled with the
      same rng, then whole groups are laid end to end in that order; a group
      goes to the split in which the middle of its run of rows falls, so
      row fractions come close to the targets and no value is in two splits.
    - `time`: `column < valid_start` train, `valid_start <= column <
      test_start` valid, `column >= test_start` test.
    - `hash`: `u = splitmix64-or-siphash(seed, key) / 2**64` per row, the key
      being the row's `column` value as a string (siphash keyed by the seed)
      or its position (splitmix64); `u < f_train` train, `u < f_train +
      f_valid` valid, else test. Row by row, so `split_codes` gives the
      same split batch by batch.

    Args:
        df: the rows.
        config: the split settings.

    Returns:
        The three index arrays, each sorted ascending.

    Raises:
        SchemaError: `config.column` is not a column of `df`.
        DataError: a split would be empty (the message says why), the split
            column has missing values, or time values cannot be compared with
            the cutoffs.
    """
    n = len(df)
    if n == 0:
        raise DataError("Cannot split a table with 0 rows.")
    if config.kind == "random":
        return _random_splits(n, config)
    if config.kind == "hash":
        codes = _hash_codes(df, config, 0)
        check_split_sizes(np.bincount(codes, minlength=3), config)
        return Splits(*(np.flatnonzero(codes == k) for k in range(3)))
    column = _column(df, config)
    if config.kind == "group":
        return _group_splits(column, config)
    return _time_splits(column, config)


# --------------------------------------------------------------------------- checks


def _check_fractions(fractions: Any) -> list[float]:
    where = f"{_WHERE}.fractions"
    if not isinstance(fractions, (list, tuple, np.ndarray)) or len(fractions) != 3:
        raise ConfigError(
            f"{where} must be 3 numbers (train, valid, test) summing to 1. Received: {fractions!r}."
        )
    values = []
    for i, value in enumerate(fractions):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ConfigError(
                f"{where}[{i}] must be a non-negative number. Received: fractions={list(fractions)!r}."
            )
        values.append(float(value))
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"{where} must sum to 1 (train, valid, test). Received: {values!r}, which sums to "
            f"{sum(values):.6g}."
        )
    if values[0] <= 0:
        raise ConfigError(f"{where}[0] (train) must be above 0. Received: {values!r}.")
    return values


def _parse_cutoff(value: Any, where: str) -> pd.Timestamp | float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a date string or a number. Received: {value!r}.")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number. Received: {value!r}.")
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value
    if isinstance(value, str):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"{where} must be a date or time such as '2018-01-01' or '2018-01-01 12:00'. "
                f"Received: {value!r} ({err})."
            ) from err
        if pd.isna(stamp):
            raise ConfigError(f"{where} must be a date or time. Received: {value!r}.")
        return stamp
    raise ConfigError(f"{where} must be a date string or a number. Received: {value!r}.")


def _column(df: pd.DataFrame, config: SplitConfig) -> pd.Series:
    name = config.column
    require_columns(df, [name], "the table",
                    note=f" (the split column: {_WHERE}.column, kind '{config.kind}')")
    column = df[name]
    if isinstance(column, pd.DataFrame):
        raise SchemaError(f"Split column '{name}' appears more than once in the table.")
    missing = int(column.isna().sum())
    if missing:
        raise DataError(
            f"Split column '{name}' has {missing:,} missing values (of {len(column):,} rows); "
            f"every row needs a {'group' if config.kind == 'group' else 'time'} to be split. "
            f"Fill or drop them first."
        )
    return column


def _empty_fraction_error(name: str, fraction: float, n: int, detail: str) -> DataError:
    return DataError(
        f"The {name} split is empty: data.split.fractions gives it {fraction:g} of {n:,} rows"
        f"{detail}. Use more rows or a larger fraction."
    )


# --------------------------------------------------------------------------- random


def _boundaries(n: int, fractions: list[float]) -> tuple[int, int]:
    f_train, f_valid, f_test = fractions
    b1 = min(n, int(math.floor(n * f_train + 0.5)))
    b2 = n if f_test == 0 else min(n, int(math.floor(n * (f_train + f_valid) + 0.5)))
    if f_valid == 0:
        b2 = b1
    return b1, max(b1, b2)


def _random_splits(n: int, config: SplitConfig) -> Splits:
    perm = np.random.default_rng(config.seed).permutation(n)
    b1, b2 = _boundaries(n, config.fractions)
    parts = (perm[:b1], perm[b1:b2], perm[b2:])
    for name, part, fraction in zip(SPLIT_NAMES, parts, config.fractions):
        if fraction > 0 and len(part) == 0:
            raise _empty_fraction_error(name, fraction, n, ", which rounds to 0 rows")
    return Splits(*(np.sort(p) for p in parts))


# --------------------------------------------------------------------------- group


def _group_splits(column: pd.Series, config: SplitConfig) -> Splits:
    try:
        codes, uniques = pd.factorize(column, sort=True)
    except TypeError:  # values of mixed types do not sort; their strings do
        codes, uniques = pd.factorize(column.astype(str), sort=True)
    n, num_groups = len(column), len(uniques)
    counts = np.bincount(codes, minlength=num_groups)
    group_split = _group_assignment(counts, config, str(column.name))
    row_split = group_split[codes]
    return Splits(*(np.flatnonzero(row_split == k) for k in range(3)))


def _group_assignment(counts: np.ndarray, config: SplitConfig, name: str) -> np.ndarray:
    """The split (0, 1, 2) of each group, groups in sorted order, `counts` their rows."""
    num_groups, n = len(counts), int(counts.sum())
    order = np.random.default_rng(config.seed).permutation(num_groups)
    ends = np.cumsum(counts[order])
    middles = ends - counts[order] / 2.0
    f_train, f_valid, _ = config.fractions
    b1, b2 = n * f_train, n * (f_train + f_valid)
    if config.fractions[2] == 0:
        b2 = float("inf")
    split_in_order = np.where(middles < b1, 0, np.where(middles < b2, 1, 2))
    group_split = np.empty(num_groups, dtype=np.int64)
    group_split[order] = split_in_order
    sizes = np.bincount(group_split, weights=counts, minlength=3)
    for split, size, fraction in zip(SPLIT_NAMES, sizes, config.fractions):
        if (fraction > 0 or split == "train") and size == 0:
            raise DataError(
                f"The group split by '{name}' left the {split} split empty: its "
                f"{num_groups:,} distinct value(s) over {n:,} rows cannot give whole groups to "
                f"fractions {config.fractions} (largest group: {int(counts.max()):,} rows). "
                f"Use a column with more distinct values, other fractions, or another seed."
            )
    return group_split


# --------------------------------------------------------------------------- time


def _fmt(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        if value == value.normalize():
            return str(value.date())
        return str(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _time_values(column: pd.Series, config: SplitConfig) -> tuple[pd.Series, Any, Any]:
    """Returns the column and both cutoffs in comparable form."""
    name = column.name
    valid = _parse_cutoff(config.valid_start, f"{_WHERE}.valid_start")
    test = _parse_cutoff(config.test_start, f"{_WHERE}.test_start")
    if pd.api.types.is_bool_dtype(column):
        raise DataError(f"Split column '{name}' is boolean, not a time. Give a date or numeric column.")
    if pd.api.types.is_numeric_dtype(column):
        cutoffs = []
        for key, raw in (("valid_start", config.valid_start), ("test_start", config.test_start)):
            try:
                cutoffs.append(float(raw))
            except (TypeError, ValueError):
                raise DataError(
                    f"Split column '{name}' is numeric (range {_fmt(column.min())}..{_fmt(column.max())}), "
                    f"but {_WHERE}.{key} is {raw!r}, not a number. Give numeric cutoffs, or store "
                    f"the column as dates."
                ) from None
        return column, cutoffs[0], cutoffs[1]
    if not pd.api.types.is_datetime64_any_dtype(column):
        try:
            with warnings.catch_warnings():  # "Could not infer format": dateutil parses each value
                warnings.simplefilter("ignore", UserWarning)
                column = pd.to_datetime(column)
        except (ValueError, TypeError) as err:
            raise DataError(
                f"Split column '{name}' holds values that are not dates or times "
                f"(first values: {column.head(3).tolist()}): {err}"
            ) from err
    if not isinstance(valid, pd.Timestamp) or not isinstance(test, pd.Timestamp):
        raise DataError(
            f"Split column '{name}' holds dates (range {_fmt(column.min())}..{_fmt(column.max())}), "
            f"but {_WHERE}.valid_start/test_start are numbers ({config.valid_start!r}, "
            f"{config.test_start!r}). Give dates such as '2018-01-01'."
        )
    tz = getattr(column.dt, "tz", None)
    cut = []
    for stamp in (valid, test):
        if tz is not None and stamp.tzinfo is None:
            stamp = stamp.tz_localize(tz)
        elif tz is None and stamp.tzinfo is not None:
            raise DataError(
                f"Split column '{name}' has no time zone, but the cutoff {stamp} has one. "
                f"Drop the time zone from {_WHERE}.valid_start/test_start."
            )
        cut.append(stamp)
    return column, cut[0], cut[1]


def _time_masks(column: pd.Series, config: SplitConfig) -> tuple[pd.Series, Any, Any, np.ndarray, np.ndarray]:
    """The comparable column and cutoffs, and the train and test masks."""
    values, valid_start, test_start = _time_values(column, config)
    array = values.to_numpy() if not isinstance(valid_start, pd.Timestamp) else values
    return values, valid_start, test_start, np.asarray(array < valid_start), np.asarray(array >= test_start)


def _time_splits(column: pd.Series, config: SplitConfig) -> Splits:
    name = column.name
    values, valid_start, test_start, is_train, is_test = _time_masks(column, config)
    is_valid = ~is_train & ~is_test
    span = f"the column's range is {_fmt(values.min())}..{_fmt(values.max())}"
    v, t = _fmt(valid_start), _fmt(test_start)
    if not is_train.any():
        raise DataError(f"No row has {name} < valid_start {v}, so the train split is empty; {span}.")
    if not is_test.any():
        raise DataError(f"No row has {name} >= test_start {t}, so the test split is empty; {span}.")
    if not is_valid.any() and valid_start != test_start:
        raise DataError(
            f"No row has valid_start {v} <= {name} < test_start {t}, so the validation split is "
            f"empty; {span}."
        )
    return Splits(*(np.flatnonzero(mask) for mask in (is_train, is_valid, is_test)))


# --------------------------------------------------------------------------- hash

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, vectorized over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hash_codes(df: pd.DataFrame, config: SplitConfig, start: int) -> np.ndarray:
    """The split (0, 1, 2) of each row of a `hash` split; `start` is the first row's position."""
    seed = np.uint64(int(config.seed) % 2**64)
    if config.column:
        from mtrec.features.vocabulary import as_strings  # the same strings as the vocabularies

        column = _column(df, config)
        codes, uniques = pd.factorize(column)
        strings = as_strings(pd.Series(uniques, dtype=object))
        hashes = pd.util.hash_array(strings, encoding="utf8", hash_key=f"{int(seed):016x}",
                                    categorize=False)[codes]
    else:
        positions = np.arange(start, start + len(df), dtype=np.uint64)
        hashes = _splitmix64(positions ^ _splitmix64(np.array([seed]))[0])
    u = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    f_train, f_valid, f_test = config.fractions
    if f_test == 0:
        return np.where(u < f_train, 0, 1).astype(np.int8)
    return np.where(u < f_train, 0, np.where(u < f_train + f_valid, 1, 2)).astype(np.int8)


def check_split_sizes(sizes: Any, config: SplitConfig) -> None:
    """Raises DataError when a split that should have rows has none (after a streamed or hash split).

    Args:
        sizes: rows of train, valid and test.
        config: the split settings.
    """
    n = int(sum(int(s) for s in sizes))
    if n == 0:
        raise DataError("Cannot split a table with 0 rows.")
    for name, size, fraction in zip(SPLIT_NAMES, sizes, config.fractions):
        if (fraction > 0 or name == "train") and int(size) == 0:
            if config.kind == "time":
                cut = {"train": f"{config.column} < valid_start {config.valid_start}",
                       "valid": f"valid_start {config.valid_start} <= {config.column} < test_start "
                                f"{config.test_start}",
                       "test": f"{config.column} >= test_start {config.test_start}"}[name]
                if name == "valid" and config.valid_start == config.test_start:
                    continue
                raise DataError(f"No row has {cut}, so the {name} split is empty.")
            raise _empty_fraction_error(name, fraction, n, f" under the {config.kind} split")


# --------------------------------------------------------------------------- batch by batch


class GroupSplit:
    """The split of every group of a `group` split, learnt from the groups' row counts.

    Gives exactly `make_splits`' assignment without the table: count the
    groups batch by batch (`count`), merge, then `fit` and map each batch's
    rows with `codes`. Memory grows with the number of distinct groups.

    Args:
        config: the split settings (kind `"group"`).
        values: the groups, sorted as `pandas.factorize(..., sort=True)` sorts them.
        splits: the split (0, 1, 2) of each group.
        as_strings: whether groups are compared as strings (mixed types).
    """

    def __init__(self, config: SplitConfig, values: pd.Index, splits: np.ndarray, as_strings: bool) -> None:
        self.config, self.values, self.splits, self.as_strings = config, values, splits, as_strings

    @staticmethod
    def count(df: pd.DataFrame, config: SplitConfig) -> Any:
        """The rows per group of one batch, as a mergeable `ValueCounts`."""
        from mtrec.features.partial import ValueCounts

        column = _column(df, config)
        codes, uniques = pd.factorize(column)
        return ValueCounts(np.asarray(uniques), np.bincount(codes, minlength=len(uniques)))

    @classmethod
    def fit(cls, counts: Any, config: SplitConfig) -> GroupSplit:
        """Assigns every group from the merged counts of all rows (see `make_splits`)."""
        values, totals = counts.aggregate()
        as_str = False
        try:
            codes, uniques = pd.factorize(values, sort=True)
        except TypeError:  # mixed types: their strings, as in memory
            as_str = True
            codes, uniques = pd.factorize(pd.Series(values, dtype=object).astype(str), sort=True)
        sorted_counts = np.bincount(codes, weights=totals, minlength=len(uniques)).astype(np.int64)
        splits = _group_assignment(sorted_counts, config, str(config.column))
        return cls(config, pd.Index(uniques), splits, as_str)

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """The split (0, 1, 2) of each row of a batch."""
        column = _column(df, self.config)
        if self.as_strings:
            column = column.astype(str)
        positions = self.values.get_indexer(column)
        if (positions < 0).any():
            unknown = column[positions < 0].head(3).tolist()
            raise DataError(
                f"Split column '{self.config.column}' holds values not counted before, e.g. "
                f"{unknown}: the table changed between the two passes of the group split.")
        return self.splits[positions].astype(np.int8)


def split_codes(df: pd.DataFrame, config: SplitConfig, start: int,
                groups: GroupSplit | None = None) -> np.ndarray:
    """The split (0 train, 1 valid, 2 test) of each row of one batch of a larger table.

    Args:
        df: the batch.
        config: the split settings; its kind must be in `STREAMED_SPLIT_KINDS`.
        start: the position of the batch's first row in the whole table.
        groups: for a `group` split, the `GroupSplit` fitted on the whole table.

    Returns:
        int8 codes, one per row. Empty splits are checked at the end with
        `check_split_sizes`.

    Raises:
        ConfigError: the kind needs the whole table (`random`).
        DataError: the split column has missing values or uncomparable times.
    """
    check_streamable(config)
    if config.kind == "hash":
        return _hash_codes(df, config, start)
    if config.kind == "group":
        if groups is None:
            raise ValueError("A group split needs its GroupSplit: count the groups first.")
        return groups.codes(df)
    _, _, _, is_train, is_test = _time_masks(_column(df, config), config)
    return np.where(is_train, 0, np.where(is_test, 2, 1)).astype(np.int8)


def check_streamable(config: SplitConfig) -> None:
    """Raises ConfigError when a split kind cannot be applied batch by batch.

    Raises:
        ConfigError: the kind is `random`, which permutes every row.
    """
    if config.kind not in STREAMED_SPLIT_KINDS:
        raise ConfigError(
            f"{_WHERE}.kind '{config.kind}' cannot split a table batch by batch: it permutes every "
            f"row, so the whole table would have to fit in memory. Use {_WHERE}.kind: hash (a seeded "
            f"hash of each row's position, or of a key column with {_WHERE}.column), or group / "
            f"time. Supported when streaming: {list(STREAMED_SPLIT_KINDS)}.")
