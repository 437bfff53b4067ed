"""Fits a two-output model with mtrec's masked losses on one device and under MirroredStrategy on two
logical CPUs, with SGD, and prints both runs' losses and kernels as one JSON line
(run by tests/test_distribution.py in its own process: logical devices are set before TensorFlow starts)."""

import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from mtrec.tasks import MaskedLoss  # noqa: E402

rng = np.random.default_rng(0)
x = rng.normal(size=(400, 4)).astype("float32")
y = (x @ np.ones((4, 1))).astype("float32")
y_missing = np.where(rng.random((400, 1)) < 0.3, np.nan, y).astype("float32")
runs = {}
for name, strategy in (("one", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        inputs = keras.Input((4,))
        model = keras.Model(inputs, {"a": keras.layers.Dense(1, name="a")(inputs),
                                     "b": keras.layers.Dense(1, name="b")(inputs)})
        model.compile("sgd", loss={"a": MaskedLoss("mse"), "b": MaskedLoss("mse")})
    history = model.fit(x, {"a": y, "b": y_missing}, batch_size=100, epochs=2, verbose=0, shuffle=False)
    runs[name] = {"loss": history.history["loss"],
                  "kernel": [float(v) for v in model.get_layer("a").kernel.numpy().ravel()]}
print(json.dumps(runs))
