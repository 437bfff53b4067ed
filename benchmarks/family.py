"""Model-family benchmark: every model on the MMoE paper's synthetic tasks, per task correlation.

Each model trains with the budget of `mtrec.quickstart.QUICKSTART_CONFIG`
(`configs/quickstart.yaml`: 12,000 rows, 100 features, two regression tasks,
batch 256, Adam 3e-3, early stopping on validation loss; the quickstart
command itself runs a smaller regime) at each task correlation and seed; the table shows each task's test
R² (mean over seeds, ± standard deviation) and the constant predictor's,
which is 0 by construction. Gated models get 8 experts of 16 units (CGC/PLE:
4 shared + 2 per task per level) so their capacities are comparable.

    python -m benchmarks.family [--correlations 0.5 0.9] [--seeds 3] [--models mmoe ple ...]
        [--out bench_results/family.json]

Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Stopwatch, argument_parser, report, run_each
from mtrec.config import apply_overrides, parse_config
from mtrec.quickstart import QUICKSTART_CONFIG
from mtrec.training.run import train

EXPERTS = {"num_experts": 8, "expert": {"units": [16]}}
PLE_EXPERTS = {"num_shared_experts": 4, "num_task_experts": 2, "expert": {"units": [16]}}
#: The benchmarked variants: label -> model section.
MODELS: dict[str, dict[str, Any]] = {
    "single_task": {"kind": "single_task", "bottom": {"units": [64]}},
    "shared_bottom": {"kind": "shared_bottom", "bottom": {"units": [64]}},
    "omoe": {"kind": "omoe", **EXPERTS},
    "mmoe": {"kind": "mmoe", **EXPERTS},
    "mmoe_dcn": {"kind": "mmoe", "num_experts": 8, "expert": {"kind": "dcn", "units": [16], "projection_dim": 16}},
    "cgc": {"kind": "cgc", **PLE_EXPERTS},
    "ple": {"kind": "ple", "num_levels": 2, **PLE_EXPERTS},
    "soft_sharing": {"kind": "soft_sharing", "bottom": {"units": [64]}, "penalty": 0.001},
    "cross_stitch": {"kind": "cross_stitch", "bottom": {"units": [64, 32]}},
}


def run_one(label: str, correlation: float, seed: int, work: Path) -> dict[str, Any]:
    """Trains one variant at one correlation and seed; returns its test R² per task."""
    raw = apply_overrides(QUICKSTART_CONFIG, [
        f"data.synthetic.correlation={correlation}", f"data.synthetic.seed={seed}", f"seed={seed}",
        "training.verbose=0"])
    raw["model"] = {**MODELS[label], "tower_units": [8]}
    with Stopwatch() as clock:
        result = train(parse_config(raw), work / f"{label}-{correlation}-{seed}")
    test = result.report["test"]
    return {"model": label, "correlation": correlation, "seed": seed,
            "seconds": round(clock.wall, 1),
            "parameters": result.report["model"]["parameters"],
            **{f"{task}_r2": test[task]["r2"] for task in ("y0", "y1")}}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model: mean ± sd of each task's R² at each correlation."""
    rows = []
    for label in dict.fromkeys(r["model"] for r in runs):
        row: dict[str, Any] = {"model": label}
        for corr in sorted({r["correlation"] for r in runs}):
            mine = [r for r in runs if r["model"] == label and r["correlation"] == corr]
            for task in ("y0", "y1"):
                values = np.array([r[f"{task}_r2"] for r in mine])
                row[f"{task} R² @{corr}"] = f"{values.mean():.3f} ± {values.std():.3f}"
        row["params"] = next(r["parameters"] for r in runs if r["model"] == label)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("family", __doc__)
    parser.add_argument("--correlations", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)

    runs = run_each(itertools.product(args.models, args.correlations, range(1, args.seeds + 1)), run_one)
    table = summarize(runs)
    report(None, table, {"correlations": args.correlations, "seeds": args.seeds, "runs": runs, "summary": table},
           args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
