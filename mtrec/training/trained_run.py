"""Loading a finished run directory back: model, fitted features and config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import yaml

from mtrec.config import ExperimentConfig, parse_config
from mtrec.features import FeatureEncoder
from mtrec.models import MultiTaskModel
from mtrec.utils.validation import require_files


@dataclasses.dataclass
class TrainedRun:
    """A run directory loaded for scoring or analysis."""

    run_dir: Path
    config: ExperimentConfig
    encoder: FeatureEncoder
    model: MultiTaskModel


def load_run(run_dir: str | Path) -> TrainedRun:
    """Loads `config.yaml`, `features.json` and `model.keras` from a run directory.

    Raises:
        DataError: the directory or one of its files is missing (e.g. the
            run failed or is still training).
    """
    run_dir = Path(run_dir)
    require_files(run_dir, ["config.yaml", "features.json", "model.keras"], "a finished run directory",
                  "Train with `mtrec train -c CONFIG` first (see run.json for a failed run's error).")
    config = parse_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    encoder = FeatureEncoder.load(run_dir / "features.json")
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    return TrainedRun(run_dir, config, encoder, model)
