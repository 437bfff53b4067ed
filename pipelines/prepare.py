"""Step 1, prepare: raw files -> typed Parquet splits and the fitted feature state.

Outputs, under `<output_dir>/data/`:
    train.parquet, valid.parquet, test.parquet   the loader's typed rows, split
    features.json    the FeatureEncoder fitted on the training split
    manifest.json    rows and label rates per split, columns and types, source files
    prepare.json     the step's stamp (fingerprint), written last

The loader streams the raw file with pyarrow into one typed frame; the splits
are cut from it one at a time, so at most one copy of the table plus one
split is in memory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtrec.data.io import write_parquet
from mtrec.data.splits import Splits, make_splits
from mtrec.errors import DataError, SchemaError
from mtrec.features import FeatureEncoder
from mtrec.pipelines import datasets, stamps
from mtrec.pipelines.config import DerivedTokens, PipelineConfig
from mtrec.pipelines import gbdt, gbdt_scores, target_stats
from mtrec.pipelines.gbdt_scores import add_gbdt_scores
from mtrec.pipelines.target_stats import add_target_stats
from mtrec.training.prepare import encode_labels
from mtrec.utils.atomic import write_json
from mtrec.utils.validation import closest, require_columns

SPLIT_NAMES = ("train", "valid", "test")
OFFICIAL_SPLIT_COLUMN = "official_split"


@dataclasses.dataclass
class PreparedPaths:
    """Where the prepare step's outputs are."""

    folder: Path

    def split(self, name: str) -> Path:
        """The Parquet file of one split."""
        return self.folder / f"{name}.parquet"

    @property
    def features(self) -> Path:
        return self.folder / "features.json"

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def stamp(self) -> Path:
        return self.folder / "prepare.json"

    @property
    def outputs(self) -> list[Path]:
        return [self.split(n) for n in SPLIT_NAMES] + [self.features, self.manifest]


def prepared_paths(config: PipelineConfig) -> PreparedPaths:
    """The prepare step's output paths for a config."""
    return PreparedPaths(config.out / "data")


def table_source(config: PipelineConfig, data_dir: Path) -> datasets.TableSource:
    """The pipeline's table: `experiment.data.path`, or the data set's loader."""
    data = config.experiment.get("data") or {}
    na_values = config.experiment_config(config.baseline).data.na_values
    return datasets.table_source(config.dataset, data.get("path"), na_values, data_dir)


def prepare_fingerprint(config: PipelineConfig, data_dir: Path) -> str:
    """Everything the prepared data depends on: config sections, raw files, code."""
    experiment = config.experiment
    source = table_source(config, data_dir)
    return stamps.fingerprint(
        "prepare", config.dataset, source.location, dataclasses.asdict(config.loader),
        dataclasses.asdict(config.subsample) if config.subsample else None, config.official_split,
        [dataclasses.asdict(d) for d in config.derive], config.rescale,
        [dataclasses.asdict(t) for t in config.target_stats],
        [dataclasses.asdict(g) for g in config.gbdt_scores],
        (experiment.get("data") or {}).get("split"), (experiment.get("data") or {}).get("id_columns"),
        experiment.get("features"), experiment.get("tasks"),
        (experiment.get("data") or {}).get("na_values"),
        stamps.file_stats(source.files),
        # The columns that prepare adds are code too: label statistics, forest scores (and the
        # forests' input table).
        stamps.source_hash(Path(__file__), Path(target_stats.__file__), Path(gbdt_scores.__file__),
                           Path(gbdt.__file__), *source.code),
    )


def subsample(frame: pd.DataFrame, rows: int, group: str | None, seed: int) -> pd.DataFrame:
    """A random part of the rows, in their original order: about `rows` rows, whole groups when `group` is set.

    Raises:
        SchemaError: `group` is not a column.
    """
    if len(frame) <= rows:
        return frame
    rng = np.random.default_rng(seed)
    if group is None:
        keep = np.sort(rng.choice(len(frame), size=rows, replace=False))
        return frame.iloc[keep].reset_index(drop=True)
    if group not in frame.columns:
        raise SchemaError(f"subsample.group '{group}' is not a column of the loaded table."
                          f"{closest(group, frame.columns)} Columns: {list(frame.columns)}")
    codes, uniques = pd.factorize(frame[group], sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    order = rng.permutation(len(uniques))
    taken = order[: int(np.searchsorted(np.cumsum(counts[order]), rows)) + 1]
    mask = np.isin(codes, taken)
    return frame.loc[mask].reset_index(drop=True)


def rescale(frame: pd.DataFrame, factors: dict[str, float]) -> pd.DataFrame:
    """Multiplies columns by factors, in place.

    Raises:
        SchemaError: a column is missing or not numeric.
    """
    for column, factor in factors.items():
        require_columns(frame, [column], "the loaded table", note=" (renamed upstream?)", what="rescale: column")
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise SchemaError(f"rescale: column '{column}' is {frame[column].dtype}, not numeric.")
        frame[column] = frame[column].astype("float64") * factor
    return frame


def derive_tokens(frame: pd.DataFrame, derived: list[DerivedTokens]) -> pd.DataFrame:
    """Adds each derived token column (`a=x|b=y|...`) to the frame, in place.

    Raises:
        SchemaError: a source column is missing (named, with the closest one).
    """
    for spec in derived:
        require_columns(frame, spec.columns, "the loaded table", note=" (renamed upstream?)",
                        what=f"derive '{spec.name}': source column")
        parts = []
        for column in spec.columns:
            values = frame[column].astype(object)
            values = values.where(values.notna(), "<missing>").astype(str)
            parts.append(column + "=" + values)
        frame[spec.name] = parts[0].str.cat(parts[1:], sep=spec.separator) if len(parts) > 1 else parts[0]
    return frame


def official_splits(frame: pd.DataFrame, fractions: list[float], seed: int) -> Splits:
    """Test on the official test rows; split the official train rows into train and validation.

    The validation share of the official train rows is
    `f_valid / (f_train + f_valid)`, drawn with `default_rng(seed).permutation`.

    Raises:
        DataError: the column holds other values than "train"/"test", or a
            split comes out empty.
    """
    values = frame[OFFICIAL_SPLIT_COLUMN].astype(str)
    unknown = sorted(set(values.unique()) - {"train", "test"})
    if unknown:
        raise DataError(f"Column '{OFFICIAL_SPLIT_COLUMN}' must hold 'train' or 'test'. Found: {unknown[:5]}")
    train_pool = np.flatnonzero(values.to_numpy() == "train")
    test = np.flatnonzero(values.to_numpy() == "test")
    f_train, f_valid, _ = fractions
    perm = np.random.default_rng(seed).permutation(len(train_pool))
    n_valid = int(round(len(train_pool) * f_valid / (f_train + f_valid)))
    valid, train = train_pool[perm[:n_valid]], train_pool[perm[n_valid:]]
    for name, part, why in (("train", train, "no official train rows"), ("test", test, "no official test rows"),
                            ("valid", valid, "the validation fraction rounds to 0 rows")):
        if len(part) == 0 and (name != "valid" or f_valid > 0):
            raise DataError(f"The {name} split of the official split is empty: {why}.")
    return Splits(np.sort(train), np.sort(valid), np.sort(test))


def split_rows(config: PipelineConfig, frame: pd.DataFrame) -> tuple[Splits, str]:
    """The configured split (or the official one when the table carries it) and its description."""
    split = config.experiment_config(config.baseline).data.split
    if config.official_split and OFFICIAL_SPLIT_COLUMN in frame.columns:
        return official_splits(frame, split.fractions, split.seed), "official train/test files"
    described = f"{split.kind}" + (f" by {split.column}" if split.column else "")
    return make_splits(frame, split), described


def fit_labels(tasks: list, train: pd.DataFrame, source: str) -> list:
    """Fits each task's label state on the training rows, as `mtrec train` does (`classes: auto`, a
    count's offset), so that every split's labels are coded alike. Returns the tasks."""
    for task in tasks:
        fit = getattr(task, "fit", None)  # label state, where a task kind has one
        if fit is not None:
            fit(train[task.label], source)
    return tasks


def label_summary(tasks: list, frame: pd.DataFrame, source: str) -> dict[str, Any]:
    """Per task: labelled rows and the label mean."""
    labels = encode_labels(tasks, frame, source)
    return {name: {"count": int((~np.isnan(y)).sum()),
                   "mean": float(np.nanmean(y)) if (~np.isnan(y)).any() else None}
            for name, y in labels.items()}


def run_prepare(config: PipelineConfig, data_dir: Path, force: bool = False,
                progress: bool = True) -> dict[str, Any]:
    """Runs the prepare step unless its outputs are current.

    Args:
        config: the pipeline.
        data_dir: the data sets folder (holding `config.dataset`; unused for `data.path`).
        force: rerun even when current.
        progress: show a progress bar.

    Returns:
        The manifest (with `"skipped": True` when the step was current).

    Raises:
        DataError / SchemaError: from the loader (missing file, renamed
            column, too many malformed rows), an empty split, or a feature
            or label column missing from the table.
    """
    paths = prepared_paths(config)
    fp = prepare_fingerprint(config, data_dir)
    if not force and stamps.is_current(paths.stamp, fp, paths.outputs):
        manifest = stamps.read_stamp(paths.manifest) or {}
        return {**manifest, "skipped": True}

    started = time.perf_counter()
    experiment = config.experiment_config(config.baseline)
    bar = tqdm(total=4, desc=f"{config.name}: prepare", disable=not progress, leave=False)
    bar.set_postfix_str("load")
    table = table_source(config, data_dir)
    frame = table.read(config.loader.nrows, config.loader.max_malformed_fraction)
    loaded_rows = len(frame)
    if config.subsample is not None:
        frame = subsample(frame, config.subsample.rows, config.subsample.group, config.subsample.seed)
    source = table.description
    if len(frame) == 0:
        raise DataError(f"No rows were read from {table.location} ({source}).")
    rescale(frame, config.rescale)
    derive_tokens(frame, config.derive)
    label_summary(experiment.tasks, frame, source)  # every label column present and valid, before splitting
    bar.update()

    bar.set_postfix_str("split")
    splits, described = split_rows(config, frame)
    add_target_stats(frame, splits, config.target_stats)  # needs the split: fit on training rows only
    add_gbdt_scores(frame, splits, config.gbdt_scores, experiment.features, experiment.tasks,
                    {d.name: d.columns for d in config.derive}, config.lightgbm.max_tokens,
                    config.lightgbm.min_token_rows, source)
    bar.update()

    bar.set_postfix_str("fit features")
    exclude = [t.label for t in experiment.tasks] + list(experiment.data.id_columns) + [OFFICIAL_SPLIT_COLUMN]
    encoder = FeatureEncoder(experiment.features).fit(
        frame.iloc[splits.train], source=f"{source} (train split)", exclude=exclude)
    bar.update()

    fit_labels(experiment.tasks, frame.iloc[splits.train], f"{source} (train split)")
    bar.set_postfix_str("write")
    paths.folder.mkdir(parents=True, exist_ok=True)
    paths.stamp.unlink(missing_ok=True)  # from here on, the old outputs are no longer current
    summary: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        part = frame.iloc[getattr(splits, name)].reset_index(drop=True)
        write_parquet(part, paths.split(name))
        summary[name] = {"rows": len(part), "labels": label_summary(experiment.tasks, part, f"{source} ({name})")}
        del part
    encoder.save(paths.features)
    bar.update()
    bar.close()

    manifest = {
        "pipeline": config.name, "dataset": config.dataset,
        "source": table.location,
        "source_files": stamps.file_stats(table.files),
        "rows_loaded": loaded_rows, "rows": len(frame), "split": described, "splits": summary,
        "columns": {c: str(t) for c, t in frame.dtypes.items()},
        "feature_columns": encoder.input_columns,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(paths.manifest, manifest)
    stamps.write_stamp(paths.stamp, fp, manifest_rows=len(frame))
    return {**manifest, "skipped": False}


def read_split(config: PipelineConfig, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One prepared split as a DataFrame.

    Raises:
        DataError: the prepare step has not run (the message says how to run it).
    """
    path = prepared_paths(config).split(name)
    if not path.is_file():
        raise DataError(f"Prepared split {path} is missing: run `{config.command('prepare')}` first.")
    return pd.read_parquet(path, columns=columns)
