"""`model.ensemble: k`: k members fit with seeds seed, seed+1, ..., averaged by a `SeedEnsemble`.

Each member is fit exactly as a single run fits its model (`fit_model`: its own
task weighting, early stopping and best weights), on the same encoded splits;
only the seed differs. The run's `model.keras` is the `SeedEnsemble` of them,
so the report, `mtrec score`, `load_run` and `mtrec export` see one model.

Member directories (kept after the run):
    members/config.yaml            the resolved config the members were fit for
    members/member_<i>/model.keras a finished member (seed + i)
    members/member_<i>/metrics.*   its per-epoch metrics (the run has no top-level metrics files)
    members/member_<i>/checkpoints its end-of-epoch checkpoints while it trains

Resume: a rerun of the same config into the same run directory loads the
finished members, resumes the interrupted one from its last checkpoint and fits
the rest. A different config (or `--overwrite`) starts every member afresh.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import keras

from mtrec.config import ExperimentConfig
from mtrec.errors import ConfigError
from mtrec.models.ensemble import SeedEnsemble
from mtrec.training.callbacks import TaskMetricsLogger
from mtrec.training.checkpoints import RunCheckpoint
from mtrec.training.prepare import PreparedData
from mtrec.utils.atomic import atomic_path, write_text

MEMBERS = "members"


def check_ensemble(config: ExperimentConfig, prepared: PreparedData) -> None:
    """Refuses what an ensemble run does not support: streamed shards and several processes.

    Raises:
        ConfigError: `model.ensemble > 1` with streamed training or `KERAS_DISTRIBUTION_NUM_PROCESSES > 1`.
    """
    k = config.model.ensemble
    if prepared.shards is not None:
        raise ConfigError(f"model.ensemble: {k} needs the training data in memory; this run streams "
                          "encoded shards (training.in_memory). Set training.in_memory: true or model.ensemble: 1.")
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1:
        raise ConfigError(f"model.ensemble: {k} runs in one process; KERAS_DISTRIBUTION_NUM_PROCESSES is "
                          f"{os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES']}. Train the members as separate "
                          "runs (`mtrec train --seeds`) or set model.ensemble: 1.")


def member_config(config: ExperimentConfig, index: int) -> ExperimentConfig:
    """Member `index`'s config: the run's, with seed `seed + index` and no ensemble."""
    return dataclasses.replace(config, seed=config.seed + index,
                               model=dataclasses.replace(config.model, ensemble=1))


def _members_dir(resolved: str, run_dir: Path, overwrite: bool) -> Path:
    """`run_dir/members`, emptied unless it holds members of this very config (`resolved`: its YAML)."""
    folder = run_dir / MEMBERS
    recorded = folder / "config.yaml"
    if overwrite or not recorded.exists() or recorded.read_text() != resolved:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(recorded, resolved)
    return folder


def fit_ensemble(config: ExperimentConfig, prepared: PreparedData, run_dir: Path,
                 progress: Callable[[int], None] | None = None,
                 overwrite: bool = False) -> tuple[SeedEnsemble, dict[str, list[float]], int]:
    """Fits (or reloads) the `model.ensemble` members and wraps them in a `SeedEnsemble`.

    Args:
        config: the experiment (`config.model.ensemble` > 1).
        prepared: the fitted encoder and the encoded splits, in memory.
        run_dir: the run directory; members go under `run_dir/members`.
        progress: called with the epochs finished so far, all members together.
        overwrite: fit every member afresh.

    Returns:
        (the ensemble, the history of the members fit in this call, prefixed
        `member_<i>/`, the epochs all members took).

    Raises:
        ConfigError: see `check_ensemble`.
    """
    from mtrec.training.run import fit_model  # run imports this module lazily
    from mtrec.training.trained_run import load_model_file

    check_ensemble(config, prepared)
    # The run's config.yaml (written by `train` before the labels' state is fit) identifies the members.
    folder = _members_dir((run_dir / "config.yaml").read_text(), run_dir, overwrite)
    members: list[Any] = []
    history: dict[str, list[float]] = {}
    epochs = 0
    for index in range(config.model.ensemble):
        member_dir = folder / f"member_{index}"
        member_dir.mkdir(exist_ok=True)
        metrics = TaskMetricsLogger(member_dir, [t.name for t in config.tasks])
        done = epochs
        if (member_dir / "model.keras").exists():  # finished by an earlier, interrupted attempt
            members.append(load_model_file(member_dir / "model.keras"))
            epochs += len(metrics.history)
            continue
        callbacks: list[keras.callbacks.Callback] = [metrics, RunCheckpoint(member_dir / "checkpoints")]
        if progress is not None:
            callbacks.append(_Progress(lambda n, done=done: progress(done + n), metrics))
        member = member_config(config, index)
        keras.utils.set_random_seed(member.seed)  # as `_train` seeds a single run
        fitted = fit_model(member, prepared, callbacks=callbacks)
        with atomic_path(member_dir / "model.keras", suffix=".keras") as tmp:
            fitted.model.save(tmp)
        shutil.rmtree(member_dir / "checkpoints", ignore_errors=True)
        members.append(fitted.model)
        history.update({f"member_{index}/{key}": value for key, value in fitted.history.items()})
        epochs += len(metrics.history)
    ensemble = SeedEnsemble(members, name=f"{config.model.kind}_ensemble")
    ensemble({k: v[:1] for k, v in prepared.splits["train"].features.items()})  # built, so it saves
    return ensemble, history, epochs


class _Progress(keras.callbacks.Callback):
    """Reports one member's finished epochs (offset by the members before it) after each epoch."""

    def __init__(self, report: Callable[[int], None], metrics: TaskMetricsLogger) -> None:
        super().__init__()
        self.report, self.metrics = report, metrics

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.report(len(self.metrics.history))
