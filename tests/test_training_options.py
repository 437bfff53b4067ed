"""training.schedule, weight_decay / no_weight_decay and gradient clipping (mtrec.training.optimizers)."""

import math

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.optimizers import ResumablePlateau, WarmupDecay, build_optimizer
from mtrec.training.run import train
from mtrec.training.trained_run import load_run

FAST = ["training.epochs=3", "data.synthetic.n_rows=600", "training.verbose=0", "training.batch_size=100",
        "training.early_stopping=null"]


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, *overrides]))


def test_warmup_cosine_follows_its_formula():
    schedule = WarmupDecay(0.01, warmup_epochs=1, total_epochs=5, decay="cosine", min_fraction=0.1,
                           steps_per_epoch=10)
    rates = [float(schedule(step)) for step in range(60)]
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01)  # 10 warm-up steps
    for step in (10, 25, 40):
        expected = 0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 40)))
        assert rates[step] == pytest.approx(expected, rel=1e-5)
    assert rates[50] == pytest.approx(0.001) and rates[59] == pytest.approx(0.001)  # the floor after the end
    linear = WarmupDecay(0.01, 0, 2, decay="linear", steps_per_epoch=10)
    assert [round(float(linear(s)), 6) for s in (0, 10, 20)] == [0.01, 0.005, 0.0]


def test_schedule_trains_decays_and_reloads(tmp_path):
    config = _config("training.schedule={kind: cosine, warmup_epochs: 1, min_fraction: 0.0}")
    result = train(config, tmp_path / "run")
    rates = result.history["learning_rate"]
    # 480 train rows / 100 = 5 steps per epoch: warm-up through epoch 1, decayed to ~0 by the end.
    peak = config.training.learning_rate
    assert rates[0] == pytest.approx(peak, rel=1e-4) and rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert result.model.optimizer._learning_rate.steps_per_epoch == 5
    schedule = result.model.optimizer._learning_rate
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupDecay) and restored.get_config() == schedule.get_config()
    assert float(restored(7)) == pytest.approx(float(schedule(7)))
    load_run(tmp_path / "run")  # the saved model (with its optimizer's schedule) reloads


def test_plateau_lowers_the_rate_when_validation_stalls(tmp_path):
    # A rate of 5 makes the loss explode at once, so the validation loss stalls from epoch 1.
    config = _config("training.learning_rate=5.0", "training.optimizer=sgd", "training.epochs=4",
                     "training.schedule={kind: plateau, factor: 0.5, patience: 0}")
    rates = train(config, tmp_path / "run").history["learning_rate"]
    assert rates[0] == pytest.approx(5.0) and min(rates) < 5.0
    # Logged before the metrics files are written, so metrics.csv carries the rate too.
    assert pd.read_csv(tmp_path / "run" / "metrics.csv")["learning_rate"].tolist() == pytest.approx(rates)
    assert all(b in (a, a * 0.5) or b == pytest.approx(a * 0.5) or b == pytest.approx(a) for a, b in zip(rates, rates[1:]))


def test_weight_decay_spares_excluded_variables():
    training = _config("training.weight_decay=0.5", "training.no_weight_decay=[embeddings, bias]").training
    optimizer = build_optimizer(training)
    layer = keras.layers.Embedding(5, 3, name="table")
    dense = keras.layers.Dense(2)
    layer.build((None,)), dense.build((None, 3))
    variables = [layer.embeddings, dense.kernel, dense.bias]
    dense.bias.assign(np.ones(2, "float32"))
    before = [np.array(v) for v in variables]
    # Zero gradients: Adam's own step is 0, so only the decoupled decay moves a variable.
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    after = [np.array(v) for v in variables]
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_allclose(after[1], before[1] * (1 - training.learning_rate * 0.5), rtol=1e-6)


def test_global_clipnorm_bounds_the_step():
    training = _config("training.optimizer=sgd", "training.learning_rate=1.0", "training.global_clipnorm=2.0").training
    optimizer = build_optimizer(training)
    variable = keras.Variable(np.zeros(4, "float32"))
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.full(4, 50.0, "float32")), variable)])
    assert np.linalg.norm(np.array(variable)) == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize("override, key", [
    ("training.schedule={kind: step}", "training.schedule.kind"),
    ("training.schedule={kind: plateau, factor: 1.5}", "training.schedule.factor"),
    ("training.weight_decay=-1", "training.weight_decay"),
    ("training.clipnorm=1", "training.global_clipnorm"),
])
def test_bad_training_options_are_named(override, key):
    extra = ["training.global_clipnorm=1"] if key == "training.global_clipnorm" else []
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _config(override, *extra)


def test_plateau_counters_round_trip_through_a_checkpoint_state():
    before = ResumablePlateau(monitor="val_loss", patience=3)
    before.best, before.wait, before.cooldown_counter = 0.25, 2, 1
    after = ResumablePlateau(monitor="val_loss", patience=3)
    after.restore_checkpoint_state(before.checkpoint_state())
    assert (after.best, after.wait, after.cooldown_counter) == (0.25, 2, 1)
