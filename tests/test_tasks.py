"""Tasks: masked losses and metrics, label checks, config errors."""

import keras
import numpy as np
import pandas as pd
import pytest
from keras import ops

from mtrec.errors import ConfigError, DataError, SchemaError
from mtrec.tasks import (
    BinaryTask, MaskedLoss, MaskedMetric, MulticlassTask, RegressionTask, task_from_config, tasks_from_config,
)


def _np(x):
    return float(ops.convert_to_numpy(x))


@pytest.mark.parametrize("loss,y,p", [
    ("binary_crossentropy", [[1.0], [0.0], [1.0]], [[0.9], [0.2], [0.6]]),
    ("mse", [[1.0], [2.0], [3.0]], [[1.5], [2.0], [2.0]]),
    ("huber", [[1.0], [2.0], [5.0]], [[1.5], [2.0], [2.0]]),
])
def test_masked_rows_change_nothing(loss, y, p):
    fn = MaskedLoss(loss)
    clean = _np(fn(np.array(y, "float32"), np.array(p, "float32")))
    # Extra rows with a missing label, whatever their prediction, change neither loss nor metric.
    y_masked = np.array(y + [[np.nan], [np.nan]], "float32")
    p_masked = np.array(p + [[0.01], [0.99]], "float32")
    assert _np(fn(y_masked, p_masked)) == pytest.approx(clean, rel=1e-6)


def test_masked_loss_matches_hand_computation():
    y = np.array([[1.0], [np.nan], [3.0]], "float32")
    p = np.array([[2.0], [100.0], [1.0]], "float32")
    assert _np(MaskedLoss("mse")(y, p)) == pytest.approx((1 + 4) / 2)


def test_all_missing_batch_gives_zero_loss():
    y = np.full((4, 1), np.nan, "float32")
    assert _np(MaskedLoss("binary_crossentropy")(y, np.full((4, 1), 0.3, "float32"))) == 0.0


def test_masked_multiclass_loss():
    y = np.array([[0.0], [np.nan], [2.0]], "float32")
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.1, 0.3, 0.6]], "float32")
    assert _np(MaskedLoss("sparse_categorical_crossentropy")(y, p)) == pytest.approx(
        -(np.log(0.7) + np.log(0.6)) / 2, rel=1e-5)


@pytest.mark.parametrize("task", [BinaryTask("t"), RegressionTask("t"), MulticlassTask("t", num_classes=3)])
def test_masked_metrics_ignore_missing_labels(task):
    rng = np.random.default_rng(0)
    n = 50
    if isinstance(task, MulticlassTask):
        y = rng.integers(0, 3, (n, 1)).astype("float32")
        p = rng.dirichlet(np.ones(3), n).astype("float32")
        extra_p = rng.dirichlet(np.ones(3), 10).astype("float32")
    else:
        y = rng.integers(0, 2, (n, 1)).astype("float32")
        p = rng.uniform(0.01, 0.99, (n, 1)).astype("float32")
        extra_p = rng.uniform(0.01, 0.99, (10, 1)).astype("float32")
    y_masked = np.concatenate([y, np.full((10, 1), np.nan, "float32")])
    p_masked = np.concatenate([p, extra_p])
    for clean, masked in zip(task.make_metrics(), task.make_metrics()):
        clean.update_state(y, p)
        masked.update_state(y_masked, p_masked)
        assert _np(masked.result()) == pytest.approx(_np(clean.result()), rel=1e-5), clean.name


def test_masked_metric_serializes():
    metric = MaskedMetric(keras.metrics.AUC(name="auc"))
    clone = MaskedMetric.from_config(metric.get_config())
    assert clone.name == "auc" and isinstance(clone.metric, keras.metrics.AUC)


def test_label_checks():
    assert BinaryTask("click").prepare_labels(pd.Series([1, 0, None])).shape == (3, 1)
    np.testing.assert_array_equal(
        np.isnan(BinaryTask("click").prepare_labels(pd.Series([1.0, np.nan, 0.0]))).ravel(), [False, True, False])
    with pytest.raises(SchemaError, match="'click'.*dtype"):
        BinaryTask("click").prepare_labels(pd.Series(["yes", "no"]), "file.parquet")
    with pytest.raises(DataError, match="0 or 1"):
        BinaryTask("click").prepare_labels(pd.Series([0, 1, 2]))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        MulticlassTask("c", num_classes=3).prepare_labels(pd.Series([0, 3]))


def test_task_config_errors():
    assert isinstance(task_from_config({"name": "r", "kind": "regression", "loss": "huber"}), RegressionTask)
    with pytest.raises(ConfigError, match="must be one of.*binary.*multiclass.*regression"):
        task_from_config({"name": "r", "kind": "regresion"}, "tasks[0]")
    with pytest.raises(ConfigError, match="Did you mean 'regression'"):
        task_from_config({"name": "r", "kind": "regresion"}, "tasks[0]")
    with pytest.raises(ConfigError, match="tasks\\[0\\].wieght.*Did you mean 'weight'"):
        task_from_config({"name": "r", "kind": "regression", "wieght": 2}, "tasks[0]")
    with pytest.raises(ConfigError, match="num_classes"):
        task_from_config({"name": "c", "kind": "multiclass"})
    with pytest.raises(ConfigError, match="declared twice"):
        tasks_from_config([{"name": "a", "kind": "binary"}, {"name": "a", "kind": "binary"}])
    assert BinaryTask("click").label == "click"


def test_moments_merged_over_chunks_are_the_moments_of_the_whole():
    # A streamed fit merges the moments of chunks of the training labels (Chan et al.); they must
    # equal the whole column's, which the in-memory fit computes, weighted or not. (The numeric
    # features' moments, weighted by the sample weights for labels.)
    from mtrec.features.partial import Moments

    rng = np.random.default_rng(0)
    values = rng.lognormal(3.0, 1.0, 10_001)
    weights = rng.uniform(0.0, 2.0, len(values))
    for w in (None, weights):
        whole = Moments.of(values, w)
        # The whole column's figures are NumPy's (weighted) averages, bit for bit.
        assert whole.mean == np.average(values, weights=w)
        assert whole.std == np.sqrt(np.average((values - whole.mean) ** 2, weights=w))
        merged = Moments()
        for chunk in np.array_split(np.arange(len(values)), 7):
            merged = merged.merge(Moments.of(values[chunk], None if w is None else w[chunk]))
        assert merged.count == pytest.approx(whole.count, rel=1e-12)
        assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
        assert merged.m2 == pytest.approx(whole.m2, rel=1e-10)
    assert Moments.of(np.zeros(0)).merge(Moments.of(values)) == Moments.of(values)
    # A task's fit is its fit_moments on the whole column's label_moments.
    task = RegressionTask("spend", transform="log1p")
    task.fit(pd.Series(values))
    chunked = RegressionTask("spend", transform="log1p")
    merged = Moments()
    for chunk in np.array_split(values, 5):
        merged = merged.merge(chunked.label_moments(chunk))
    chunked.fit_moments(merged)
    assert (chunked.mean, chunked.sd) == pytest.approx((task.mean, task.sd), rel=1e-10)
