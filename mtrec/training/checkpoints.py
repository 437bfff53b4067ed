"""Crash-safe end-of-epoch checkpoints of a training run, and resuming from the last good one.

Each finished epoch is saved as `checkpoints/epoch-NNNN.weights.h5` with a
`epoch-NNNN.json` beside it. The weights are written to a temporary file,
flushed to disk and renamed; the JSON (epoch, size and SHA-256 of the weights)
is written the same way, and only after the weights are safe. A checkpoint
counts only when both files are there and agree, so a kill at any moment
leaves either the new checkpoint or the previous one, never a half-written
file under a final name. The last two are kept.

On resume the newest checkpoint whose weights match their JSON and load is
used; a damaged one is named in a warning and the one before it is tried.

State that is not in the model's weights travels with each checkpoint too
(`RunCheckpoint.track`): early stopping's best value, patience counter and
best weights, and the task weighting strategy's variables, in
`epoch-NNNN.state.npz` (written before the JSON, which records its size and
SHA-256). The JSON also records whether early stopping had stopped the run:
a rerun then trains no further epoch. So a resumed run ends with the weights
an uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from mtrec.errors import CheckpointError
from mtrec.utils.atomic import atomic_path, file_sha256, remove_stale_temporaries, write_json

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d+)\.json$")
#: Keras' BackupAndRestore layout, written by mtrec before checkpoints were atomic.
_LEGACY_WEIGHTS, _LEGACY_METADATA = "latest.weights.h5", "training_metadata.json"


class TrainingState(Protocol):
    """Something whose state a checkpoint saves beside the weights (see `RunCheckpoint.track`)."""

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The state after the last finished epoch, as named arrays."""

    def restore_checkpoint_state(self, state: dict[str, np.ndarray]) -> None:
        """Puts back what `checkpoint_state` returned."""


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path, dict[str, Any] | None]]:
    """The complete-looking checkpoints in `folder`, newest first.

    Returns:
        `(epochs done, weights path, metadata)` tuples. A legacy Keras
        `latest.weights.h5` comes last, with `None` metadata.
    """
    folder = Path(folder)
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _NAME.match(path.name)
            if not match:
                continue
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                logger.warning("Ignoring the unreadable checkpoint record %s.", path)
                continue
            weights = folder / f"epoch-{match.group(1)}.weights.h5"
            found.append((int(meta.get("epoch", match.group(1))), weights, meta))
        found.sort(key=lambda item: item[0], reverse=True)
        legacy = folder / _LEGACY_WEIGHTS
        if legacy.exists() and (folder / _LEGACY_METADATA).exists():
            try:
                epoch = int(json.loads((folder / _LEGACY_METADATA).read_text())["epoch"])
                found.append((epoch, legacy, None))
            except (OSError, ValueError, KeyError):
                pass
    return found


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model's (and optimizer's) weights after each epoch, atomically; restores the last good one.

    Args:
        folder: the checkpoint folder (`RUN_DIR/checkpoints`).
        keep: checkpoints kept. Defaults to `2`.
    """

    def __init__(self, folder: str | Path, keep: int = 2) -> None:
        super().__init__()
        if keep < 1:
            raise ValueError(f"`keep` must be a positive integer. Received: keep={keep}")
        self.folder = Path(folder)
        self.keep = keep
        self.resumed_epoch = 0
        self.tracked: dict[str, TrainingState] = {}

    def track(self, name: str, state: TrainingState) -> None:
        """Saves `state.checkpoint_state()` with every checkpoint and restores it on resume.

        Place the object's callback (if it is one) before this checkpoint in
        the callback list, so that what is saved includes the epoch just ended.
        """
        if "." in name:
            raise ValueError(f"A tracked state's name cannot hold a dot. Received: {name!r}")
        self.tracked[name] = state

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.folder.is_dir():
            return
        remove_stale_temporaries(self.folder)
        candidates = list_checkpoints(self.folder)
        if not candidates:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        problems = []
        for epoch, weights, meta in candidates:
            problem = self._check(weights, meta)
            state: dict[str, dict[str, np.ndarray]] = {}
            if problem is None:
                try:
                    self.model.load_weights(str(weights))
                    state = self._read_state(weights, meta)
                except Exception as err:  # h5py raises OSError, Keras ValueError on a mismatch
                    problem = f"{type(err).__name__}: {err}"
            if problem is None:
                if problems:
                    logger.warning("Resuming from the older checkpoint %s (epoch %d).", weights, epoch)
                self._restore_state(state, weights)
                self.model._initial_epoch = epoch
                if meta is not None and meta.get("stopped"):
                    # Early stopping had ended the run: no further epoch, straight to on_train_end.
                    self.model._initial_epoch = max(epoch, int(self.params.get("epochs") or epoch))
                self.resumed_epoch = epoch
                return
            logger.warning("Checkpoint %s is damaged (%s); trying the one before it.", weights, problem)
            problems.append(f"{weights.name}: {problem}")
        raise CheckpointError(
            f"No usable checkpoint in {self.folder}: {'; '.join(problems)}. "
            f"Delete {self.folder} to start over, or pass --overwrite.")

    @staticmethod
    def _check(weights: Path, meta: dict[str, Any] | None) -> str | None:
        if not weights.exists():
            return "the weights file is missing"
        if meta is None:
            return None
        size = weights.stat().st_size
        if size != meta.get("bytes"):
            return f"{size} bytes where {meta.get('bytes')} were written"
        if meta.get("sha256") and file_sha256(weights) != meta["sha256"]:
            return "its contents changed since it was written (SHA-256 differs)"
        if meta.get("state"):
            state = weights.with_name(meta["state"])
            if not state.exists():
                return f"its state file {state.name} is missing"
            if state.stat().st_size != meta.get("state_bytes") or file_sha256(state) != meta.get("state_sha256"):
                return f"its state file {state.name} changed since it was written"
        return None

    @staticmethod
    def _read_state(weights: Path, meta: dict[str, Any] | None) -> dict[str, dict[str, np.ndarray]]:
        """{tracked name: {key: array}} of a checkpoint (empty for one written without state)."""
        if meta is None or not meta.get("state"):
            return {}
        state: dict[str, dict[str, np.ndarray]] = {}
        with np.load(weights.with_name(meta["state"]), allow_pickle=False) as arrays:
            for key in arrays.files:
                name, _, item = key.partition(".")
                state.setdefault(name, {})[item] = arrays[key]
        return state

    def _restore_state(self, state: dict[str, dict[str, np.ndarray]], weights: Path) -> None:
        for name, tracked in self.tracked.items():
            if name in state:
                tracked.restore_checkpoint_state(state[name])
            else:
                logger.warning("Checkpoint %s carries no %s state (written by an older mtrec); "
                               "it starts afresh.", weights, name.replace("_", " "))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.save(epoch + 1)

    def save(self, epochs_done: int) -> Path:
        """Writes the checkpoint of `epochs_done` finished epochs and prunes old ones."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"epoch-{epochs_done:04d}"
        weights = self.folder / f"{stem}.weights.h5"
        with atomic_path(weights, suffix=".weights.h5", fsync=True) as tmp:
            self.model.save_weights(str(tmp), overwrite=True)
        record = {"epoch": epochs_done, "weights": weights.name,
                  "bytes": weights.stat().st_size, "sha256": file_sha256(weights),
                  "stopped": bool(getattr(self.model, "stop_training", False))}
        if self.tracked:
            state = self.folder / f"{stem}.state.npz"
            arrays = {f"{name}.{key}": value for name, tracked in self.tracked.items()
                      for key, value in tracked.checkpoint_state().items()}
            with atomic_path(state, suffix=".npz", fsync=True) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **arrays)
            record.update(state=state.name, state_bytes=state.stat().st_size, state_sha256=file_sha256(state))
        # The record last: the checkpoint counts only once everything it names is safe on disk.
        write_json(self.folder / f"{stem}.json", record, fsync=True)
        self._prune()
        return weights

    def _prune(self) -> None:
        for _, weights, meta in list_checkpoints(self.folder)[self.keep:]:
            weights.unlink(missing_ok=True)
            if meta is None:
                (self.folder / _LEGACY_METADATA).unlink(missing_ok=True)
            else:
                weights.with_name(weights.name.replace(".weights.h5", ".state.npz")).unlink(missing_ok=True)
                weights.with_name(weights.name.replace(".weights.h5", ".json")).unlink(missing_ok=True)
        # Weights or state without their record: a kill between the renames.
        records = {w.name.replace(".weights.h5", "") for _, w, _ in list_checkpoints(self.folder)}
        for path in [*self.folder.glob("epoch-*.weights.h5"), *self.folder.glob("epoch-*.state.npz")]:
            if path.name.split(".")[0] not in records:
                path.unlink(missing_ok=True)


def track_training_state(callbacks: list[keras.callbacks.Callback],
                         early_stopping: keras.callbacks.Callback | None = None,
                         weighting: Any = None,
                         schedule: list[keras.callbacks.Callback] | None = None) -> None:
    """Adds early stopping to `callbacks` and has the run's checkpoint (if any) save its state.

    Early stopping goes just before the `RunCheckpoint` in the list (at the
    end when there is none), so each checkpoint saves its state after the
    epoch it closes; the weighting strategy's state is saved too
    (`WeightingState`). Without a checkpoint nothing is saved.

    Args:
        callbacks: the fit's callback list; changed in place.
        early_stopping: a `ResumableEarlyStopping`, or None.
        weighting: the attached `WeightingStrategy`, or None.
        schedule: the learning-rate schedule's callbacks
            (`mtrec.training.optimizers.schedule_callbacks`); placed with early
            stopping, and saved when they have a `checkpoint_state`.
    """
    from mtrec.training.callbacks import WeightingState

    checkpoint = next((c for c in callbacks if isinstance(c, RunCheckpoint)), None)
    for callback in [*(schedule or []), *([early_stopping] if early_stopping is not None else [])]:
        callbacks.insert(callbacks.index(checkpoint) if checkpoint is not None else len(callbacks), callback)
    if checkpoint is None:
        return
    if early_stopping is not None:
        if not hasattr(early_stopping, "checkpoint_state"):
            raise TypeError(f"{type(early_stopping).__name__} cannot save its state; use ResumableEarlyStopping.")
        checkpoint.track("early_stopping", early_stopping)
    if weighting is not None:
        checkpoint.track("weighting", WeightingState(weighting))
    for i, callback in enumerate(c for c in schedule or [] if hasattr(c, "checkpoint_state")):
        checkpoint.track(f"schedule{i}", callback)
