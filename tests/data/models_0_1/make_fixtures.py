"""Writes the saved-model fixtures of mtrec 0.1 (run with the 0.1 code; not part of the library).

For each model kind, a tiny model (two features, small widths, one fit step)
is saved as `<case>.keras`, and `<case>.npz` holds its input batch (`x_*`),
its predictions (`y_*`) and, for gated models, its gate weights (`g_*`).
`tests/test_saved_models.py` loads each with the current code and checks the
same numbers come out.

    python tests/data/models_0_1/make_fixtures.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mtrec.models import MODEL_KINDS  # noqa: E402
from mtrec.tasks import BinaryTask, RegressionTask  # noqa: E402

HERE = Path(__file__).resolve().parent
LAYOUT = {"numeric_dim": 3, "tables": {"items": {"input_dim": 6, "output_dim": 2}},
          "categorical": {"item": "items"}, "multi_categorical": {}}
SMALL = {"tower_units": [3]}
CASES = {
    "single_task": ("single_task", {"bottom_units": [4], "bottom_dropout": 0.1}),
    "shared_bottom": ("shared_bottom", {"bottom_units": [4], "bottom_activation": "tanh"}),
    "mmoe": ("mmoe", {"num_experts": 3, "expert_units": [4], "expert_dropout": 0.1, "gate_temperature": 2.0}),
    "omoe": ("omoe", {"num_experts": 3, "expert_units": [4]}),
    "cgc": ("cgc", {"num_shared_experts": 2, "num_task_experts": 1, "expert_units": [4]}),
    "ple": ("ple", {"num_levels": 2, "num_shared_experts": 1, "num_task_experts": 2, "expert_units": [4]}),
    "soft_sharing": ("soft_sharing", {"bottom_units": [4], "penalty": 0.01}),
    "cross_stitch": ("cross_stitch", {"bottom_units": [4, 3]}),
    "mmoe_dcn": ("mmoe", {"num_experts": 2, "expert_units": [4], "expert_kind": "dcn",
                          "num_cross_layers": 1, "cross_projection_dim": 2}),
}


def batch(n: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"numeric": rng.normal(size=(n, 3)).astype("float32"),
            "item": rng.integers(0, 6, n).astype("int32")}


def main() -> None:
    x = batch()
    rng = np.random.default_rng(1)
    y = {"click": rng.integers(0, 2, (16, 1)).astype("float32"),
         "rating": rng.normal(size=(16, 1)).astype("float32")}
    for case, (kind, params) in CASES.items():
        keras.utils.set_random_seed(0)
        tasks = [BinaryTask("click"), RegressionTask("rating")]
        model = MODEL_KINDS[kind](tasks, LAYOUT, name=case, **SMALL, **params)
        model.compile_for_tasks("adam", run_eagerly=True)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        # Saved uncompiled (no optimizer state): the files stay small.
        saved = model.__class__.from_config(model.get_config())
        saved(x)
        saved.set_weights(model.get_weights())
        saved.save(HERE / f"{case}.keras")
        arrays = {f"x_{k}": v for k, v in x.items()}
        arrays.update({f"y_{k}": v for k, v in model.predict(x, verbose=0).items()})
        if model.gated:
            arrays.update({f"g_{k}": v for k, v in model.gate_weights(x).items()})
        np.savez(HERE / f"{case}.npz", **arrays)
        print(case, sorted(arrays))


if __name__ == "__main__":
    main()
