"""A training run: config in, a run directory with the model, its features, metrics and report out.

Run directory layout:
    config.yaml      the resolved config (every default filled in)
    features.json    the fitted feature state (vocabularies, statistics)
    model.keras      the trained model (best validation epoch)
    metrics.json     per-epoch metrics nested by split and task (metrics.csv: flat)
    report.json      per-task test (and validation) metrics with a constant baseline
    report.md        the same as a table
    run.json         status ("running", "failed", "completed"), pid, host, heartbeat,
                     epochs and seconds over every attempt, sizes
    run.lock         held by the live training process (one writer per directory)
    tensorboard/     TensorBoard logs
    checkpoints/     the last two end-of-epoch checkpoints while training (written
                     atomically); a rerun resumes from the last good one
    prepared/        streamed training of `data.path` only: its encoded shards
                     (`mtrec prepare`; `mtrec.training.streamed`)
    members/         `model.ensemble` > 1 only: each seed's model, metrics and checkpoints
                     (`mtrec.training.ensemble`); model.keras is then their mean

Final artifacts are written atomically, so a failed run never leaves a
half-written model or report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import keras
import pandas as pd
import yaml

from mtrec.config import ExperimentConfig
from mtrec.data.tf_dataset import make_dataset
from mtrec.errors import ConfigError, RunDirectoryError
from mtrec.models import MultiTaskModel
from mtrec.training.analysis_loggers import analysis_callbacks
from mtrec.training.checkpoints import RunCheckpoint, list_checkpoints
from mtrec.training.callbacks import MainLossLogger, SingleTaskLogNames, TaskMetricsLogger
from mtrec.training.evaluation import evaluate_predictions
from mtrec.training.optimizers import LearningRateLogger, build_optimizer, schedule_callbacks
from mtrec.training.per_task_stopping import PerTaskEarlyStopping
from mtrec.training.prepare import PreparedData
from mtrec.training.report import format_report
from mtrec.training.run_lock import RunLock, RunStatus, run_status
from mtrec.training.split_rows import save_split_rows
from mtrec.training.streamed import fit_inputs, load_training_data, split_predictions, training_totals
from mtrec.utils.atomic import atomic_path, file_sha256, write_json, write_text
from mtrec.utils.validation import closest
from mtrec.weighting import WeightingLogger, WeightingStrategy

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RunResult:
    """What `train` returns.

    Attributes:
        run_dir: the run directory.
        model: the trained model (best validation weights).
        prepared: the fitted encoder and encoded splits.
        report: per-task metrics by split (`report["test"][task][metric]`).
        history: Keras history (per-epoch logs).
    """

    run_dir: Path
    model: MultiTaskModel
    prepared: PreparedData
    report: dict[str, Any]
    history: dict[str, list[float]]


@dataclasses.dataclass
class FitResult:
    """What `fit_model` returns.

    Attributes:
        model: the trained model (best validation weights when early stopping ran).
        weighting: the attached task weighting strategy.
        history: Keras history (per-epoch logs: losses, metrics, `val_main_loss`,
            `<task>_weight`, and the `training.analysis` values).
    """

    model: MultiTaskModel
    weighting: WeightingStrategy
    history: dict[str, list[float]]


def build_model(config: ExperimentConfig, feature_layout: dict[str, Any]) -> MultiTaskModel:
    """Instantiates the configured model for a fitted feature layout."""
    return config.model.model_class(
        tasks=config.tasks, feature_layout=feature_layout, name=config.model.kind,
        **config.model.params,
    )


def make_optimizer(config: ExperimentConfig) -> keras.optimizers.Optimizer:
    """The configured optimizer: learning rate or schedule, weight decay, clipping (`training.optimizers`)."""
    return build_optimizer(config.training)


def compile_model(model: MultiTaskModel, config: ExperimentConfig) -> None:
    """Compiles with the tasks' losses/metrics and the training settings."""
    model.compile_for_tasks(
        make_optimizer(config),
        steps_per_execution=config.training.steps_per_execution,
        jit_compile=config.training.jit_compile,
    )


def monitor_names(config: ExperimentConfig) -> list[str]:
    """Every validation metric early stopping may watch."""
    names = ["val_loss", "val_main_loss"]
    for task in config.tasks:
        if task.auxiliary:
            continue
        names.append(f"val_{task.name}_loss")
        names += [f"val_{task.name}_{m.name}" for m in task.make_metrics()]
    return names


#: Metrics where higher is better; every other logged metric is a loss or an error.
_MAXIMIZED = ("auc", "accuracy")


def check_monitor(config: ExperimentConfig) -> None:
    """Raises ConfigError when early stopping watches a metric this run does not log."""
    early = config.training.early_stopping
    if early is not None and early.monitor not in monitor_names(config):
        raise ConfigError(
            f"training.early_stopping.monitor '{early.monitor}' is not a validation metric of "
            f"this run.{closest(early.monitor, monitor_names(config))} "
            f"Choices: {monitor_names(config)}")


def monitor_mode(monitor: str, mode: str) -> str:
    """Resolves early stopping's "auto" mode from the metric name (Keras cannot see through MaskedMetric)."""
    if mode != "auto":
        return mode
    return "max" if monitor.endswith(tuple(f"_{m}" for m in _MAXIMIZED)) else "min"


def _check_run_dir(run_dir: Path, overwrite: bool) -> bool:
    """Returns True when the run resumes from a checkpoint."""
    if (run_dir / "report.json").exists() and not overwrite:
        raise RunDirectoryError(
            f"Run directory {run_dir} already holds a completed run. "
            "Choose another --run-dir or pass --overwrite.")
    if overwrite:
        import shutil
        for name in ("checkpoints", "tensorboard"):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        for name in ("model.keras", "report.json", "report.md", "metrics.json", "metrics.csv"):
            (run_dir / name).unlink(missing_ok=True)
        return False
    return bool(list_checkpoints(run_dir / "checkpoints"))


def _environment() -> dict[str, Any]:
    return {"keras": keras.__version__, "backend": keras.backend.backend(),
            "python": platform.python_version()}


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    frame: pd.DataFrame | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Trains the configured model and writes a run directory.

    If `run_dir` holds checkpoints of an interrupted run of the same config,
    training resumes from the last good one (see `mtrec.training.checkpoints`).
    The process holds `run_dir`'s lock while it runs, and `run.json` carries
    its pid, host and a heartbeat (`run_status` reports a dead run as
    "interrupted"); its `epochs` and `seconds` count every attempt.

    In memory or streamed from encoded shards as `training.in_memory` says
    (`mtrec.training.streamed`).

    Args:
        config: the experiment.
        run_dir: where to write the run.
        frame: rows to use instead of `config.data` (optional).
        overwrite: replace a completed run in `run_dir` (and a
            `RUN_DIR/prepared` of another config).

    Returns:
        A RunResult with the model, the encoded data and the report.

    Raises:
        MtrecError: bad config, bad data or an occupied run directory; the
            run directory's `run.json` then says "failed" and why.
        RunDirectoryError: another live process trains into `run_dir`, or it
            holds a completed run (without `overwrite`).
        CheckpointError: no checkpoint of the interrupted run can be loaded.
    """
    run_dir = Path(run_dir)
    # Several processes (KERAS_DISTRIBUTION_*): joined here; process 0 writes run_dir, the others a scratch dir.
    from mtrec.training.multiprocess import join
    from mtrec.training.precision import precision_scope
    config, run_dir = join(config, run_dir, overwrite)
    with RunLock(run_dir):
        previous = run_status(run_dir)
        resuming = _check_run_dir(run_dir, overwrite)
        check_monitor(config)
        if resuming and previous.get("status") == "interrupted":
            logger.warning("The previous run in %s was interrupted (pid %s on %s, last heartbeat %s).",
                           run_dir, previous.get("pid"), previous.get("host"), previous.get("heartbeat"))
        earlier = float(previous.get("seconds") or 0.0) if resuming else 0.0
        attempts = int(previous.get("attempts") or 1) + 1 if resuming else 1
        write_text(run_dir / "config.yaml", yaml.safe_dump(config.get_config(), sort_keys=False))
        status = RunStatus(run_dir, {"started": dt.datetime.now().isoformat(timespec="seconds"),
                                     "attempts": attempts, **_environment()})
        status.start()
        started = time.perf_counter()

        def seconds() -> float:
            return round(earlier + time.perf_counter() - started, 2)

        try:
            with precision_scope(config):  # training.precision: the dtype policy the model is built with
                result, epochs = _train(config, run_dir, frame, resuming,
                                        progress=lambda done: status.update(epochs=done, seconds=seconds()),
                                        overwrite=overwrite)
        except BaseException as err:
            status.finish("failed", seconds=seconds(), error=f"{type(err).__name__}: {err}")
            raise
        status.finish("completed", seconds=seconds(), fingerprint=fingerprint(run_dir),
                      rows={k: len(v) for k, v in result.prepared.splits.items()},
                      epochs=epochs,
                      epochs_this_attempt=len(next(iter(result.history.values()), [])))
    return result


def fingerprint(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of `features.json` and `model.keras`: what ties the encoder to the model.

    `load_run` refuses a `features.json` that differs from the one the model
    was trained with, and names a `model.keras` cut short.
    """
    return {name: {"bytes": (run_dir / name).stat().st_size, "sha256": file_sha256(run_dir / name)}
            for name in ("features.json", "model.keras")}


class _Progress(keras.callbacks.Callback):
    """Reports the finished epochs (all attempts) to run.json after each epoch's checkpoint."""

    def __init__(self, metrics: TaskMetricsLogger, report) -> None:
        super().__init__()
        self.metrics, self.report = metrics, report

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.report(len(self.metrics.history))


def fit_model(config: ExperimentConfig, prepared: PreparedData,
              callbacks: list[keras.callbacks.Callback] | None = None) -> FitResult:
    """Builds, compiles and fits the configured model on encoded splits: the core of `train`.

    Everything the config asks of training happens here: the task weighting
    (`weighting:`), `val_main_loss` (the main tasks' weighted validation
    loss), the `training.analysis` loggers and early stopping with the best
    weights restored. Nothing is written to disk; `train` adds the run
    directory's callbacks, the correlation sweep calls this directly.
    Seed first (`keras.utils.set_random_seed(config.seed)`) for a repeatable fit.

    Args:
        config: the experiment.
        prepared: the fitted encoder and encoded splits (`prepare`), or a
            prepared folder's, streamed (`mtrec.training.streamed`).
        callbacks: further callbacks, run after the loggers that add values
            to the epoch logs and before early stopping.

    Returns:
        A FitResult: the model, its weighting strategy and the history.

    Raises:
        ConfigError: early stopping watches a metric this run does not log,
            or `training.analysis` asks for what the model cannot give,
            or `training.strategy` cannot run this config.
    """
    # training.strategy (mtrec.training.distribution): built, compiled and fit under the strategy,
    # handed back as a one-device copy with the same weights.
    from mtrec.training import distribution

    strategy = config.training.strategy
    if strategy == "none":
        return _fit_model(config, prepared, callbacks)
    config = distribution.fit_config(config, prepared)
    with distribution.strategy_scope(strategy):
        fitted = _fit_model(config, prepared, callbacks)
    sample = {k: v[:1] for k, v in prepared.splits["train"].features.items()}
    model = distribution.unreplicated(fitted.model, sample, lambda m: compile_model(m, config))
    return dataclasses.replace(fitted, model=model)


def _fit_model(config: ExperimentConfig, prepared: PreparedData,
               callbacks: list[keras.callbacks.Callback] | None = None) -> FitResult:
    check_monitor(config)
    train_split, valid_split = prepared.splits["train"], prepared.splits["valid"]
    from mtrec.features.numeric_embedding import fit_numeric_embeddings  # numeric `embedding:` (edges from train)

    model = build_model(config, fit_numeric_embeddings(prepared.encoder.layout(), prepared.encoder,
                                                       train_split.features))
    model({k: v[:1] for k, v in train_split.features.items()})  # build: checkpoints need variables
    compile_model(model, config)
    training = config.training
    # The task weighting strategy (static: Keras' own step); its state is not saved with the model.
    weighting = config.weighting.build().attach(model, train_split.features, training.learning_rate,
                                                config.seed)
    main = {t.name: float(t.weight) for t in config.tasks if not t.auxiliary}
    all_callbacks: list[keras.callbacks.Callback] = [
        SingleTaskLogNames(model.task_names),  # first: "val_auc" -> "val_<task>_auc" for one task
        MainLossLogger(main),  # the loggers and early stopping below read its value
        WeightingLogger(weighting),  # <task>_weight per epoch, before the loggers
        # Gate statistics / gradient cosines (training.analysis) go into the same logs.
        *analysis_callbacks(training.analysis, model, train_split, valid_split),
        *(callbacks or []),
    ]
    has_valid = len(valid_split) > 0
    from mtrec.training.callbacks import ResumableEarlyStopping
    from mtrec.training.checkpoints import track_training_state

    # What early stopping and the plateau schedule watch. With auxiliary tasks, "val_loss" would let
    # them steer model selection, so the main tasks' loss stands in for it.
    es = training.early_stopping
    watched = es.monitor if es is not None else "val_loss"
    watched = "val_main_loss" if watched == "val_loss" and len(main) < len(config.tasks) else watched
    watched_mode = monitor_mode(watched, es.mode if es is not None else "auto")
    stopper = None
    if es is not None and has_valid:
        stopper = ResumableEarlyStopping(
            monitor=watched, mode=watched_mode, patience=es.patience, min_delta=es.min_delta,
            restore_best_weights=True, verbose=1 if training.verbose else 0)
        if hasattr(model, "task_variables") and len(model.task_names) > 1:
            # SingleTask: each task's network keeps its own best epoch, as if trained alone.
            stopper = PerTaskEarlyStopping(model.task_variables(), patience=es.patience, min_delta=es.min_delta,
                                           verbose=1 if training.verbose else 0)
    # training.schedule: the warm-up/decay's steps per epoch, or the plateau's monitor (training.optimizers).
    schedule = schedule_callbacks(training, model, watched if has_valid else None, watched_mode)
    if training.schedule is not None:
        all_callbacks.insert(1, LearningRateLogger())  # after the one-task renaming, before the metrics files
    # Early stopping's state (best weights, patience), the weighting's and the schedule's go into the run's
    # checkpoints, so a resumed run ends as an uninterrupted one; they are placed just before the checkpoint.
    track_training_state(all_callbacks, stopper, weighting, schedule)
    if prepared.shards is None:
        train_data = make_dataset(train_split.features, train_split.labels, training.batch_size,
                                  shuffle=True, seed=config.seed)
        valid_data = make_dataset(valid_split.features, valid_split.labels,
                                  config.scoring.batch_size) if has_valid else None
    else:  # streamed from the prepared shards; the splits hold samples
        train_data, valid_data, epochs = fit_inputs(config, prepared.shards, has_valid)
        all_callbacks.insert(0, epochs)
    history = model.fit(
        train_data,
        validation_data=valid_data,
        epochs=training.epochs,
        shuffle=False,  # the dataset reshuffles itself, with the run's seed
        callbacks=all_callbacks,
        verbose=training.verbose,
    )
    return FitResult(model, weighting, history.history)


def _train(config: ExperimentConfig, run_dir: Path, frame: pd.DataFrame | None,
           resuming: bool, progress=None, overwrite: bool = False) -> tuple[RunResult, int]:
    keras.utils.set_random_seed(config.seed)
    prepared = load_training_data(config, run_dir, frame, overwrite)
    prepared.encoder.save(run_dir / "features.json")
    save_split_rows(config, prepared, frame, run_dir)  # splits.parquet: the rows of each split
    if resuming:
        logger.warning("Resuming from the checkpoint in %s", run_dir / "checkpoints")
    if config.model.ensemble > 1:  # model.ensemble: k members under members/, averaged (training.ensemble)
        from mtrec.training.ensemble import fit_ensemble
        model, history, epochs = fit_ensemble(config, prepared, run_dir, progress, overwrite)
    else:
        metrics = TaskMetricsLogger(run_dir, [t.name for t in config.tasks])
        checkpoint = RunCheckpoint(run_dir / "checkpoints")
        callbacks: list[keras.callbacks.Callback] = [
            metrics, checkpoint,
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        ]
        if progress is not None:
            callbacks.append(_Progress(metrics, progress))
        fitted = fit_model(config, prepared, callbacks=callbacks)
        model, history, epochs = fitted.model, fitted.history, len(metrics.history)
    with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)

    train_totals = training_totals(config.tasks, prepared)  # the constant baselines' training means
    report: dict[str, Any] = {"rows": {k: len(v) for k, v in prepared.splits.items()}}
    from mtrec.training.distribution import process_part

    # Across processes process 0 alone writes the report: the others do not predict every row.
    part, _ = process_part()
    for name in ("valid", "test") if part is None or part[0] == 0 else ():
        if len(prepared.splits[name]):
            labels, predictions = split_predictions(model, prepared, name, config.scoring.batch_size)
            report[name] = evaluate_predictions(config.tasks, labels, predictions, train_totals=train_totals)
    report["model"] = {"kind": config.model.kind, "parameters": int(model.count_params())}
    write_json(run_dir / "report.json", report)
    write_text(run_dir / "report.md", format_report(report, title=f"{config.name} ({config.model.kind})"))
    # The run is complete: the checkpoints have served (a kill before this point resumes from them).
    import shutil
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return RunResult(run_dir, model, prepared, report, history), epochs


def default_run_dir(config: Any, root: str | os.PathLike = "runs") -> Path:
    """A new run directory named after the config and the time.

    `<root>/<name>/<model>-<timestamp>` for an `ExperimentConfig`,
    `<root>/<name>/<timestamp>` for any other config with a `name` (the
    recommend job's).
    """
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = f"{config.model.kind}-" if isinstance(config, ExperimentConfig) else ""
    return Path(root) / config.name / f"{label}{stamp}"
