"""Task weighting strategies: the formulas, the train step, config and logging."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec.config import apply_overrides, parse_config
from mtrec.data.synthetic import make_synthetic
from mtrec.errors import ConfigError
from mtrec.models import MMoE, SingleTask
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.tasks import RegressionTask
from mtrec.training.run import train
from mtrec.training.trained_run import load_run
from mtrec.weighting import (
    WEIGHTING_KINDS, DynamicWeightAverage, PCGrad, check_gradient_backend, conflict_rate,
    min_norm_weights, parse_weighting, per_task_gradients, project_conflicting, split_variables,
)
from mtrec.weighting.gradients import flatten

FAST = ["data.synthetic.n_rows=1000", "data.synthetic.num_features=10", "training.epochs=2",
        "training.batch_size=64", "training.verbose=0", "training.early_stopping=null",
        "model.num_experts=3", "model.expert_units=[8]", "model.tower_units=[4]"]


def _config(*overrides):
    return parse_config(apply_overrides(QUICKSTART_CONFIG, [*FAST, *overrides]))


# -- PCGrad -------------------------------------------------------------------
def _pcgrad_reference(grads, orders):
    """The paper's loop, written out in numpy."""
    out = []
    for i, g in enumerate(grads):
        g = g.astype("float64").copy()
        for j in orders[i]:
            if j != i and g @ grads[j] < 0:
                g -= (g @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        out.append(g)
    return np.array(out)


def test_pcgrad_projects_two_conflicting_gradients_by_the_formula():
    g1, g2 = np.array([2.0, 1.0]), np.array([-1.0, 1.0])  # g1 . g2 = -1 < 0
    projected = keras.ops.convert_to_numpy(project_conflicting(np.stack([g1, g2]).astype("float32")))
    expected_1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # = [1.5, 1.5]
    expected_2 = g2 - (g2 @ g1) / (g1 @ g1) * g1  # = [-0.6, 1.2]
    np.testing.assert_allclose(projected, [expected_1, expected_2], rtol=1e-6)
    # Each projected gradient is orthogonal to the other task's original one.
    assert abs(projected[0] @ g2) < 1e-6 and abs(projected[1] @ g1) < 1e-6
    assert float(conflict_rate(np.stack([g1, g2]).astype("float32"))) == 1.0


def test_pcgrad_leaves_agreeing_gradients_unchanged():
    grads = np.array([[1.0, 0.0], [1.0, 1.0]], "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(project_conflicting(grads)), grads)
    assert float(conflict_rate(grads)) == 0.0


def test_pcgrad_three_tasks_follow_the_given_orders():
    rng = np.random.default_rng(3)
    grads = rng.normal(size=(3, 5))
    for orders in ([[0, 1, 2]] * 3, [[2, 1, 0], [0, 2, 1], [1, 0, 2]]):
        got = keras.ops.convert_to_numpy(project_conflicting(grads.astype("float32"), np.array(orders)))
        np.testing.assert_allclose(got, _pcgrad_reference(grads, orders), rtol=1e-4, atol=1e-5)


# -- MGDA, DWA ------------------------------------------------------------------
@pytest.mark.parametrize("num_tasks", [2, 3])
def test_min_norm_weights_find_the_smallest_combination(num_tasks):
    rng = np.random.default_rng(num_tasks)
    grads = rng.normal(size=(num_tasks, 4)) + np.array([1.0, 0, 0, 0])
    lam = keras.ops.convert_to_numpy(min_norm_weights(grads @ grads.T, iterations=200))
    assert lam.min() >= 0 and abs(lam.sum() - 1) < 1e-5
    # No point of the simplex (a fine grid) has a smaller combined norm.
    grid = np.linspace(0, 1, 101)
    points = ([[a, 1 - a] for a in grid] if num_tasks == 2 else
              [[a, b, 1 - a - b] for a in grid for b in grid if a + b <= 1])
    best = min(np.linalg.norm(np.array(p) @ grads) for p in points)
    assert np.linalg.norm(lam @ grads) <= best + 1e-3


def test_dwa_weights_follow_the_formula():
    previous, before, temperature = np.array([0.5, 0.9]), np.array([1.0, 1.0]), 2.0
    ratio = previous / before
    expected = 2 * np.exp(ratio / temperature) / np.exp(ratio / temperature).sum()
    np.testing.assert_allclose(DynamicWeightAverage.dwa_weights(previous, before, temperature), expected, rtol=1e-6)
    # The task whose loss fell less gets more weight.
    assert expected[1] > 1 > expected[0]


# -- shared variables, per-task gradients, backends --------------------------------
def _mmoe_and_batch():
    frame = make_synthetic(64, num_features=6, seed=0)
    x = {"numeric": frame[[f"x{i}" for i in range(6)]].to_numpy("float32")}
    y = {t: frame[[t]].to_numpy("float32") for t in ("y0", "y1")}
    layout = {"numeric_dim": 6, "tables": {}, "categorical": {}, "multi_categorical": {}}
    model = MMoE([RegressionTask("y0"), RegressionTask("y1")], layout, num_experts=3, name="mmoe")
    return model, x, y, layout


def test_split_variables_finds_experts_shared_and_gates_task_specific():
    model, x, _, layout = _mmoe_and_batch()
    shared, specific = split_variables(model, x)
    assert {v.path.split("/", 1)[1] for v in shared} == {"mixture/experts/kernel_0", "mixture/experts/bias_0"}
    assert any("gate_0" in v.path for v in specific["y0"]) and not any("gate_1" in v.path for v in specific["y0"])
    assert all("tower_y1" in v.path or "gate_1" in v.path for v in specific["y1"])
    single = SingleTask([RegressionTask("y0"), RegressionTask("y1")], layout)
    assert split_variables(single, x)[0] == []


def test_per_task_gradients_match_a_single_task_loss():
    import tensorflow as tf

    model, x, y, _ = _mmoe_and_batch()
    losses, grads, shared = per_task_gradients(model, x, y, training=False)
    with tf.GradientTape() as tape:
        alone = keras.losses.mean_squared_error(y["y1"], model(x)["y1"])
        alone = tf.reduce_mean(alone)
    expected = tape.gradient(alone, shared)
    np.testing.assert_allclose(float(losses["y1"]), float(alone), rtol=1e-6)
    np.testing.assert_allclose(flatten(grads["y1"]).numpy(), flatten(expected).numpy(), rtol=1e-5, atol=1e-7)


def test_gradient_methods_refuse_other_backends(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match=r"'pcgrad'.*\['tensorflow'\].*'jax'"):
        check_gradient_backend("Task weighting 'pcgrad'")
    model, x, _, _ = _mmoe_and_batch()
    model(x)
    model.compile_for_tasks()
    with pytest.raises(ConfigError, match="tensorflow"):
        PCGrad().attach(model, x)


# -- config ----------------------------------------------------------------------
def test_weighting_config_defaults_round_trip_and_errors():
    config = _config()
    assert config.weighting.kind == "static" and config.get_config()["weighting"] == {"kind": "static"}
    config = _config("weighting={kind: gradnorm, every_k_steps: 4}")
    assert config.get_config()["weighting"] == {"kind": "gradnorm", "alpha": 1.5, "learning_rate": 0.025,
                                             "every_k_steps": 4}
    assert parse_config(config.get_config()).get_config() == config.get_config()
    cases = {
        "weighting={kind: gradnorm, alpah: 2}": r"weighting\.alpah.*Did you mean 'alpha'",
        "weighting={kind: pcgard}": r"weighting\.kind.*Did you mean 'pcgrad'",
        "weighting={kind: uncertainty, every_k_steps: 2}": r"weighting\.every_k_steps.*gradient-level",
        "weighting={kind: pcgrad, every_k_steps: 0}": r"every_k_steps must be an integer >= 1",
        "weighting={kind: dwa, temperature: cold}": r"weighting\.temperature.*number",
        "weighting={kind: mgda, normalization: l1}": r"weighting\.normalization",
        "weighting=[pcgrad]": r"'weighting' must be a mapping",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            _config(override)
    assert parse_weighting(None).kind == "static"


# -- training through mtrec.train --------------------------------------------------
@pytest.mark.parametrize("weighting", [
    "{kind: static}", "{kind: uncertainty}", "{kind: dwa}", "{kind: gradnorm}",
    "{kind: pcgrad, every_k_steps: 2}", "{kind: mgda}",
])
def test_each_strategy_trains_logs_weights_and_reloads(weighting, tmp_path):
    epochs = 3 if "dwa" in weighting else 2  # DWA has no loss ratio before its third epoch
    config = _config(f"weighting={weighting}", f"training.epochs={epochs}")
    result = train(config, tmp_path / "run")
    kind = config.weighting.kind
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics) == epochs
    weights = np.array([[epoch["train"][t]["weight"] for t in ("y0", "y1")] for epoch in metrics])
    assert np.isfinite(weights).all() and (weights > 0).all()
    if kind in ("static", "pcgrad"):
        np.testing.assert_array_equal(weights, 1.0)
    if kind in ("dwa", "gradnorm", "mgda"):  # these keep the weights summing to the number of tasks
        np.testing.assert_allclose(weights.sum(axis=1), 2.0, rtol=1e-5)
    if kind == "dwa":
        np.testing.assert_array_equal(weights[:2], 1.0)
        assert weights[2, 0] != 1.0
    if kind == "pcgrad":
        assert 0.0 <= metrics[-1]["train"]["total"]["pcgrad_conflict_rate"] <= 1.0
    assert "y0_weight" in pd.read_csv(tmp_path / "run" / "metrics.csv").columns
    # The model learned: test RMSE under the constant predictor's on both tasks.
    report = result.report["test"]
    for task in ("y0", "y1"):
        assert report[task]["rmse"] < report[task]["constant_baseline"]["rmse"]
    # Saved and reloaded, it predicts the same.
    x = result.prepared.splits["test"].features
    before, after = result.model.predict(x, verbose=0), load_run(tmp_path / "run").model.predict(x, verbose=0)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_every_k_steps_applies_the_gradient_method_on_one_step_in_k(tmp_path):
    from conftest import built_model
    from mtrec.data.tf_dataset import make_dataset
    from mtrec.training.run import compile_model
    from mtrec.weighting import WeightingLogger

    config = _config("weighting={kind: pcgrad, every_k_steps: 3}", "training.steps_per_execution=4")
    model, prepared = built_model(config)
    split = prepared.splits["train"]
    compile_model(model, config)
    strategy = config.weighting.build().attach(model, split.features, seed=1)
    model.fit(make_dataset(split.features, split.labels, 64), epochs=2, verbose=0,
              callbacks=[WeightingLogger(strategy)])
    per_epoch = -(-len(split) // 64)
    steps = range(per_epoch, 2 * per_epoch)  # the last epoch's global step numbers
    assert int(strategy._step.numpy()) == 2 * per_epoch
    assert float(strategy._heavy_steps.numpy()) == sum(1 for s in steps if s % 3 == 0)


def test_dwa_custom_step_matches_keras_step_while_weights_are_one():
    """DWA's first epoch (weights 1) must train exactly like Keras' own step with static weights."""
    from mtrec.data.tf_dataset import make_dataset
    from mtrec.weighting import WeightingLogger

    model_a, x, y, layout = _mmoe_and_batch()
    trained = []
    for weighting in (None, DynamicWeightAverage()):
        keras.utils.set_random_seed(5)
        model = MMoE([RegressionTask("y0"), RegressionTask("y1")], layout, num_experts=3)
        model(x)
        model.compile_for_tasks(keras.optimizers.Adam(0.01), steps_per_execution=2)
        callbacks = []
        if weighting is not None:
            weighting.attach(model, x)
            callbacks = [WeightingLogger(weighting)]
        model.fit(make_dataset(x, y, 16), epochs=1, verbose=0, callbacks=callbacks)
        trained.append([v.numpy() for v in model.trainable_variables])
    moved = max(np.abs(a).max() for a in trained[0])
    assert moved > 0
    for a, b in zip(*trained):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_uncertainty_weighting_gives_the_noisy_task_less_weight(tmp_path):
    frame = make_synthetic(3000, num_features=10, correlation=0.9, seed=4)
    rng = np.random.default_rng(0)
    frame["y1"] = frame["y1"] + rng.normal(scale=3.0, size=len(frame))  # noise variance 9
    # A higher learning rate than the quickstart's, so that 3 short epochs fit the clean task. On the
    # raw scale (standardize: false) the noisy task's loss is ~9 against ~0 and its weight falls below 1.
    config = _config("weighting={kind: uncertainty, learning_rate: 0.05}", "training.epochs=3",
                     "training.learning_rate=0.02", "tasks.0.standardize=false", "tasks.1.standardize=false")
    train(config, tmp_path / "run", frame=frame)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    noisy = [epoch["train"]["y1"]["weight"] for epoch in metrics]
    clean = [epoch["train"]["y0"]["weight"] for epoch in metrics]
    assert noisy[-1] < 0.5 * clean[-1]
    assert noisy[-1] < noisy[0] < 1.0  # falls from its starting weight of 1, epoch after epoch


def test_loss_level_strategies_keep_keras_loss_and_take_the_objectives_gradient():
    """Uncertainty in Keras' own step: the loss value is Keras', its gradient that of sum exp(-s) L + s."""
    import tensorflow as tf

    from mtrec.weighting import UncertaintyWeighting, task_losses

    model, x, y, _ = _mmoe_and_batch()
    model(x)
    model.compile_for_tasks()
    strategy = UncertaintyWeighting(initial_log_variance=0.5).attach(model, x)
    variables = model.trainable_variables
    assert any(v is strategy.values for v in variables)  # the model's optimizer trains the log-variances
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x)
        keras_loss = model.compute_loss(x, y, y_pred, training=False)
        loss = model.compute_loss(x, y, y_pred, training=True)
        raw = task_losses(model, y, y_pred)
        s = strategy.values
        objective = tf.reduce_sum(tf.exp(-s) * tf.stack([raw["y0"], raw["y1"]]) + s)
    assert float(loss) == float(keras_loss)
    np.testing.assert_allclose(float(keras_loss), float(raw["y0"] + raw["y1"]), rtol=1e-6)
    got, want = tape.gradient(loss, variables), tape.gradient(objective, variables)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-7)
    # d/ds_t (exp(-s_t) L_t + s_t) = 1 - exp(-0.5) L_t
    np.testing.assert_allclose(got[-1].numpy(), 1 - np.exp(-0.5) * np.array([float(raw["y0"]), float(raw["y1"])]),
                               rtol=1e-5)
    assert float(strategy._weight_steps.numpy()) == 1.0  # the training call counted, the other not
    np.testing.assert_allclose(strategy._weight_sum.numpy(), np.exp(-0.5), rtol=1e-6)
