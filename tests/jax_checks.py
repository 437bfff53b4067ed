"""Checks that only make sense on a backend other than TensorFlow, run by `tests/test_jax.py`
in a `KERAS_BACKEND=jax` pytest subprocess (not collected on its own: the name is not test_*).

On TensorFlow the same paths are tested by tests/test_training_run.py and tests/test_weighting.py;
here: a training run writes its run directory, the `.keras` model reloads to identical
predictions, scoring matches the model, and what is TensorFlow-only by design (the weighting
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


@pytest.mark.parametrize("kind", ["uncertainty", "dwa", "gradnorm", "pcgrad", "mgda"])
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
