"""Boosted-forest scores as a feature (`gbdt_scores`): out of fold, blind to test labels, not read by
the LightGBM baseline."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lightgbm")

from mtrec.data.splits import Splits  # noqa: E402
from mtrec.errors import ConfigError  # noqa: E402
from mtrec.features import FeatureEncoder  # noqa: E402
from mtrec.features.specs import parse_features  # noqa: E402
from mtrec.pipelines.gbdt import TabularFrame  # noqa: E402
from mtrec.pipelines.gbdt_scores import GBDTScore, add_gbdt_scores  # noqa: E402
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask  # noqa: E402

FEATURES = [{"name": "x", "kind": "numeric"}, {"name": "noise", "kind": "numeric"},
            {"name": "c", "kind": "categorical"}, {"name": "score", "kind": "numeric"}]


def _table(rows: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, Splits]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "noise": rng.normal(size=rows),
                          "c": rng.choice(list("abcdef"), size=rows)})
    frame["y"] = (frame["x"] + 0.5 * (frame["c"] == "a") + rng.normal(scale=0.7, size=rows) > 0).astype(int)
    frame["coin"] = np.where(rng.integers(0, 2, size=rows) == 1, "yes", "no")  # nothing predicts it
    order = rng.permutation(rows)
    splits = Splits(np.sort(order[: rows * 6 // 10]), np.sort(order[rows * 6 // 10: rows * 8 // 10]),
                    np.sort(order[rows * 8 // 10:]))
    return frame, splits


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


TASKS = [BinaryTask(name="y"), BinaryTask(name="coin", positive=["yes"]), RegressionTask(name="size", label="x"),
         MulticlassTask(name="c", classes=list("abcdef"))]


def _scores(frame: pd.DataFrame, splits: Splits, task: str, **options) -> np.ndarray:
    specs = parse_features(FEATURES)
    add_gbdt_scores(frame, splits, [GBDTScore(name="score", task=task, **options)], specs, TASKS, {})
    return frame["score"].to_numpy()


def test_scores_learn_the_label_and_are_out_of_fold_on_training_rows():
    frame, splits = _table()
    scores = _scores(frame, splits, "y")
    y = frame["y"].to_numpy()
    test_auc = _auc(y[splits.test], scores[splits.test])
    train_auc = _auc(y[splits.train], scores[splits.train])
    assert test_auc > 0.85  # the forests found x and c
    # Out of fold, a training row is scored like a new row: no higher AUC than on test.
    assert abs(train_auc - test_auc) < 0.03
    # On a label nothing predicts, training rows' scores know nothing of their own labels; a
    # forest scoring the rows it was fit on would rank them well above chance.
    coin = (frame["coin"] == "yes").to_numpy().astype(int)  # `positive: [yes]`, as the task reads it
    noise_scores = _scores(frame, splits, "coin", early_stopping_rounds=2000, num_boost_round=60)
    assert _auc(coin[splits.train], noise_scores[splits.train]) < 0.56
    import lightgbm as lgb

    x = frame[["x", "noise"]].to_numpy()[splits.train]
    in_sample = lgb.train({"objective": "binary", "verbosity": -1, "seed": 0, "num_threads": 1},
                          lgb.Dataset(x, label=coin[splits.train]), num_boost_round=60).predict(x)
    assert _auc(coin[splits.train], in_sample) > 0.7


def test_training_rows_without_a_label_get_the_forests_mean_score():
    frame, splits = _table()
    unlabelled = splits.train[::10]
    frame["y"] = frame["y"].astype("float64")
    frame.loc[unlabelled, "y"] = np.nan
    scores = _scores(frame, splits, "y")
    y = frame["y"].to_numpy()
    # Scored like test rows (by every fold's forest), not left at 0.
    assert _auc((frame["x"].to_numpy()[unlabelled] > 0).astype(int), scores[unlabelled]) > 0.9
    assert _auc(y[splits.test].astype(int), scores[splits.test]) > 0.85


def test_test_labels_never_reach_the_scores():
    frame, splits = _table()
    scores = _scores(frame.copy(), splits, "y")
    shuffled = frame.copy()
    rng = np.random.default_rng(1)
    shuffled.loc[splits.test, "y"] = rng.permutation(shuffled.loc[splits.test, "y"].to_numpy())
    np.testing.assert_array_equal(_scores(shuffled, splits, "y"), scores)
    # A training label does change them (the test above would pass for any constant).
    flipped = frame.copy()
    flipped.loc[splits.train[:300], "y"] = 1 - flipped.loc[splits.train[:300], "y"]
    assert not np.array_equal(_scores(flipped, splits, "y"), scores)


def test_the_lightgbm_baseline_does_not_read_score_columns():
    frame, splits = _table(300)
    frame["score"] = frame["x"] * 2
    encoder = FeatureEncoder(FEATURES).fit(frame.iloc[splits.train], exclude=["y", "coin"])
    assert "score" in TabularFrame(encoder).fit(frame).feature_names_
    names = TabularFrame(encoder, exclude=["score"]).fit(frame).feature_names_
    assert names == ["x", "noise", "c"]


def test_a_regression_task_gets_its_forests_prediction():
    frame, splits = _table()
    frame["x"] = frame["x"] * 10 + 100  # the label of task `size`; `x` is also a feature, so an easy fit
    scores = _scores(frame, splits, "size")
    test = splits.test
    assert np.corrcoef(scores[test], frame["x"].to_numpy()[test])[0, 1] > 0.99
    assert abs(scores[test].mean() - 100) < 1.0  # in the label's units: L2, not a logit


def test_bad_settings_are_named():
    frame, splits = _table(300)
    with pytest.raises(ConfigError, match=r"gbdt_scores\[score\].task 'yy' is not one of the experiment's tasks.*'y'"):
        _scores(frame, splits, "yy")
    with pytest.raises(ConfigError, match=r"task 'c' is multiclass"):
        _scores(frame, splits, "c")
    with pytest.raises(ConfigError, match=r"gbdt_scores\[s\].folds must be >= 2"):
        GBDTScore(name="s", task="y", folds=1)


def test_a_pipeline_adds_the_scores_and_its_lightgbm_baseline_ignores_them(tmp_path):
    from mtrec.pipelines import parse_pipeline_config, run_pipeline
    from mtrec.pipelines.prepare import prepared_paths

    frame, _ = _table(1000)
    frame[["x", "noise", "c", "y"]].to_parquet(tmp_path / "table.parquet")
    features = [f for f in FEATURES if f["name"] != "score"] + [{"name": "gy", "kind": "numeric"}]
    raw = {"name": "stacked", "output_dir": str(tmp_path / "out"), "seeds": [1],
           "gbdt_scores": [{"name": "gy", "task": "y", "folds": 3}],
           "experiment": {"data": {"path": str(tmp_path / "table.parquet")}, "features": features,
                          "tasks": [{"name": "y", "kind": "binary"}], "model": {"kind": "single_task"},
                          "training": {"epochs": 3, "verbose": 0}},
           "models": [{"name": "single_task", "model": {"kind": "single_task"}}]}
    config = parse_pipeline_config(raw)
    results = run_pipeline(config, progress=False, echo=None)
    train = pd.read_parquet(prepared_paths(config).split("train"))
    assert _auc(train["y"].to_numpy(), train["gy"].to_numpy()) > 0.8
    lightgbm = results["evaluate"]["references"]["lightgbm"]
    assert lightgbm["info"]["inputs"]["features"] == 3  # x, noise, c: not the score column
    # Another forest setting is another prepared table.
    raw["gbdt_scores"][0]["folds"] = 4
    again = run_pipeline(parse_pipeline_config(raw), steps=("prepare",), progress=False, echo=None)
    assert not again["prepare"]["skipped"]
