"""Speed benchmark: mtrec's MMoE against a minimal hand-written Keras 3 MMoE of the same size.

Both train on the same synthetic arrays (200,000 rows x 100 features, 8
experts x 16 units, towers of 8, two regression tasks) in the same process.
mtrec runs with its defaults (input pipeline, `steps_per_execution`, scoring
batch size); the hand-written model uses plain `fit`/`predict` on NumPy
arrays. Training speed is measured after the first epoch (compilation and
tracing excluded).

    python -m benchmarks.speed [--rows 200000] [--epochs 3] [--out bench_results/speed.json]

Prints a table and writes JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from benchmarks.harness import (EpochTimer, Stopwatch, argument_parser, machine_info, reference_mmoe, report,
                                synthetic_arrays)
from mtrec.config import ScoringConfig, TrainingConfig
from mtrec.data.tf_dataset import make_dataset
from mtrec.scoring import predict_arrays


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


def _steady_rate(rows: int, seconds: list[float]) -> float:
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return rows / (sum(steady) / len(steady))


def _rate(rows: int, score: Callable[[], Any]) -> float:
    """Rows per second of the call `score()`."""
    with Stopwatch() as clock:
        score()
    return rows / clock.wall


def run_benchmark(rows: int = 200_000, num_features: int = 100, epochs: int = 3,
                  seed: int = 0) -> dict[str, Any]:
    """Runs both models; returns the measurements."""
    features, y = synthetic_arrays(rows, num_features, correlation=0.9, seed=seed)
    x = features["numeric"]
    training, scoring = TrainingConfig(), ScoringConfig()
    batch_size = training.batch_size

    # mtrec, default settings.
    keras.utils.set_random_seed(seed)
    model = reference_mmoe(num_features, training)
    timer = EpochTimer()
    model.fit(make_dataset(features, y, batch_size, shuffle=True, seed=seed),  # the dataset shuffles
              epochs=epochs, callbacks=[timer], verbose=0, shuffle=False)
    predict_arrays(model, {"numeric": x[:scoring.batch_size]}, scoring.batch_size)  # warm-up
    mtrec_score = _rate(rows, lambda: predict_arrays(model, features, scoring.batch_size))
    mtrec_train = _steady_rate(rows, timer.seconds)

    # Hand-written Keras 3 MMoE, plain fit/predict on the same arrays.
    keras.utils.set_random_seed(seed)
    base = handwritten_mmoe(num_features)
    base.compile(keras.optimizers.Adam(training.learning_rate), loss=["mse", "mse"])
    timer = EpochTimer()
    base.fit(x, [y["y0"], y["y1"]], batch_size=batch_size, epochs=epochs, callbacks=[timer], verbose=0)
    base_train = _steady_rate(rows, timer.seconds)
    base.predict(x[:1024], verbose=0)  # warm-up
    base_score_default = _rate(rows, lambda: base.predict(x, verbose=0))  # Keras default batch size (32)
    base_score_same = _rate(rows, lambda: base.predict(x, batch_size=scoring.batch_size, verbose=0))

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
    parser = argument_parser("speed", __doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
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
    title = (f"MMoE, {args.rows:,} rows x {args.features} features, 8 experts x 16, towers 8, "
             f"batch {result['batch_size']}, {result['machine']['cpus']} CPUs, {result['machine']['backend']}")
    report(title, rows, result, args.out, digits=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
