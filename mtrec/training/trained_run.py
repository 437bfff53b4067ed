"""Loading a finished run directory back: model, fitted features and config."""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import keras

from mtrec.config import ExperimentConfig, parse_config
from mtrec.errors import ModelFileError
from mtrec.features import FeatureEncoder
from mtrec.models import MultiTaskModel
from mtrec.utils.atomic import file_sha256
from mtrec.utils.config_file import read_config_file
from mtrec.utils.validation import require_files


@dataclasses.dataclass
class TrainedRun:
    """A run directory loaded for scoring or analysis."""

    run_dir: Path
    config: ExperimentConfig
    encoder: FeatureEncoder
    model: MultiTaskModel


def _recorded_fingerprint(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text()).get("fingerprint") or {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as err:
        # model.keras and features.json are still checked against each other (_check_layout).
        warnings.warn(f"{path} is unreadable ({type(err).__name__}: {err}); the check that features.json "
                      "and model.keras belong together is reduced to their shapes.", stacklevel=3)
        return {}


def _check_features_file(run_dir: Path, recorded: dict[str, Any]) -> None:
    expected = recorded.get("features.json", {}).get("sha256")
    if expected and file_sha256(run_dir / "features.json") != expected:
        raise ModelFileError(
            f"{run_dir / 'features.json'} is not the one {run_dir / 'model.keras'} was trained with "
            "(its SHA-256 differs from run.json's fingerprint). Restore the run's own features.json, "
            "or train again.")


def load_model_file(path: Path, recorded: dict[str, Any] | None = None) -> MultiTaskModel:
    """Loads a `.keras` file in Keras' safe mode, turning every failure into a named error.

    Raises:
        ModelFileError: the file is truncated or not a Keras archive, or safe
            mode refused it (it holds Python code, such as a Lambda layer).
    """
    recorded = recorded or {}
    written = recorded.get("bytes")
    size = path.stat().st_size
    if written is not None and size != written:
        raise ModelFileError(f"{path} is truncated: {size:,} bytes where the run wrote {written:,}. "
                             "Train again (or restore the file).")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a Keras model archive (truncated or overwritten; {size:,} bytes).")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        damaged = str(err)
    if damaged:
        raise ModelFileError(f"{path} is damaged ({damaged} fails its checksum). Train again.")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except ValueError as err:
        if "safe_mode" in str(err) or "Lambda" in str(err):
            raise ModelFileError(
                f"{path} was refused by Keras' safe mode: it holds Python code (for example a Lambda "
                "layer), which mtrec never runs from a model file.") from err
        raise ModelFileError(f"{path} cannot be loaded: {' '.join(str(err).split())[:300]}") from err
    except (OSError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path} cannot be loaded ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:300]}).") from err


def _check_layout(run_dir: Path, encoder: FeatureEncoder, model: MultiTaskModel) -> None:
    expected = getattr(model, "feature_layout", None)
    if expected is None:
        return
    # Numeric embeddings (and their quantile edges) are fit into the model's layout only, not the encoder's.
    expected = {k: v for k, v in expected.items() if k != "numeric_embeddings"}
    actual = encoder.layout()
    if json.loads(json.dumps(actual)) != json.loads(json.dumps(expected)):
        keys = [k for k in sorted(set(actual) | set(expected)) if actual.get(k) != expected.get(k)]
        raise ModelFileError(
            f"{run_dir / 'features.json'} does not match {run_dir / 'model.keras'}: the encoder's "
            f"{', '.join(keys)} differ from the model's (e.g. {keys[0]}: {actual.get(keys[0])} vs "
            f"{expected.get(keys[0])}). They come from different runs.")


def _unfinished_hint(run_dir: Path) -> str:
    """What run.json says about a run directory without a model: still training, interrupted or failed."""
    from mtrec.training.run_lock import run_status

    record = run_status(run_dir)
    status = record.get("status")
    who = f"pid {record.get('pid', '?')} on {record.get('host', '?')}"
    if status == "running":
        return f"It is still training ({who}, last heartbeat {record.get('heartbeat', '?')})."
    if status == "interrupted":
        return (f"Its training was interrupted ({who}, last heartbeat {record.get('heartbeat', '?')}, "
                f"{record.get('epochs', 0)} epochs done): rerun `mtrec train` with --run-dir {run_dir} to resume.")
    if status == "failed":
        return f"Its training failed: {record.get('error', '?')}"
    return "Train with `mtrec train -c CONFIG` first (see run.json for a failed run's error)."


def load_run(run_dir: str | Path) -> TrainedRun:
    """Loads `config.yaml`, `features.json` and `model.keras` from a run directory.

    The model is loaded in Keras' safe mode; `features.json` must be the one
    the model was trained with (run.json's fingerprint, and the model's
    feature layout).

    Raises:
        DataError: the directory or one of its files is missing (e.g. the
            run failed or is still training).
        ModelFileError: `model.keras` is truncated, damaged or refused by
            safe mode, or `features.json` does not belong to it.
    """
    run_dir = Path(run_dir)
    require_files(run_dir, ["config.yaml", "features.json", "model.keras"], "a finished run directory",
                  _unfinished_hint(run_dir))
    config = parse_config(read_config_file(run_dir / "config.yaml"))
    recorded = _recorded_fingerprint(run_dir)
    _check_features_file(run_dir, recorded)
    encoder = FeatureEncoder.load(run_dir / "features.json")
    model = load_model_file(run_dir / "model.keras", recorded.get("model.keras"))
    _check_layout(run_dir, encoder, model)
    # The model carries its tasks' label state fit on the training split (a regression task's mean
    # and sd, classes: auto); config.yaml is written before that fit, so scoring takes the model's.
    config.tasks = list(getattr(model, "tasks", config.tasks))
    return TrainedRun(run_dir, config, encoder, model)
