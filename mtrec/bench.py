"""Speed benchmark: mtrec's MMoE against a minimal hand-written Keras 3 MMoE of the same size.

Both train on the same synthetic arrays (200,000 rows x 100 features, 8
experts x 16 units, towers of 8, two regression tasks) in the same process.
mtrec runs with its defaults (input pipeline, `steps_per_execution`, scoring
batch size); the hand-written model uses plain `fit`/`predict` on NumPy
arrays. Training speed is measured after the first epoch (compilation and
tracing excluded).

    python -m mtrec.bench [--rows 200000] [--epochs 3] [--out bench_results/speed.json]

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mtrec.config import ScoringConfig, TrainingConfig  # noqa: E402
from mtrec.data.synthetic import make_synthetic  # noqa: E402
from mtrec.data.tf_dataset import make_dataset  # noqa: E402
from mtrec.models import MMoE  # noqa: E402
from mtrec.scoring import predict_arrays  # noqa: E402
from mtrec.tasks import RegressionTask  # noqa: E402
from mtrec.utils.atomic import write_json  # noqa: E402
from mtrec.utils.tables import markdown_table  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Records each epoch's wall time."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def handwritten_mmoe(num_features: int, num_experts: int = 8, expert_units: int = 16,
                     tower_units: int = 8, num_tasks: int = 2) -> keras.Model:
    """A minimal functional Keras 3 MMoE: Dense experts, one softmax gate per task, towers."""
    inputs = keras.Input(shape=(num_features,))
    experts = keras.ops.stack(
        [keras.layers.Dense(expert_units, activation="relu")(inputs) for _ in range(num_experts)], axis=1)
    outputs = []
    for t in range(num_tasks):
        gate = keras.layers.Dense(num_experts, activation="softmax")(inputs)
        mixed = keras.ops.einsum("be,beu->bu", gate, experts)
        hidden = keras.layers.Dense(tower_units, activation="relu")(mixed)
        outputs.append(keras.layers.Dense(1, name=f"y{t}")(hidden))
    return keras.Model(inputs, outputs)


def mtrec_mmoe(num_features: int, training: TrainingConfig) -> MMoE:
    """The benchmarks' mtrec model, compiled with `training`'s settings.

    MMoE with 8 experts of 16 units and towers of 8 on `num_features` numeric
    inputs, two regression tasks `y0` and `y1`.
    """
    layout = {"numeric_dim": num_features, "tables": {}, "categorical": {}, "multi_categorical": {}}
    model = MMoE([RegressionTask("y0"), RegressionTask("y1")], layout,
                 num_experts=8, expert_units=[16], tower_units=[8])
    model.compile_for_tasks(keras.optimizers.Adam(training.learning_rate),
                            steps_per_execution=training.steps_per_execution,
                            jit_compile=training.jit_compile)
    return model


def machine_info() -> dict[str, Any]:
    """CPUs, Python, Keras and backend: what a benchmark's numbers depend on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "keras": keras.__version__, "backend": keras.backend.backend()}


def _steady_rate(rows: int, seconds: list[float]) -> float:
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return rows / (sum(steady) / len(steady))


def run_benchmark(rows: int = 200_000, num_features: int = 100, epochs: int = 3,
                  seed: int = 0) -> dict[str, Any]:
    """Runs both models; returns the measurements."""
    frame = make_synthetic(rows, num_features=num_features, correlation=0.9, seed=seed)
    x = frame[[f"x{i}" for i in range(num_features)]].to_numpy("float32")
    y = {f"y{t}": frame[f"y{t}"].to_numpy("float32")[:, None] for t in range(2)}
    training, scoring = TrainingConfig(), ScoringConfig()
    batch_size = training.batch_size

    # mtrec, default settings.
    keras.utils.set_random_seed(seed)
    model = mtrec_mmoe(num_features, training)
    timer = EpochTimer()
    model.fit(make_dataset({"numeric": x}, y, batch_size, shuffle=True, seed=seed),
              epochs=epochs, callbacks=[timer], verbose=0)
    features = {"numeric": x}
    predict_arrays(model, {"numeric": x[:scoring.batch_size]}, scoring.batch_size)  # warm-up
    start = time.perf_counter()
    predict_arrays(model, features, scoring.batch_size)
    mtrec_score = rows / (time.perf_counter() - start)
    mtrec_train = _steady_rate(rows, timer.seconds)

    # Hand-written Keras 3 MMoE, plain fit/predict on the same arrays.
    keras.utils.set_random_seed(seed)
    base = handwritten_mmoe(num_features)
    base.compile(keras.optimizers.Adam(training.learning_rate), loss=["mse", "mse"])
    timer = EpochTimer()
    base.fit(x, [y["y0"], y["y1"]], batch_size=batch_size, epochs=epochs, callbacks=[timer], verbose=0)
    base_train = _steady_rate(rows, timer.seconds)
    base.predict(x[:1024], verbose=0)  # warm-up
    start = time.perf_counter()
    base.predict(x, verbose=0)  # Keras default batch size (32)
    base_score_default = rows / (time.perf_counter() - start)
    start = time.perf_counter()
    base.predict(x, batch_size=scoring.batch_size, verbose=0)
    base_score_same = rows / (time.perf_counter() - start)

    return {
        "rows": rows, "features": num_features, "epochs": epochs, "batch_size": batch_size,
        "steps_per_execution": training.steps_per_execution, "jit_compile": training.jit_compile,
        "scoring_batch_size": scoring.batch_size,
        "params": {"mtrec": int(model.count_params()), "handwritten": int(base.count_params())},
        "train_examples_per_s": {"mtrec": mtrec_train, "handwritten": base_train},
        "score_rows_per_s": {"mtrec": mtrec_score, "handwritten_default_batch": base_score_default,
                             "handwritten_same_batch": base_score_same},
        "ratios": {
            "train": mtrec_train / base_train,
            "score_vs_keras_defaults": mtrec_score / base_score_default,
            "score_vs_same_batch": mtrec_score / base_score_same,
        },
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="bench_results/speed.json")
    args = parser.parse_args(argv)
    result = run_benchmark(args.rows, args.features, args.epochs)
    t, s = result["train_examples_per_s"], result["score_rows_per_s"]
    rows = [
        {"measure": "train examples/s (after epoch 1)", "mtrec": t["mtrec"], "hand-written": t["handwritten"],
         "ratio": result["ratios"]["train"]},
        {"measure": "score rows/s (hand-written at Keras default batch 32)", "mtrec": s["mtrec"],
         "hand-written": s["handwritten_default_batch"], "ratio": result["ratios"]["score_vs_keras_defaults"]},
        {"measure": f"score rows/s (both at batch {result['scoring_batch_size']})", "mtrec": s["mtrec"],
         "hand-written": s["handwritten_same_batch"], "ratio": result["ratios"]["score_vs_same_batch"]},
    ]
    print(f"MMoE, {args.rows:,} rows x {args.features} features, 8 experts x 16, towers 8, "
          f"batch {result['batch_size']}, {result['machine']['cpus']} CPUs, {result['machine']['backend']}")
    print(markdown_table(rows, digits=2))
    write_json(args.out, result)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
