"""Overhead benchmark: per-step training time of each task weighting strategy against static weights.

Every variant trains the same MMoE (8 experts x 16 units, towers of 8, two
regression tasks) on the same synthetic arrays (100 features) with the
default training settings (batch 512, `steps_per_execution` 32). Each model
first trains one epoch (tracing and compilation excluded); then, for each
repeat, every variant trains one more epoch in turn (in reverse order every
other repeat), so that a change in the machine's load hits all variants
alike. Reported per variant: the fastest and the median epoch as
milliseconds per step, the ratio of fastest epochs to static weights' (the
least disturbed by other processes on a shared machine), the median over
repeats of the ratio to static weights in the same repeat, and the median
CPU time of the process per step (less sensitive to other processes than
wall time) with its ratio to static weights'.

    python -m benchmarks.weighting [--rows 200000] [--repeats 5] [--out bench_results/weighting.json]

Prints a table and writes JSON.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

import keras
from tqdm import tqdm

from benchmarks.harness import Stopwatch, argument_parser, machine_info, reference_mmoe, report, synthetic_arrays
from mtrec.config import TrainingConfig
from mtrec.data.tf_dataset import make_dataset
from mtrec.weighting import WEIGHTING_KINDS, WeightingLogger

#: (label, kind, params) of every variant; the first is the reference.
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("static", "static", {}),
    ("uncertainty", "uncertainty", {}),
    ("dwa", "dwa", {}),
    ("gradnorm k=1", "gradnorm", {"every_k_steps": 1}),
    ("gradnorm k=4", "gradnorm", {"every_k_steps": 4}),
    ("pcgrad k=1", "pcgrad", {"every_k_steps": 1}),
    ("pcgrad k=4", "pcgrad", {"every_k_steps": 4}),
    ("mgda k=1", "mgda", {"every_k_steps": 1}),
    ("mgda k=4", "mgda", {"every_k_steps": 4}),
]


def _epoch(model: keras.Model, dataset: Any, callbacks: list) -> Stopwatch:
    """The wall and CPU seconds of one training epoch."""
    with Stopwatch() as clock:
        model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)  # the dataset shuffles
    return clock


def run_benchmark(rows: int = 200_000, num_features: int = 100, repeats: int = 5,
                  seed: int = 0, only: list[str] | None = None) -> dict[str, Any]:
    """Trains every variant (or those whose label starts with one of `only`; static always); returns the measurements."""
    variants = [v for i, v in enumerate(VARIANTS)
                if i == 0 or not only or any(v[0].startswith(o) for o in only)]
    x, y = synthetic_arrays(rows, num_features, correlation=0.5, seed=seed)
    training = TrainingConfig()
    steps = -(-rows // training.batch_size)
    dataset = make_dataset(x, y, training.batch_size, shuffle=True, seed=seed)

    runs = []
    for label, kind, params in tqdm(variants, desc="build + first epoch"):
        keras.utils.set_random_seed(seed)
        model = reference_mmoe(num_features, training)
        model({k: v[:1] for k, v in x.items()})
        strategy = WEIGHTING_KINDS[kind](**params).attach(model, x, training.learning_rate, seed)
        callbacks = [WeightingLogger(strategy)]
        first = _epoch(model, dataset, callbacks).wall
        runs.append({"label": label, "model": model, "callbacks": callbacks, "first": first,
                     "seconds": [], "cpu_seconds": []})

    for repeat in tqdm(range(repeats), desc="timed epochs"):
        for run in (runs if repeat % 2 == 0 else runs[::-1]):
            clock = _epoch(run["model"], dataset, run["callbacks"])
            run["seconds"].append(clock.wall)
            run["cpu_seconds"].append(clock.cpu)

    reference = runs[0]["seconds"]
    results = []
    for run in runs:
        ratios = [s / r for s, r in zip(run["seconds"], reference)]
        results.append({
            "variant": run["label"],
            "ms_per_step_min": 1000 * min(run["seconds"]) / steps,
            "ms_per_step_median": 1000 * statistics.median(run["seconds"]) / steps,
            "ratio_to_static_min": min(run["seconds"]) / min(reference),
            "ratio_to_static_paired_median": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "cpu_ms_per_step_median": 1000 * statistics.median(run["cpu_seconds"]) / steps,
            "cpu_ratio_to_static": statistics.median(run["cpu_seconds"]) / statistics.median(runs[0]["cpu_seconds"]),
            "epoch_cpu_seconds": run["cpu_seconds"],
            "first_epoch_s": run["first"],
            "epoch_seconds": run["seconds"],
            "jit_compile": bool(run["model"].jit_compile),
        })
    return {
        "rows": rows, "features": num_features, "steps_per_epoch": steps, "repeats": repeats,
        "batch_size": training.batch_size, "steps_per_execution": training.steps_per_execution,
        "model": "mmoe: 8 experts x 16, towers 8, 2 regression tasks",
        "results": results,
        "machine": {**machine_info(), "load_average_after": os.getloadavg()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("weighting", __doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="variants to time besides static (label prefixes, e.g. pcgrad)")
    args = parser.parse_args(argv)
    result = run_benchmark(args.rows, args.features, args.repeats, only=args.only)
    table = [{"strategy": r["variant"], "ms/step (fastest)": r["ms_per_step_min"],
              "ms/step (median)": r["ms_per_step_median"], "x static (fastest)": r["ratio_to_static_min"],
              "x static (paired median)": r["ratio_to_static_paired_median"],
              "paired range": f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}",
              "CPU ms/step": r["cpu_ms_per_step_median"], "x static (CPU)": r["cpu_ratio_to_static"],
              "first epoch s": r["first_epoch_s"]} for r in result["results"]]
    machine = result["machine"]
    title = (f"MMoE, {args.rows:,} rows x {args.features} features, batch {result['batch_size']}, "
             f"{result['steps_per_epoch']} steps/epoch, {args.repeats} timed epochs each, "
             f"{machine['cpus']} CPUs, {machine['backend']} "
             f"(load average after: {machine['load_average_after'][0]:.1f})")
    report(title, table, result, args.out, digits=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
