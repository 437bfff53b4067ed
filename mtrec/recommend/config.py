"""The recommendation config: data and holdout, retrieval, negatives, ranking, blend, output.

One YAML file drives `mtrec recommend` (and `mtrec retrieval-train`); each
section is validated into a typed object and every error names its key.
`ranking` is an ordinary mtrec experiment config (features, tasks, model,
training) whose rows the recommend job builds, so it has no `data.path`.

Example: `configs/recommend_movielens.yaml`.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Literal

from mtrec.config import ExperimentConfig, apply_overrides, parse_config, read_config_file
from mtrec.errors import ConfigError
from mtrec.recommend.blend import BlendConfig
from mtrec.retrieval.config import RetrievalConfig, parse_retrieval_config
from mtrec.utils.validation import check_keys, closest, coerce, from_config, get_config

SECTIONS = ("name", "seed", "data", "retrieval", "negatives", "ranking", "blend", "output", "evaluation")

#: Data sets `data.dataset` may name (loaders in `mtrec.data.datasets`).
DATASETS = ("movielens_100k",)


@dataclasses.dataclass
class HoldoutConfig:
    """Which interactions are held out for the offline evaluation.

    Args:
        kind: `"user_time"`: each user's latest `fraction` of interactions
            (by `time_column`; at least one when the user has two or more);
            `"random"`: a random `fraction` of all interactions. Defaults to
            `"user_time"`.
        fraction: share held out, in (0, 1). Defaults to `0.2`.
        time_column: for `"user_time"`. Defaults to `"timestamp"`.
        seed: for `"random"`, and to break timestamp ties.
    """

    kind: Literal["user_time", "random"] = "user_time"
    fraction: float = 0.2
    time_column: str = "timestamp"
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError(f"data.holdout.fraction must be in (0, 1). Received: {self.fraction}")


@dataclasses.dataclass
class RecommendDataConfig:
    """Where interactions, users and items come from.

    Args:
        dataset: a data set loaded with `mtrec.data.datasets` (one of
            `DATASETS`); or null with the three paths below.
        data_dir: the folder holding the data set's folder; defaults to
            `MTREC_DATA_DIR`, else `../shared/datasets`.
        interactions, users, items: Parquet/CSV files (when `dataset` is null).
        user_id, item_id: the id columns.
        like: the column of the "like" label; when absent from the
            interactions it is derived as `rating >= like_threshold`.
        rating: the rating column.
        like_threshold: see `like`.
        holdout: the held-out interactions.
    """

    dataset: str | None = "movielens_100k"
    data_dir: str | None = None
    interactions: str | None = None
    users: str | None = None
    items: str | None = None
    user_id: str = "user_id"
    item_id: str = "item_id"
    rating: str = "rating"
    like: str = "like"
    like_threshold: float = 4.0
    holdout: HoldoutConfig = dataclasses.field(default_factory=HoldoutConfig)

    def __post_init__(self) -> None:
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ConfigError(f"The 'data.dataset' parameter must be one of {list(DATASETS)} or null. "
                              f"Got {self.dataset!r} instead.")
        if self.dataset is None:
            missing = [k for k in ("interactions", "users", "items") if not getattr(self, k)]
            if missing:
                raise ConfigError(f"data.dataset is null, so data.{missing[0]} (a Parquet/CSV path) is required.")


@dataclasses.dataclass
class NegativesConfig:
    """Click negatives for the ranker: retrieval candidates the user did not interact with.

    Args:
        rate: share of each user's unrated candidates (the top `k` of
            retrieval, training items excluded) sampled as click = 0 rows.
            Defaults to `0.2`.
        k: candidates per user in the pool. Defaults to `100`.
        seed: the sampling seed.
    """

    rate: float = 0.2
    k: int = 100
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 1:
            raise ConfigError(f"negatives.rate must be in (0, 1]. Received: {self.rate}")
        if self.k < 1:
            raise ConfigError(f"negatives.k must be >= 1. Received: {self.k}")


@dataclasses.dataclass
class OutputConfig:
    """The recommendation table.

    Args:
        k: retrieval candidates per user that the ranker reorders. Defaults to `100`.
        n: recommendations per user. Defaults to `10`.
        path: the Parquet file, relative to the run directory unless
            absolute. Defaults to `"recommendations.parquet"`.
        gate_summary: add, per task gate, the top expert and its weight
            (gated models only). Defaults to `true`.
        batch_users: users ranked per step. Defaults to `512`.
    """

    k: int = 100
    n: int = 10
    path: str = "recommendations.parquet"
    gate_summary: bool = True
    batch_users: int = 512

    def __post_init__(self) -> None:
        for key in ("k", "n", "batch_users"):
            if getattr(self, key) < 1:
                raise ConfigError(f"output.{key} must be >= 1. Received: {getattr(self, key)}")
        if self.n > self.k:
            raise ConfigError(f"output.n ({self.n}) must not exceed output.k ({self.k}): the ranker "
                              "only reorders the k retrieval candidates.")


@dataclasses.dataclass
class EvaluationConfig:
    """The offline comparison of retrieval alone against retrieval + ranking.

    Args:
        ns: list lengths N of Recall@N, NDCG@N, MRR@N. Defaults to `[10]`.
        relevance: which held-out interactions count as relevant: `"click"`
            (every held-out interaction) and/or `"like"` (held-out likes).
    """

    ns: list[int] = dataclasses.field(default_factory=lambda: [10])
    relevance: list[Literal["click", "like"]] = dataclasses.field(default_factory=lambda: ["click", "like"])


@dataclasses.dataclass
class RecommendConfig:
    """The whole recommendation job; build it with `load_recommend_config`."""

    name: str
    seed: int
    data: RecommendDataConfig
    retrieval: RetrievalConfig
    negatives: NegativesConfig
    ranking: ExperimentConfig
    blend: BlendConfig
    output: OutputConfig
    evaluation: EvaluationConfig

    def get_config(self) -> dict[str, Any]:
        """The resolved config (defaults filled in), for the run directory."""
        return {"name": self.name, "seed": self.seed, "data": get_config(self.data),
                "retrieval": self.retrieval.get_config(), "negatives": get_config(self.negatives),
                "ranking": self.ranking.get_config(), "blend": get_config(self.blend),
                "output": get_config(self.output), "evaluation": get_config(self.evaluation)}


def score_columns(ranking: ExperimentConfig) -> list[str]:
    """The score columns the ranker writes: one per (non-auxiliary) task, `<task>_conditional` for chained ones."""
    columns = []
    for task in ranking.tasks:
        if task.auxiliary:
            continue
        columns.append(task.name)
        if getattr(task, "after", None):
            columns.append(f"{task.name}_conditional")
    return columns


def parse_recommend_config(raw: dict[str, Any]) -> RecommendConfig:
    """Validates a recommendation config mapping.

    Raises:
        ConfigError: naming the key that is unknown, missing or out of range.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"A recommend config must be a mapping of sections {list(SECTIONS)}. Received: {raw!r}")
    raw = copy.deepcopy(raw)
    check_keys(raw, SECTIONS, "")
    if "ranking" not in raw:
        raise ConfigError("Missing required config key 'ranking' (features, tasks, model, training).")
    name = coerce(raw.get("name", "recommend"), str, "name")
    seed = coerce(raw.get("seed", 42), int, "seed")
    data = from_config(RecommendDataConfig, raw.get("data"), "data")
    retrieval = parse_retrieval_config(raw.get("retrieval"), "retrieval")
    ranking_raw = raw["ranking"]
    if not isinstance(ranking_raw, dict):
        raise ConfigError(f"Config key 'ranking' must be a mapping. Received: {ranking_raw!r}")
    if (ranking_raw.get("data") or {}).get("path"):
        raise ConfigError("ranking.data.path must be empty: `mtrec recommend` builds the ranking rows "
                          "(positives and sampled negatives).")
    ranking_raw = {"name": f"{name}_ranking", "seed": seed, **ranking_raw}
    try:
        ranking = parse_config(ranking_raw)
    except ConfigError as err:
        raise ConfigError(f"In section 'ranking': {err}") from err
    for key in (data.user_id, data.item_id):
        if key not in ranking.data.id_columns:
            ranking.data.id_columns.append(key)
    config = RecommendConfig(
        name=name, seed=seed, data=data, retrieval=retrieval,
        negatives=from_config(NegativesConfig, raw.get("negatives"), "negatives"),
        ranking=ranking,
        blend=from_config(BlendConfig, raw.get("blend"), "blend"),
        output=from_config(OutputConfig, raw.get("output"), "output"),
        evaluation=from_config(EvaluationConfig, raw.get("evaluation"), "evaluation"),
    )
    scores = score_columns(ranking)
    for column in config.blend.weights:
        if column not in scores:
            raise ConfigError(f"blend.weights names '{column}', which the ranker does not score."
                              f"{closest(column, scores)} Score columns of the ranking tasks: {scores}")
    if (retrieval.user_id, retrieval.item_id) != (data.user_id, data.item_id):
        raise ConfigError(
            f"retrieval.user_id/item_id ({retrieval.user_id}, {retrieval.item_id}) must match "
            f"data.user_id/item_id ({data.user_id}, {data.item_id}).")
    if config.output.k > config.retrieval.k:
        config.retrieval.k = config.output.k
    return config


def load_recommend_config(path: str | Path, overrides: list[str] | None = None) -> RecommendConfig:
    """Reads a recommendation YAML, applies `key.path=value` overrides and validates it.

    Raises:
        ConfigError: a missing or invalid file, or a bad key.
    """
    return parse_recommend_config(apply_overrides(read_config_file(path), overrides or []))
