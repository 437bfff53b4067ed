"""Step 2, train: every configured model, once per seed, on the prepared splits.

Each run goes to `<output_dir>/runs/<model>/seed<k>/`: a regular mtrec run
directory (`mtrec.training.run.train`: model.keras, features.json,
metrics, report) plus `predictions_test.parquet` (one column per task, in
the order of `test.parquet`) and `pipeline_run.json`, the run's stamp. A run
whose stamp matches (same resolved experiment, same prepared data, same
code) is skipped, so adding a model to the config trains only that model; an
interrupted run with the same fingerprint resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import mtrec
from mtrec.config import ExperimentConfig
from mtrec.data.io import write_parquet
from mtrec.errors import DataError
from mtrec.pipelines import stamps
from mtrec.pipelines.config import SPLIT_COLUMN, ModelVariant, PipelineConfig
from mtrec.pipelines.prepare import SPLIT_NAMES, prepared_paths, read_split
from mtrec.tasks import MulticlassTask, Task
from mtrec.training.predict import predict_arrays
from mtrec.training.run import train

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions_test.parquet"
RUN_STAMP = "pipeline_run.json"


@dataclasses.dataclass
class RunSpec:
    """One training run of the pipeline: a model variant and a seed."""

    variant: ModelVariant
    seed: int
    run_dir: Path
    experiment: ExperimentConfig
    fingerprint: str

    @property
    def predictions(self) -> Path:
        return self.run_dir / PREDICTIONS

    @property
    def stamp(self) -> Path:
        return self.run_dir / RUN_STAMP


def run_experiment(config: PipelineConfig, variant: ModelVariant, seed: int) -> ExperimentConfig:
    """The experiment of one run, set to train on the prepared splits exactly.

    The three splits are concatenated with a split column (0 train, 1 valid,
    2 test) and split back by it (`kind: time` on that column), so training
    sees the very rows the prepare step wrote.
    """
    raw = config.experiment_raw(variant, seed)
    data = raw.setdefault("data", {})
    data["path"] = None
    data["split"] = {"kind": "time", "column": SPLIT_COLUMN, "valid_start": 1, "test_start": 2}
    data["id_columns"] = list(data.get("id_columns") or []) + [SPLIT_COLUMN]
    return config.experiment_config(variant, seed, raw=raw)


def check_prepared(config: PipelineConfig, data_fp: str) -> None:
    """Raises DataError unless the prepared data is there and matches the config and raw files."""
    paths = prepared_paths(config)
    if not stamps.is_current(paths.stamp, data_fp, paths.outputs):
        state = "stale (the config, the raw files or the loader changed)" if paths.stamp.exists() else "missing"
        raise DataError(f"The prepared data under {paths.folder} is {state}: run "
                        f"`{config.command('prepare')}` first.")


def plan_runs(config: PipelineConfig) -> list[RunSpec]:
    """Every (model, seed) run with its directory and fingerprint."""
    data_stamp = stamps.read_stamp(prepared_paths(config).stamp) or {}
    code = stamps.source_hash(Path(__file__))
    runs = []
    for variant in config.models:
        for seed in config.seeds_of(variant):
            experiment = run_experiment(config, variant, seed)
            fp = stamps.fingerprint("train", experiment.get_config(), data_stamp.get("fingerprint"),
                                    mtrec.__version__, code)
            runs.append(RunSpec(variant, seed, config.out / "runs" / variant.name / f"seed{seed}",
                                experiment, fp))
    return runs


def training_frame(config: PipelineConfig) -> pd.DataFrame:
    """The prepared splits in one frame, with the split column."""
    parts = []
    for code, name in enumerate(SPLIT_NAMES):
        part = read_split(config, name)
        part[SPLIT_COLUMN] = code
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def prediction_frame(tasks: list[Task], predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """One column per task (multiclass: `<task>_p<k>` per class)."""
    columns: dict[str, np.ndarray] = {}
    for task in tasks:
        values = np.asarray(predictions[task.name], dtype="float64")
        if isinstance(task, MulticlassTask):
            for k in range(values.shape[1]):
                columns[f"{task.name}_p{k}"] = values[:, k]
        else:
            columns[task.name] = values.reshape(len(values), -1)[:, 0]
    return pd.DataFrame(columns)


def _train_one(run: RunSpec, frame: pd.DataFrame) -> dict[str, Any]:
    previous = stamps.read_stamp(run.stamp) or {}
    # Resume only an interrupted run of this very fingerprint; anything else starts over.
    resume = previous.get("fingerprint") == run.fingerprint and (run.run_dir / "checkpoints").exists()
    run.run_dir.mkdir(parents=True, exist_ok=True)
    run.predictions.unlink(missing_ok=True)
    stamps.write_stamp(run.stamp, run.fingerprint, status="started")
    started = time.perf_counter()
    result = train(run.experiment, run.run_dir, frame=frame, overwrite=not resume)
    test = result.prepared.splits["test"]
    predictions = predict_arrays(result.model, test.features, run.experiment.scoring.batch_size)
    write_parquet(prediction_frame(run.experiment.tasks, predictions), run.predictions)
    summary = {
        "model": run.variant.name, "kind": run.experiment.model.kind, "seed": run.seed,
        "seconds": round(time.perf_counter() - started, 2),
        "epochs": len(next(iter(result.history.values()), [])),
        "parameters": int(result.model.count_params()),
        "test": {task: {k: v for k, v in metrics.items() if k != "constant_baseline"}
                 for task, metrics in result.report.get("test", {}).items()},
    }
    stamps.write_stamp(run.stamp, run.fingerprint, **summary)
    return summary


def run_train(config: PipelineConfig, data_fp: str, force: bool = False, progress: bool = True,
              only: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs the train step: each (model, seed) run that is not current.

    Args:
        config: the pipeline.
        data_fp: the current fingerprint of the prepared data (`prepare_fingerprint`).
        force: retrain even current runs.
        progress: show a progress bar over runs.
        only: train only these models (default: all).

    Returns:
        One summary per run (`"skipped": True` for current ones).

    Raises:
        DataError: the prepared data is missing or stale (run the prepare step).
    """
    check_prepared(config, data_fp)
    runs = [r for r in plan_runs(config) if only is None or r.variant.name in only]
    todo = [r for r in runs if force or not stamps.is_current(r.stamp, r.fingerprint, [r.predictions])]
    summaries = [{**(stamps.read_stamp(r.stamp) or {}), "skipped": True} for r in runs if r not in todo]
    if not todo:
        return summaries
    frame = training_frame(config)
    bar = tqdm(todo, desc=f"{config.name}: train", disable=not progress, leave=False)
    for run in bar:
        bar.set_postfix_str(f"{run.variant.name} seed {run.seed}")
        summary = _train_one(run, frame)
        metrics = ", ".join(f"{task} {_primary(m)}" for task, m in summary["test"].items())
        tqdm.write(f"  {run.variant.name:<14} seed {run.seed}: {summary['epochs']:>3} epochs "
                   f"{summary['seconds']:>6.1f} s  test {metrics}")
        summaries.append({**summary, "skipped": False})
    return summaries


def _primary(metrics: dict[str, Any]) -> str:
    for key in ("auc", "rmse", "accuracy"):
        if key in metrics:
            return f"{key} {metrics[key]:.4f}"
    return ""
