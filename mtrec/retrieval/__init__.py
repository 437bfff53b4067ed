"""mtrec.retrieval: candidate retrieval with a TFRS two-tower model, isolated in its own process.

TensorFlow Recommenders needs Keras 2, mtrec's models Keras 3, so training
runs in a child process with `TF_USE_LEGACY_KERAS=1` set before TensorFlow
is imported (`legacy.run_legacy_module`); importing this package sets nothing.
The trained towers and the BruteForce index are SavedModels, which
`CandidateIndex` queries in any process with plain TensorFlow.

Modules:
    config       RetrievalConfig (the `retrieval` config section); plain Python
    legacy       the Keras 2 guard and child process
    index        CandidateIndex: load a retrieval directory, top-K per user (Keras 3 safe)
    two_tower    towers and the TFRS model (Keras 2 process only)
    export       SavedModels of the towers and the index (Keras 2 process only)
    runner       `python -m mtrec.retrieval.runner`, the child process's entry point

Importing `two_tower` or `export` in a Keras 3 process raises
KerasVersionError with the command to use instead.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mtrec.errors import KerasVersionError
from mtrec.retrieval.config import RetrievalConfig, TowerFeature, parse_retrieval_config
from mtrec.retrieval.index import CandidateIndex
from mtrec.retrieval.legacy import run_legacy_module


def train_retrieval(
    config: RetrievalConfig,
    train: pd.DataFrame,
    items: pd.DataFrame,
    out_dir: str | Path,
    test: pd.DataFrame | None = None,
    verbose: int = 2,
    quiet: bool = False,
) -> dict[str, Any]:
    """Trains the two-tower model in a Keras 2 child process and writes a retrieval directory.

    Args:
        config: the retrieval settings.
        train: training interactions: the query and candidate feature
            columns (and the rating column when the rating task is on).
        items: every candidate item with its candidate features.
        out_dir: the retrieval directory to write (replaced if present).
        test: held-out interactions for top-K accuracy and RMSE (optional).
        verbose: Keras fit verbosity in the child (2: a line per epoch).
        quiet: hide the child's output unless it fails.

    Returns:
        The directory's `metrics.json` (training seconds, rows, history,
        held-out metrics under "test").

    Raises:
        MtrecError: the child process failed (its last lines are in the message).
    """
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mtrec-retrieval-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "retrieval.json").write_text(json.dumps(config.get_config()))
        train.to_parquet(tmp_path / "train.parquet", index=False)
        items.to_parquet(tmp_path / "items.parquet", index=False)
        args = ["train", "--config", tmp_path / "retrieval.json", "--train", tmp_path / "train.parquet",
                "--items", tmp_path / "items.parquet", "--out", out_dir, "--verbose", verbose]
        if test is not None:
            test.to_parquet(tmp_path / "test.parquet", index=False)
            args += ["--test", tmp_path / "test.parquet"]
        run_legacy_module("mtrec.retrieval.runner", args, quiet=quiet)
    return json.loads((out_dir / "metrics.json").read_text())


__all__ = [
    "CandidateIndex", "KerasVersionError", "RetrievalConfig", "TowerFeature",
    "parse_retrieval_config", "train_retrieval",
]
