"""The quickstart: MMoE versus SharedBottom on the MMoE paper's synthetic data, at two task correlations.

Runs with no data at all. The two model configs below are also in
`configs/quickstart.yaml` and `configs/synthetic_shared_bottom.yaml` (a test
keeps them equal).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from mtrec.config import apply_overrides, parse_config
from mtrec.utils.tables import markdown_table

#: MMoE with the paper's synthetic-experiment sizes: 8 experts of 16 units, towers of 8.
QUICKSTART_CONFIG: dict[str, Any] = {
    "name": "quickstart",
    "seed": 42,
    "data": {
        "synthetic": {"n_rows": 12000, "num_features": 100, "correlation": 0.9,
                      "num_tasks": 2, "seed": 7},
        "split": {"kind": "random", "fractions": [0.8, 0.1, 0.1], "seed": 2018},
    },
    "features": [{"name": "x*", "kind": "numeric"}],
    "tasks": [
        {"name": "y0", "kind": "regression"},
        {"name": "y1", "kind": "regression"},
    ],
    "model": {"kind": "mmoe", "num_experts": 8, "expert_units": [16], "tower_units": [8]},
    "training": {"epochs": 40, "batch_size": 256, "learning_rate": 0.003,
                 "early_stopping": {"monitor": "val_loss", "patience": 4}},
}

#: SharedBottom of about the same number of parameters as the MMoE above.
SHARED_BOTTOM_MODEL: dict[str, Any] = {
    "kind": "shared_bottom", "bottom_units": [128], "tower_units": [8],
}


def quickstart_configs(correlation: float) -> dict[str, dict[str, Any]]:
    """The raw configs of the quickstart's two models at one task correlation."""
    mmoe = apply_overrides(QUICKSTART_CONFIG, [f"data.synthetic.correlation={correlation}"])
    shared = copy.deepcopy(mmoe)
    shared["model"] = copy.deepcopy(SHARED_BOTTOM_MODEL)
    return {"shared_bottom": shared, "mmoe": mmoe}


def run_quickstart(out_dir: str | Path = "runs/quickstart",
                   correlations: tuple[float, ...] = (0.5, 0.9),
                   overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """Trains SharedBottom and MMoE at each correlation; returns one table row per run.

    Args:
        out_dir: folder of the run directories.
        correlations: task correlations of the synthetic data.
        overrides: `key=value` overrides applied to every config.

    Returns:
        Rows with the model, correlation, each task's test R² and RMSE, and seconds.
    """
    from mtrec.training.run import train

    rows = []
    for correlation in correlations:
        for kind, raw in quickstart_configs(correlation).items():
            # One summary line per run instead of 4 x 40 progress bars; overridable.
            config = parse_config(apply_overrides(raw, ["training.verbose=0", *(overrides or [])]))
            started = time.perf_counter()
            result = train(config, Path(out_dir) / f"corr{correlation}" / kind, overwrite=True)
            row: dict[str, Any] = {"correlation": str(correlation), "model": kind}
            for task in config.tasks:
                test = result.report["test"][task.name]
                row[f"{task.name} R2"] = test["r2"]
                row[f"{task.name} RMSE"] = test["rmse"]
            row["epochs"] = len(result.history["loss"])
            row["seconds"] = f"{time.perf_counter() - started:.1f}"
            rows.append(row)
            print(f"  corr={correlation} {kind}: done in {row['seconds']} s", flush=True)
    return rows


def print_quickstart(rows: list[dict[str, Any]]) -> None:
    """Prints the comparison table."""
    print()
    print("Test metrics on the MMoE paper's synthetic data (higher R2 / lower RMSE is better):")
    print(markdown_table(rows))
