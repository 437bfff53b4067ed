"""Task kinds and label keys: positive/negative, classes, count, transform, output_range, standardization,
sample weights. Contract: config round trip, save/reload and export."""

import keras
import numpy as np
import pandas as pd
import pytest
from keras import ops

from mtrec.config import parse_config
from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.scoring.score import score_frame
from mtrec.tasks import (BinaryTask, CountTask, MaskedLoss, MaskedMetric, MulticlassTask, RegressionTask,
                         task_from_config)
from mtrec.training.evaluation import constant_baseline, roc_auc, task_metrics
from mtrec.training.predict import predict_arrays
from mtrec.training.prepare import encode_labels, prepare
from mtrec.training.run import train
from mtrec.training.trained_run import load_run


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """A review-and-survey table: Yes/No, a 1-5 rating, a count, a skewed amount, a large-scale number."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    s = x1 + 0.5 * x2
    return pd.DataFrame({
        "row_id": np.arange(n), "x1": x1, "x2": x2, "cat": rng.choice(list("abcd"), n),
        "Recommended IND": np.where(rng.random(n) < 1 / (1 + np.exp(-2 * s)), "Yes", "No"),
        "rating": np.clip(np.round(3 + s + rng.normal(0, 0.5, n)), 1, 5).astype(int),
        "votes": rng.poisson(np.exp(0.7 * s)),
        "spend": np.expm1(np.maximum(3 + s + rng.normal(0, 0.3, n), 0)),
        "bp": 120 + 15 * s + rng.normal(0, 3, n),
        "w": rng.uniform(0.5, 2, n),
    })


TASKS = [
    {"name": "recommended", "label": "Recommended IND", "kind": "binary", "positive": "Yes", "negative": ["No"],
     "sample_weight": "w"},
    {"name": "rating", "kind": "multiclass", "classes": "auto"},
    {"name": "stars", "label": "rating", "kind": "regression", "output_range": [1, 5]},
    {"name": "votes", "kind": "count"},
    {"name": "spend", "kind": "regression", "transform": "log1p"},
    {"name": "bp", "kind": "regression"},
]
CONFIG = {
    "name": "kinds", "seed": 1, "data": {"id_columns": ["row_id"]},
    "features": [{"name": "x1", "kind": "numeric"}, {"name": "x2", "kind": "numeric"},
                 {"name": "cat", "kind": "categorical", "embedding_dim": 3}],
    "tasks": TASKS,
    "model": {"kind": "shared_bottom", "bottom": {"units": [16]}, "tower_units": [8]},
    "training": {"epochs": 4, "batch_size": 64, "learning_rate": 0.01, "verbose": 0, "early_stopping": None},
}


def _np(x):
    return float(np.asarray(ops.convert_to_numpy(x)).reshape(-1)[0])


# -- labels ------------------------------------------------------------------------------------------


def test_positive_maps_values_and_keeps_missing():
    task = BinaryTask("rec", label="r", positive=["Yes", "Y"])
    labels = task.prepare_labels(pd.Series(["Yes", "No", None, "Y", "no"]))
    np.testing.assert_array_equal(labels.ravel(), [1, 0, np.nan, 1, 0])
    # YAML reads an unquoted yes as true: it still matches "Yes".
    yaml_true = BinaryTask("rec", positive=True)
    assert yaml_true.prepare_labels(pd.Series(["Yes", "No"])).ravel().tolist() == [1, 0]
    assert BinaryTask("n", positive=2).prepare_labels(pd.Series([1, 2, 2.0])).ravel().tolist() == [0, 1, 1]


def test_positive_refusals_name_task_column_and_values():
    task = BinaryTask("rec", label="Recommended IND", positive="Yes", negative="No")
    with pytest.raises(DataError, match=r"'Recommended IND' of binary task 'rec'.*2 rows.*\['Maybe', 'N/A!'\]"):
        task.prepare_labels(pd.Series(["Yes", "Maybe", "No", "N/A!"]))
    with pytest.raises(DataError, match=r"no row equal to positive \['yes please'\]"):
        BinaryTask("rec", positive="yes please").prepare_labels(pd.Series(["Yes", "No"]))
    with pytest.raises(ConfigError, match="both positive and negative"):
        BinaryTask("rec", positive=["a", "b"], negative="b")
    with pytest.raises(ConfigError, match="negative needs positive"):
        BinaryTask("rec", negative="No")


def test_bad_label_fails_at_prepare_time_not_in_training():
    frame = make_frame(300, 0)
    frame.loc[17, "Recommended IND"] = "Maybe"
    config = parse_config({**CONFIG, "tasks": TASKS[:1]})
    with pytest.raises(DataError, match="Maybe"):
        prepare(config, frame)


def test_classes_map_values_and_name_strangers():
    task = MulticlassTask("rating", classes=[1, 2, 3, 4, 5])
    assert task.num_classes == 5
    np.testing.assert_array_equal(task.prepare_labels(pd.Series([1.0, 5.0, np.nan])).ravel(), [0, 4, np.nan])
    with pytest.raises(DataError, match=r"not one of classes \[1, 2, 3, 4, 5\], e.g. \[0, 6\]"):
        task.prepare_labels(pd.Series([0, 3, 6]))
    auto = MulticlassTask("size", classes="auto")
    auto.fit(pd.Series(["M", "S", "L", None, "M"]))
    assert auto.classes == ["L", "M", "S"] and auto.num_classes == 3
    out = auto.output_columns(np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]], "float32"))
    assert out["size"].tolist() == ["S", "L"]
    with pytest.raises(ConfigError, match="num_classes=4 but classes lists 3"):
        MulticlassTask("x", num_classes=4, classes=["a", "b", "c"])


def test_task_name_error_points_to_label():
    with pytest.raises(ConfigError, match=r"name: recommended_ind` with `label: 'Recommended IND'"):
        task_from_config({"name": "Recommended IND", "kind": "binary"})


def test_sample_weight_checks():
    task = RegressionTask("y", sample_weight="w", standardize=False)
    frame = pd.DataFrame({"y": [1.0, np.nan, 3.0], "w": [2.0, np.nan, 0.0]})
    np.testing.assert_array_equal(task.encode(frame), [[1, 2], [np.nan, 0], [3, 0]])
    with pytest.raises(DataError, match=r"Sample weight column 'w' of task 'y'.*1 rows.*-1.0"):
        task.encode(pd.DataFrame({"y": [1.0, 2.0], "w": [1.0, -1.0]}))
    with pytest.raises(SchemaError, match=r"Sample weight column 'weights' is missing from .* \(task 'y'\)"):
        encode_labels([RegressionTask("y", sample_weight="weights")], frame, "t.csv")


# -- losses and metrics --------------------------------------------------------------------------------


def test_loss_on_standardized_and_log_scales():
    y = np.array([[10.0], [np.nan], [30.0]], "float32")
    p = np.array([[14.0], [0.0], [26.0]], "float32")
    assert _np(MaskedLoss("mse", scale=4.0)(y, p)) == pytest.approx(1.0)  # (4/4)^2 averaged
    expected = np.mean((np.log1p([10, 30]) - np.log1p([14, 26])) ** 2)
    assert _np(MaskedLoss("mse", transform="log1p")(y, p)) == pytest.approx(expected, rel=1e-5)
    counts, rates = np.array([[0.0], [3.0]], "float32"), np.array([[0.5], [2.0]], "float32")
    assert _np(MaskedLoss("poisson")(counts, rates)) == pytest.approx(np.mean([0.5, 2 - 3 * np.log(2)]), rel=1e-4)


def test_weighted_loss_and_metric_are_weighted_means():
    y = np.array([[1.0, 3.0], [0.0, 1.0], [np.nan, 0.0]], "float32")
    p = np.array([[0.0], [2.0], [50.0]], "float32")
    assert _np(MaskedLoss("mse", weighted=True)(y, p)) == pytest.approx((3 * 1 + 1 * 4) / 4)
    metric = MaskedMetric(keras.metrics.MeanAbsoluteError(name="mae"), weighted=True)
    metric.update_state(y, p)
    assert _np(metric.result()) == pytest.approx((3 * 1 + 1 * 2) / 4)
    restored = MaskedMetric.from_config(metric.get_config())
    assert restored.weighted and restored.name == "mae"
    assert MaskedLoss.from_config(MaskedLoss("huber", scale=2.0, transform="log1p", weighted=True).get_config()
                                  ).get_config()["scale"] == 2.0


def test_report_metrics_weighted_beside_plain():
    rng = np.random.default_rng(0)
    y, w = rng.integers(0, 2, 400).astype(float), rng.uniform(0, 2, 400)
    score = y + rng.normal(0, 1.5, 400)
    task = BinaryTask("b", sample_weight="w")
    metrics = task_metrics(task, np.stack([y, w], 1), score.reshape(-1, 1))
    assert metrics["auc"] == pytest.approx(roc_auc(y, score))
    from sklearn.metrics import roc_auc_score
    assert metrics["weighted_auc"] == pytest.approx(roc_auc_score(y, score, sample_weight=w))
    assert metrics["weight_sum"] == pytest.approx(w.sum())
    base = constant_baseline(RegressionTask("r", sample_weight="w"), np.stack([y, w], 1), np.stack([y, w], 1))
    assert base["weighted_rmse"] == pytest.approx(np.sqrt(np.average((y - np.average(y, weights=w)) ** 2,
                                                                     weights=w)))
    counts = task_metrics(CountTask("c"), np.array([[0.0], [2.0]]), np.array([[1.0], [2.0]]))
    assert counts["poisson_deviance"] == pytest.approx(np.mean([2 * 1.0, 0.0]))


@pytest.mark.parametrize("config", [
    {"name": "a", "kind": "binary", "positive": ["Yes"], "negative": "No", "sample_weight": "w"},
    {"name": "b", "kind": "multiclass", "classes": [1, 2, 3]},
    {"name": "c", "kind": "count"},
    {"name": "d", "kind": "regression", "transform": "log1p", "standardize": False},
    {"name": "e", "kind": "regression", "output_range": [1, 5]},
])
def test_config_round_trip(config):
    task = task_from_config(config)
    again = task_from_config(task.get_config())
    assert again == task and again.get_config() == task.get_config()
    assert parse_config({**CONFIG, "tasks": [config]}).get_config()["tasks"][0] == task.get_config()


def test_config_refusals():
    with pytest.raises(ConfigError, match="output_range must be"):
        task_from_config({"name": "r", "kind": "regression", "output_range": [5, 1]})
    with pytest.raises(ConfigError, match="output_range cannot be combined"):
        task_from_config({"name": "r", "kind": "regression", "output_range": [0, 9], "transform": "log1p"})
    with pytest.raises(ConfigError, match=r"tasks\[0\].kind"):
        task_from_config({"name": "r", "kind": "counts"}, "tasks[0]")
    with pytest.raises(DataError, match="values > -1"):
        RegressionTask("r", transform="log1p").prepare_labels(pd.Series([0.0, -2.0]))
    with pytest.raises(DataError, match=r"output_range \[1, 5\]"):
        RegressionTask("r", output_range=[1, 5]).prepare_labels(pd.Series([0.0, 3.0]))
    with pytest.raises(ConfigError, match=r"tasks\[0\].sample_weight 'x1' is also declared as a feature"):
        parse_config({**CONFIG, "tasks": [{"name": "bp", "kind": "regression", "sample_weight": "x1"}]})
    with pytest.raises(DataError, match="counts >= 0"):
        CountTask("c").prepare_labels(pd.Series([1.0, -1.0]))


@pytest.mark.parametrize("weighting", ["static", "uncertainty"])  # Keras's step, and a custom step
def test_zero_weight_rows_are_left_out_of_training(weighting, tmp_path):
    frame = make_frame(1200, 1)
    junk = np.random.default_rng(2).random(len(frame)) < 0.3
    frame.loc[junk, "bp"], frame.loc[junk, "w"] = 1e5, 0.0  # absurd labels, weight 0
    config = parse_config({**CONFIG, "tasks": [{"name": "bp", "kind": "regression", "sample_weight": "w"}],
                           "weighting": {"kind": weighting}, "training": {**CONFIG["training"], "epochs": 2}})
    result = train(config, tmp_path / "run", frame=frame)
    task = result.model.tasks[0]
    kept = frame.iloc[result.prepared.splits["train"].index].query("w > 0")
    assert task.mean == pytest.approx(np.average(kept["bp"], weights=kept["w"]), rel=1e-6)
    # Had the junk rows counted, the standardized loss would be ~(1e5 / 15)^2 * 0.3, not ~1.
    assert max(result.history["bp_loss"]) < 3.0
    assert result.report["test"]["bp"]["weighted_rmse"] < 30 < result.report["test"]["bp"]["rmse"]


# -- training, reload, scoring, export --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    frame = make_frame(2000, 0)
    result = train(parse_config(CONFIG), root / "run", frame=frame)
    return result, load_run(root / "run"), frame, root


def test_fitted_state_is_in_the_saved_model_and_scoring_reports_label_units(trained):
    result, run, frame, _ = trained
    train_rows = frame.iloc[result.prepared.splits["train"].index]
    tasks = {t.name: t for t in run.config.tasks}
    assert tasks["bp"].mean == pytest.approx(train_rows["bp"].mean(), rel=1e-6)
    assert tasks["bp"].sd == pytest.approx(train_rows["bp"].std(ddof=0), rel=1e-6)
    assert tasks["spend"].mean == pytest.approx(np.log1p(train_rows["spend"]).mean(), rel=1e-6)
    assert tasks["rating"].classes == sorted(train_rows["rating"].unique().tolist())
    assert tasks["votes"].offset == pytest.approx(np.log(train_rows["votes"].mean()), rel=1e-6)
    # The loss is on the standardized scale: bp's (sd ~15) is near 1 - MSE / var, not in the hundreds.
    assert result.history["bp_loss"][-1] < 1.0
    test = frame.iloc[result.prepared.splits["test"].index]
    scores = score_frame(run, test)
    assert set(scores["rating"]) <= set(tasks["rating"].classes) and scores["rating"].dtype == np.int64
    assert scores["stars"].between(1, 5).all()
    assert (scores["votes"] > 0).all() and (scores["spend"] > -1).all()
    report = result.report["test"]
    for name in ("bp", "stars", "spend"):  # R² in label units, better than the constant
        assert report[name]["r2"] > 0.3, (name, report[name])
    assert report["bp"]["rmse"] == pytest.approx(np.sqrt(np.mean((scores["bp"] - test["bp"].to_numpy()) ** 2)),
                                                 rel=1e-4)
    assert report["votes"]["poisson_deviance"] < report["votes"]["constant_baseline"]["poisson_deviance"]
    assert report["recommended"]["weighted_auc"] > 0.75 and "weight_sum" in report["recommended"]
    assert report["rating"]["accuracy"] > report["rating"]["constant_baseline"]["accuracy"]


def test_model_file_reloads_to_identical_predictions(trained):
    result, run, frame, root = trained
    features = result.prepared.splits["test"].features
    before = predict_arrays(result.model, features)
    reloaded = keras.models.load_model(root / "run" / "model.keras", compile=False)
    after = predict_arrays(reloaded, features)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    assert [t.get_config() for t in reloaded.tasks] == [t.get_config() for t in result.model.tasks]


def test_standardize_false_trains_on_the_raw_scale():
    task = RegressionTask("bp", standardize=False)
    task.fit(pd.Series([100.0, 140.0]))
    assert task.mean is None and task.make_loss().scale == 1.0
    z = np.array([[3.0]], "float32")
    assert _np(task.finish_output(z)) == 3.0
    on = RegressionTask("bp")
    on.fit(pd.Series([100.0, 140.0]))
    assert (on.mean, on.sd) == (120.0, 20.0) and _np(on.finish_output(z)) == pytest.approx(180.0)


def test_export_matches_scoring(trained):
    tf = pytest.importorskip("tensorflow")
    from mtrec.export import export_run, request_columns

    _, run, _, root = trained
    export_run(run, root / "model")
    rows = make_frame(300, 5).drop(columns=["Recommended IND", "rating", "votes", "spend", "bp", "w"])
    expected = score_frame(run, rows)
    serve = tf.saved_model.load(str(root / "model")).signatures["serving_default"]
    got = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in
                                            request_columns(rows, run.encoder, run.config.data.na_values).items()
                                            }).items()}
    # The class value (1-5, not its index), and bp, spend, stars, votes in label units, as mtrec score writes them.
    np.testing.assert_array_equal(got["rating"], expected["rating"].to_numpy())
    for name in ("recommended", "stars", "votes", "spend", "bp"):
        np.testing.assert_allclose(got[name], expected[name].to_numpy(), rtol=2e-6, atol=1e-6, err_msg=name)
