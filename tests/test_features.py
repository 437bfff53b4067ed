"""Tests of mtrec.features: specs from config, the fitted encoder, its id convention and state."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mtrec.errors import ConfigError, DataError, NotFittedError, SchemaError
from mtrec.features import (
    CategoricalFeature,
    FeatureEncoder,
    MultiCategoricalFeature,
    NumericFeature,
    parse_features,
)

VOCABULARY_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "mtrec", "features", "vocabulary.py")


def cat(name, **kw):
    return {"name": name, "kind": "categorical", **kw}


def num(name, **kw):
    return {"name": name, "kind": "numeric", **kw}


def multi(name, **kw):
    return {"name": name, "kind": "multi_categorical", **kw}


def assert_same_arrays(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- specs ---------------------------------------------------------------------------------


def test_parse_features_builds_typed_specs_with_defaults():
    specs = parse_features([num("age", log1p=True, clip=[0, 5]), cat("item", embedding_dim=16),
                            multi("genres", separator=",")])
    assert specs[0] == NumericFeature("age", log1p=True, clip=[0.0, 5.0])
    assert specs[1] == CategoricalFeature("item", embedding_dim=16)
    assert specs[1].table_name == "item" and specs[1].min_count == 1 and specs[1].hash_buckets is None
    assert specs[2] == MultiCategoricalFeature("genres", separator=",")


def test_duplicate_feature_is_config_error():
    with pytest.raises(ConfigError, match=r"'item' is declared twice: features\[0\] and features\[2\]"):
        parse_features([cat("item"), num("age"), cat("item")])


def test_reserved_name_numeric_is_config_error():
    with pytest.raises(ConfigError, match=r"features\[0\]\.name.*'numeric' is reserved"):
        parse_features([cat("numeric")])


def test_unknown_kind_lists_allowed_kinds():
    with pytest.raises(ConfigError) as err:
        parse_features([num("age"), {"name": "item", "kind": "categoricl"}])
    message = str(err.value)
    assert "features[1].kind" in message and "'categoricl'" in message
    for kind in ("numeric", "categorical", "multi_categorical"):
        assert f"'{kind}'" in message
    assert "Did you mean 'categorical'?" in message


def test_missing_kind_is_config_error():
    with pytest.raises(ConfigError, match=r"features\[0\]\.kind"):
        parse_features([{"name": "age"}])


def test_unknown_key_suggests_the_close_key():
    with pytest.raises(ConfigError) as err:
        parse_features([num("age"), cat("item", embeding_dim=16)])
    assert "features[1].embeding_dim" in str(err.value)
    assert "Did you mean 'embedding_dim'?" in str(err.value)


@pytest.mark.parametrize("item, where", [
    (num("age", clip=[5, 1]), r"features\[0\]\.clip"),
    (num("age", clip=[1]), r"features\[0\]\.clip"),
    (num("age", impute="mode"), r"features\[0\]\.impute"),
    (cat("item", embedding_dim=0), r"features\[0\]\.embedding_dim"),
    (cat("item", hash_buckets=-3), r"features\[0\]\.hash_buckets"),
    (multi("genres", max_length=0), r"features\[0\]\.max_length"),
    (cat("item_*"), r"globs are only supported for numeric"),
])
def test_bad_values_name_the_key(item, where):
    with pytest.raises(ConfigError, match=where):
        parse_features([item])


def test_shared_table_must_agree_on_dim_and_buckets():
    with pytest.raises(ConfigError) as err:
        parse_features([cat("item_id", embedding_dim=16), cat("last_item_id", table="item_id", embedding_dim=8)])
    message = str(err.value)
    assert "table 'item_id'" in message and "'embedding_dim'" in message
    assert "item_id: embedding_dim=16" in message and "last_item_id: embedding_dim=8" in message
    with pytest.raises(ConfigError, match="table 'items'.*'hash_buckets'"):
        parse_features([cat("a", table="items", hash_buckets=10), cat("b", table="items")])


# -- categorical ---------------------------------------------------------------------------


def test_vocabulary_from_train_only_with_min_count_and_oov():
    train = pd.DataFrame({"item": ["a", "a", "a", "b", "b", "c", "d"]})
    encoder = FeatureEncoder([cat("item", min_count=2)]).fit(train)
    # a (3) -> 2, b (2) -> 3; c and d are rarer than min_count -> 1.
    np.testing.assert_array_equal(encoder.transform(train)["item"], [2, 2, 2, 3, 3, 1, 1])
    test = pd.DataFrame({"item": ["b", "a", "c", "zzz", "zzz", None]})
    ids = encoder.transform(test)["item"]
    assert ids.dtype == np.int32 and ids.shape == (6,)
    np.testing.assert_array_equal(ids, [3, 2, 1, 1, 1, 1])
    # Only the two unseen "zzz" count: "c" was seen (just rare), None is missing.
    assert encoder.last_oov_counts_ == {"item": 2}
    assert encoder.layout()["tables"]["item"] == {"input_dim": 2 + 2, "output_dim": 8}
    encoder.transform(train)
    assert encoder.last_oov_counts_ == {"item": 0}
    # transform_counted returns the counts and leaves the encoder's (threads may share it).
    features, oov = encoder.transform_counted(test)
    np.testing.assert_array_equal(features["item"], ids)
    assert oov == {"item": 2} and encoder.last_oov_counts_ == {"item": 0}


def test_max_vocab_size_keeps_the_most_frequent():
    train = pd.DataFrame({"item": list("aaabbc")})
    encoder = FeatureEncoder([cat("item", max_vocab_size=2)]).fit(train)
    np.testing.assert_array_equal(encoder.transform(pd.DataFrame({"item": list("cba")}))["item"], [1, 3, 2])
    assert encoder.last_oov_counts_ == {"item": 0}
    assert encoder.layout()["tables"]["item"]["input_dim"] == 4


def test_id_order_by_count_then_value_is_deterministic():
    values = ["d", "c", "b", "a", "c", "b", "a", "e", "e", "e"]
    train = pd.DataFrame({"item": values})
    shuffled = train.sample(frac=1.0, random_state=3).reset_index(drop=True)
    counts = pd.Series(values).value_counts()
    expected_order = sorted(counts.index, key=lambda v: (-counts[v], v))  # e, a, b, c, d
    expected = {v: 2 + i for i, v in enumerate(expected_order)}
    probe = pd.DataFrame({"item": list("abcde")})
    for frame in (train, shuffled):
        ids = FeatureEncoder([cat("item")]).fit(frame).transform(probe)["item"]
        np.testing.assert_array_equal(ids, [expected[v] for v in "abcde"])


def test_values_compare_as_strings_and_missing_is_a_category():
    # Ints, integral floats (an int column with a NaN) and strings are one category.
    train = pd.DataFrame({"item": [5, 5, 7, None, None, None]})  # float64 because of None
    encoder = FeatureEncoder([cat("item")]).fit(train)
    # "<missing>" (3) -> 2, "5" (2) -> 3, "7" (1) -> 4
    np.testing.assert_array_equal(encoder.transform(train)["item"], [3, 3, 4, 2, 2, 2])
    test = pd.DataFrame({"item": pd.Series(["5", "7", None, "8"], dtype=object)})
    np.testing.assert_array_equal(encoder.transform(test)["item"], [3, 4, 2, 1])
    np.testing.assert_array_equal(encoder.transform(pd.DataFrame({"item": [7, 5]}))["item"], [4, 3])
    assert list(encoder.get_config()["tables"]["item"]["vocabulary"]) == ["<missing>", "5", "7"]


def test_shared_table_vocabulary_is_the_union():
    train = pd.DataFrame({"item_id": ["a", "b", "a"], "last_item_id": ["c", "a", "a"]})
    encoder = FeatureEncoder([cat("item_id", embedding_dim=4),
                              cat("last_item_id", table="item_id", embedding_dim=4)]).fit(train)
    # Union counts: a 4, b 1, c 1 -> a 2, b 3, c 4.
    probe = pd.DataFrame({"item_id": ["a", "b", "c"], "last_item_id": ["a", "b", "c"]})
    out = encoder.transform(probe)
    np.testing.assert_array_equal(out["item_id"], [2, 3, 4])
    np.testing.assert_array_equal(out["last_item_id"], out["item_id"])  # c never was an item_id
    assert encoder.layout() == {
        "numeric_dim": 0,
        "tables": {"item_id": {"input_dim": 5, "output_dim": 4}},
        "categorical": {"item_id": "item_id", "last_item_id": "item_id"},
        "multi_categorical": {},
    }


def test_hashing_is_stable_in_range_and_survives_save_load(tmp_path):
    buckets = 7
    train = pd.DataFrame({"user": [f"u{i}" for i in range(50)]})
    specs = [cat("user", hash_buckets=buckets)]
    test = pd.DataFrame({"user": ["u1", "u2", "never-seen", None]})
    a = FeatureEncoder(specs).fit(train).transform(test)["user"]
    b = FeatureEncoder(specs).fit(train.iloc[:5]).transform(test)["user"]
    np.testing.assert_array_equal(a, b)
    strings = np.array(["u1", "u2", "never-seen", "<missing>"], dtype=object)
    expected = 2 + (pd.util.hash_array(strings, hash_key="0123456789123456") % np.uint64(buckets)).astype(np.int64)
    np.testing.assert_array_equal(a, expected)
    ids = FeatureEncoder(specs).fit(train).transform(train)["user"]
    assert ids.min() >= 2 and ids.max() < 2 + buckets
    encoder = FeatureEncoder(specs).fit(train)
    assert encoder.layout()["tables"]["user"]["input_dim"] == 2 + buckets
    encoder.save(tmp_path / "features.json")
    np.testing.assert_array_equal(FeatureEncoder.load(tmp_path / "features.json").transform(test)["user"], a)
    assert encoder.last_oov_counts_ == {"user": 0}
    # ints hash like their strings
    np.testing.assert_array_equal(encoder.transform(pd.DataFrame({"user": [12]}))["user"],
                                  encoder.transform(pd.DataFrame({"user": ["12"]}))["user"])


def test_hashing_is_the_same_in_another_process():
    # Load only the vocabulary module (numpy and pandas) so the child starts fast,
    # with a different PYTHONHASHSEED: Python's salted hash() would differ.
    script = (
        "import importlib.util, sys, numpy as np;"
        f"spec = importlib.util.spec_from_file_location('vocab', {VOCABULARY_FILE!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "print(m.hash_ids(np.array(['alpha', 'beta', 'gamma'], dtype=object), 1000).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            check=True)
    df = pd.DataFrame({"u": ["alpha", "beta", "gamma"]})
    here = FeatureEncoder([cat("u", hash_buckets=1000)]).fit(df).transform(df)["u"].tolist()
    assert json.loads(result.stdout) == here


# -- numeric -------------------------------------------------------------------------------


def test_standardization_uses_train_statistics():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(10, 3, 500), "b": rng.integers(0, 100, 500)})
    encoder = FeatureEncoder([num("a"), num("b")]).fit(train)
    out = encoder.transform(train)["numeric"]
    assert out.dtype == np.float32 and out.shape == (500, 2)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)
    x = train.to_numpy(np.float64)
    np.testing.assert_allclose(out, (x - x.mean(axis=0)) / x.std(axis=0), rtol=1e-5, atol=1e-5)
    test = pd.DataFrame({"a": [0.0, 100.0], "b": [50, 50]})
    expected = (test.to_numpy(np.float64) - x.mean(axis=0)) / x.std(axis=0)
    np.testing.assert_allclose(encoder.transform(test)["numeric"], expected, rtol=1e-5)
    assert encoder.numeric_columns_ == ["a", "b"]


def test_constant_column_has_std_one():
    encoder = FeatureEncoder([num("c")]).fit(pd.DataFrame({"c": [0.1] * 10}))
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"c": [0.1, 1.1]}))["numeric"][:, 0], [0.0, 1.0],
                               atol=1e-6)


def test_log1p_and_clip():
    train = pd.DataFrame({"x": [0.0, 1.0, 10.0, 100.0, 1000.0]})
    encoder = FeatureEncoder([num("x", log1p=True, clip=[0.5, 5.0])]).fit(train)
    z = np.clip(np.log1p(train["x"].to_numpy()), 0.5, 5.0)  # 1000 -> 6.9 -> 5, 0 -> 0.5
    np.testing.assert_allclose(encoder.transform(train)["numeric"][:, 0], (z - z.mean()) / z.std(), rtol=1e-5)
    new = np.clip(np.log1p(np.array([3.0, 1e9])), 0.5, 5.0)
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"x": [3.0, 1e9]}))["numeric"][:, 0],
                               (new - z.mean()) / z.std(), rtol=1e-5)


def test_log1p_of_value_le_minus_one_is_data_error():
    with pytest.raises(DataError, match="Column 'x'.*log1p.*<= -1"):
        FeatureEncoder([num("x", log1p=True)]).fit(pd.DataFrame({"x": [1.0, -1.0]}))
    encoder = FeatureEncoder([num("x", log1p=True)]).fit(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(DataError, match="Column 'x'.*scoring.csv"):
        encoder.transform(pd.DataFrame({"x": [-3.0]}), source="scoring.csv")


@pytest.mark.parametrize("impute", ["mean", "median", "zero"])
def test_missing_values_are_imputed_and_flagged(impute):
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 9.0]})
    encoder = FeatureEncoder([num("x", impute=impute)]).fit(train)
    present = np.array([1.0, 2.0, 9.0])
    mean, std = present.mean(), present.std()
    fill = {"mean": mean, "median": np.median(present), "zero": 0.0}[impute]
    out = encoder.transform(train)["numeric"]
    assert encoder.numeric_columns_ == ["x", "x__missing"]
    np.testing.assert_allclose(out[:, 0], (np.array([1.0, 2.0, fill, 9.0]) - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[:, 1], [0, 0, 1, 0])
    if impute == "mean":
        assert out[2, 0] == 0.0


def test_missing_indicator_auto_always_never():
    clean = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0], "c": [1.0, np.nan, 3.0],
                          "d": [1.0, np.nan, 3.0]})
    encoder = FeatureEncoder([num("a"), num("b", missing_indicator="always"),
                              num("c", missing_indicator="never"), num("d")]).fit(clean)
    # a: auto, no NaN in train -> none; b: always; c: never; d: auto with NaN -> yes.
    assert encoder.numeric_columns_ == ["a", "b", "c", "d", "b__missing", "d__missing"]
    assert encoder.layout()["numeric_dim"] == 6
    test = pd.DataFrame({"a": [np.nan], "b": [np.nan], "c": [np.nan], "d": [5.0]})
    out = encoder.transform(test)["numeric"]
    np.testing.assert_allclose(out[0, :3], 0.0, atol=1e-6)  # imputed with the train mean
    assert out[0, 3] == pytest.approx((5.0 - 2.0) / 1.0)  # d: mean 2, std 1 over its present values
    np.testing.assert_array_equal(out[0, 4:], [1.0, 0.0])  # b missing, d present


def test_infinity_is_missing():
    train = pd.DataFrame({"x": [1.0, np.inf, 3.0, -np.inf]})
    encoder = FeatureEncoder([num("x")]).fit(train)
    out = encoder.transform(train)["numeric"]
    # Statistics from 1 and 3 only: mean 2, std 1.
    np.testing.assert_allclose(out[:, 0], [-1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(out[:, 1], [0, 1, 0, 1])


def test_nullable_and_object_numeric_columns():
    train = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"),
                          "b": pd.Series([1.0, None, 3.0], dtype=object),
                          "c": [True, False, True]})
    out = FeatureEncoder([num("a"), num("b"), num("c")]).fit(train).transform(train)["numeric"]
    np.testing.assert_allclose(out[:, 0], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(out[:, 1], [-1.0, 0.0, 1.0])
    c = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(out[:, 2], (c - c.mean()) / c.std(), rtol=1e-6)


def test_string_column_in_numeric_feature_is_schema_error():
    train = pd.DataFrame({"age": ["young", "old"], "x": [1.0, 2.0]})
    with pytest.raises(SchemaError, match=r"Column 'age'.*dtype str"):
        FeatureEncoder([num("age"), num("x")]).fit(train)
    encoder = FeatureEncoder([num("age")]).fit(pd.DataFrame({"age": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match=r"Column 'age'.*in scores\.parquet has dtype string"):
        encoder.check_columns(pa.schema([("age", pa.string())]), source="scores.parquet")
    with pytest.raises(SchemaError, match=r"Column 'age'.*dtype object"):
        encoder.check_columns({"age": np.dtype(object)}, source="mapping")
    encoder.check_columns(pa.schema([("age", pa.int32())]), source="ok.parquet")
    encoder.check_columns({"age": "float64"}, source="mapping")


# -- columns -------------------------------------------------------------------------------


def test_missing_column_is_named_with_the_close_name():
    train = pd.DataFrame({"age": [1.0, 2.0], "item": ["a", "b"]})
    with pytest.raises(SchemaError) as err:
        FeatureEncoder([num("agee"), cat("item")]).fit(train)
    message = str(err.value)
    assert "'agee'" in message and "Did you mean 'age'?" in message and "['age', 'item']" in message
    encoder = FeatureEncoder([num("age"), cat("item")]).fit(train)
    with pytest.raises(SchemaError) as err:
        encoder.transform(pd.DataFrame({"agee": [1.0], "item": ["a"]}), source="new.parquet")
    message = str(err.value)
    assert "missing from new.parquet: 'age'." in message and "Did you mean 'agee'?" in message
    schema = pa.schema([("age", pa.float64()), ("itme", pa.string())])
    with pytest.raises(SchemaError, match=r"data/x\.parquet: 'item'\. Did you mean 'itme'\?"):
        encoder.check_columns(schema, source="data/x.parquet")


def test_glob_expansion_natural_order():
    train = pd.DataFrame({"x10": [1.0, 2.0], "y": [0.0, 1.0], "x2": [1.0, 3.0], "x1": [0.0, 5.0],
                          "x_id": ["a", "b"]})
    encoder = FeatureEncoder([num("x*"), cat("x_id"), num("y")]).fit(train)
    assert encoder.numeric_columns_ == ["x1", "x2", "x10", "y"]  # x_id is claimed by its own feature
    assert encoder.input_columns == ["x1", "x2", "x10", "x_id", "y"]
    out = encoder.transform(train)["numeric"]
    np.testing.assert_allclose(out[:, 2], [-1.0, 1.0])  # x10 standardized in place 2
    with pytest.raises(NotFittedError):
        FeatureEncoder([num("x*")]).input_columns
    # An explicit numeric feature takes its column from the glob; `exclude` keeps labels out.
    encoder = FeatureEncoder([num("*"), num("x2", log1p=True)]).fit(train.drop(columns="x_id"), exclude=["y"])
    assert encoder.numeric_columns_ == ["x1", "x10", "x2"]
    assert [s.feature for s in encoder.numeric_] == ["*", "*", "x2"]
    with pytest.raises(SchemaError, match="pattern 'z\\*' matches no column"):
        FeatureEncoder([num("z*")]).fit(train)


# -- multi-valued --------------------------------------------------------------------------


def test_multi_valued_from_separator_strings():
    train = pd.DataFrame({"genres": ["Action|Comedy", "Comedy", "Drama|Comedy|Action", "", None]})
    encoder = FeatureEncoder([multi("genres", max_length=2)]).fit(train)
    # Counts: Comedy 3, Action 2, Drama 1, <missing> 1 -> Comedy 2, Action 3, <missing> 4, Drama 5.
    out = encoder.transform(train)["genres"]
    assert out.dtype == np.int32 and out.shape == (5, 2)
    np.testing.assert_array_equal(out, [[3, 2], [2, 0], [5, 2], [0, 0], [4, 0]])
    test = pd.DataFrame({"genres": ["Horror| Action", "Comedy|Comedy|Comedy"]})
    np.testing.assert_array_equal(encoder.transform(test)["genres"], [[1, 3], [2, 2]])
    assert encoder.last_oov_counts_ == {"genres": 1}
    assert encoder.layout()["multi_categorical"] == {"genres": "genres"}
    assert encoder.layout()["tables"]["genres"]["input_dim"] == 2 + 4


def test_multi_valued_from_list_columns_pads_to_longest_training_list():
    train = pd.DataFrame({"tags": [[1, 2, 3], [2], [], None, ["2", 3]]})
    encoder = FeatureEncoder([multi("tags")]).fit(train)
    assert encoder.lengths_ == {"tags": 3}
    # Counts: "2" 3, "3" 2, "1" 1, "<missing>" 1 -> 2: 2, 3: 3, 1: 4, <missing>: 5
    np.testing.assert_array_equal(encoder.transform(train)["tags"],
                                  [[4, 2, 3], [2, 0, 0], [0, 0, 0], [5, 0, 0], [2, 3, 0]])
    test = pd.DataFrame({"tags": [np.array([3, 3, 2, 1, 9]), (9,)]})
    np.testing.assert_array_equal(encoder.transform(test)["tags"], [[3, 3, 2], [1, 0, 0]])
    assert encoder.last_oov_counts_ == {"tags": 1}  # the 9 cut off by max length does not count


def test_multi_valued_shares_a_table_with_a_categorical_feature():
    train = pd.DataFrame({"item": ["a", "b"], "history": ["a|c", "a"]})
    encoder = FeatureEncoder([cat("item"), multi("history", table="item")]).fit(train)
    out = encoder.transform(train)
    # Union: a 3, b 1, c 1 -> a 2, b 3, c 4
    np.testing.assert_array_equal(out["item"], [2, 3])
    np.testing.assert_array_equal(out["history"], [[2, 4], [2, 0]])
    assert encoder.layout()["tables"] == {"item": {"input_dim": 5, "output_dim": 8}}


# -- fitted state --------------------------------------------------------------------------


@pytest.fixture
def mixed_train():
    rng = np.random.default_rng(1)
    n = 200
    return pd.DataFrame({
        "x1": rng.normal(size=n), "x2": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "income": rng.exponential(1000, n),
        "item_id": rng.integers(0, 30, n), "last_item_id": rng.integers(0, 40, n),
        "user": [f"u{i}" for i in rng.integers(0, 500, n)],
        "genres": ["|".join(rng.choice(list("ABCDE"), k)) for k in rng.integers(0, 4, n)],
    })


MIXED_SPECS = [
    num("x*"), num("income", log1p=True, clip=[0, 8], impute="median"),
    cat("item_id", embedding_dim=6, min_count=3), cat("last_item_id", table="item_id", embedding_dim=6, min_count=3),
    cat("user", hash_buckets=64), multi("genres", max_length=2),
]


def test_save_load_round_trip_gives_identical_output(tmp_path, mixed_train):
    encoder = FeatureEncoder(MIXED_SPECS).fit(mixed_train.iloc[:150])
    test = mixed_train.iloc[150:]
    expected = encoder.transform(test)
    path = tmp_path / "run" / "features.json"
    encoder.save(path)
    loaded = FeatureEncoder.load(path)
    assert_same_arrays(loaded.transform(test), expected)
    assert loaded.numeric_columns_ == encoder.numeric_columns_ == ["x1", "x2", "income", "x2__missing"]
    assert loaded.layout() == encoder.layout()
    assert loaded.input_columns == encoder.input_columns
    assert loaded.last_oov_counts_ == encoder.last_oov_counts_
    assert_same_arrays(FeatureEncoder.from_config(encoder.get_config()).transform(test), expected)
    # The file is plain, readable JSON.
    state = json.loads(path.read_text())
    assert state["tables"]["item_id"]["features"] == ["item_id", "last_item_id"]
    assert state["tables"]["user"]["hash_buckets"] == 64
    assert isinstance(state["tables"]["genres"]["vocabulary"], dict)
    assert [c["column"] for c in state["numeric"]] == ["x1", "x2", "income"]


def test_transform_output_keys_dtypes_and_layout(mixed_train):
    encoder = FeatureEncoder(MIXED_SPECS).fit(mixed_train)
    out = encoder.transform(mixed_train)
    assert list(out) == ["numeric", "item_id", "last_item_id", "user", "genres"]
    assert out["numeric"].dtype == np.float32 and out["numeric"].shape == (200, 4)
    assert out["user"].dtype == np.int32 and out["genres"].shape == (200, 2)
    layout = encoder.layout()
    assert set(layout) == {"numeric_dim", "tables", "categorical", "multi_categorical"}
    assert layout["categorical"] == {"item_id": "item_id", "last_item_id": "item_id", "user": "user"}
    for name, table in {**layout["categorical"], **layout["multi_categorical"]}.items():
        assert out[name].max() < layout["tables"][table]["input_dim"]
    counts = pd.concat([mixed_train["item_id"], mixed_train["last_item_id"]]).value_counts()
    assert layout["tables"]["item_id"]["input_dim"] == 2 + int((counts >= 3).sum())
    empty = encoder.transform(mixed_train.iloc[:0])
    assert empty["numeric"].shape == (0, 4) and empty["genres"].shape == (0, 2)


def test_not_fitted_error():
    encoder = FeatureEncoder([num("age")])
    message = "This FeatureEncoder instance is not fitted yet. Call 'fit' first."
    with pytest.raises(NotFittedError, match=message):
        encoder.transform(pd.DataFrame({"age": [1.0]}))
    with pytest.raises(NotFittedError, match=message):
        encoder.layout()


def test_load_missing_or_bad_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FeatureEncoder.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"features": []}')
    with pytest.raises(DataError, match="bad.json"):
        FeatureEncoder.load(tmp_path / "bad.json")


def test_integer_vocabulary_is_compact_and_equals_the_string_form():
    """An integer column's vocabulary keeps int64s instead of a Python string per value, and gives
    the ids, unseen masks and state that the same values counted as strings give."""
    from mtrec.features.partial import ValueCounts
    from mtrec.features.vocabulary import MISSING, Vocabulary, as_strings, factorize_strings

    big, small = 2**63 - 1, -(2**63)
    # Ties in count sort by the category string: "10" < "2" < "5", and "-3" < "-9223..." < "1" < "9223...".
    column = np.array([5, 10, 2] * 3 + [1, -3, big, small] * 2 + [7, 123], dtype=np.int64)
    halves = np.array_split(column, 2)
    as_integers, as_text = ValueCounts(), ValueCounts()
    for half in halves:  # two batches merged, as a streamed fit merges them
        as_integers.merge(ValueCounts.of_integer_column(half))
        as_text.merge(ValueCounts.of_codes(*factorize_strings(pd.Series(half))))
    compact = Vocabulary.from_counts(as_integers, min_count=2)
    strings = Vocabulary.from_counts(as_text, min_count=2)
    assert compact._values is None  # no string per value is made by the fit

    config = compact.get_config()
    assert config == strings.get_config()
    assert list(config["vocabulary"].items()) == [("10", 3), ("2", 3), ("5", 3), ("-3", 2), (str(small), 2),
                                                  ("1", 2), (str(big), 2)]
    assert list(config["excluded"].items()) == [("123", 1), ("7", 1)]
    assert compact.input_dim == strings.input_dim == 9

    queries = np.array([10, 2, 5, -3, small, 1, big, 7, 123, 4, 0, -1], dtype=np.int64)
    ids, unseen = compact.lookup_integers(queries)
    assert ids.tolist() == [2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 1, 1]
    assert unseen.tolist() == [False] * 9 + [True] * 3  # 7 and 123 were seen (excluded), 4, 0, -1 never
    for got, expected in zip((ids, unseen), strings.lookup_integers(queries)):
        np.testing.assert_array_equal(got, expected)

    # Strings that are no int64's `str(k)`: OOV and unseen, except the missing category (seen as missing).
    others = ["007", "-0", MISSING, "+5", "05", "9223372036854775808", "abc"]
    texts = np.concatenate([as_strings(pd.Series(queries)), np.array(others, dtype=object)])
    ids, unseen = compact.lookup(texts)
    assert ids.tolist() == [2, 3, 4, 5, 6, 7, 8] + [1] * 12
    assert unseen.tolist() == [False] * 9 + [True] * 3 + [True, True, False, True, True, True, True]
    for got, expected in zip((ids, unseen), strings.lookup(texts)):
        np.testing.assert_array_equal(got, expected)
    assert compact._values is None  # the lookups made no strings either
    assert (compact.values, compact.counts, compact.excluded) == (strings.values, strings.counts, strings.excluded)

    # Through the encoder: fitted on the ints or on their strings, the same state and the same ids
    # for a column that became float because of missing values.
    train = pd.DataFrame({"item": column})
    by_int = FeatureEncoder([cat("item", min_count=2)]).fit(train)
    by_str = FeatureEncoder([cat("item", min_count=2)]).fit(train.astype({"item": str}))
    assert by_int.get_config() == by_str.get_config()
    probe = pd.DataFrame({"item": [10.0, 5.0, np.nan, 7.0, 4.0, 1.0]})
    np.testing.assert_array_equal(by_int.transform(probe)["item"], [2, 4, 1, 1, 1, 7])
    np.testing.assert_array_equal(by_str.transform(probe)["item"], [2, 4, 1, 1, 1, 7])
    assert by_int.last_oov_counts_ == by_str.last_oov_counts_ == {"item": 1}  # 4 only: NaN is missing, 7 rare


@pytest.mark.parametrize("kind", ["compact", "strings"])
def test_integer_column_lookup_equals_the_lookup_of_its_values(kind):
    """`lookup_integer_column` (a dense table where the ids span a narrow range, else factorize and
    binary search) gives each row `lookup_integers`' id, and counts the never-seen rows only."""
    from mtrec.features import vocabulary as vocab_module
    from mtrec.features.partial import ValueCounts
    from mtrec.features.vocabulary import Vocabulary

    rng = np.random.default_rng(3)
    train = rng.integers(-50, 400, 3_000)
    counts = ValueCounts.of_integer_column(train)
    narrow = Vocabulary.from_counts(counts, min_count=4)  # some values excluded as rare
    if kind == "strings":  # a vocabulary of strings (e.g. fitted on a text column) read by an int column
        config = narrow.get_config()
        narrow = Vocabulary(values=list(config["vocabulary"]), counts=list(config["vocabulary"].values()),
                            excluded=config["excluded"])
    assert narrow.get_config()["excluded"]  # the case of rare values is exercised
    # Rows inside the range, outside it on both sides, at int64's limits, and never seen.
    column = np.concatenate([rng.integers(-80, 450, 5_000), [-(2**63), 2**63 - 1, -51, 400, 1000]])
    for dtype in ("int64", "int32", "uint16"):
        values = column.astype(dtype) if dtype == "int64" else np.clip(column, 0, 30_000).astype(dtype)
        ids, unseen = narrow.lookup_integer_column(values)
        expected_ids, expected_unseen = narrow.lookup_integers(values.astype(np.int64))
        assert ids.dtype == np.int32
        np.testing.assert_array_equal(ids, expected_ids)
        assert unseen == int(expected_unseen.sum()) > 0
    assert narrow._dense  # ... through the dense table

    # A range too wide for a table (ids beyond DENSE_MAX_RANGE, few values): the same ids without one.
    wide = Vocabulary.from_counts(ValueCounts.of_integer_column(np.array([0, 5, 5, 3 * vocab_module.DENSE_MAX_RANGE])))
    values = np.array([5, 0, 7, 3 * vocab_module.DENSE_MAX_RANGE, -1])
    ids, unseen = wide.lookup_integer_column(values)
    assert wide._dense is False
    assert ids.tolist() == wide.lookup_integers(values)[0].tolist() == [2, 3, 1, 4, 1] and unseen == 2


def test_integer_lookup_of_19_digit_ids():
    """Ids of 19 digits (64-bit hashes) are found by the integer lookup of a vocabulary of strings too."""
    from mtrec.features.vocabulary import Vocabulary, as_strings

    big = 1234567890123456789
    vocabulary = Vocabulary(values=[str(big), "5", str(-(2**63))], counts=[3, 2, 1], excluded={str(2**63 - 1): 1})
    queries = np.array([big, 5, -(2**63), 2**63 - 1, 7], dtype=np.int64)
    ids, unseen = vocabulary.lookup_integers(queries)
    assert ids.tolist() == [2, 3, 4, 1, 1] and unseen.tolist() == [False, False, False, False, True]
    for got, expected in zip((ids, unseen), vocabulary.lookup(as_strings(pd.Series(queries)))):
        np.testing.assert_array_equal(got, expected)
