"""One of several processes training an MMoE data-parallel over `jax.distributed` (gloo, CPU),
started by `mtrec.training.distribution.launch_local` from tests/test_distribution.py.

Each process joins with the KERAS_DISTRIBUTION_* variables, sets the same seed, fits on its own
share of the rows (the global batch is split between the processes), and process 0 alone saves
a one-device copy of the model. Prints one JSON line per process.

Usage: python tests/multiprocess_run.py OUT_DIR
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtrec.training.distribution import initialize_processes, local_rows, strategy_scope, unreplicated  # noqa: E402

process_id, num_processes = initialize_processes(timeout_s=60)  # first: before anything runs on a device

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mtrec.models import MMoE  # noqa: E402
from mtrec.tasks import RegressionTask  # noqa: E402

GLOBAL_BATCH = 128


def main() -> None:
    out = Path(sys.argv[1])
    keras.utils.set_random_seed(0)  # the same initial weights in every process
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 5)).astype("float32")
    y = (2 * x[:, :1] + x[:, 1:2] ** 2).astype("float32")
    layout = {"numeric_dim": 5, "tables": {}, "categorical": {}, "multi_categorical": {}}
    mine = local_rows(len(x), process_id, num_processes)
    with strategy_scope("mirrored"):
        model = MMoE([RegressionTask("a"), RegressionTask("b")], layout, num_experts=2, expert={"units": [8]})
        model({"numeric": x[:2]})
        model.compile_for_tasks("adam")
        history = model.fit({"numeric": x[mine]}, {"a": y[mine], "b": -y[mine]},
                            batch_size=GLOBAL_BATCH // num_processes, epochs=3, shuffle=False, verbose=0)
    copy = unreplicated(model, {"numeric": x[:2]})
    if process_id == 0:
        copy.save(out / "model.keras")
    predictions = copy.predict({"numeric": x[:64]}, verbose=0)["a"]
    print(json.dumps({"process": process_id, "processes": num_processes, "devices": len(keras.distribution.list_devices()),
                      "rows": mine.stop - mine.start, "loss": [float(v) for v in history.history["loss"]],
                      "checksum": float(np.sum(predictions))}), flush=True)


if __name__ == "__main__":
    main()
