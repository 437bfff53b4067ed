"""A shipped pipeline over several split seeds: mean ± sd across splits, not one split (issue 16).

One split can mislead: Hillstrom's test split holds 111 conversions, so a
conversion AUC has a standard error of about 0.03 there, more than any gap
between the models. This runs the pipeline once per split seed (its
`experiment.data.split.seed` overridden; model seeds, models and LightGBM as
configured), each into `<runs>/split_<K>/`, and reports for every model and
reference each report metric as mean ± sd over the splits of the per-split
value (a model's value on one split is its mean over its model seeds). The gain
against the baseline is computed within each split, then averaged: a paired
comparison, so it is less noisy than the difference of two means.

Each split's steps are skipped when current (as with `mtrec pipeline`), so a
rerun with the same arguments only aggregates; `--force` reruns them all.

    python -m benchmarks.split_seeds hillstrom [--split-seeds 2018 2019 2020 2021 2022] \\
        [--runs runs/split_seeds/hillstrom] [--force] [--out bench_results/split_seeds.json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import argument_parser, report
from mtrec.pipelines.config import config_path, load_pipeline_config
from mtrec.pipelines.runner import run_pipeline


def run_splits(name: str, split_seeds: list[int], runs: Path, force: bool) -> list[dict[str, Any]]:
    """Runs pipeline `name` once per split seed and returns each evaluation, with its wall seconds.

    Args:
        name: a shipped pipeline (`configs/pipeline_<name>.yaml`).
        split_seeds: the values of `experiment.data.split.seed`, one run each.
        runs: the parent of the output folders `split_<K>/`.
        force: rerun steps even when current.
    """
    evaluations = []
    for seed in split_seeds:
        config = load_pipeline_config(config_path(name), [f"experiment.data.split.seed={seed}",
                                                          f"output_dir={runs / f'split_{seed}'}"])
        results = run_pipeline(config, force=force, progress=False)
        evaluations.append({**results["evaluate"], "split_seed": seed, "wall_seconds": results["seconds"]})
    return evaluations


def _head(entry: dict[str, Any], task: str, metric: str) -> float | None:
    stats = entry.get("metrics", {}).get(task, {}).get(metric)
    return None if stats is None else float(stats["mean"])


def _cell(values: list[float], digits: int, sign: str = "", unit: str = "") -> str:
    """`mean ± sd` (sd with ddof 1; 0 for one value), `-` for none."""
    if not values:
        return "-"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):{sign}.{digits}f}{unit} ± {sd:.{digits}f}{unit}"


def summarize(evaluations: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Table rows and JSON result over the splits' evaluations (`evaluation.json` contents).

    Returns:
        `(rows, result)`: a row per model and reference with each report metric
        and the gain of each task's first metric as mean ± sd over the splits;
        `result` holds the per-split values behind every cell.
    """
    first = evaluations[0]
    shown, baseline = first["report_metrics"], first["baseline"]
    names = list(first["models"]) + list(first["references"])
    rows, per_split = [], {}
    for name in names:
        entries = [e["models"].get(name) or e["references"].get(name) or {} for e in evaluations]
        row: dict[str, Any] = {"model": f"{name} (baseline)" if name == baseline else name}
        per_split[name] = {}
        for task, metrics in shown.items():
            for metric in metrics:
                values = [v for v in (_head(e, task, metric) for e in entries) if v is not None]
                per_split[name][f"{task} {metric}"] = values
                row[f"{task} {metric}"] = _cell(values, 4)
            gains = [g for g in ((e.get("gain", {}).get(task) or {}).get("value") for e in entries)
                     if g is not None and not np.isnan(g)]
            per_split[name][f"{task} gain"] = gains
            percent = (entries[0].get("gain", {}).get(task) or {}).get("unit") == "percent"
            row[f"{task} gain"] = "" if name == baseline else \
                _cell(gains, 2 if percent else 4, "+", "%" if percent else "")
        rows.append(row)
    result = {"pipeline": first["pipeline"], "baseline": baseline, "report_metrics": shown,
              "split_seeds": [e.get("split_seed") for e in evaluations],
              "model_seeds": first.get("seeds"), "rows": [e.get("rows") for e in evaluations],
              "wall_seconds": [e.get("wall_seconds") for e in evaluations], "per_split": per_split}
    return rows, result


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("split_seeds", __doc__)
    parser.add_argument("name", help="a shipped pipeline, e.g. hillstrom")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[2018, 2019, 2020, 2021, 2022])
    parser.add_argument("--runs", type=Path, default=None, help="default: runs/split_seeds/NAME")
    parser.add_argument("--force", action="store_true", help="rerun every split's steps")
    args = parser.parse_args(argv)
    runs = args.runs or Path("runs/split_seeds") / args.name
    rows, result = summarize(run_splits(args.name, args.split_seeds, runs, args.force))
    title = (f"{args.name}: test metrics, mean ± sd over split seeds {args.split_seeds} "
             f"(per split: each model's mean over model seeds {result['model_seeds']})")
    report(title, rows, result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
