"""The pipeline config: one data set, a base experiment, the models to compare, the baselines.

A pipeline config is YAML validated into `PipelineConfig`::

    name: census
    dataset: census_income_kdd          # folder under the data dir; picks the loader
                                        # (or, for your own table: experiment.data.path)
    output_dir: runs/pipelines/census
    seeds: [1, 2, 3]
    experiment: {data: {split: ...}, features: [...], tasks: [...], model: {...}, training: {...}}
    models:
    - {name: single_task, model: {kind: single_task, bottom: {units: [64]}}}
    - {name: mmoe, model: {kind: mmoe, num_experts: 8}, experiment: {training: {learning_rate: 0.002}}}
    lightgbm: {enabled: true, num_boost_round: 2000}

`experiment` is an mtrec experiment config (`mtrec.config`); each model
variant replaces its `model` section and deep-merges its own `experiment`
mapping into it. A config may start with `extends: other.yaml` (a path
relative to the file) and then only list what differs: mappings merge key by
key, lists and values replace. The quick modes (`configs/pipeline_<name>_quick.yaml`)
are written that way. The shipped configs are package data (`mtrec.configs`,
the repository's `configs/` folder), found with `importlib.resources`.
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from mtrec.config import ExperimentConfig, apply_overrides, parse_config
from mtrec.errors import ConfigError
from mtrec.pipelines.datasets import check_source
from mtrec.pipelines.gbdt_scores import GBDTScore
from mtrec.pipelines.target_stats import TargetStat
from mtrec.utils.config_file import read_config_file
from mtrec.utils.validation import from_config

#: Folder of the shipped configs: the package data of `mtrec.configs` (installed as plain files).
CONFIG_DIR = Path(str(resources.files("mtrec.configs")))

#: Column holding the split (0 train, 1 valid, 2 test) in the frame handed to training.
SPLIT_COLUMN = "__split__"


@dataclasses.dataclass
class LoaderConfig:
    """Arguments of the data set's loader (with `experiment.data.path`, only `nrows` applies).

    Args:
        nrows: read only the first rows of the raw file(s) (None: all).
        max_malformed_fraction: malformed raw rows are counted and skipped
            with a warning; above this fraction of all rows the loader fails.
    """

    nrows: int | None = None
    max_malformed_fraction: float = 0.001

    def __post_init__(self) -> None:
        if self.nrows is not None and self.nrows < 1:
            raise ConfigError(f"loader.nrows must be >= 1 or null. Received: {self.nrows}")
        if not 0 <= self.max_malformed_fraction <= 1:
            raise ConfigError(
                f"loader.max_malformed_fraction must be in [0, 1]. Received: {self.max_malformed_fraction}")


@dataclasses.dataclass
class SubsampleConfig:
    """Keep a random part of the loaded rows (the quick modes).

    Args:
        rows: rows to keep (about, when `group` is set).
        group: keep whole groups of this column (tickers, patients), so
            per-group features and group splits stay meaningful.
        seed: seed of `numpy.random.default_rng`.
    """

    rows: int
    group: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ConfigError(f"subsample.rows must be >= 1. Received: {self.rows}")


@dataclasses.dataclass
class DerivedTokens:
    """A multi-valued column of `column=value` tokens built from several categorical columns.

    One embedding bag over all of them replaces one table lookup per column:
    mean-pooling the tokens' embeddings is a linear layer on their one-hot
    encoding (every row has one token per column, so the mean is the sum
    over a constant), the input layer of the MMoE paper's models, and costs
    one lookup instead of dozens (each lookup adds to the model's tracing
    time). LightGBM gets the source columns instead.

    Args:
        name: the new column.
        columns: the source columns (missing values become `column=<missing>`).
        separator: joins the tokens.
    """

    name: str
    columns: list[str]
    separator: str = "|"

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError(f"derive: column '{self.name}' needs at least one source column.")


@dataclasses.dataclass
class ModelVariant:
    """One model to train and compare.

    Args:
        name: its name in reports and under `runs/` (an identifier).
        model: the experiment's `model` section for it (`kind` plus the
            model's constructor arguments).
        experiment: other experiment keys to deep-merge for this model only
            (e.g. `{training: {learning_rate: 0.002}}` or a task list).
        seeds: this model's seeds (None: the pipeline's `seeds`), e.g. fewer
            seeds for the models that only complete the comparison.
    """

    name: str
    model: dict[str, Any]
    experiment: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: list[int] | None = None

    def __post_init__(self) -> None:
        if not str(self.name).isidentifier():
            raise ConfigError(
                f"models: a model's name must be an identifier (letters, digits, '_'). Received: {self.name!r}")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"models[{self.name}].seeds must be distinct seeds. Received: {self.seeds}")


@dataclasses.dataclass
class LightGBMConfig:
    """The per-task gradient-boosted tree baseline (LightGBM, an optional extra).

    Args:
        enabled: train it (skipped with a note when lightgbm is not installed).
        params: LightGBM parameters (objective and metric are set per task).
        num_boost_round: maximum boosting rounds.
        early_stopping_rounds: rounds without improvement on the validation
            split before stopping.
        max_tokens: multi-valued and text features become a bag of tokens,
            one sparse 0/1 column per token, for at most this many tokens
            per column (the most frequent).
        min_token_rows: a token is kept when it occurs in at least this many
            training rows.
    """

    enabled: bool = True
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    max_tokens: int = 20_000
    min_token_rows: int = 5

    def __post_init__(self) -> None:
        for key in ("max_tokens", "min_token_rows"):
            if getattr(self, key) < 1:
                raise ConfigError(f"lightgbm.{key} must be >= 1. Received: {getattr(self, key)}")


@dataclasses.dataclass
class PipelineConfig:
    """A whole pipeline. Build it with `load_pipeline_config`.

    Args:
        name: the pipeline's name (reports, default output folder; default:
            the config file's name).
        experiment: the base mtrec experiment (see `mtrec.config`). Its
            `data.path` names your own table (a Parquet/CSV file, a folder of
            Parquet files or a list), read as `mtrec train` reads it.
        dataset: instead of `data.path`, a data set with a loader (e.g.
            `census_income_kdd`, read from that folder under the data dir;
            see `mtrec.pipelines.datasets`); it also picks the data set's
            extra metrics and reference predictors.
        models: the models to train; one must be named `baseline`.
        seeds: each model is trained once per seed.
        baseline: the model every other is compared with (relative gain).
        output_dir: where the prepared data, runs and reports go.
        data_dir: the data sets folder (None: the loaders' default,
            `$MTREC_DATA_DIR` or `../shared/datasets`).
        loader: the loader's arguments.
        subsample: keep only part of the rows (None: all).
        official_split: when the loaded table has a column `official_split`
            ("train"/"test"), test on its test rows and carve validation out
            of its train rows (the configured split's fractions, renormalized).
        derive: token columns built from the loaded table before splitting.
        target_stats: per-group label statistics (a user's mean rating),
            fit on the training split, out of fold on its rows.
        gbdt_scores: a boosted forest's score of a label (out of fold on the
            training split), a numeric input (stacking).
        rescale: `{column: factor}`: columns multiplied by a factor after
            loading (e.g. returns to percent, so that labels of ~0.01 do not
            sit below the optimizer's step size); reports are in the new units.
        lightgbm: the per-task LightGBM baseline.
        report_metrics: per task, the test metrics shown in the report's
            main table, the first one also giving the relative gain (default:
            AUC for binary, RMSE for regression, accuracy for multiclass).
    """

    name: str
    experiment: dict[str, Any]
    models: list[ModelVariant]
    dataset: str | None = None
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    baseline: str = "single_task"
    output_dir: str | None = None
    data_dir: str | None = None
    loader: LoaderConfig = dataclasses.field(default_factory=LoaderConfig)
    subsample: SubsampleConfig | None = None
    official_split: bool = True
    derive: list[DerivedTokens] = dataclasses.field(default_factory=list)
    rescale: dict[str, float] = dataclasses.field(default_factory=dict)
    target_stats: list[TargetStat] = dataclasses.field(default_factory=list)
    gbdt_scores: list[GBDTScore] = dataclasses.field(default_factory=list)
    lightgbm: LightGBMConfig = dataclasses.field(default_factory=LightGBMConfig)
    report_metrics: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, init=False)
    path: Path | None = dataclasses.field(default=None, repr=False, init=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("models must list at least one model (including the baseline).")
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"models: names must be unique. Declared twice: {duplicates}")
        if self.baseline not in names:
            raise ConfigError(
                f"baseline '{self.baseline}' is not one of the models {names}: the report compares "
                "every model with it. Add it to 'models' or set 'baseline'.")
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct. Received: {self.seeds}")

    @property
    def data_path(self) -> str | list[str] | None:
        """The experiment's `data.path`: the table when there is no loader."""
        return (self.experiment.get("data") or {}).get("path")

    def command(self, step: str | None = None) -> str:
        """The `mtrec pipeline` command that runs this config (for messages)."""
        base = f"mtrec pipeline -c {self.path}" if self.path else f"mtrec pipeline {self.name}"
        return f"{base} --step {step}" if step else base

    @property
    def out(self) -> Path:
        """The output folder."""
        return Path(self.output_dir or f"runs/pipelines/{self.name}")

    def experiment_raw(self, variant: ModelVariant | str, seed: int | None = None) -> dict[str, Any]:
        """The raw experiment mapping of one model variant (and seed), before validation."""
        if isinstance(variant, str):
            variant = self.variant(variant)
        raw = deep_merge(self.experiment, variant.experiment)
        raw["model"] = copy.deepcopy(variant.model)
        raw.setdefault("name", f"{self.name}_{variant.name}")
        if seed is not None:
            raw["seed"] = seed
        return raw

    def experiment_config(self, variant: ModelVariant | str, seed: int | None = None,
                          raw: dict[str, Any] | None = None) -> ExperimentConfig:
        """The validated experiment of one model variant (and seed).

        Args:
            variant: the model variant or its name.
            seed: the run's seed (None: the experiment's).
            raw: the raw experiment to validate instead of `experiment_raw(variant, seed)`
                (a caller may adjust it first).

        Raises:
            ConfigError: naming the key, prefixed with the variant.
        """
        if isinstance(variant, str):
            variant = self.variant(variant)
        if raw is None:
            raw = self.experiment_raw(variant, seed)
        try:
            return parse_config(raw)
        except ConfigError as err:
            raise ConfigError(f"models[{variant.name}]: {err}") from err

    def seeds_of(self, variant: ModelVariant) -> list[int]:
        """The seeds a model is trained with."""
        return list(variant.seeds if variant.seeds is not None else self.seeds)

    def variant(self, name: str) -> ModelVariant:
        """The model variant called `name`."""
        for variant in self.models:
            if variant.name == name:
                return variant
        raise ConfigError(f"No model named '{name}'. Models: {[m.name for m in self.models]}")


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `update` merged in: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Reads a pipeline config file (mtrec's YAML reader), resolving `extends:` chains.

    Raises:
        ConfigError: missing, empty or invalid file, not a mapping, or a cycle.
    """
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"Config {path} extends itself (chain: {[str(p) for p in _seen]}).")
    raw = read_config_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"Pipeline config {path} must be a mapping. Received: {raw!r}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return deep_merge(read_raw(path.parent / parent, _seen + (path,)), raw)


def parse_pipeline_config(raw: dict[str, Any]) -> PipelineConfig:
    """Validates a raw pipeline config, including every model's experiment.

    Raises:
        ConfigError: naming the key that is unknown, missing or mistyped.
    """
    if "data" in raw:
        raise ConfigError("Unknown pipeline config key 'data': the table goes in experiment.data.path "
                          "(the experiment is an mtrec train config).")
    config = from_config(PipelineConfig, raw)
    config.raw = copy.deepcopy(raw)
    check_source(config.dataset, config.data_path)
    for variant in config.models:
        config.experiment_config(variant)
    return config


def load_pipeline_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads, merges (`extends`), overrides (`key.path=value`) and validates a pipeline config.

    A config without `name` is named after its file (`my_reviews.yaml`: `my_reviews`).

    Overrides address the pipeline config, e.g. `seeds=[1]`,
    `experiment.training.epochs=3` or `models.1.model.num_experts=4`.
    """
    raw = read_raw(path)
    raw.setdefault("name", Path(path).stem)
    config = parse_pipeline_config(apply_overrides(raw, overrides or []))
    config.path = Path(path)
    return config


def config_path(name: str, quick: bool = False) -> Path:
    """The shipped config of pipeline `name`: `pipeline_<name>[_quick].yaml` in `mtrec.configs`."""
    path = CONFIG_DIR / f"pipeline_{name}{'_quick' if quick else ''}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("pipeline_") for p in CONFIG_DIR.glob("pipeline_*.yaml"))
        raise ConfigError(f"No pipeline config {path}. Shipped pipelines: {shipped}")
    return path
