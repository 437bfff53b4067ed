"""Pipelines: the quick mode of each data set end to end, staleness, metrics helpers, bad input.

The quick-mode tests read the real data sets from `../shared/datasets` (or
`MTREC_DATA_DIR`) and are skipped when a data set is absent. They check the
outputs and that each model beats the constant predictor, not exact numbers.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared_datasets
from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.pipelines import config_path, load_pipeline_config, run_pipeline
from mtrec.pipelines import evaluate as ev
from mtrec.pipelines.config import CONFIG_DIR, DerivedTokens
from mtrec.pipelines.prepare import derive_tokens, official_splits, prepared_paths, subsample
from mtrec.pipelines.sp500 import daily_rank_ic
from mtrec.pipelines.train import plan_runs

DATA = shared_datasets()


def _needs(folder: str) -> Path:
    if DATA is None or not (DATA / folder).is_dir():
        pytest.skip(f"data set {folder} not found (set MTREC_DATA_DIR or add ../shared/datasets)")
    return DATA


def _quick(name: str, tmp_path: Path, *overrides: str):
    return load_pipeline_config(config_path(name, quick=True), [f"output_dir={tmp_path / name}", *overrides])


def _check_outputs(config, evaluation: dict, margin: float = 0.02, weak: tuple[str, ...] = ()) -> None:
    """Every output file is there, and every model and LightGBM beat the constant predictor.

    `weak` tasks have too little signal for a quick mode's budget (3 epochs on a subsample) to
    clear the margin: there a binary task must only rank better than chance (AUC > 0.5) and a
    regression stay within 2% of the constant's RMSE (zero-inflated spend is near-constant).
    """
    out = config.out
    for path in prepared_paths(config).outputs + [out / "evaluation.json", out / "evaluation.md"]:
        assert path.is_file(), path
    for run in plan_runs(config):
        assert run.predictions.is_file() and (run.run_dir / "model.keras").is_file()
        assert len(pd.read_parquet(run.predictions)) == evaluation["rows"]["test"]
    constant = evaluation["references"]["constant"]["metrics"]
    tasks = config.experiment_config(config.baseline).tasks
    sources = dict(evaluation["models"])
    sources["lightgbm"] = evaluation["references"]["lightgbm"]
    for name, entry in sources.items():
        for task in tasks:
            metrics = entry["metrics"][task.name]
            slack = task.name in weak
            if task.kind == "binary":
                assert metrics["auc"]["mean"] > 0.5 + (0 if slack else margin), (name, task.name, metrics["auc"])
            else:
                limit = constant[task.name]["rmse"]["mean"] * (1.02 if slack else 1.001)
                assert metrics["rmse"]["mean"] <= limit, (name, task.name, metrics["rmse"])
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["models"].keys() == evaluation["models"].keys()
    assert "| single_task (baseline)" in (out / "evaluation.md").read_text()


# --------------------------------------------------------------------------- quick modes


def test_census_quick_and_staleness(tmp_path):
    data_dir = _needs("census_income_kdd")
    config = _quick("census", tmp_path)
    results = run_pipeline(config, data_dir=data_dir, progress=False, echo=None)
    evaluation = results["evaluate"]
    _check_outputs(config, evaluation, margin=0.2)  # census: both tasks are easy (AUC > 0.9)
    assert evaluation["models"]["mmoe"]["gain"]["income"]["metric"] == "auc"
    _export_matches_scoring(config, tmp_path)

    again = run_pipeline(config, data_dir=data_dir, progress=False, echo=None)
    assert again["prepare"]["skipped"] and again["evaluate"]["skipped"]
    assert all(run["skipped"] for run in again["train"])

    # A changed model invalidates that model's runs only; a changed split invalidates the data.
    changed = _quick("census", tmp_path, "models.1.model.num_experts=2")
    before = {(r.variant.name, r.seed): r.fingerprint for r in plan_runs(config)}
    after = {(r.variant.name, r.seed): r.fingerprint for r in plan_runs(changed)}
    assert before[("single_task", 1)] == after[("single_task", 1)]
    assert before[("mmoe", 1)] != after[("mmoe", 1)]
    with pytest.raises(DataError, match="stale"):
        run_pipeline(_quick("census", tmp_path, "experiment.data.split.seed=7"), steps=("train",),
                     data_dir=data_dir, progress=False, echo=None)


def test_movielens_quick(tmp_path):
    data_dir = _needs("movielens_100k")
    config = _quick("movielens", tmp_path)
    _check_outputs(config, run_pipeline(config, data_dir=data_dir, progress=False, echo=None)["evaluate"])
    _export_matches_scoring(config, tmp_path)


def test_hillstrom_quick(tmp_path):
    data_dir = _needs("hillstrom_email_marketing")
    config = _quick("hillstrom", tmp_path)
    evaluation = run_pipeline(config, data_dir=data_dir, progress=False, echo=None)["evaluate"]
    _check_outputs(config, evaluation, weak=("spend",))
    # The ESMM chain's conversion output is p(visit) * p(conversion | visit) <= p(visit).
    esmm = pd.read_parquet(next(r.predictions for r in plan_runs(config) if r.variant.name == "esmm"))
    assert (esmm["conversion"] <= esmm["visit"] + 1e-6).all()
    _export_matches_scoring(config, tmp_path)


def test_diabetes_quick(tmp_path):
    data_dir = _needs("diabetes_130_us_hospitals")
    config = _quick("diabetes", tmp_path)
    evaluation = run_pipeline(config, data_dir=data_dir, progress=False, echo=None)["evaluate"]
    _check_outputs(config, evaluation, weak=("readmit_30d",))
    patients = [set(pd.read_parquet(prepared_paths(config).split(s), columns=["patient_nbr"]).patient_nbr)
                for s in ("train", "valid", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    _export_matches_scoring(config, tmp_path)


def test_sp500_quick(tmp_path):
    data_dir = _needs("sp500_stocks_5yr")
    config = _quick("sp500", tmp_path)
    evaluation = run_pipeline(config, data_dir=data_dir, progress=False, echo=None)["evaluate"]
    # Next-day direction is close to a coin flip: only require the pipeline's numbers to be sane.
    for name, entry in evaluation["models"].items():
        vol = entry["metrics"]["future_vol_5d"]
        assert vol["rmse"]["mean"] < evaluation["references"]["constant"]["metrics"]["future_vol_5d"]["rmse"]["mean"]
        assert -1 <= entry["metrics"]["next_return"]["rank_ic"]["mean"] <= 1
    assert {"zero_return", "persistence", "historical_mean"} <= set(evaluation["references"])
    dates = {s: pd.read_parquet(prepared_paths(config).split(s), columns=["date"]).date for s in ("train", "valid", "test")}
    assert dates["train"].max() < pd.Timestamp("2016-07-01") <= dates["valid"].min()
    assert dates["valid"].max() < pd.Timestamp("2017-01-01") <= dates["test"].min()
    _export_matches_scoring(config, tmp_path)


# --------------------------------------------------------------------------- helpers

def _export_matches_scoring(config, tmp_path: Path) -> None:
    """Issue 14's check on a shipped pipeline: its last run, exported, scores 5,000 of its test rows in a
    process that imports only TensorFlow as `mtrec score` does, within 1e-5, with an unseen value in
    every categorical or multi-valued column of one row, missing ones in another and NaN numbers in a third."""
    from mtrec.export import MANIFEST, export_run
    from mtrec.pipelines.train import SPLIT_COLUMN
    from mtrec.training.trained_run import load_run
    from tests.test_export import check_in_tensorflow_only_process

    run = load_run(plan_runs(config)[-1].run_dir)
    model_dir = tmp_path / "export"
    export_run(run, model_dir, gates=run.model.gated)
    frame = pd.read_parquet(prepared_paths(config).split("test")).iloc[:5000].reset_index(drop=True)
    tables = [s.name for s in (*run.encoder.categorical_features, *run.encoder.pooled_features)]
    numeric = [c for c in run.encoder.numeric_columns_ if c in frame.columns]
    assert tables and len(frame) >= 3
    frame = frame.astype({c: object for c in tables})
    frame.loc[0, tables] = "never-seen-in-training"
    frame.loc[1, tables] = None
    frame.loc[2, numeric] = np.nan
    frame[SPLIT_COLUMN] = "test"  # the pipeline's id column, which score_frame carries
    report = check_in_tensorflow_only_process(run, model_dir, frame, tmp_path=tmp_path)
    assert set(run.model.task_names) & set(report["outputs"])
    assert json.loads((model_dir / MANIFEST).read_text())["id_columns_left_out"] == [SPLIT_COLUMN]



def test_daily_rank_ic_matches_pandas_spearman():
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(5), 30)
    realized = rng.normal(size=days.size)
    predicted = realized + rng.normal(scale=2.0, size=days.size)
    frame = pd.DataFrame({"d": days, "p": predicted, "y": realized})
    expected = frame.groupby("d").apply(lambda g: g.p.corr(g.y, method="spearman")).mean()
    ic, count = daily_rank_ic(days, predicted, realized)
    assert count == 5 and ic == pytest.approx(expected, abs=1e-12)
    # A day whose predictions are all equal has no rank correlation: it is left out.
    flat = predicted.copy()
    flat[days == 0] = 1.0
    assert daily_rank_ic(days, flat, realized)[1] == 4


def test_relative_gain_sign():
    assert ev.relative_gain(0.95, 0.90, "auc") == pytest.approx(100 * 0.05 / 0.90)
    assert ev.relative_gain(0.9, 1.0, "rmse") == pytest.approx(10.0)   # lower RMSE: positive gain
    assert ev.relative_gain(1.1, 1.0, "rmse") == pytest.approx(-10.0)  # negative transfer
    assert np.isnan(ev.relative_gain(0.9, float("nan"), "auc"))
    assert ev.relative_gain(0.03, 0.01, "rank_ic") == pytest.approx(0.02)  # near 0: the difference


def test_derive_tokens_and_subsample():
    frame = pd.DataFrame({"a": ["x", None, "y", "x"], "b": [1, 2, 3, 4], "g": [1, 1, 2, 3]})
    derive_tokens(frame, [DerivedTokens(name="t", columns=["a", "b"])])
    assert frame["t"].tolist() == ["a=x|b=1", "a=<missing>|b=2", "a=y|b=3", "a=x|b=4"]
    with pytest.raises(SchemaError, match="'c'"):
        derive_tokens(frame, [DerivedTokens(name="u", columns=["a", "c"])])
    part = subsample(frame, 2, "g", seed=0)
    groups = set(part.g)
    assert all((part.g == g).sum() == (frame.g == g).sum() for g in groups)  # whole groups only
    assert len(subsample(frame, 3, None, seed=0)) == 3


def test_official_split_tests_on_the_official_test_rows():
    frame = pd.DataFrame({"official_split": ["train"] * 80 + ["test"] * 20})
    splits = official_splits(frame, [0.6, 0.2, 0.2], seed=2018)
    assert splits.test.tolist() == list(range(80, 100))
    assert len(splits.valid) == 20 and len(splits.train) == 60  # 0.2 / (0.6 + 0.2) of 80
    with pytest.raises(DataError, match="test split of the official split is empty"):
        official_splits(frame.iloc[:80], [0.6, 0.2, 0.2], seed=2018)


# --------------------------------------------------------------------------- bad input


def test_missing_raw_file_says_where_it_looked(tmp_path):
    (tmp_path / "census_income_kdd").mkdir()
    config = _quick("census", tmp_path / "out")
    with pytest.raises(DataError) as err:
        run_pipeline(config, steps=("prepare",), data_dir=tmp_path, progress=False, echo=None)
    assert "census_income_kdd" in str(err.value) and "census-income.test" in str(err.value)


def _hillstrom_copy(tmp_path: Path, rows: int = 3000, edit=None) -> Path:
    """A small copy of the Hillstrom file, optionally edited, in a fresh data folder."""
    source = _needs("hillstrom_email_marketing") / "hillstrom_email_marketing" / "hillstrom.csv.gz"
    with gzip.open(source, "rt") as f:
        lines = [next(f) for _ in range(rows + 1)]
    if edit is not None:
        lines = edit(lines)
    folder = tmp_path / "data" / "hillstrom_email_marketing"
    folder.mkdir(parents=True)
    (folder / "hillstrom.csv").write_text("".join(lines))
    return tmp_path / "data"


def test_renamed_column_is_named(tmp_path):
    data_dir = _hillstrom_copy(tmp_path, edit=lambda lines: [lines[0].replace("channel", "chanel")] + lines[1:])
    config = _quick("hillstrom", tmp_path / "out")
    with pytest.raises(SchemaError, match="channel"):
        run_pipeline(config, steps=("prepare",), data_dir=data_dir, progress=False, echo=None)


def test_malformed_rows_fail_above_the_configured_threshold(tmp_path):
    def corrupt(lines):
        return lines[:100] + ["garbage,row\n"] * 30 + lines[100:]

    data_dir = _hillstrom_copy(tmp_path, edit=corrupt)
    strict = _quick("hillstrom", tmp_path / "strict", "loader.max_malformed_fraction=0.001")
    with pytest.raises(DataError, match="malformed"):
        run_pipeline(strict, steps=("prepare",), data_dir=data_dir, progress=False, echo=None)
    lenient = _quick("hillstrom", tmp_path / "lenient", "loader.max_malformed_fraction=0.05")
    with pytest.warns(UserWarning, match="malformed"):
        manifest = run_pipeline(lenient, steps=("prepare",), data_dir=data_dir, progress=False,
                                echo=None)["prepare"]
    assert manifest["rows_loaded"] == 3000


def test_empty_split_says_why(tmp_path):
    data_dir = _hillstrom_copy(tmp_path, rows=200)
    config = _quick("hillstrom", tmp_path / "out", "subsample={rows: 3, seed: 0}")
    with pytest.raises(DataError, match="valid split is empty"):
        run_pipeline(config, steps=("prepare",), data_dir=data_dir, progress=False, echo=None)


def test_missing_earlier_step_is_reported(tmp_path):
    data_dir = _hillstrom_copy(tmp_path, rows=200)
    config = _quick("hillstrom", tmp_path / "out")
    with pytest.raises(DataError, match="--step prepare"):
        run_pipeline(config, steps=("evaluate",), data_dir=data_dir, progress=False, echo=None)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("pipeline_*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
    config = load_pipeline_config(path)
    assert config.baseline in [m.name for m in config.models]
    for variant in config.models:
        experiment = config.experiment_config(variant, seed=config.seeds_of(variant)[0])
        assert experiment.model.kind == variant.model["kind"]


def test_bad_config_keys_are_named():
    with pytest.raises(ConfigError, match="num_boost_round"):
        load_pipeline_config(config_path("census"), ["lightgbm.num_boost_rounds=5"])
    with pytest.raises(ConfigError, match=r"models\[\w+\].*training\.epoch"):
        load_pipeline_config(config_path("census"), ["experiment.training.epoch=3"])
    with pytest.raises(ConfigError, match="baseline 'single_tsk'"):
        load_pipeline_config(config_path("census"), ["baseline=single_tsk"])
    with pytest.raises(ConfigError, match="No pipeline config"):
        config_path("censos")


def test_cli_reports_errors_with_exit_status(tmp_path, capsys):
    from mtrec.cli import main

    (tmp_path / "census_income_kdd").mkdir()
    status = main(["pipeline", "census", "--quick", "--step", "prepare", "--data-dir", str(tmp_path),
                   "--out", str(tmp_path / "out"), "seeds=[1]"])
    assert status == 2
    assert "census-income.test" in capsys.readouterr().err


# --------------------------------------------------------------------------- your own table


def _own_config(tmp_path: Path, **top) -> dict:
    """A minimal config-only pipeline on a small table of three columns."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "tags": rng.choice(["a|b", "b", "c|a"], size=300)})
    frame["y"] = (frame["x"] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    frame.to_parquet(tmp_path / "table.parquet")
    return {"experiment": {"data": {"path": str(tmp_path / "table.parquet")},
                           "features": [{"name": "x", "kind": "numeric"},
                                        {"name": "tags", "kind": "multi_categorical"}],
                           "tasks": [{"name": "y", "kind": "binary"}], "model": {"kind": "single_task"}},
            "models": [{"name": "single_task", "model": {"kind": "single_task"}}], **top}


def test_a_table_is_named_once(tmp_path):
    from mtrec.pipelines import parse_pipeline_config

    raw = _own_config(tmp_path, name="own")
    assert parse_pipeline_config(raw).dataset is None
    path = tmp_path / "my_reviews.yaml"
    path.write_text(json.dumps({k: v for k, v in raw.items() if k != "name"}))
    assert load_pipeline_config(path).name == "my_reviews"  # named after its file
    with pytest.raises(ConfigError, match="names its table twice"):
        parse_pipeline_config(raw | {"dataset": "hillstrom_email_marketing"})
    del raw["experiment"]["data"]["path"]
    with pytest.raises(ConfigError, match="names no table: set experiment.data.path"):
        parse_pipeline_config(raw)
    with pytest.raises(ConfigError, match="'my_table' has no loader.*experiment.data.path"):
        parse_pipeline_config(raw | {"dataset": "my_table"})
    with pytest.raises(ConfigError, match="experiment.data.path"):
        parse_pipeline_config(raw | {"data": {"path": "x.csv"}})


def test_own_table_prepares_without_a_data_folder(tmp_path, monkeypatch):
    from mtrec.pipelines import parse_pipeline_config

    monkeypatch.delenv("MTREC_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/datasets here: a table named by path needs none
    config = parse_pipeline_config(_own_config(tmp_path, name="own", output_dir=str(tmp_path / "out")))
    manifest = run_pipeline(config, steps=("prepare",), progress=False, echo=None)["prepare"]
    assert manifest["rows"] == 300 and manifest["source"] == str(tmp_path / "table.parquet")
    assert sum(s["rows"] for s in manifest["splits"].values()) == 300
    # A changed table makes the prepared data stale.
    again = run_pipeline(config, steps=("prepare",), progress=False, echo=None)["prepare"]
    assert again["skipped"]
    pd.read_parquet(tmp_path / "table.parquet").iloc[:250].to_parquet(tmp_path / "table.parquet")
    changed = run_pipeline(config, steps=("prepare",), progress=False, echo=None)["prepare"]
    assert not changed["skipped"] and changed["rows"] == 250


def test_pipeline_needs_a_name_or_a_config(capsys):
    from mtrec.cli import main

    assert main(["pipeline"]) == 2
    assert "NAME or your own config with -c" in capsys.readouterr().err


def test_lightgbm_bag_of_tokens_keeps_every_token_apart():
    """Tokens that clean to the same LightGBM name ("it!", "it?") stay two features; more than 100
    tokens are kept; tokens rarer than min_token_rows are dropped; unseen tokens are ignored."""
    from mtrec.features import FeatureEncoder
    from mtrec.pipelines.gbdt import TabularFrame

    words = [f"w{i}" for i in range(150)]
    cells = [f"it! {words[i % 150]} {words[(7 * i) % 150]}" if i % 2 else f"it? {words[i % 150]}"
             for i in range(600)]
    cells[0] = "it? hapax"  # one row only
    train = pd.DataFrame({"text": cells, "x": np.arange(600.0), "c": ["p", "q"] * 300})
    encoder = FeatureEncoder([{"name": "text", "kind": "multi_categorical", "separator": " "},
                              {"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}])
    encoder.fit(train)
    builder = TabularFrame(encoder, max_tokens=10_000, min_token_rows=2).fit(train)
    vocabulary = list(builder.vocabularies_["text"])
    assert "it!" in vocabulary and "it?" in vocabulary and "hapax" not in vocabulary
    assert len(vocabulary) == 152
    names = builder.feature_names_
    assert len(set(names)) == len(names) == 2 + 152
    assert "text=it_" in names and "text=it_-2" in names
    x = builder.transform(pd.DataFrame({"text": ["it! w3 unseen", None], "x": [1.0, None], "c": ["q", "r"]}))
    dense = x.toarray()
    assert dense[0, :2].tolist() == [1.0, 1.0]  # x, c coded 1 ("q")
    assert np.isnan(dense[1, 0]) and np.isnan(dense[1, 1])  # missing number, unseen category
    row = dict(zip(names, dense[0]))
    assert row["text=it_"] + row["text=it_-2"] == 1.0 and row["text=w3"] == 1.0
    assert dense[0, 2:].sum() == 2.0 and dense[1, 2:].sum() == 0.0
    capped = TabularFrame(encoder, max_tokens=5, min_token_rows=1).fit(train)
    assert len(capped.vocabularies_["text"]) == 5 and capped.vocabularies_["text"][0] in ("it!", "it?")


def test_shipped_data_sets_are_hooks_of_the_same_mechanism():
    from mtrec.data.datasets import LOADERS
    from mtrec.pipelines.datasets import DatasetHooks, hooks_for

    for name, loader in LOADERS.items():
        assert hooks_for(name).loader is loader  # every shipped data set: a loader hook
    sp500 = hooks_for("sp500_stocks_5yr")
    assert sp500.loader is LOADERS["sp500_stocks_5yr"] and sp500.extra_metrics is not None
    assert hooks_for(None) == DatasetHooks()  # your own table: no hooks at all


def test_a_folder_table_depends_on_every_file_below_it(tmp_path):
    from mtrec.pipelines.datasets import table_source

    for part in ("a", "b"):
        (tmp_path / "t" / f"part={part}").mkdir(parents=True)
        pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(tmp_path / "t" / f"part={part}" / "0.parquet")
    source = table_source(None, str(tmp_path / "t"), None, tmp_path)
    assert len(source.files) == 2 and len(source.read(None, 0.0)) == 4
    assert len(source.read(3, 0.0)) == 3  # loader.nrows
