"""One experiment, several seeds: `mtrec train --seeds 1 2 3`.

Each seed trains a regular run into `RUN_DIR/seed<k>/` (`mtrec.training.run.train`,
the experiment's `seed` replaced; the split keeps its own `data.split.seed`, so
every run sees the same rows and only the initialization and batch order
change). Then `RUN_DIR/seeds.json` and `seeds.md` summarize each task's
test metrics (validation when there is no test split) over the seeds: mean,
sample sd and the per-seed values, the spread a single run hides.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mtrec.config import ExperimentConfig
from mtrec.errors import ConfigError
from mtrec.utils.atomic import write_json, write_text
from mtrec.utils.tables import format_value, markdown_table

SUMMARY_JSON, SUMMARY_MD = "seeds.json", "seeds.md"
#: Report entries that describe the rows, not the model (the same for every seed).
DESCRIPTIVE = ("count", "positive_rate", "weight_sum", "weighted_positive_rate")


def seed_run_dir(run_dir: str | Path, seed: int) -> Path:
    """The run directory of one seed."""
    return Path(run_dir) / f"seed{seed}"


def summarize(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """`{"split", "seeds", "metrics": {task: {metric: {"mean", "sd", "values"}}}}` over the seeds' reports.

    The split is `test` when every report has it, else `valid`; sd is the
    sample sd (ddof 1), 0 for one seed. Entries that are not numbers (the
    constant baseline nested in a report) or describe the rows (`DESCRIPTIVE`)
    are left out.
    """
    split = "test" if all(r.get("test") for r in reports.values()) else "valid"
    first = next(iter(reports.values())).get(split) or {}
    metrics: dict[str, dict[str, Any]] = {}
    for task, values in first.items():
        for metric, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or metric in DESCRIPTIVE:
                continue
            per_seed = [float(r[split][task][metric]) for r in reports.values()
                        if isinstance(r.get(split, {}).get(task, {}).get(metric), (int, float))]
            metrics.setdefault(task, {})[metric] = {
                "mean": float(np.mean(per_seed)),
                "sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                "values": per_seed}
    return {"split": split, "seeds": list(reports), "metrics": metrics}


def format_summary(summary: dict[str, Any], title: str) -> str:
    """`seeds.md`: one row per task and metric, mean ± sd and the per-seed values."""
    rows = [{"task": task, "metric": metric, "mean ± sd": f"{format_value(s['mean'])} ± {s['sd']:.4f}",
             "per seed": ", ".join(format_value(v) for v in s["values"])}
            for task, metrics in summary["metrics"].items() for metric, s in metrics.items()]
    return "\n".join([f"# {title}: {summary['split']} metrics over seeds {summary['seeds']}", "",
                      markdown_table(rows), "",
                      "Sample sd (ddof 1) over the seeds; every seed trains on the same split rows "
                      "(data.split.seed), only the initialization and batch order change.", ""])


def _completed(directory: Path, config: ExperimentConfig) -> bool:
    """Whether `directory` holds a completed run of exactly this config."""
    from mtrec.training.run_lock import run_status

    if run_status(directory).get("status") != "completed" or not (directory / "report.json").is_file():
        return False
    try:
        written = yaml.safe_load((directory / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return written == yaml.safe_load(yaml.safe_dump(config.get_config(), sort_keys=False))


def train_seeds(config: ExperimentConfig, seeds: list[int], run_dir: str | Path,
                overwrite: bool = False) -> dict[str, Any]:
    """Trains the experiment once per seed into `RUN_DIR/seed<k>/` and writes the summary.

    A seed whose run directory holds a completed run of this very config is
    not retrained (unless `overwrite`), so a rerun after an interruption
    trains only the seeds left; an interrupted one resumes, and a completed
    run of another config is refused, as `mtrec train` does.

    Args:
        config: the experiment.
        seeds: distinct seeds.
        run_dir: the folder of the per-seed runs and the summary.
        overwrite: retrain completed runs.

    Returns:
        The summary (`summarize`), with `"runs"`: the run directories by seed.

    Raises:
        ConfigError: no seeds, or a seed given twice.
    """
    from mtrec.training.run import train

    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must list distinct seeds. Received: {seeds}")
    run_dir = Path(run_dir)
    reports: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        directory = seed_run_dir(run_dir, seed)
        seeded = dataclasses.replace(config, seed=seed)
        if not overwrite and _completed(directory, seeded):
            reports[seed] = json.loads((directory / "report.json").read_text())
            continue
        reports[seed] = train(seeded, directory, overwrite=overwrite).report
    summary = {**summarize(reports), "runs": {seed: str(seed_run_dir(run_dir, seed)) for seed in seeds}}
    write_json(run_dir / SUMMARY_JSON, summary)
    write_text(run_dir / SUMMARY_MD, format_summary(summary, f"{config.name} ({config.model.kind})"))
    return summary
