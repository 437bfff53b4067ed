"""Standardized regression targets: three tasks of very different scales (issue 16).

A synthetic health table like the issue's: systolic blood pressure (sd 17),
BMI (sd 7) and cholesterol (sd 1.1), three regression tasks sharing one
signal, each with a part of its own. Without standardization `val_loss` is
almost all blood pressure's MSE, so early stopping follows that task and the
shared layers serve it; with the default (`standardize: true`) each task's
loss is on its standardized scale. Both runs get the same rows, split, model,
epochs and early stopping (`val_loss`, patience 3); the table gives each
task's test R² (mean over seeds).

    python -m benchmarks.regression_scales [--rows 20000] [--seeds 3] [--out bench_results/regression_scales.json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, report, run_each
from mtrec.config import parse_config
from mtrec.training.run import train

#: Target name -> (mean, sd), as in the issue's survey.
TARGETS = {"bp": (125.0, 17.0), "bmi": (27.0, 7.0), "chol": (5.2, 1.1)}


def make_table(rows: int, seed: int) -> pd.DataFrame:
    """Eight numeric features; each target is a shared signal, a signal of its own and noise, scaled."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    shared = x[:, 0] + 0.7 * x[:, 1] * x[:, 2] + np.sin(2 * x[:, 3])
    own = {"bp": x[:, 4], "bmi": np.tanh(2 * x[:, 5]), "chol": x[:, 6] * x[:, 7]}
    mix = {"bp": (0.8, 0.3, 0.5), "bmi": (0.6, 0.4, 0.7), "chol": (0.35, 0.35, 0.9)}
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    for name, (mean, sd) in TARGETS.items():
        a, b, c = mix[name]
        z = a * _z(shared) + b * _z(own[name]) + c * rng.normal(size=rows)
        frame[name] = mean + sd * _z(z)
    return frame


def _z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / v.std()


def run_once(rows: int, standardize: bool, seed: int, work: Path) -> dict[str, Any]:
    """Trains one shared-bottom model on the three targets and returns each task's test R²."""
    config = parse_config({
        "name": "regression_scales", "seed": seed,
        "data": {"split": {"seed": seed}},
        "features": [{"name": "x*", "kind": "numeric"}],
        "tasks": [{"name": n, "kind": "regression", "standardize": standardize} for n in TARGETS],
        "model": {"kind": "shared_bottom", "bottom": {"units": [64, 32]}, "tower_units": [16]},
        "training": {"epochs": 40, "batch_size": 256, "learning_rate": 0.002, "verbose": 0,
                     "early_stopping": {"monitor": "val_loss", "patience": 3}},
    })
    result = train(config, work / f"{standardize}-{seed}", frame=make_table(rows, seed))
    test = result.report["test"]
    return {"standardize": standardize, "seed": seed,
            "epochs": len(next(iter(result.history.values()))),
            **{f"{n}_r2": test[n]["r2"] for n in TARGETS}}


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("regression_scales", __doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    calls = [(args.rows, standardize, seed) for seed in range(1, args.seeds + 1) for standardize in (False, True)]
    results = run_each(calls, run_once)
    table = pd.DataFrame(results)
    mean = table.groupby("standardize").mean(numeric_only=True).drop(columns="seed")
    sd = table.groupby("standardize").std(numeric_only=True).drop(columns="seed")
    rows = [{"standardize": key, "epochs": mean.loc[key, "epochs"],
             **{f"{n} R²": f"{mean.loc[key, f'{n}_r2']:.4f} ± {sd.loc[key, f'{n}_r2']:.4f}" for n in TARGETS}}
            for key in mean.index]
    report(None, rows, {"rows": args.rows, "seeds": args.seeds, "runs": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
