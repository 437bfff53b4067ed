"""Tests of streamed preparation: partial fits, streamed splits, prepared shards, restarts, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtrec.config import parse_config
from mtrec.data.click_log import CARDINALITIES, make_click_log, write_click_log
from mtrec.data.io import write_parquet
from mtrec.data.splits import GroupSplit, SplitConfig, make_splits, split_codes
from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.features import FeatureEncoder
from mtrec.preparation import prepare, read_prepared
from mtrec.training.prepare import prepare as prepare_in_memory

SPECS = [
    {"name": "x*", "kind": "numeric"},
    {"name": "count", "kind": "numeric", "log1p": True, "impute": "median", "clip": [0, 3]},
    {"name": "item", "kind": "categorical", "table": "items", "min_count": 2},
    {"name": "last_item", "kind": "categorical", "table": "items", "min_count": 2},
    {"name": "color", "kind": "categorical"},
    {"name": "tags", "kind": "multi_categorical", "separator": "|"},
    {"name": "user", "kind": "categorical", "hash_buckets": 50},
]
MOMENTS = ("mean", "std")


def make_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1 + i, n) for i in range(3)})
    frame.loc[rng.random(n) < 0.1, "x1"] = np.nan
    frame["count"] = np.round(rng.exponential(4, n))
    frame.loc[rng.random(n) < 0.05, "count"] = np.nan
    frame["item"] = rng.zipf(1.5, n) % 400
    frame["last_item"] = rng.zipf(1.5, n) % 400
    frame["color"] = pd.Series(rng.choice(["red", "blue", "green", None], n), dtype=object)
    frame["tags"] = ["|".join(f"t{t}" for t in rng.integers(0, 30, rng.integers(0, 4))) for _ in range(n)]
    frame["user"] = rng.integers(0, 500, n)
    frame["day"] = rng.integers(0, 100, n)
    frame["click"] = (rng.random(n) < 0.3).astype(np.int64)
    frame["spend"] = np.where(rng.random(n) < 0.2, np.nan, rng.exponential(10, n))
    return frame


def make_config(path, split: dict, **data) -> object:
    return parse_config({
        "name": "prep",
        "data": {"path": path, "split": split, **data},
        "features": SPECS,
        "tasks": [{"name": "click", "kind": "binary"}, {"name": "spend", "kind": "regression"}],
        "model": {"kind": "mmoe", "num_experts": 2},
    })


def assert_same_state(a: dict, b: dict, moments_rtol: float = 0.0) -> None:
    """Identical fitted states; means/stds (and mean fills) equal to `moments_rtol`."""
    assert a["tables"] == b["tables"]
    assert a["lengths"] == b["lengths"]
    assert a["numeric_columns"] == b["numeric_columns"]
    for x, y in zip(a["numeric"], b["numeric"]):
        for key in x:
            if key in MOMENTS or (key == "fill" and x["impute"] == "mean"):
                np.testing.assert_allclose(x[key], y[key], rtol=moments_rtol, atol=0, err_msg=key)
            else:
                assert x[key] == y[key], key


def write_shards(frame: pd.DataFrame, folder, parts: int = 3) -> list:
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    return [write_parquet(frame.iloc[a:b], folder / f"part-{i}.parquet")
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


# --------------------------------------------------------------------------- partial fits


def test_partial_fit_of_one_batch_is_the_in_memory_fit_bit_for_bit():
    frame = make_table()
    encoder = FeatureEncoder(SPECS)
    one = encoder.finish_fit(encoder.partial_fit(frame)).get_config()
    assert_same_state(FeatureEncoder(SPECS).fit(frame).get_config(), one)
    # numpy's own figures, computed here
    x0 = frame["x0"].to_numpy()
    state = {s["column"]: s for s in one["numeric"]}
    assert state["x0"]["mean"] == float(x0.mean()) and state["x0"]["std"] == float(x0.std())
    counts = np.clip(np.log1p(frame["count"].dropna().to_numpy()), 0, 3)
    assert state["count"]["fill"] == float(np.median(counts))


@pytest.mark.parametrize("batch", [1, 7, 500, 2999])
def test_streamed_fit_merges_to_the_in_memory_fit(batch):
    frame = make_table()
    encoder = FeatureEncoder(SPECS)
    state = None
    for start in range(0, len(frame), batch):
        part = encoder.partial_fit(frame.iloc[start:start + batch])
        state = part if state is None else state.merge(part)
    streamed = encoder.finish_fit(state).get_config()
    # vocabularies, counts, excluded values, lengths, indicators, medians: identical;
    # means and stds: the same to float rounding (another summation order)
    assert_same_state(FeatureEncoder(SPECS).fit(frame).get_config(), streamed, moments_rtol=1e-12)


def test_partial_fit_of_empty_batches_merges_as_nothing():
    frame = make_table(200)
    encoder = FeatureEncoder(SPECS)
    state = encoder.partial_fit(frame.iloc[:0]).merge(encoder.partial_fit(frame)).merge(
        encoder.partial_fit(frame.iloc[:0]))
    assert_same_state(FeatureEncoder(SPECS).fit(frame).get_config(),
                      encoder.finish_fit(state).get_config())
    with pytest.raises(DataError, match="no rows"):
        FeatureEncoder(SPECS).finish_fit(encoder.partial_fit(frame.iloc[:0]))


# --------------------------------------------------------------------------- splits batch by batch


@pytest.mark.parametrize("split", [
    {"kind": "group", "column": "user"},
    {"kind": "group", "column": "color", "fractions": [0.5, 0.25, 0.25], "seed": 3},
    {"kind": "time", "column": "day", "valid_start": 70, "test_start": 85},
    {"kind": "time", "column": "date", "valid_start": "2020-03-11", "test_start": "2020-03-26"},
    {"kind": "hash"},
    {"kind": "hash", "column": "user", "seed": 9},
])
def test_streamed_split_codes_equal_the_in_memory_split(split):
    frame = make_table()
    frame["color"] = frame["color"].fillna("none")
    frame["date"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(frame["day"], unit="D")).dt.strftime("%Y-%m-%d")
    config = SplitConfig(**split)
    splits = make_splits(frame, config)
    groups = None
    if config.kind == "group":
        counts = None
        for start in range(0, len(frame), 700):
            part = GroupSplit.count(frame.iloc[start:start + 700], config)
            counts = part if counts is None else counts.merge(part)
        groups = GroupSplit.fit(counts, config)
    codes = np.concatenate([split_codes(frame.iloc[s:s + 700], config, s, groups)
                            for s in range(0, len(frame), 700)])
    for k, name in enumerate(("train", "valid", "test")):
        np.testing.assert_array_equal(np.flatnonzero(codes == k), getattr(splits, name))


def test_hash_split_is_seeded_keyed_and_near_its_fractions():
    frame = make_table(20000)
    a = make_splits(frame, SplitConfig(kind="hash", seed=1))
    b = make_splits(frame, SplitConfig(kind="hash", seed=2))
    assert not np.array_equal(a.train, b.train)
    sizes = a.sizes()
    assert abs(sizes["train"] / 20000 - 0.8) < 0.02 and abs(sizes["test"] / 20000 - 0.1) < 0.02
    keyed = make_splits(frame, SplitConfig(kind="hash", column="user"))
    users = {name: set(frame["user"].iloc[getattr(keyed, name)]) for name in ("train", "valid", "test")}
    assert not users["train"] & users["valid"] and not users["train"] & users["test"]
    # 5 and "5" are the same key, as in the vocabularies
    as_text = frame.assign(user=frame["user"].astype(str))
    np.testing.assert_array_equal(make_splits(as_text, SplitConfig(kind="hash", column="user")).train,
                                  keyed.train)


def test_random_split_is_refused_for_streaming_with_a_pointer_to_hash():
    with pytest.raises(ConfigError, match="kind: hash"):
        split_codes(make_table(10), SplitConfig(kind="random"), 0)


# --------------------------------------------------------------------------- prepare


def read_split(out, name: str) -> pd.DataFrame:
    manifest = json.loads((out / "manifest.json").read_text())
    tables = [pq.read_table(out / s["path"]).to_pandas() for s in manifest["splits"][name]["shards"]]
    return pd.concat(tables, ignore_index=True)


@pytest.mark.parametrize("split", [
    {"kind": "group", "column": "user"},
    {"kind": "time", "column": "day", "valid_start": 70, "test_start": 85},
    {"kind": "hash", "seed": 5},
])
def test_prepare_writes_the_in_memory_splits_state_and_encoding(tmp_path, split):
    frame = make_table()
    write_shards(frame, tmp_path / "in")
    config = make_config(str(tmp_path / "in"), split)
    result = prepare(config, tmp_path / "out", batch_size=256, shard_batches=2)
    manifest, encoder = read_prepared(tmp_path / "out")
    reference = prepare_in_memory(config)  # as mtrec train reads the shards (data.na_values)
    assert_same_state(reference.encoder.get_config(), encoder.get_config(), moments_rtol=1e-12)
    assert result.rows == len(frame) == manifest["rows"]
    for name in ("train", "valid", "test"):
        shards = read_split(tmp_path / "out", name)
        expected = reference.splits[name]
        np.testing.assert_array_equal(shards["row"].to_numpy(), expected.index)
        assert manifest["splits"][name]["rows"] == len(expected)
        np.testing.assert_allclose(np.stack(shards["numeric"].to_numpy()),
                                   expected.features["numeric"], rtol=1e-6, atol=1e-6)
        for feature in ("item", "last_item", "color", "user"):
            np.testing.assert_array_equal(shards[feature].to_numpy(), expected.features[feature])
        np.testing.assert_array_equal(np.stack(shards["tags"].to_numpy()), expected.features["tags"])
        for task in ("click", "spend"):
            np.testing.assert_array_equal(shards[f"label.{task}"].to_numpy(),
                                          expected.labels[task].reshape(-1))
    assert manifest["schema"]["item"] == "int32" and manifest["schema"]["label.spend"] == "float"
    assert (tmp_path / "out" / "vocabularies").is_dir()
    assert "vocabulary" not in json.loads((tmp_path / "out" / "features.json").read_text())["tables"]["items"]
    assert not (tmp_path / "out" / "_work").exists()


def test_prepare_reads_csv_and_carries_id_columns(tmp_path):
    frame = make_table(500)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    config = make_config(str(tmp_path / "rows.csv"), {"kind": "hash"}, id_columns=["day"])
    prepare(config, tmp_path / "out", batch_size=100)
    test = read_split(tmp_path / "out", "test")
    np.testing.assert_array_equal(test["id.day"].to_numpy(), frame["day"].to_numpy()[test["row"]])


def test_prepare_refuses_a_random_split(tmp_path):
    write_shards(make_table(100), tmp_path / "in", 1)
    with pytest.raises(ConfigError, match="hash"):
        prepare(make_config(str(tmp_path / "in"), {"kind": "random"}), tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_killed_prepare_leaves_no_manifest_and_a_rerun_finishes(tmp_path, monkeypatch):
    frame = make_table()
    write_shards(frame, tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "whole", batch_size=256, shard_batches=2)

    import mtrec.preparation.streaming as module

    real = module.encoded_table
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 10:
            raise OSError("No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "encoded_table", failing)
    with pytest.raises(OSError, match="No space"):
        prepare(config, tmp_path / "out", batch_size=256, shard_batches=2)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").rglob(".*.parquet"))  # no half-written file
    done = len(list((tmp_path / "out" / "_work" / "units").glob("*.json")))
    assert done >= 1
    monkeypatch.setattr(module, "encoded_table", real)
    result = prepare(config, tmp_path / "out", batch_size=256, shard_batches=2)
    assert result.resumed
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(read_split(tmp_path / "out", name),
                                      read_split(tmp_path / "whole", name))
    assert json.loads((tmp_path / "out" / "features.json").read_text()) == json.loads(
        (tmp_path / "whole" / "features.json").read_text())


def test_prepare_refuses_a_folder_of_another_config_naming_the_keys(tmp_path):
    write_shards(make_table(400), tmp_path / "in", 2)
    prepare(make_config(str(tmp_path / "in"), {"kind": "hash"}), tmp_path / "out")
    # the same config again: nothing to do
    assert prepare(make_config(str(tmp_path / "in"), {"kind": "hash"}), tmp_path / "out").rows == 400
    other = make_config(str(tmp_path / "in"), {"kind": "hash", "seed": 7, "fractions": [0.7, 0.2, 0.1]})
    with pytest.raises(ConfigError, match=r"data\.split\.fractions.*data\.split\.seed"):
        prepare(other, tmp_path / "out")
    prepare(other, tmp_path / "out", overwrite=True)
    assert read_prepared(tmp_path / "out")[0]["config"]["data"]["split"]["seed"] == 7


def test_a_shard_with_another_schema_is_named_with_its_column(tmp_path):
    frame = make_table(300)
    write_shards(frame, tmp_path / "in", 2)
    bad = frame.iloc[:100].assign(item=frame["item"].iloc[:100].astype(str))
    write_parquet(bad, tmp_path / "in" / "part-9.parquet")
    expected = r"part-9\.parquet has column 'item' as (large_)?string, but .*part-0.parquet has it as int64"
    with pytest.raises(SchemaError, match=expected):
        prepare(make_config(str(tmp_path / "in"), {"kind": "hash"}), tmp_path / "out")


def test_a_truncated_shard_is_named(tmp_path):
    frame = make_table(300)
    paths = write_shards(frame, tmp_path / "in", 2)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"part-1\.parquet"):
        prepare(make_config(str(tmp_path / "in"), {"kind": "hash"}), tmp_path / "out")


def test_a_truncated_shard_counts_against_max_malformed_fraction(tmp_path):
    frame = make_table(1200)
    paths = write_shards(frame, tmp_path / "in", 4)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"part-2\.parquet .*about .* rows, .* data\.max_malformed_fraction=0\.001"):
        prepare(make_config(str(tmp_path / "in"), {"kind": "hash"}), tmp_path / "out")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"}, max_malformed_fraction=0.3)
    with pytest.warns(UserWarning, match=r"Skipped unreadable .*part-2\.parquet"):
        result = prepare(config, tmp_path / "out")
    assert result.rows == 900  # the three readable shards
    assert [Path(e["path"]).name for e in result.manifest["unreadable_inputs"]] == ["part-2.parquet"]
    assert 50 < result.manifest["unreadable_inputs"][0]["estimated_rows"] < 300


@pytest.mark.parametrize("kind, rows", [("parquet", 2000), ("csv.gz", 24000)])
def test_a_file_damaged_in_the_middle_counts_against_max_malformed_fraction(tmp_path, kind, rows):
    # A page that fails its checksum, or a .csv.gz cut short, is found only while reading: the file
    # is then left out whole, its rows counted as malformed, as a shard whose footer is gone.
    # (The CSV is larger so that its header, read first, lies before the cut.)
    import gzip

    frame = make_table(rows)
    bounds = np.linspace(0, rows, 5).astype(int)
    (tmp_path / "in").mkdir()
    paths = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if kind == "parquet":
            paths.append(write_parquet(frame.iloc[a:b], tmp_path / "in" / f"part-{i}.parquet"))
        else:
            paths.append(tmp_path / "in" / f"part-{i}.csv.gz")
            frame.iloc[a:b].to_csv(paths[-1], index=False, compression="gzip")
    if kind == "parquet":
        _damage(paths[3], frame.iloc[bounds[3]:], "page-checksum")
    else:
        data = paths[3].read_bytes()
        paths[3].write_bytes(data[:len(data) * 6 // 10])
    path = str(tmp_path / "in") if kind == "parquet" else [str(p) for p in paths]
    message = "CRC checksum" if kind == "parquet" else "truncated"
    expected = rf"part-3\.{kind.replace('.', '[.]')}.*{message}.*max_malformed_fraction=0\.001"
    with pytest.raises(DataError, match=expected):
        prepare(make_config(path, {"kind": "hash"}), tmp_path / "out", batch_size=256)
    assert not (tmp_path / "out" / "manifest.json").exists()
    config = make_config(path, {"kind": "hash"}, max_malformed_fraction=0.4)
    with pytest.warns(UserWarning, match=r"Skipped damaged file\(s\) .*part-3"):
        result = prepare(config, tmp_path / "out", batch_size=256, overwrite=True)
    good = int(bounds[3])
    assert result.rows == good and sum(s["rows"] for s in result.manifest["splits"].values()) == good
    skipped = result.manifest["unreadable_inputs"]
    assert [Path(e["path"]).name for e in skipped] == [paths[3].name]
    assert 0.3 * (rows - good) < skipped[0]["estimated_rows"] < 1.5 * (rows - good)
    # The rows written are those of the readable files, at their positions in the input.
    written = np.sort(np.concatenate([pq.read_table(tmp_path / "out" / s["path"], columns=["row"])["row"].to_numpy()
                                      for split in result.manifest["splits"].values() for s in split["shards"]]))
    np.testing.assert_array_equal(written, np.arange(good))


def _damage(path, frame, case):
    """Writes `frame` to the shard `path` with one kind of bad input."""
    frame = frame.copy()
    if case == "inf-feature":
        frame.loc[frame.index[:40], "x0"] = np.inf
    elif case == "inf-label":
        frame.loc[frame.index[:40], "spend"] = -np.inf
    elif case == "float32-range":
        frame.loc[frame.index[3], "x2"] = 1e39
    elif case == "all-missing":
        frame["x1"] = np.nan
    write_parquet(frame, path)
    if case == "page-checksum":
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 256] = np.random.default_rng(2).bytes(256)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("case, error, message", [
    ("inf-feature", DataError, r"Feature column 'x0' of .* \+/-inf .*max_nonfinite_fraction=0\.01"),
    ("inf-label", DataError, r"Label column 'spend' of .* \+/-inf .*max_nonfinite_fraction=0\.01"),
    ("float32-range", DataError, r"Column 'x2' of .*part-1\.parquet holds 1 values beyond float32"),
    ("all-missing", DataError, r"\['x1'\] .* entirely missing in the training split"),
    ("page-checksum", DataError, r"part-1\.parquet as Parquet: .*CRC checksum"),
])
def test_prepare_refuses_what_mtrec_train_refuses(tmp_path, case, error, message):
    frame = make_table(1200)
    paths = write_shards(frame, tmp_path / "in", 2)
    if case == "all-missing":
        _damage(paths[0], frame.iloc[:600], case)
    _damage(paths[1], frame.iloc[600:], case)
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    with pytest.raises(error, match=message):
        prepare(config, tmp_path / "out", batch_size=256)
    assert not (tmp_path / "out" / "manifest.json").exists()
    if case != "page-checksum":  # the in-memory path says the same
        with pytest.raises(error, match=message.replace("part-1\\.parquet", "in")):
            prepare_in_memory(config)


def test_prepare_reads_na_values_alike_in_csv_and_parquet_and_refuses_repeated_names(tmp_path):
    frame = make_table(600)
    frame["color"] = frame["color"].fillna("NULL").mask(frame.index % 7 == 0, "")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    write_parquet(frame, tmp_path / "rows.parquet")
    states = []
    for name in ("rows.csv", "rows.parquet"):
        config = make_config(str(tmp_path / name), {"kind": "hash"})
        prepare(config, tmp_path / f"out-{name}", batch_size=128)
        states.append(read_prepared(tmp_path / f"out-{name}")[1].get_config())
        assert_same_state(prepare_in_memory(config).encoder.get_config(), states[-1], moments_rtol=1e-12)
    assert_same_state(states[0], states[1], moments_rtol=1e-12)
    assert not {"NULL", ""} & set(states[1]["tables"]["color"]["vocabulary"])
    # `[]`: every string is a category
    config = make_config(str(tmp_path / "rows.parquet"), {"kind": "hash"}, na_values=[])
    prepare(config, tmp_path / "out-kept", batch_size=128)
    assert {"NULL", ""} <= set(read_prepared(tmp_path / "out-kept")[1].get_config()["tables"]["color"]["vocabulary"])
    text = (tmp_path / "rows.csv").read_text().splitlines()
    (tmp_path / "dup.csv").write_text("\n".join([text[0].replace("x2", "x1")] + text[1:]))
    with pytest.raises(SchemaError, match=r"\['x1'\] appear more than once in .*dup\.csv"):
        prepare(make_config(str(tmp_path / "dup.csv"), {"kind": "hash"}), tmp_path / "out-dup")


def test_read_prepared_refuses_an_unfinished_folder(tmp_path):
    with pytest.raises(DataError, match="no manifest.json"):
        read_prepared(tmp_path)


# --------------------------------------------------------------------------- click log


def test_click_log_has_the_issue_shape(tmp_path):
    frame = make_click_log(20000, seed=3)
    assert frame.shape == (20000, 26)
    numeric = frame[[f"n{i}" for i in range(13)]]
    assert np.allclose(numeric.isna().mean(), 0.05, atol=0.01)
    assert CARDINALITIES[0] == 10 and CARDINALITIES[-1] == 1_000_000
    for i, cardinality in enumerate(CARDINALITIES):
        ids = frame[f"c{i}"]
        assert ids.min() >= 0 and ids.max() < cardinality
        assert (ids == 0).mean() > (ids == 1).mean() > 0  # Zipf: id 0 most frequent
    assert not ((frame["purchase"] == 1) & (frame["click"] == 0)).any()
    assert (frame["dwell_time"].isna() == (frame["click"] == 0)).all()
    paths = write_click_log(tmp_path, 25, shard_rows=10, seed=3)
    assert [len(pd.read_parquet(p)) for p in paths] == [10, 10, 5]
    pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), make_click_log(10, seed=3, shard=1))


def test_scale_benchmark_measures_prepare_beside_the_in_memory_path(tmp_path, capsys):
    from benchmarks import scale

    out = tmp_path / "scale.json"
    assert scale.main(["--rows", "3000", "--shard-rows", "1000", "--batch-size", "512", "--workers", "1", "2",
                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["mode"] for r in result["results"]] == ["prepare", "prepare (2 workers)", "in-memory"]
    assert all(r["rows"] == 3000 and r["peak_mb"] >= r["import_mb"] > 0 for r in result["results"])
    assert result["results"][1]["workers_peak_mb"] > 0 and result["results"][0]["workers_peak_mb"] == 0
    assert "| 3,000 | prepare" in capsys.readouterr().out


def test_mtrec_prepare_command(tmp_path, capsys):
    import yaml

    from mtrec.cli import main

    write_shards(make_table(400), tmp_path / "in", 2)
    config = {"name": "prep", "data": {"path": str(tmp_path / "in"), "split": {"kind": "hash"}},
              "features": SPECS, "tasks": [{"name": "click", "kind": "binary"}],
              "model": {"kind": "mmoe", "num_experts": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["prepare", "-c", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"),
                 "--batch-size", "100"]) == 0
    assert "Prepared 400 rows" in capsys.readouterr().out
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert main(["prepare", "-c", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "two"),
                 "--batch-size", "100", "--workers", "2"]) == 0
    assert "Prepared 400 rows" in capsys.readouterr().out
    assert (tmp_path / "two" / "features.json").read_text() == (tmp_path / "out" / "features.json").read_text()
    with pytest.raises(SystemExit):
        main(["prepare", "-c", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "x"), "--workers", "0"])
    assert "--workers" in capsys.readouterr().err


# --------------------------------------------------------------------------- streamed reading


def test_prepared_batches_are_the_in_memory_arrays_and_reshuffle_each_epoch(tmp_path):
    from mtrec.preparation.reader import iter_prepared_batches

    frame = make_table(2000)
    write_shards(frame, tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out", batch_size=300, shard_batches=1)
    reference = prepare_in_memory(config).splits["train"]
    batches = list(iter_prepared_batches(tmp_path / "out", "train", batch_size=128))
    assert all(len(x["item"]) == 128 for x, _ in batches[:-1])
    for key, expected in reference.features.items():
        got = np.concatenate([x[key] for x, _ in batches])
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6) if key == "numeric" else \
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.concatenate([y["spend"] for _, y in batches]), reference.labels["spend"])

    def epoch(n):
        return np.concatenate([x["numeric"][:, 0] for x, _ in iter_prepared_batches(
            tmp_path / "out", "train", 128, shuffle_rows=500, seed=3, epoch=n)])

    first, second = epoch(0), epoch(1)
    assert not np.array_equal(first, second) and np.array_equal(first, epoch(0))
    np.testing.assert_array_equal(np.sort(first), np.sort(reference.features["numeric"][:, 0]))


def test_each_part_reads_only_its_own_rows_and_shards(tmp_path, monkeypatch):
    # Across processes each reads a contiguous, equal share of a split, opening only the shards
    # (and row groups) that hold it; together the parts are the split's first rows, in order.
    from mtrec.preparation import reader

    write_shards(make_table(2000), tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out", batch_size=150, shard_batches=3)  # shards of 3 row groups
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    shards = manifest["splits"]["train"]["shards"]
    rows = manifest["splits"]["train"]["rows"]
    assert len(shards) >= 4
    everything = np.concatenate([x["numeric"][:, 0] for x, _ in reader.iter_prepared_batches(
        tmp_path / "out", "train", 64)])
    opened = []
    real = reader.pq.ParquetFile
    monkeypatch.setattr(reader.pq, "ParquetFile", lambda path: opened.append(Path(path).name) or real(path))
    share = rows // 3 // 4 * 4
    parts = []
    for index in range(3):
        opened.clear()
        got = np.concatenate([x["numeric"][:, 0] for x, _ in reader.iter_prepared_batches(
            tmp_path / "out", "train", 64, part=(index, 3), part_multiple=4)])
        assert len(got) == share
        parts.append(got)
        # The shards opened are exactly those that hold rows [index * share, (index + 1) * share).
        ends = np.cumsum([s["rows"] for s in shards])
        holding = [Path(s["path"]).name for s, end, n in zip(shards, ends, (s["rows"] for s in shards))
                   if end - n < (index + 1) * share and end > index * share]
        assert opened == holding and len(holding) < len(shards)
        shuffled = np.concatenate([x["numeric"][:, 0] for x, _ in reader.iter_prepared_batches(
            tmp_path / "out", "train", 64, shuffle_rows=300, seed=5, part=(index, 3), part_multiple=4)])
        assert not np.array_equal(shuffled, got)
        np.testing.assert_array_equal(np.sort(shuffled), np.sort(got))
    np.testing.assert_array_equal(np.concatenate(parts), everything[:3 * share])
    # The tf.data input knows each part's batch count: one of 64 rows per step, the last smaller.
    dataset = reader.prepared_dataset(tmp_path / "out", "train", 64, part=(1, 3), part_multiple=4)
    sizes = [len(x["item"]) for x, _ in dataset.as_numpy_iterator()]
    assert int(dataset.cardinality()) == len(sizes) == -(-share // 64) and sum(sizes) == share


def test_a_model_fits_and_evaluates_on_prepared_shards_through_tf_data(tmp_path):
    from mtrec.preparation.reader import prepared_dataset
    from mtrec.training.run import build_model, compile_model

    frame = make_table(1500)
    write_shards(frame, tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out", batch_size=400)
    _, encoder = read_prepared(tmp_path / "out")
    model = build_model(config, encoder.layout())
    compile_model(model, config)
    train = prepared_dataset(tmp_path / "out", "train", batch_size=64, shuffle_rows=1000, seed=1)
    history = model.fit(train, validation_data=prepared_dataset(tmp_path / "out", "valid", 256),
                        epochs=2, shuffle=False, verbose=0)
    assert np.isfinite(history.history["val_loss"]).all() and len(history.history["loss"]) == 2
    scores = model.evaluate(prepared_dataset(tmp_path / "out", "test", 256), return_dict=True, verbose=0)
    assert np.isfinite(scores["loss"])


def test_a_resumed_streamed_fit_reads_its_epochs_in_the_uninterrupted_order(tmp_path):
    from mtrec.preparation.reader import prepared_dataset
    from mtrec.training.run import build_model, compile_model
    from mtrec.training.streamed import ShuffleEpoch

    write_shards(make_table(1500), tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out", batch_size=400)

    def first_column(dataset):
        return np.concatenate([x["numeric"][:, 0] for x, _ in dataset.as_numpy_iterator()])

    counting = prepared_dataset(tmp_path / "out", "train", 64, shuffle_rows=500, seed=3)
    uninterrupted = [first_column(counting) for _ in range(3)]
    assert not np.array_equal(uninterrupted[2], uninterrupted[0])
    epochs, read = ShuffleEpoch(), []

    def epoch_of():
        read.append(epochs.current())
        return read[-1]

    resumed = prepared_dataset(tmp_path / "out", "train", 64, shuffle_rows=500, seed=3, epoch_of=epoch_of)
    _, encoder = read_prepared(tmp_path / "out")
    model = build_model(config, encoder.layout())
    compile_model(model, config)
    model.fit(resumed, epochs=3, initial_epoch=2, callbacks=[epochs], verbose=0)  # as after a resume at 2
    assert read == [2]
    np.testing.assert_array_equal(first_column(resumed), uninterrupted[2])  # epoch_of still says 2


def test_a_sigkilled_prepare_reruns_to_the_same_folder(tmp_path):
    import os
    import subprocess
    import sys

    frame = make_table()
    write_shards(frame, tmp_path / "in")
    (tmp_path / "c.json").write_text(json.dumps({
        "name": "prep", "data": {"path": str(tmp_path / "in"), "split": {"kind": "hash"}},
        "features": SPECS, "tasks": [{"name": "click", "kind": "binary"}],
        "model": {"kind": "mmoe", "num_experts": 2}}))
    script = f"""
import json, os, signal
import mtrec.preparation.streaming as module
from mtrec.config import parse_config
config = parse_config(json.load(open({str(tmp_path / 'c.json')!r})))
real, calls = module.encoded_table, [0]
def killing(*args):
    calls[0] += 1
    if calls[0] == 9:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, mid-shard
    return real(*args)
module.encoded_table = killing
module.prepare(config, {str(tmp_path / 'out')!r}, batch_size=256, shard_batches=3)
"""
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]
    assert not (tmp_path / "out" / "manifest.json").exists()
    config = parse_config(json.loads((tmp_path / "c.json").read_text()))
    assert prepare(config, tmp_path / "out", batch_size=256, shard_batches=3).resumed
    prepare(config, tmp_path / "whole", batch_size=256, shard_batches=3)
    assert not list((tmp_path / "out").rglob(".*"))  # the killed write's temporary file is gone
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(read_split(tmp_path / "out", name),
                                      read_split(tmp_path / "whole", name))


def test_training_on_prepared_shards_matches_training_on_in_memory_arrays(tmp_path):
    """Same rows in the same order, same seed: the streamed input trains the same model."""
    import keras

    from mtrec.data.tf_dataset import make_dataset
    from mtrec.preparation.reader import prepared_dataset
    from mtrec.training.run import build_model, compile_model

    frame = make_table(2000)
    write_shards(frame, tmp_path / "in")
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out", batch_size=300)
    reference = prepare_in_memory(config)

    def fit_and_evaluate(train, test, layout):
        keras.utils.set_random_seed(4)
        model = build_model(config, layout)
        compile_model(model, config)
        model.fit(train, epochs=2, shuffle=False, verbose=0)
        return model.evaluate(test, return_dict=True, verbose=0)

    in_memory = fit_and_evaluate(
        make_dataset(reference.splits["train"].features, reference.splits["train"].labels, 64),
        make_dataset(reference.splits["test"].features, reference.splits["test"].labels, 256),
        reference.encoder.layout())
    streamed = fit_and_evaluate(prepared_dataset(tmp_path / "out", "train", 64),
                                prepared_dataset(tmp_path / "out", "test", 256),
                                read_prepared(tmp_path / "out")[1].layout())
    assert set(in_memory) == set(streamed) and len(in_memory) > 2
    for key, value in in_memory.items():
        np.testing.assert_allclose(streamed[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_a_prepared_folder_whose_input_changed_is_refused_naming_the_file(tmp_path):
    frame = make_table(400)
    write_shards(frame, tmp_path / "in", 2)
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    prepare(config, tmp_path / "out")
    write_parquet(frame.iloc[:50], tmp_path / "in" / "part-7.parquet")
    with pytest.raises(ConfigError, match=r"input files changed since: .*part-7\.parquet is new"):
        prepare(config, tmp_path / "out")
    assert prepare(config, tmp_path / "out", overwrite=True).rows == 450


def test_integer_lookup_equals_the_string_lookup():
    from mtrec.features import Vocabulary
    from mtrec.features.vocabulary import as_strings

    vocabulary = Vocabulary(values=["5", "007", "-3", "abc", "0", "-0", "12"], counts=[9, 8, 7, 6, 5, 4, 3],
                            excluded={"99": 1, "x": 1})
    values = np.array([5, 7, -3, 0, 12, 99, 100, -7], dtype=np.int64)
    expected = vocabulary.lookup(as_strings(pd.Series(values)))
    got = vocabulary.lookup_integers(values)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[0].tolist() == [2, 1, 4, 6, 8, 1, 1, 1] and got[1].tolist() == [0, 1, 0, 0, 0, 0, 1, 1]
    empty = Vocabulary()
    assert empty.lookup_integers(values)[0].tolist() == [1] * 8
