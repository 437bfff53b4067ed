"""Tests of mtrec.data.splits: random, group and time splits and their errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from mtrec.data.splits import SplitConfig, Splits, make_splits
from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.utils.validation import from_config


def frame_of(n: int, **columns) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=np.float64), **columns})


def assert_partition(splits: Splits, n: int) -> None:
    parts = [splits.train, splits.valid, splits.test]
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    together = np.concatenate(parts)
    assert len(together) == n
    assert np.array_equal(np.sort(together), np.arange(n))


# --------------------------------------------------------------------------- random


@pytest.mark.parametrize("n, fractions, seed", [
    (1000, [0.8, 0.1, 0.1], 2018),
    (299285, [0.6, 0.2, 0.2], 2018),  # the census pipeline's rule
    (17, [0.7, 0.2, 0.1], 5),
    (10, [0.5, 0.5, 0.0], 1),
])
def test_random_split_is_the_seeded_permutation(n, fractions, seed):
    splits = make_splits(frame_of(n), SplitConfig(fractions=fractions, seed=seed))
    perm = np.random.default_rng(seed).permutation(n)
    b1 = math.floor(n * fractions[0] + 0.5)
    b2 = n if fractions[2] == 0 else math.floor(n * (fractions[0] + fractions[1]) + 0.5)
    assert np.array_equal(splits.train, np.sort(perm[:b1]))
    assert np.array_equal(splits.valid, np.sort(perm[b1:b2]))
    assert np.array_equal(splits.test, np.sort(perm[b2:]))
    assert_partition(splits, n)


def test_random_split_sizes_for_census_fractions():
    splits = make_splits(frame_of(299285), SplitConfig(fractions=[0.6, 0.2, 0.2], seed=2018))
    assert splits.sizes() == {"train": 179571, "valid": 59857, "test": 59857}


def test_random_split_ignores_the_frame_index_and_depends_on_seed():
    frame = frame_of(200).set_index(pd.Index(np.arange(200) * 7 + 3))
    a = make_splits(frame, SplitConfig(seed=1))
    b = make_splits(frame_of(200), SplitConfig(seed=1))
    c = make_splits(frame_of(200), SplitConfig(seed=2))
    assert np.array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)
    assert a.train.max() < 200  # positions, not index labels


def test_splits_are_read_only():
    splits = make_splits(frame_of(20), SplitConfig())
    with pytest.raises(ValueError):
        splits.train[0] = 5


def test_random_split_too_small_for_a_fraction():
    # 4 rows: boundaries floor(3.2 + 0.5) = 3 and floor(3.6 + 0.5) = 4 leave no test row.
    with pytest.raises(DataError, match=r"The test split is empty.*0\.1 of 4 rows, which rounds to 0"):
        make_splits(frame_of(4), SplitConfig(fractions=[0.8, 0.1, 0.1]))


def test_empty_table():
    with pytest.raises(DataError, match="0 rows"):
        make_splits(frame_of(0), SplitConfig())


# --------------------------------------------------------------------------- group


def test_group_split_keeps_groups_whole_and_near_fractions():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 400, size=20000)
    frame = frame_of(20000, user=users)
    config = SplitConfig(kind="group", column="user", fractions=[0.7, 0.2, 0.1], seed=3)
    splits = make_splits(frame, config)
    assert_partition(splits, 20000)
    groups = [set(users[s]) for s in (splits.train, splits.valid, splits.test)]
    assert not groups[0] & groups[1]
    assert not groups[0] & groups[2]
    assert not groups[1] & groups[2]
    assert len(groups[0] | groups[1] | groups[2]) == len(set(users))
    for part, target in zip((splits.train, splits.valid, splits.test), config.fractions):
        assert abs(len(part) / 20000 - target) < 0.03


def test_group_split_follows_the_seeded_permutation_of_sorted_groups():
    # Ten groups of 10 rows: the midpoint rule gives 8 groups to train, 1 to valid, 1 to test,
    # in the order of default_rng(seed).permutation over the sorted group values.
    names = np.array([f"g{i}" for i in range(10)])
    rows = np.repeat(names, 10)
    frame = frame_of(100, group=np.random.default_rng(9).permutation(rows))
    splits = make_splits(frame, SplitConfig(kind="group", column="group", seed=11))
    order = np.sort(names)[np.random.default_rng(11).permutation(10)]
    groups = frame["group"].to_numpy()
    assert set(groups[splits.train]) == set(order[:8])
    assert set(groups[splits.valid]) == {order[8]}
    assert set(groups[splits.test]) == {order[9]}


def test_group_split_with_too_few_groups():
    # Group middles at rows 5, 15 and 25 of 30; boundaries at 24 and 27: train, train, valid.
    frame = frame_of(30, user=np.repeat([1, 2, 3], 10))
    with pytest.raises(DataError, match=r"group split by 'user' left the test split empty.*3 distinct"):
        make_splits(frame, SplitConfig(kind="group", column="user"))


def test_group_split_missing_values():
    frame = frame_of(4, user=[1.0, np.nan, 2.0, np.nan])
    with pytest.raises(DataError, match="'user' has 2 missing values"):
        make_splits(frame, SplitConfig(kind="group", column="user", fractions=[0.5, 0.5, 0.0]))


def test_missing_split_column_is_a_schema_error():
    frame = frame_of(10, user_id=np.arange(10))
    with pytest.raises(SchemaError, match=r"'user_di'.*Did you mean 'user_id'.*\['x', 'user_id'\]"):
        make_splits(frame, SplitConfig(kind="group", column="user_di"))


# --------------------------------------------------------------------------- time


def daily_frame() -> pd.DataFrame:
    dates = pd.date_range("2013-02-08", "2018-02-07", freq="D")
    return frame_of(len(dates), date=dates[::-1])  # order of rows must not matter


@pytest.mark.parametrize("as_strings", [False, True])
def test_time_split_respects_cutoffs(as_strings):
    frame = daily_frame()
    if as_strings:
        frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    config = SplitConfig(kind="time", column="date", valid_start="2017-01-01", test_start="2017-07-01")
    splits = make_splits(frame, config)
    assert_partition(splits, len(frame))
    dates = pd.to_datetime(frame["date"]).to_numpy()
    valid_start, test_start = np.datetime64("2017-01-01"), np.datetime64("2017-07-01")
    assert np.array_equal(splits.train, np.flatnonzero(dates < valid_start))
    assert np.array_equal(splits.valid, np.flatnonzero((dates >= valid_start) & (dates < test_start)))
    assert np.array_equal(splits.test, np.flatnonzero(dates >= test_start))
    assert len(splits.valid) == 181  # 2017-01-01 .. 2017-06-30


def test_time_split_on_numbers():
    frame = frame_of(100, day=np.arange(100) % 50)
    splits = make_splits(frame, SplitConfig(kind="time", column="day", valid_start=30, test_start=40))
    day = frame["day"].to_numpy()
    assert np.array_equal(splits.train, np.flatnonzero(day < 30))
    assert np.array_equal(splits.valid, np.flatnonzero((day >= 30) & (day < 40)))
    assert np.array_equal(splits.test, np.flatnonzero(day >= 40))


def test_time_split_with_equal_cutoffs_has_no_validation_rows():
    frame = daily_frame()
    splits = make_splits(frame, SplitConfig(kind="time", column="date", valid_start="2018-01-01",
                                            test_start="2018-01-01"))
    assert len(splits.valid) == 0
    assert len(splits.test) == 38  # 2018-01-01 .. 2018-02-07


def test_time_split_with_no_row_past_test_start():
    config = SplitConfig(kind="time", column="date", valid_start="2017-01-01", test_start="2030-01-01")
    with pytest.raises(DataError) as info:
        make_splits(daily_frame(), config)
    assert str(info.value) == (
        "No row has date >= test_start 2030-01-01, so the test split is empty; "
        "the column's range is 2013-02-08..2018-02-07."
    )


def test_time_split_with_no_row_before_valid_start():
    config = SplitConfig(kind="time", column="date", valid_start="2000-01-01", test_start="2017-01-01")
    with pytest.raises(DataError, match=r"date < valid_start 2000-01-01, so the train split is empty"):
        make_splits(daily_frame(), config)


def test_time_split_with_empty_validation_window():
    config = SplitConfig(kind="time", column="date", valid_start="2017-01-01 06:00",
                         test_start="2017-01-01 12:00")
    with pytest.raises(DataError, match="validation split is empty"):
        make_splits(daily_frame(), config)


def test_time_split_type_mismatches():
    numbers = frame_of(10, day=np.arange(10))
    with pytest.raises(DataError, match=r"'day' is numeric \(range 0\.\.9\).*'2017-01-01', not a number"):
        make_splits(numbers, SplitConfig(kind="time", column="day", valid_start="2017-01-01",
                                         test_start="2018-01-01"))
    with pytest.raises(DataError, match="holds dates"):
        make_splits(daily_frame(), SplitConfig(kind="time", column="date", valid_start=1, test_start=2))
    words = frame_of(3, when=["soon", "later", "never"])
    with pytest.raises(DataError, match="'when' holds values that are not dates"):
        make_splits(words, SplitConfig(kind="time", column="when", valid_start="2017-01-01",
                                       test_start="2018-01-01"))


# --------------------------------------------------------------------------- config


def test_defaults_and_from_yaml():
    assert SplitConfig() == SplitConfig(kind="random", fractions=[0.8, 0.1, 0.1], seed=2018)
    raw = yaml.safe_load("{kind: time, column: date, valid_start: 2017-01-01, test_start: 2017-07-01}")
    config = from_config(SplitConfig, raw, "data.split")
    assert (config.valid_start, config.test_start) == ("2017-01-01", "2017-07-01")


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "grup"}, r"'data.split.kind' parameter must be one of .*Did you mean 'group'"),
    ({"kind": "group"}, r"data.split.column is required when data.split.kind is 'group'"),
    ({"kind": "time", "valid_start": "2017-01-01", "test_start": "2018-01-01"},
     r"data.split.column is required when data.split.kind is 'time'"),
    ({"fractions": [0.8, 0.2]}, r"data.split.fractions must be 3 numbers"),
    ({"fractions": [0.8, 0.1, 0.2]}, r"data.split.fractions must sum to 1.*1\.1"),
    ({"fractions": [0.0, 0.5, 0.5]}, r"data.split.fractions\[0\] \(train\) must be above 0"),
    ({"fractions": [1.1, -0.1, 0.0]}, r"data.split.fractions\[1\] must be a non-negative number"),
    ({"kind": "time", "column": "d", "test_start": "2018-01-01"},
     r"data.split.valid_start is required when data.split.kind is 'time'"),
    ({"kind": "time", "column": "d", "valid_start": "2018-01-01"},
     r"data.split.test_start is required"),
    ({"kind": "time", "column": "d", "valid_start": "2019-01-01", "test_start": "2018-01-01"},
     r"data.split.valid_start must not be after data.split.test_start"),
    ({"kind": "time", "column": "d", "valid_start": "someday", "test_start": "2018-01-01"},
     r"data.split.valid_start must be a date or time.*'someday'"),
    ({"kind": "time", "column": "d", "valid_start": 3, "test_start": "2018-01-01"},
     r"must both be dates or both be numbers"),
])
def test_bad_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SplitConfig(**kwargs)


def test_fractions_within_tolerance_are_accepted():
    config = SplitConfig(fractions=[0.7, 0.2, 0.1000004])
    assert config.fractions == [0.7, 0.2, 0.1000004]


def test_from_config_reports_the_key_path():
    with pytest.raises(ConfigError, match=r"Unknown config key 'data.split.sed'. Did you mean 'seed'"):
        from_config(SplitConfig, {"sed": 1}, "data.split")
    with pytest.raises(ConfigError, match=r"'data.split.seed' must be an integer"):
        from_config(SplitConfig, {"seed": "x"}, "data.split")
