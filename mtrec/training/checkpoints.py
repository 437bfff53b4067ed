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
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import keras

from mtrec.errors import CheckpointError
from mtrec.utils.atomic import atomic_path, file_sha256, remove_stale_temporaries, write_json

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d+)\.json$")
#: Keras' BackupAndRestore layout, written by mtrec before checkpoints were atomic.
_LEGACY_WEIGHTS, _LEGACY_METADATA = "latest.weights.h5", "training_metadata.json"


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
            if problem is None:
                try:
                    self.model.load_weights(str(weights))
                except Exception as err:  # h5py raises OSError, Keras ValueError on a mismatch
                    problem = f"{type(err).__name__}: {err}"
            if problem is None:
                if problems:
                    logger.warning("Resuming from the older checkpoint %s (epoch %d).", weights, epoch)
                self.model._initial_epoch = epoch
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
        return None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.save(epoch + 1)

    def save(self, epochs_done: int) -> Path:
        """Writes the checkpoint of `epochs_done` finished epochs and prunes old ones."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"epoch-{epochs_done:04d}"
        weights = self.folder / f"{stem}.weights.h5"
        with atomic_path(weights, suffix=".weights.h5", fsync=True) as tmp:
            self.model.save_weights(str(tmp), overwrite=True)
        write_json(self.folder / f"{stem}.json", {
            "epoch": epochs_done, "weights": weights.name,
            "bytes": weights.stat().st_size, "sha256": file_sha256(weights)}, fsync=True)
        self._prune()
        return weights

    def _prune(self) -> None:
        for _, weights, meta in list_checkpoints(self.folder)[self.keep:]:
            weights.unlink(missing_ok=True)
            if meta is None:
                (self.folder / _LEGACY_METADATA).unlink(missing_ok=True)
            else:
                weights.with_name(weights.name.replace(".weights.h5", ".json")).unlink(missing_ok=True)
        # Weights without their record: a kill between the two renames.
        records = {w.name for _, w, _ in list_checkpoints(self.folder)}
        for path in self.folder.glob("epoch-*.weights.h5"):
            if path.name not in records:
                path.unlink(missing_ok=True)
