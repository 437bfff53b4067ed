"""The experiment config: YAML in, typed and validated objects out.

Sections: `name`, `seed`, `data`, `features`, `tasks`, `model`, `training`,
`scoring`, `weighting`. Keys of `model` (and of `weighting`) are the chosen
class's constructor arguments, so there is no second schema to keep in step.
Every error names the key (e.g. `model.num_experts`) and, for a misspelled
key, suggests the closest one.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from mtrec.data.io import DEFAULT_NA_VALUES
from mtrec.data.splits import SplitConfig
from mtrec.data.synthetic import SyntheticConfig
from mtrec.errors import ConfigError
from mtrec.features import parse_features
from mtrec.layers.domain_towers import check_domain_towers
from mtrec.layers.specs import LayerSpec
from mtrec.models import MODEL_KINDS, MultiTaskModel
from mtrec.models.gated import check_gate_inputs
from mtrec.tasks import Task, tasks_from_config
from mtrec.utils.config_file import parse_yaml, read_config_file
from mtrec.utils.validation import check_keys, coerce, from_config, get_config, kind_and_params
from mtrec.weighting import WeightingConfig, parse_weighting

SECTIONS = ("name", "seed", "data", "features", "tasks", "model", "training", "scoring", "weighting")


@dataclasses.dataclass
class DataConfig:
    """Where the rows come from and how they are split.

    Args:
        path: a Parquet/CSV file, a folder of Parquet files, or a list of
            them. When empty, rows come from the synthetic generator.
        synthetic: settings of the MMoE paper's generator (used when `path`
            is empty).
        split: how rows are split into train, validation and test.
        id_columns: columns carried through to scoring output unchanged.
        max_nonfinite_fraction: the largest share of a numeric feature's or
            label's rows that may be +/-inf (they are treated as missing,
            with a warning naming the column); above it training and scoring
            stop with a DataError. Defaults to `0.01`.
        max_malformed_fraction: the largest share of the input's rows that
            `mtrec prepare` may skip because their shard cannot be read (a
            truncated Parquet file: its rows estimated from its size), with a
            warning naming it; above it, a DataError. Defaults to `0.001`.
        na_values: the strings that mean "missing" in text columns, the same
            for CSV and Parquet files (`mtrec train` and `mtrec score`).
            Defaults to pandas' CSV list: `""`, `"NA"`, `"N/A"`, `"NULL"`,
            `"NaN"`, `"None"`, `"nan"`, `"null"` and a few more
            (`mtrec.data.io.DEFAULT_NA_VALUES`); `[]` keeps every string.
        prepared: a folder written by `mtrec prepare` from this config's data,
            features and tasks: `mtrec train` reads its encoded shards instead
            of `path` (`training.in_memory` decides whether they are streamed).
    """

    path: str | list[str] | None = None
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    id_columns: list[str] = dataclasses.field(default_factory=list)
    max_nonfinite_fraction: float = 0.01
    max_malformed_fraction: float = 0.001
    na_values: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_NA_VALUES))
    prepared: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_nonfinite_fraction <= 1.0:
            raise ConfigError(f"data.max_nonfinite_fraction must be in [0, 1]. "
                              f"Received: {self.max_nonfinite_fraction}")
        if not 0.0 <= self.max_malformed_fraction <= 1.0:
            raise ConfigError(f"data.max_malformed_fraction must be in [0, 1]. "
                              f"Received: {self.max_malformed_fraction}")


@dataclasses.dataclass
class EarlyStoppingConfig:
    """Early stopping on a validation metric.

    Args:
        monitor: the metric, as Keras logs it: `val_loss` or
            `val_<task>_<metric>` (e.g. `val_click_auc`, `val_rating_rmse`).
        mode: `"min"`, `"max"` or `"auto"` (from the metric's name).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
    """

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = 3
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.patience < 0:
            raise ConfigError(f"training.early_stopping.patience must be >= 0. Received: {self.patience}")
        if self.min_delta < 0:
            raise ConfigError(f"training.early_stopping.min_delta must be >= 0. Received: {self.min_delta}")


@dataclasses.dataclass
class TrainingAnalysisConfig:
    """Analysis recorded while training, into metrics.json/csv and TensorBoard (`mtrec.training.analysis_loggers`).

    Args:
        gate_stats: every epoch, each gate's entropy, effective experts and
            per-expert utilization (gated models: MMoE, OMoE, CGC, PLE).
        gradient_cosine: every epoch, the cosine between each pair of tasks'
            loss gradients on the shared parameters (TensorFlow backend).
        rows: rows these are computed on (validation rows for the gates when
            there are any, training rows for the gradients).
    """

    gate_stats: bool = False
    gradient_cosine: bool = False
    rows: int = 2048

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ConfigError(f"training.analysis.rows must be >= 1. Received: {self.rows}")


@dataclasses.dataclass
class ScheduleConfig:
    """A learning-rate schedule (`mtrec.training.optimizers`).

    Args:
        kind: `"cosine"` or `"linear"`: a linear warm-up from 0 to
            `training.learning_rate`, then a decay to `min_fraction` of it at
            the last epoch; `"plateau"`: the rate is multiplied by `factor` when
            the early-stopping monitor has not improved for `patience` epochs.
        warmup_epochs: epochs of warm-up (cosine and linear; may be fractional).
        min_fraction: the lowest rate, as a fraction of `training.learning_rate`.
        factor: the plateau schedule's multiplier, in (0, 1).
        patience: the plateau schedule's epochs without improvement.
    """

    kind: Literal["cosine", "linear", "plateau"]
    warmup_epochs: float = 0.0
    min_fraction: float = 0.0
    factor: float = 0.5
    patience: int = 2

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0:
            raise ConfigError(f"training.schedule.warmup_epochs must be >= 0. Received: {self.warmup_epochs}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ConfigError(f"training.schedule.min_fraction must be in [0, 1]. Received: {self.min_fraction}")
        if not 0.0 < self.factor < 1.0:
            raise ConfigError(f"training.schedule.factor must be in (0, 1). Received: {self.factor}")
        if self.patience < 0:
            raise ConfigError(f"training.schedule.patience must be >= 0. Received: {self.patience}")


@dataclasses.dataclass
class TrainingConfig:
    """How the model is fit.

    Args:
        epochs: maximum number of epochs.
        batch_size: training batch size.
        learning_rate: optimizer learning rate.
        optimizer: optimizer name.
        steps_per_execution: batches run per compiled call; larger values
            cut Python overhead on CPU.
        jit_compile: XLA compilation ("auto" lets Keras decide).
        early_stopping: set to null to train all epochs.
        verbose: Keras progress output: 1 a bar per epoch, 2 one line per
            epoch, 0 silent.
        in_memory: `true` trains on arrays in memory; `false` streams encoded
            shards (`data.prepared`, or `data.path` prepared into
            `RUN_DIR/prepared` first); `"auto"` streams when the input is
            larger than `mtrec.training.streamed.IN_MEMORY_MAX_ROWS` rows
            (CSV: `IN_MEMORY_MAX_BYTES`).
        shuffle_rows: rows of the shuffle buffer of streamed training.
        analysis: gate statistics and gradient cosines recorded per epoch
            (off by default).
        strategy: "none", or "mirrored": data-parallel over this host's devices
            (`mtrec.training.distribution`).
        precision: "float32", "mixed_float16" or "mixed_bfloat16": the model's
            Keras dtype policy (variables float32, computation in 16 bits; task
            outputs, gates, losses and metrics float32; `mtrec.training.precision`).
        schedule: a learning-rate schedule (`ScheduleConfig`); null keeps the
            rate constant.
        weight_decay: decoupled weight decay (as in AdamW: each step subtracts
            `learning_rate * weight_decay * w`); null keeps the optimizer's
            default (none, except `adamw`'s 0.004).
        no_weight_decay: parts of variable names exempt from weight decay,
            e.g. `[embeddings, bias]` (regular expressions searched in names).
        clipnorm: clip each gradient to this norm.
        global_clipnorm: clip all gradients together to this norm.
    """

    epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"] = "adam"
    steps_per_execution: int = 32
    jit_compile: bool | Literal["auto"] = "auto"
    early_stopping: EarlyStoppingConfig | None = dataclasses.field(default_factory=EarlyStoppingConfig)
    verbose: int = 1
    in_memory: bool | Literal["auto"] = "auto"
    shuffle_rows: int = 262_144
    analysis: TrainingAnalysisConfig = dataclasses.field(default_factory=TrainingAnalysisConfig)
    strategy: Literal["none", "mirrored"] = "none"
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    schedule: ScheduleConfig | None = None
    weight_decay: float | None = None
    no_weight_decay: list[str] = dataclasses.field(default_factory=list)
    clipnorm: float | None = None
    global_clipnorm: float | None = None

    def __post_init__(self) -> None:
        for key in ("weight_decay", "clipnorm", "global_clipnorm"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"training.{key} must be >= 0. Received: {value}")
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ConfigError("training.clipnorm and training.global_clipnorm exclude each other; set one")
        for key in ("epochs", "batch_size", "steps_per_execution"):
            if getattr(self, key) < 1:
                raise ConfigError(f"training.{key} must be >= 1. Received: {getattr(self, key)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate must be > 0. Received: {self.learning_rate}")
        if self.shuffle_rows < 0:
            raise ConfigError(f"training.shuffle_rows must be >= 0. Received: {self.shuffle_rows}")


@dataclasses.dataclass
class ScoringConfig:
    """Batch scoring settings.

    Args:
        batch_size: rows read, encoded and predicted per step. Larger steps
            spread the per-step cost of the forward pass (the framework's
            dispatch of each op) over more rows: on the click-log MMoE,
            65,536 rows per step scored 27% faster than 16,384, and 131,072
            72% faster. Memory grows with it: the model's widest layer
            output times the rows, plus the batch itself. Defaults to `65536`.
    """

    batch_size: int = 65536

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"scoring.batch_size must be >= 1. Received: {self.batch_size}")


@dataclasses.dataclass
class ModelConfig:
    """The model: its kind and its constructor arguments.

    Args:
        kind: one of `MODEL_KINDS` (e.g. `"mmoe"`).
        params: the other keys, checked against the model's constructor.
        ensemble: `model.ensemble`, an int >= 1: the run fits this many models (seeds seed,
            seed+1, ...) and predicts their mean (`mtrec.training.ensemble`). Not a constructor
            argument. Defaults to `1`.
    """

    kind: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    ensemble: int = 1

    @property
    def model_class(self) -> type[MultiTaskModel]:
        """The Keras model class this config builds."""
        return MODEL_KINDS[self.kind]


@dataclasses.dataclass
class ExperimentConfig:
    """A whole experiment. Build it with `load_config` or `parse_config`."""

    name: str
    seed: int
    data: DataConfig
    features: list
    tasks: list[Task]
    model: ModelConfig
    training: TrainingConfig
    scoring: ScoringConfig
    raw: dict[str, Any] = dataclasses.field(repr=False, default_factory=dict)
    #: Task weighting strategy (`weighting:`; static `Task.weight` by default).
    weighting: WeightingConfig = dataclasses.field(default_factory=WeightingConfig)

    def get_config(self) -> dict[str, Any]:
        """The resolved config as plain values (defaults filled in), for the run directory."""
        return {
            "name": self.name,
            "seed": self.seed,
            "data": get_config(self.data),
            "features": [get_config(f) for f in self.features],
            "tasks": [t.get_config() for t in self.tasks],
            "model": {"kind": self.model.kind, **self.model.params,
                      **({"ensemble": self.model.ensemble} if self.model.ensemble != 1 else {})},
            "training": get_config(self.training),
            "scoring": get_config(self.scoring),
            "weighting": self.weighting.get_config(),
        }


def model_parameters(model_class: type[MultiTaskModel]) -> dict[str, inspect.Parameter]:
    """The constructor arguments a model config may set, across the class hierarchy."""
    params: dict[str, inspect.Parameter] = {}
    for cls in model_class.__mro__:
        if not (isinstance(cls, type) and issubclass(cls, MultiTaskModel)) or "__init__" not in cls.__dict__:
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "tasks", "feature_layout") or param.kind in (
                    param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            params.setdefault(name, param)
    for name in getattr(model_class, "fixed_parameters", ()):
        params.pop(name, None)
    return params


def _model_hints(model_class: type[MultiTaskModel]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for cls in reversed(model_class.__mro__):
        if isinstance(cls, type) and issubclass(cls, MultiTaskModel) and "__init__" in cls.__dict__:
            hints.update(typing.get_type_hints(cls.__init__))
    return hints


def _spec_class(hint: Any) -> type[LayerSpec] | None:
    """The spec class of an annotation like `ExpertSpec | None`, else None."""
    for arg in typing.get_args(hint) or (hint,):
        if isinstance(arg, type) and issubclass(arg, LayerSpec):
            return arg
    return None


def _parse_model(raw: Any) -> ModelConfig:
    """Validates the `model:` section: its kind, then each key against the class's constructor.

    A spec key (`expert`, `bottom`) is checked field by field (`model.expert.units`); the flat
    keys of mtrec 0.1 (`expert_units`, `bottom_dropout`, ...) are accepted, checked as the
    spec field they stand for, and override that field. Values are kept as given (the model
    folds flat keys in).
    """
    kind, params = kind_and_params(raw, MODEL_KINDS, "model")
    # model.ensemble: the run's seed ensemble (mtrec.training.ensemble), not a constructor argument.
    ensemble = coerce(params.pop("ensemble", 1), int, "model.ensemble")
    if ensemble < 1:
        raise ConfigError(f"Config key 'model.ensemble' must be an integer >= 1. Received: {ensemble}")
    cls = MODEL_KINDS[kind]
    hints = _model_hints(cls)
    allowed = model_parameters(cls)
    specs = {key: spec for key in allowed if (spec := _spec_class(hints.get(key))) is not None}
    legacy = {old: (key, field) for key, spec in specs.items() for old, field in spec.legacy_keys.items()}
    check_keys(params, [*allowed, *legacy], "model")
    for key, value in params.items():
        if key in specs:
            try:
                given = from_config(specs[key], value, f"model.{key}").get_config()
            except ConfigError:
                raise
            except ValueError as err:
                raise ConfigError(f"Config key 'model.{key}': {err}") from err
            params[key] = {field: given[field] for field in value}
        elif key in legacy:
            spec_key, field = legacy[key]
            params[key] = coerce(value, typing.get_type_hints(specs[spec_key])[field], f"model.{key}")
        else:
            params[key] = coerce(value, hints.get(key, Any), f"model.{key}")
            # A count (num_experts, num_levels, ...) of zero fails in the layer, after the data is read.
            if key.startswith("num_") and isinstance(params[key], int) and params[key] < 1:
                raise ConfigError(f"Config key 'model.{key}' must be an integer >= 1. Received: {params[key]}")
    for key, spec in specs.items():
        try:
            spec.get(params.get(key), {k: v for k, v in params.items() if k in spec.legacy_keys})
        except ValueError as err:
            raise ConfigError(f"Config key 'model.{key}': {err}") from err
    return ModelConfig(kind=kind, params=params, ensemble=ensemble)


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validates a config mapping (as read from YAML) into an ExperimentConfig.

    Raises:
        ConfigError: naming the key that is unknown, missing, mistyped or
            inconsistent with another.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"A config must be a mapping of sections {list(SECTIONS)}. Received: {raw!r}")
    raw = copy.deepcopy(raw)
    check_keys(raw, SECTIONS, "")
    for key in ("features", "tasks", "model"):
        if key not in raw:
            raise ConfigError(f"Missing required config key '{key}'.")
    name = coerce(raw.get("name", "experiment"), str, "name")
    seed = coerce(raw.get("seed", 42), int, "seed")
    data = from_config(DataConfig, raw.get("data"), "data")
    features = parse_features(raw["features"], "features")
    if not features:
        raise ConfigError("Config key 'features' declares no feature; a model needs at least one input.")
    tasks = tasks_from_config(raw["tasks"], "tasks")
    model = _parse_model(raw["model"])
    training = from_config(TrainingConfig, raw.get("training"), "training")
    scoring = from_config(ScoringConfig, raw.get("scoring"), "scoring")
    weighting = parse_weighting(raw.get("weighting"), "weighting")

    feature_names = {f.name for f in features}
    for i, task in enumerate(tasks):
        if task.label in feature_names:
            raise ConfigError(
                f"tasks[{i}].label '{task.label}' is also declared as a feature: a label "
                f"must not be an input. Remove it from 'features'.")
        if task.sample_weight and task.sample_weight in feature_names:
            raise ConfigError(
                f"tasks[{i}].sample_weight '{task.sample_weight}' is also declared as a feature: a "
                f"weight column must not be an input. Remove it from 'features'.")
    check_gate_inputs(model.params.get("gate_inputs"), features)
    check_domain_towers(model.params.get("domain_towers"), features)
    return ExperimentConfig(name, seed, data, features, tasks, model, training, scoring, raw=raw,
                            weighting=weighting)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies `key.path=value` overrides (value parsed as YAML, `parse_yaml`) to a raw config.

    List items are addressed by index: `tasks.0.weight=2`.

    Raises:
        ConfigError: an override without `=`, or a path through a missing
            list index.
    """
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like key.path=value.")
        path, value = item.split("=", 1)
        keys = path.strip().split(".")
        node: Any = raw
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"Override '{item}': '{'.'.join(keys[:depth])}' has no item {key}.")
                key = int(key)
            if last:
                try:
                    node[key] = parse_yaml(value)
                except yaml.YAMLError as err:
                    raise ConfigError(f"Override '{item}': the value of '{path.strip()}' is not valid YAML "
                                      f"({' '.join(str(err).split())}).") from None
            else:
                if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Reads a YAML config file (`read_config_file`), applies overrides and validates it.

    Raises:
        ConfigError: the file is missing or not valid YAML, or a key is bad.
    """
    return parse_config(apply_overrides(read_config_file(path), overrides or []))
