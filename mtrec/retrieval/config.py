"""The retrieval stage's settings (config section `retrieval`), plain Python: safe in any process.

The defaults are the TFRS multitask tutorial's (embedding 32, batch 8192,
3 epochs, Adagrad 0.1, a 256-128-1 rating head, loss weights 1 and 1), so a
config that names only the id columns trains the tutorial's model.

Example (YAML):

```yaml
retrieval:
  query_features: [{name: user_id}, {name: occupation}, {name: age, kind: numeric}]
  candidate_features: [{name: item_id}, {name: genres, kind: multi_categorical}]
  query_layers: [64]
  rating_weight: 1.0
  retrieval_weight: 1.0
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from mtrec.errors import ConfigError
from mtrec.utils.validation import from_config, get_config


@dataclasses.dataclass
class TowerFeature:
    """One input of a tower.

    Args:
        name: the column.
        kind: `"categorical"` (values read as strings, a vocabulary and an
            embedding; unseen values share one out-of-vocabulary row),
            `"numeric"` (standardized with the training mean and standard
            deviation) or `"multi_categorical"` (a `separator`-joined string
            of values, mean-pooled embeddings). Defaults to `"categorical"`.
        embedding_dim: width of this feature's embedding; defaults to the
            tower's `embedding_dim`.
        separator: for `"multi_categorical"`. Defaults to `"|"`.
    """

    name: str
    kind: Literal["categorical", "numeric", "multi_categorical"] = "categorical"
    embedding_dim: int | None = None
    separator: str = "|"


@dataclasses.dataclass
class RetrievalConfig:
    """A two-tower retrieval model trained with `tfrs.tasks.Retrieval`, optionally with a rating task.

    Args:
        user_id: the user column (the key of the query side).
        item_id: the item column (the candidates' identifiers).
        rating: the rating column of the joint rating task; null trains
            retrieval alone.
        query_features: inputs of the query tower; empty means `[user_id]`.
        candidate_features: inputs of the candidate tower; empty means `[item_id]`.
        embedding_dim: width of both towers' outputs (and the default width
            of each feature embedding). Defaults to `32`.
        query_layers: hidden Dense widths of the query tower. With one input
            feature and no layers the tower is the bare embedding (the
            tutorial's); otherwise the inputs are concatenated, passed
            through these layers and projected to `embedding_dim`.
        candidate_layers: the same for the candidate tower.
        rating_layers: hidden widths of the rating head on the concatenated
            tower outputs. Defaults to `[256, 128]`.
        rating_weight: loss weight of the rating task (0 turns it off).
        retrieval_weight: loss weight of the retrieval task.
        epochs: passes over the training interactions. Defaults to `3`.
        batch_size: training batch (also the number of in-batch negatives).
        eval_batch_size: evaluation batch.
        optimizer: `"adagrad"` (the tutorial's) or `"adam"`.
        learning_rate: Defaults to `0.1`.
        remove_accidental_hits: in the in-batch softmax, do not count as
            negatives the other rows of the batch that hold the positive's
            own item (popular items repeat many times in a large batch).
            Defaults to `False` (the tutorial's).
        temperature: divides the retrieval logits; null for none.
        seed: TensorFlow's global seed and the shuffle seed.
        top_ks: the ks of the top-K accuracy reported on held-out interactions.
        k: default number of candidates a query returns.

    Raises:
        ConfigError: naming the key for out-of-range values.
    """

    user_id: str = "user_id"
    item_id: str = "item_id"
    rating: str | None = "rating"
    query_features: list[TowerFeature] = dataclasses.field(default_factory=list)
    candidate_features: list[TowerFeature] = dataclasses.field(default_factory=list)
    embedding_dim: int = 32
    query_layers: list[int] = dataclasses.field(default_factory=list)
    candidate_layers: list[int] = dataclasses.field(default_factory=list)
    rating_layers: list[int] = dataclasses.field(default_factory=lambda: [256, 128])
    rating_weight: float = 1.0
    retrieval_weight: float = 1.0
    epochs: int = 3
    batch_size: int = 8192
    eval_batch_size: int = 4096
    optimizer: Literal["adagrad", "adam"] = "adagrad"
    learning_rate: float = 0.1
    remove_accidental_hits: bool = False
    temperature: float | None = None
    seed: int = 42
    top_ks: list[int] = dataclasses.field(default_factory=lambda: [1, 5, 10, 50, 100])
    k: int = 100

    def __post_init__(self) -> None:
        if not self.query_features:
            self.query_features = [TowerFeature(self.user_id)]
        if not self.candidate_features:
            self.candidate_features = [TowerFeature(self.item_id)]
        for key in ("embedding_dim", "epochs", "batch_size", "eval_batch_size", "k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"retrieval.{key} must be >= 1. Received: {getattr(self, key)}")
        for key in ("rating_weight", "retrieval_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"retrieval.{key} must be >= 0. Received: {getattr(self, key)}")
        if self.rating_weight == 0 and self.retrieval_weight == 0:
            raise ConfigError("retrieval.rating_weight and retrieval.retrieval_weight are both 0: "
                              "nothing would be trained.")
        if self.rating_weight > 0 and not self.rating:
            raise ConfigError("retrieval.rating_weight > 0 needs retrieval.rating (the rating column).")
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError(f"retrieval.temperature must be > 0 or null. Received: {self.temperature}")
        if self.learning_rate <= 0:
            raise ConfigError(f"retrieval.learning_rate must be > 0. Received: {self.learning_rate}")
        for side, features, key in (("query", self.query_features, self.user_id),
                                    ("candidate", self.candidate_features, self.item_id)):
            names = [f.name for f in features]
            if key not in names:
                raise ConfigError(
                    f"retrieval.{side}_features must include the id column '{key}'. Received: {names}")
            if len(set(names)) != len(names):
                raise ConfigError(f"retrieval.{side}_features names a column twice: {names}")

    @property
    def query_columns(self) -> list[str]:
        """Columns the query tower reads."""
        return [f.name for f in self.query_features]

    @property
    def candidate_columns(self) -> list[str]:
        """Columns the candidate tower reads."""
        return [f.name for f in self.candidate_features]

    def get_config(self) -> dict[str, Any]:
        """Plain values (every default filled in), for JSON/YAML."""
        return get_config(self)


def parse_retrieval_config(raw: dict[str, Any] | None, where: str = "retrieval") -> RetrievalConfig:
    """Validates the `retrieval` section into a RetrievalConfig.

    Raises:
        ConfigError: an unknown, mistyped or out-of-range key, named by its path.
    """
    return from_config(RetrievalConfig, raw, where)
