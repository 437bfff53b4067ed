"""Soft parameter sharing and cross-stitch networks."""

import keras
import numpy as np
from keras import ops

from mtrec.layers import CrossStitchUnit
from mtrec.models import CrossStitch, SingleTask, SoftSharing
from mtrec.tasks import RegressionTask

TASKS = [RegressionTask("a"), RegressionTask("b")]
LAYOUT = {"numeric_dim": 6, "tables": {}, "categorical": {}, "multi_categorical": {}}


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    return {"numeric": x}, {"a": x[:, :1] * 2, "b": x[:, 1:2] - x[:, :1]}


def test_penalty_zero_is_single_task():
    x, y = _data()
    keras.utils.set_random_seed(3)
    single = SingleTask(TASKS, LAYOUT)
    keras.utils.set_random_seed(3)
    soft = SoftSharing(TASKS, LAYOUT, penalty=0.0)
    for model in (single, soft):
        model(x)
        model.compile_for_tasks("adam")
    assert len(soft.trainable_weights) == len(single.trainable_weights)
    assert soft.count_params() == single.count_params()
    soft.set_weights(single.get_weights())
    batch = ({k: v[:64] for k, v in x.items()}, {k: v[:64] for k, v in y.items()})
    loss_single = single.evaluate(*batch, verbose=0, return_dict=True)["loss"]
    loss_soft = soft.evaluate(*batch, verbose=0, return_dict=True)["loss"]
    assert loss_soft == loss_single


def test_penalty_adds_the_weight_distance_to_the_loss():
    x, y = _data()
    model = SoftSharing(TASKS, LAYOUT, penalty=0.5)
    model(x)
    expected = 0.5 * sum(
        float(np.sum((ops.convert_to_numpy(a) - ops.convert_to_numpy(b)) ** 2))
        for a, b in model.tied_weights())
    model(x)
    assert float(ops.convert_to_numpy(model.losses[0])) == np.float32(expected) or \
        abs(float(ops.convert_to_numpy(model.losses[0])) - expected) < 1e-3 * expected


def test_large_penalty_pulls_task_networks_together():
    x, y = _data(1024)
    distances = {}
    for penalty in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = SoftSharing(TASKS, LAYOUT, penalty=penalty)
        model(x)
        model.compile_for_tasks(keras.optimizers.Adam(0.01))
        model.fit(x, y, epochs=10, batch_size=128, verbose=0)
        distances[penalty] = float(ops.convert_to_numpy(model.weight_distance()))
    assert distances[1.0] < 0.1 * distances[0.0], distances


def test_cross_stitch_unit_starts_near_identity_and_mixes():
    unit = CrossStitchUnit(num_tasks=3, self_weight=0.8)
    a, b, c = (np.full((2, 4), v, dtype="float32") for v in (1.0, 2.0, 3.0))
    out = [ops.convert_to_numpy(t) for t in unit([a, b, c])]
    alpha = ops.convert_to_numpy(unit.alpha)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[0], 0.8 * 1 + 0.1 * 2 + 0.1 * 3, rtol=1e-6)
    assert CrossStitchUnit.from_config(unit.get_config()).get_config() == unit.get_config()


def test_cross_stitch_with_identity_units_keeps_tasks_apart():
    x, _ = _data(8)
    model = CrossStitch(TASKS, LAYOUT, bottom={"units": [5, 4]}, self_weight=1.0)
    base = model(x)
    # Changing task b's first layer cannot move task a's prediction while the units are the identity.
    model.dense[0][1].kernel.assign(model.dense[0][1].kernel + 1.0)
    after = model(x)
    np.testing.assert_array_equal(ops.convert_to_numpy(base["a"]), ops.convert_to_numpy(after["a"]))
    assert not np.allclose(ops.convert_to_numpy(base["b"]), ops.convert_to_numpy(after["b"]))
