"""Step 3, evaluate: per-task test metrics of every model, against SingleTask and LightGBM.

Outputs, under `<output_dir>/`:
    evaluation.json   per model and task: each metric's mean, sd and per-seed
                      values; the relative gain over the baseline model; the
                      constant predictor, LightGBM and any reference predictors
    evaluation.md     the main table (mean ± sd over seeds) and all metrics
    evaluate.json     the step's stamp
    lightgbm/         LightGBM's test predictions and its stamp (refit only
                      when the data or its settings change)

Gain is the relative change (%) of a task's first report metric against the
baseline model's mean, signed so that positive is better (for RMSE a lower
value is a positive gain); a negative gain is negative transfer. For metrics
that live near 0 (R², rank IC) it is the plain difference instead.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec.analysis.transfer import lower_is_better
from mtrec.data.io import write_parquet
from mtrec.errors import ConfigError, DataError
from mtrec.features import FeatureEncoder
from mtrec.pipelines import datasets, gbdt, stamps
from mtrec.pipelines.config import PipelineConfig
from mtrec.pipelines.prepare import fit_labels, prepared_paths, read_split
from mtrec.pipelines.train import PREDICTIONS, RunSpec, plan_runs, prediction_frame
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask, Task
from mtrec.training.evaluation import constant_baseline, task_metrics
from mtrec.training.prepare import encode_labels
from mtrec.utils.atomic import write_json, write_text
from mtrec.utils.tables import format_value, markdown_table

#: Metrics that live near 0, where a relative change means little: their gain is the difference.
ABSOLUTE_GAIN = ("r2", "rank_ic")
LIGHTGBM = "lightgbm"
CONSTANT = "constant"


def default_metric(task: Task) -> str:
    """The headline metric of a task kind."""
    if isinstance(task, BinaryTask):
        return "auc"
    if isinstance(task, RegressionTask) or task.kind == "count":
        return "rmse"
    if isinstance(task, MulticlassTask):
        return "accuracy"
    raise TypeError(f"No default metric for {type(task).__name__}")


def report_metrics(config: PipelineConfig, tasks: list[Task]) -> dict[str, list[str]]:
    """Per main task, the metrics of the main table (config `report_metrics`, else the default)."""
    names = [t.name for t in tasks]
    unknown = [name for name in config.report_metrics if name not in names]
    if unknown:
        raise ConfigError(f"report_metrics names unknown task(s) {unknown}; tasks: {names}")
    return {t.name: list(config.report_metrics.get(t.name) or [default_metric(t)]) for t in tasks}


def relative_gain(value: float, reference: float, metric: str) -> float:
    """Improvement of `value` over `reference`, positive = better: in percent, or the
    difference for `ABSOLUTE_GAIN` metrics.

    Raises:
        DataError: the metric's direction is unknown (`mtrec.analysis.transfer.lower_is_better`).
    """
    if reference is None or value is None or not math.isfinite(reference):
        return float("nan")
    sign = -1.0 if lower_is_better(metric) else 1.0
    if metric in ABSOLUTE_GAIN:
        return sign * (value - reference)
    if reference == 0:
        return float("nan")
    return 100.0 * sign * (value - reference) / abs(reference)


def predictions_by_task(tasks: list[Task], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Reads a predictions table (as `prediction_frame` wrote it) back into arrays by task."""
    out = {}
    for task in tasks:
        if isinstance(task, MulticlassTask):
            out[task.name] = frame[[f"{task.name}_p{k}" for k in range(task.num_classes)]].to_numpy()
        else:
            out[task.name] = frame[task.name].to_numpy()
    return out


def score_predictions(tasks: list[Task], labels: dict[str, np.ndarray], predictions: dict[str, np.ndarray],
                      test: pd.DataFrame, hooks: datasets.DatasetHooks) -> dict[str, dict[str, float]]:
    """Every test metric of one predictor, by task (plus the data set's extra metrics)."""
    scores = {}
    for task in tasks:
        if task.name in predictions:
            metrics = task_metrics(task, labels[task.name], predictions[task.name])
            metrics.pop("positive_rate", None)
            scores[task.name] = metrics
    if hooks.extra_metrics is not None:
        for task, extra in hooks.extra_metrics(test, predictions).items():
            if task in scores:
                scores[task].update(extra)
    return scores


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """`{task: {metric: {"mean", "sd", "values"}}}` over seeds (sd 0 for one seed)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for task in per_seed[0]:
        out[task] = {}
        for metric in per_seed[0][task]:
            if metric == "count":
                continue
            values = [float(s[task][metric]) for s in per_seed if metric in s.get(task, {})]
            out[task][metric] = {"mean": float(np.mean(values)),
                                 "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                                 "values": values}
    return out


def _single(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, Any]]]:
    return aggregate([scores])


def lightgbm_predictions(config: PipelineConfig, tasks: list[Task], frames: dict[str, pd.DataFrame],
                         labels: dict[str, dict[str, np.ndarray]], data_fp: str,
                         force: bool) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """LightGBM's test predictions per task: cached under `lightgbm/`, refit when stale.

    Returns:
        `(predictions or None when disabled/unavailable, info)`.
    """
    if not config.lightgbm.enabled:
        return None, {"note": "disabled in the config (lightgbm.enabled: false)"}
    if not gbdt.lightgbm_available():
        return None, {"note": "lightgbm is not installed (pip install mtrec[gbdt])"}
    folder = config.out / LIGHTGBM
    fp = stamps.fingerprint("lightgbm", data_fp, dataclasses.asdict(config.lightgbm),
                            [dataclasses.asdict(d) for d in config.derive],
                            [t.get_config() for t in tasks], stamps.source_hash(Path(gbdt.__file__)))
    stamp, path = folder / "lightgbm.json", folder / PREDICTIONS
    if not force and stamps.is_current(stamp, fp, [path]):
        info = stamps.read_stamp(stamp) or {}
        return predictions_by_task(tasks, pd.read_parquet(path)), info.get("info", {})
    encoder = FeatureEncoder.load(prepared_paths(config).features)
    started = time.perf_counter()
    predictions, info = gbdt.fit_lightgbm(tasks, encoder, frames, labels, config.lightgbm,
                                          derived={d.name: d.columns for d in config.derive},
                                          exclude=[g.name for g in config.gbdt_scores])
    info["seconds"] = round(time.perf_counter() - started, 2)
    write_parquet(prediction_frame(tasks, predictions), path)
    stamps.write_stamp(stamp, fp, info=info)
    return predictions, info


def evaluate_fingerprint(config: PipelineConfig, runs: list[RunSpec], data_fp: str) -> str:
    """What the evaluation depends on: the runs, the data, the baselines' settings, the code."""
    return stamps.fingerprint("evaluate", data_fp, [r.fingerprint for r in runs], config.baseline,
                              config.report_metrics, dataclasses.asdict(config.lightgbm),
                              stamps.source_hash(Path(__file__), Path(datasets.__file__),
                                                 *datasets.hook_sources(config.dataset)))


def run_evaluate(config: PipelineConfig, data_fp: str, force: bool = False) -> dict[str, Any]:
    """Runs the evaluate step unless its outputs are current.

    Args:
        config: the pipeline.
        data_fp: the current fingerprint of the prepared data.
        force: recompute (and refit LightGBM) even when current.

    Returns:
        The evaluation (`"skipped": True` when it was current).

    Raises:
        DataError: a run is missing or stale (the message lists them and
            says to run the train step).
    """
    runs = plan_runs(config)
    missing = [f"{r.variant.name}/seed{r.seed}" for r in runs
               if not stamps.is_current(r.stamp, r.fingerprint, [r.predictions])]
    if missing:
        raise DataError(f"Runs missing or stale (config, data or code changed): {missing}. Run "
                        f"`{config.command('train')}` first.")
    out_json, out_md, stamp = (config.out / n for n in ("evaluation.json", "evaluation.md", "evaluate.json"))
    fp = evaluate_fingerprint(config, runs, data_fp)
    if not force and stamps.is_current(stamp, fp, [out_json, out_md]):
        return {**(stamps.read_stamp(out_json) or {}), "skipped": True}

    started = time.perf_counter()
    hooks = datasets.hooks_for(config.dataset)
    baseline_experiment = config.experiment_config(config.baseline)
    tasks = [t for t in baseline_experiment.tasks if not t.auxiliary]
    shown = report_metrics(config, tasks)
    frames = {name: read_split(config, name) for name in ("train", "valid", "test")}
    fit_labels(baseline_experiment.tasks, frames["train"], "the train split")
    labels = {name: encode_labels(baseline_experiment.tasks, frame, f"the {name} split")
              for name, frame in frames.items()}
    test = frames["test"]

    models: dict[str, Any] = {}
    for variant in config.models:
        variant_runs = [r for r in runs if r.variant.name == variant.name]
        variant_tasks = [t for t in fit_labels(variant_runs[0].experiment.tasks, frames["train"],
                                               "the train split") if not t.auxiliary]
        per_seed, timing = [], []
        for run in variant_runs:
            predictions = predictions_by_task(variant_tasks, pd.read_parquet(run.predictions))
            per_seed.append(score_predictions(variant_tasks, labels["test"], predictions, test, hooks))
            timing.append(stamps.read_stamp(run.stamp) or {})
        models[variant.name] = {
            "kind": variant.model.get("kind"), "seeds": [r.seed for r in variant_runs],
            "metrics": aggregate(per_seed),
            "parameters": timing[0].get("parameters"),
            "epochs": [t.get("epochs") for t in timing],
            "seconds": [t.get("seconds") for t in timing],
        }

    references: dict[str, Any] = {}
    constant = {t.name: constant_baseline(t, labels["train"][t.name], labels["test"][t.name]) for t in tasks}
    references[CONSTANT] = {"metrics": _single(constant), "note": "the training mean for every row"}
    if hooks.reference_predictors is not None:
        for name, predictions in hooks.reference_predictors(frames["train"], test).items():
            references[name] = {"metrics": _single(score_predictions(tasks, labels["test"], predictions,
                                                                      test, hooks))}
    lgb_predictions, lgb_info = lightgbm_predictions(config, tasks, frames, labels, data_fp, force)
    if lgb_predictions is not None:
        references[LIGHTGBM] = {"metrics": _single(score_predictions(tasks, labels["test"], lgb_predictions,
                                                                     test, hooks)), "info": lgb_info}
    else:
        references[LIGHTGBM] = {"metrics": {}, "note": lgb_info.get("note")}

    base = models[config.baseline]["metrics"]
    for entry in list(models.values()) + list(references.values()):
        entry["gain"] = {}
        for task, metrics in shown.items():
            head = metrics[0]
            mine = entry["metrics"].get(task, {}).get(head, {}).get("mean")
            ref = base.get(task, {}).get(head, {}).get("mean")
            entry["gain"][task] = {"metric": head, "value": relative_gain(mine, ref, head),
                                   "unit": "difference" if head in ABSOLUTE_GAIN else "percent"}

    manifest = stamps.read_stamp(prepared_paths(config).manifest) or {}
    evaluation = {
        "pipeline": config.name, "dataset": config.dataset or manifest.get("source"), "baseline": config.baseline,
        "seeds": list(config.seeds), "rows": {k: v.get("rows") for k, v in manifest.get("splits", {}).items()},
        "split": manifest.get("split"), "report_metrics": shown,
        "models": models, "references": references,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out_json, evaluation)
    write_text(out_md, format_evaluation(evaluation))
    stamps.write_stamp(stamp, fp)
    return {**evaluation, "skipped": False}


def _cell(stats: dict[str, Any] | None, seeds: int) -> str:
    if not stats:
        return "-"
    text = format_value(stats["mean"])
    return f"{text} ± {stats['sd']:.4f}" if seeds > 1 else text


def _gain(gain: dict[str, Any] | None) -> str:
    value = (gain or {}).get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.4f}" if gain.get("unit") == "difference" else f"{value:+.2f}%"


def main_table(evaluation: dict[str, Any]) -> str:
    """The headline table: a row per model and reference, the report metrics per task, and gains."""
    shown = evaluation["report_metrics"]
    rows = []
    entries = [(name, entry, len(entry["seeds"])) for name, entry in evaluation["models"].items()]
    entries += [(name, entry, 1) for name, entry in evaluation["references"].items()]
    for name, entry, seeds in entries:
        label = f"{name} (baseline)" if name == evaluation["baseline"] else name
        row: dict[str, Any] = {"model": label}
        for task, metrics in shown.items():
            for metric in metrics:
                row[f"{task} {metric}"] = _cell(entry["metrics"].get(task, {}).get(metric), seeds)
            row[f"{task} gain"] = _gain(entry.get("gain", {}).get(task)) if name != evaluation["baseline"] else ""
        row["seeds"] = seeds if name in evaluation["models"] else ""
        seconds = [s for s in entry.get("seconds", []) if s is not None]
        row["s/run"] = f"{np.mean(seconds):.1f}" if seconds else ""
        row["params"] = entry.get("parameters") or ""
        rows.append(row)
    return markdown_table(rows)


def all_metrics_table(evaluation: dict[str, Any]) -> str:
    """Every metric of every model and reference, long format."""
    rows = []
    sources = list(evaluation["models"].items()) + list(evaluation["references"].items())
    for name, entry in sources:
        for task, metrics in entry["metrics"].items():
            for metric, stats in metrics.items():
                rows.append({"model": name, "task": task, "metric": metric, "mean": stats["mean"],
                             "sd": stats["sd"] if len(stats["values"]) > 1 else None,
                             "per seed": ", ".join(format_value(v) for v in stats["values"])})
    return markdown_table(rows)


def format_evaluation(evaluation: dict[str, Any]) -> str:
    """`evaluation.md`: the main table, how to read it, and all metrics."""
    rows = evaluation.get("rows") or {}
    lines = [
        f"# {evaluation['pipeline']}: test metrics", "",
        f"Data: `{evaluation['dataset']}`, split {evaluation.get('split')}: "
        + ", ".join(f"{k} {v:,}" for k, v in rows.items() if v is not None) + " rows. "
        + "Models: mean ± sd over their seeds (column `seeds`).",
        "", main_table(evaluation), "",
        f"Gain: relative change of each task's first metric against `{evaluation['baseline']}` (mean over "
        "seeds), positive = better (for RMSE, lower); negative = negative transfer; for R² and rank IC, "
        "the difference. `lightgbm`: one "
        "LightGBM model per task on the same splits (early stopping on validation); `constant`: the "
        "training mean for every row.",
    ]
    note = evaluation["references"].get(LIGHTGBM, {}).get("note")
    if note:
        lines += ["", f"LightGBM: {note}."]
    lines += ["", "## All metrics", "", all_metrics_table(evaluation), ""]
    return "\n".join(lines)
