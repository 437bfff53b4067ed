"""Trains the quick-start config with `training.strategy=mirrored` on two CPU devices, in its own
process (run by tests/test_distribution.py; the backend comes from KERAS_BACKEND).

TensorFlow: two logical CPU devices, as Keras's own MirroredStrategy integration test makes them.
JAX: the caller sets XLA_FLAGS=--xla_force_host_platform_device_count=2.

Usage: python tests/distribution_run.py RUN_DIR [key=value ...]; prints one JSON line.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtrec.config import apply_overrides, parse_config  # noqa: E402
from mtrec.quickstart import QUICKSTART_CONFIG  # noqa: E402
from mtrec.training.distribution import local_devices  # noqa: E402
from mtrec.training.run import train  # noqa: E402
from mtrec.training.trained_run import load_run  # noqa: E402


def main() -> None:
    run_dir = Path(sys.argv[1])
    overrides = ["training.epochs=3", "data.synthetic.n_rows=1500", "training.verbose=0", "training.batch_size=100",
                 "scoring.batch_size=50", "training.strategy=mirrored", *sys.argv[2:]]
    result = train(parse_config(apply_overrides(QUICKSTART_CONFIG, overrides)), run_dir)
    x = result.prepared.splits["test"].features
    before = result.model.predict(x, verbose=0)
    after = load_run(run_dir).model.predict(x, verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "devices": [str(d) for d in local_devices()],
        "loss": [float(v) for v in result.history["loss"]],
        "test_rows": int(len(next(iter(x.values())))),
        "predicted_rows": {k: int(len(v)) for k, v in before.items()},
        "reload_max_diff": max(float(np.abs(before[k] - after[k]).max()) for k in before),
        "test": {k: {"rmse": v["rmse"], "baseline": v["constant_baseline"]["rmse"]}
                 for k, v in result.report["test"].items()},
    }))


if __name__ == "__main__":
    main()
