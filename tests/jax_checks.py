"""Checks that only make sense on a backend other than TensorFlow, run by `tests/test_jax.py`
in a `KERAS_BACKEND=jax` pytest subprocess (not collected on its own: the name is not test_*).

On TensorFlow the same paths are tested by tests/test_training_run.py and tests/test_weighting.py;
here: a training run writes its run directory, the `.keras` model reloads to identical
predictions, scoring matches the model, and what is TensorFlow-only by design (the gradient-level weighting
strategies' custom train step, gradient cosines) is refused with a ConfigError naming it.
"""

import json

import keras
import numpy as np
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.data.io import read_table, write_parquet
from mtrec.data.synthetic import make_synthetic
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.scoring import score_file
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

pytestmark = pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                                reason="checks for the other backends (tests/test_jax.py runs them on JAX)")

FAST = ["training.epochs=3", "data.synthetic.n_rows=1500", "training.verbose=0"]


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, *overrides]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    frame = make_synthetic(1500, correlation=0.9, seed=7)
    frame["row_id"] = np.arange(len(frame))
    result = train(_config("data.id_columns=[row_id]"), tmp_path_factory.mktemp("run"), frame=frame)
    return result, frame


def test_training_run_learns_and_writes_its_run_directory(trained):
    result, _ = trained
    assert json.loads((result.run_dir / "run.json").read_text())["backend"] == keras.backend.backend()
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "completed"
    loss = result.history["loss"]
    assert len(loss) == 3 and loss[-1] < loss[0]
    # Both regression tasks beat the constant baseline on the test split (correlation 0.9 data).
    for task in ("y0", "y1"):
        test = result.report["test"][task]
        assert test["rmse"] < test["constant_baseline"]["rmse"]


def test_keras_file_reloads_to_identical_predictions(trained):
    result, _ = trained
    run = load_run(result.run_dir)
    x = result.prepared.splits["test"].features
    before, after = result.model.predict(x, verbose=0), run.model.predict(x, verbose=0)
    assert set(before) == {"y0", "y1"}
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_scoring_matches_the_model(trained, tmp_path):
    result, frame = trained
    data = frame.drop(columns=["y0", "y1"]).iloc[:300]
    write_parquet(data, tmp_path / "in.parquet")
    summary = score_file(result.run_dir, tmp_path / "in.parquet", tmp_path / "out.parquet", batch_size=128,
                         progress=False)
    out = read_table(tmp_path / "out.parquet")
    assert summary.rows == 300 and list(out.columns) == ["row_id", "y0", "y1"]
    np.testing.assert_array_equal(out["row_id"].to_numpy(), data["row_id"].to_numpy())
    expected = result.model.predict(load_run(result.run_dir).encoder.transform(data), verbose=0)
    np.testing.assert_allclose(out["y0"].to_numpy(), expected["y0"].ravel(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["gradnorm", "pcgrad", "mgda"])  # uncertainty and DWA run: see the end
def test_custom_step_weighting_is_refused_before_training(kind, tmp_path):
    with pytest.raises(ConfigError, match=f"Task weighting '{kind}'.*backend is '{keras.backend.backend()}'"):
        train(_config(f"weighting.kind={kind}", "training.epochs=1", "data.synthetic.n_rows=300"), tmp_path / "run")
    # Refused before the first epoch: no checkpoint, no model.
    assert not (tmp_path / "run" / "model.keras").exists()
    assert not list((tmp_path / "run").glob("checkpoints/*"))


def test_gradient_cosine_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="Gradient cosines between tasks.*KERAS_BACKEND=tensorflow"):
        train(_config("training.analysis.gradient_cosine=true", "training.epochs=1", "data.synthetic.n_rows=300"),
              tmp_path / "run")


def test_streamed_training_reads_prepared_shards_through_tf_data(tmp_path):
    """The tf.data reader of prepared shards feeds Keras on this backend (mtrec.training.streamed)."""
    frame = make_synthetic(1500, correlation=0.9, seed=7)
    write_parquet(frame, tmp_path / "t.parquet")
    config = _config(f"data.path={tmp_path / 't.parquet'}", "data.split.kind=hash", "training.in_memory=false",
                     "training.shuffle_rows=500")
    result = train(config, tmp_path / "run")
    assert result.prepared.shards == tmp_path / "run" / "prepared"
    assert len(result.history["val_loss"]) == 3 and result.history["loss"][-1] < result.history["loss"][0]
    for task in ("y0", "y1"):
        test = result.report["test"][task]
        assert test["rmse"] < test["constant_baseline"]["rmse"]
    assert load_run(result.run_dir).encoder.get_config() == result.prepared.encoder.get_config()


def test_mixed_bfloat16_run(tmp_path):
    """training.precision: mixed_bfloat16 on JAX: bfloat16 sublayers, float32 heads, gates, losses; reload."""
    from tests.test_precision import check_mixed_run

    result = train(_config("training.precision=mixed_bfloat16", "training.epochs=2", "data.synthetic.n_rows=600",
                           "training.early_stopping=null"), tmp_path / "run")
    check_mixed_run(result, tmp_path / "run")


WEIGHTING = ["training.epochs=3", "data.synthetic.n_rows=1200", "training.early_stopping=null",
             "model.num_experts=3", "model.expert_units=[8]", "model.tower_units=[4]"]


def test_dwa_runs_with_equal_weights_then_the_formula(tmp_path):
    """DWA in Keras' own step on this backend: weights 1 for two epochs, then from the logged losses."""
    from mtrec.weighting import DynamicWeightAverage

    result = train(_config("weighting={kind: dwa, temperature: 0.1}", *WEIGHTING), tmp_path / "run")
    h = result.history
    weights = np.array([h["y0_weight"], h["y1_weight"]]).T
    np.testing.assert_array_equal(weights[:2], 1.0)
    losses = np.array([h["y0_loss"], h["y1_loss"]]).T
    want = DynamicWeightAverage.dwa_weights(losses[1], losses[0], 0.1)
    assert not np.allclose(want, 1.0, atol=1e-3)
    np.testing.assert_allclose(weights[2], want, rtol=1e-5)
    # The logged loss stays the static-weighted sum: the two task losses (both weight 1) add up to it.
    np.testing.assert_allclose(h["loss"], losses.sum(axis=1), rtol=1e-4)


def test_uncertainty_weighting_gives_the_noisy_task_less_weight(tmp_path):
    """Uncertainty's log-variances are the model's variables here, trained by Keras' own step."""
    frame = make_synthetic(1500, correlation=0.9, seed=4)
    frame["y1"] = frame["y1"] + np.random.default_rng(0).normal(scale=3.0, size=len(frame))
    result = train(_config("weighting={kind: uncertainty, learning_rate: 0.05}", "training.learning_rate=0.02",
                           "tasks.0.standardize=false", "tasks.1.standardize=false", *WEIGHTING,
                           "training.batch_size=64"),
                   tmp_path / "run", frame=frame)
    noisy, clean = result.history["y1_weight"], result.history["y0_weight"]
    # Measured: noisy 0.68, 0.35, 0.24 against clean 0.69, 0.47, 0.50.
    assert noisy[-1] < 0.7 * clean[-1]
    assert noisy[2] < noisy[1] < noisy[0] < 1.0  # falls from its starting weight of 1, epoch after epoch
    # The model saved without them reloads to the same predictions.
    x = result.prepared.splits["test"].features
    before, after = result.model.predict(x, verbose=0), load_run(tmp_path / "run").model.predict(x, verbose=0)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
