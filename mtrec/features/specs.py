"""Feature specs: what each input column is and how to encode it, built from config dicts.

A config lists features as mappings discriminated by `kind`::

    features:
      - {name: "x*", kind: numeric}                     # a glob, expanded at fit time
      - {name: age, kind: numeric, log1p: true, clip: [0, 5]}
      - {name: item_id, kind: categorical, embedding_dim: 16}
      - {name: last_item_id, kind: categorical, table: item_id, embedding_dim: 16}
      - {name: genres, kind: multi_categorical, separator: "|"}
      - {name: "Review Text", kind: text, max_tokens: 5000, min_count: 3, ngrams: 2}

Any column name works (spaces, punctuation, any script): the model and the
export derive valid internal names from it (`mtrec.features.names`).

`parse_features` turns such a list into spec dataclasses and checks the rules
across features (unique names, shared tables that agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union

from mtrec.errors import ConfigError
from mtrec.features.names import check_names
from mtrec.utils.validation import choice, from_config

NUMERIC_KEY = "numeric"
"""Key of the numeric matrix in `FeatureEncoder.transform`'s output; no feature may use it."""

GLOB_CHARS = "*?["


@dataclasses.dataclass(frozen=True)
class NumericEmbedding:
    """A learned embedding of a numeric column (Gorishniy et al., 2022), built by the model.

    The column is still encoded as a standardized float; the model's
    `FeatureEmbedding` replaces it by this embedding
    (`mtrec.layers.numeric_embedding.NumericEmbedding`).

    Args:
        kind: `"quantile"`: piecewise-linear encoding over quantile bucket
            edges fit on the training split (saved in the model), then a
            linear layer; `"periodic"`: PLR, `[sin(2 pi c x), cos(2 pi c x)]`
            with trainable frequencies `c`, then a linear layer.
        dim: int. Width of the embedding. Defaults to `16`.
        bins: int or None. Quantile buckets (`"quantile"` only); fewer when
            the training values have fewer distinct quantiles. Defaults to
            `32`.
        frequencies: int or None. Number of frequencies `c` (`"periodic"`
            only). Defaults to `16`.
        sigma: float or None. Frequencies start drawn from N(0, sigma)
            (`"periodic"` only). Defaults to `1.0`.
        relu: bool. A ReLU after the linear layer. Defaults to `True`.
    """

    kind: Literal["quantile", "periodic"]
    dim: int = 16
    bins: int | None = None
    frequencies: int | None = None
    sigma: float | None = None
    relu: bool = True

    @property
    def params(self) -> dict[str, Any]:
        """The layer's settings, defaults filled in for the kind."""
        if self.kind == "quantile":
            return {"kind": "quantile", "dim": self.dim, "bins": self.bins or 32, "relu": self.relu}
        return {"kind": "periodic", "dim": self.dim, "frequencies": self.frequencies or 16,
                "sigma": 1.0 if self.sigma is None else self.sigma, "relu": self.relu}


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    """A numeric column (or, with a glob in `name`, every matching column), standardized.

    Args:
        name: str. The column name, or a glob such as `"x*"` expanded against
            the training table's columns at fit time (naturally sorted, so
            `x2` comes before `x10`). A glob skips columns that another
            feature names explicitly.
        kind: `"numeric"`.
        log1p: bool. Apply `log(1 + x)` first; values <= -1 are an error.
            Defaults to `False`.
        clip: `[lo, hi]` or None. Clip after `log1p`, before standardizing.
            Defaults to `None`.
        impute: `"mean"`, `"median"` or `"zero"`. Value for missing entries,
            computed on the transformed (log1p, clipped) training values.
            Defaults to `"mean"`.
        missing_indicator: `"auto"`, `"always"` or `"never"`. Whether to add a
            0/1 column `<column>__missing`; `"auto"` adds it only when the
            training split had missing values in that column. Defaults to
            `"auto"`.
        embedding: `NumericEmbedding` (a mapping with `kind`) or None. A
            learned embedding replacing the standardized value in the model,
            e.g. `{kind: quantile, bins: 32, dim: 16}` or `{kind: periodic,
            frequencies: 16, sigma: 1.0, dim: 16}`. Defaults to `None`.
    """

    name: str
    kind: Literal["numeric"] = "numeric"
    log1p: bool = False
    clip: list[float] | None = None
    impute: Literal["mean", "median", "zero"] = "mean"
    missing_indicator: Literal["auto", "always", "never"] = "auto"
    embedding: NumericEmbedding | None = None

    @property
    def is_glob(self) -> bool:
        """Whether `name` is a pattern rather than a column name."""
        return any(c in self.name for c in GLOB_CHARS)


@dataclasses.dataclass(frozen=True)
class _EmbeddedFeature:
    """What every feature looked up in an embedding table has (see `CategoricalFeature`).

    The subclasses give `kind` its value and may add fields after these.
    """

    name: str
    kind: str
    table: str | None = None
    embedding_dim: int = 8
    min_count: int = 1
    max_vocab_size: int | None = None
    hash_buckets: int | None = None

    @property
    def table_name(self) -> str:
        """The embedding table this feature reads (its own name by default)."""
        return self.table or self.name

    @property
    def vocabulary_limit(self) -> int | None:
        """The most values the table's vocabulary keeps (`max_vocab_size`)."""
        return self.max_vocab_size


@dataclasses.dataclass(frozen=True)
class CategoricalFeature(_EmbeddedFeature):
    """A single-valued categorical column, looked up in an embedding table.

    Args:
        name: str. The column name.
        kind: `"categorical"`.
        table: str or None. Embedding table name; several features may share
            one table (and one vocabulary). Defaults to the feature name.
        embedding_dim: int. Width of the table. Defaults to `8`.
        min_count: int. Values seen fewer times in training go to the
            out-of-vocabulary id. Defaults to `1`.
        max_vocab_size: int or None. Keep only the most frequent values.
            Defaults to `None` (no limit).
        hash_buckets: int or None. When set, no vocabulary is fit: values are
            hashed (with a stable hash) into this many buckets. Defaults to
            `None`.
    """

    kind: Literal["categorical"] = "categorical"


@dataclasses.dataclass(frozen=True)
class MultiCategoricalFeature(_EmbeddedFeature):
    """A multi-valued categorical column: lists, or strings joined by `separator`.

    Encoded as `(n, length)` ids padded with 0; the model mean-pools them.

    Args:
        name: str. The column name.
        kind: `"multi_categorical"`.
        separator: str. Splits string cells (e.g. `"Action|Comedy"`); tokens
            are stripped of surrounding whitespace and empty tokens dropped.
            Defaults to `"|"`.
        max_length: int or None. Values kept per row (the rest are cut).
            Defaults to `None`: the longest training list.
        table, embedding_dim, min_count, max_vocab_size, hash_buckets: as for
            `CategoricalFeature`.
    """

    kind: Literal["multi_categorical"] = "multi_categorical"
    separator: str = "|"
    max_length: int | None = None


@dataclasses.dataclass(frozen=True)
class TextFeature(_EmbeddedFeature):
    """Free text: lowercased, stripped of punctuation, split into words (and bigrams), mean-pooled.

    Tokenized by `mtrec.features.text.tokenize` (the exported graph
    reproduces it with `tf.strings` ops), then encoded like a
    `multi_categorical` feature: `(n, length)` token ids padded with 0,
    mean-pooled by the model.

    Args:
        name: str. The column name.
        kind: `"text"`.
        max_tokens: int or None. Vocabulary size: keep only the most frequent
            tokens (as Keras' `TextVectorization(max_tokens=...)`); the rest go
            to the out-of-vocabulary id. Defaults to `20000`; `None` keeps all.
        min_count: int. Tokens seen fewer times in training go to the
            out-of-vocabulary id. Defaults to `2`.
        ngrams: int. `1` for words, `2` for words followed by the row's
            bigrams (`"not good"`). Defaults to `1`.
        max_length: int or None. Tokens kept per row (the first ones; with
            bigrams the words come first). Defaults to `None`: the longest
            training row.
        table, embedding_dim, hash_buckets: as for `CategoricalFeature`
            (`hash_buckets` hashes tokens instead of fitting a vocabulary).
    """

    kind: Literal["text"] = "text"
    min_count: int = 2
    max_tokens: int | None = 20000
    ngrams: int = 1
    max_length: int | None = None

    @property
    def vocabulary_limit(self) -> int | None:
        """The most tokens the table's vocabulary keeps (`max_tokens`)."""
        return self.max_tokens


FeatureSpec = Union[NumericFeature, CategoricalFeature, MultiCategoricalFeature, TextFeature]
TableFeature = Union[CategoricalFeature, MultiCategoricalFeature, TextFeature]
#: Features encoded as padded id lists and mean-pooled by the model.
PooledFeature = Union[MultiCategoricalFeature, TextFeature]

FEATURE_KINDS: dict[str, type] = {
    "numeric": NumericFeature,
    "categorical": CategoricalFeature,
    "multi_categorical": MultiCategoricalFeature,
    "text": TextFeature,
}

# Settings that define a table's vocabulary or shape: features sharing a table must agree.
SHARED_TABLE_KEYS = ("embedding_dim", "hash_buckets", "min_count", "vocabulary_limit")


def parse_features(items: Any, where: str = "features") -> list[FeatureSpec]:
    """Builds feature specs from config mappings and checks the rules across them.

    Args:
        items: list of mappings (as read from YAML), each with a `kind`;
            spec objects are accepted too and only checked.
        where: the key path of the list, for messages.

    Returns:
        The specs, in the order given.

    Raises:
        ConfigError: naming the key path (e.g. `features[2].kind`) of an
            unknown kind or key, a bad value, a feature declared twice, the
            reserved name `"numeric"`, or shared tables that disagree.
    """
    if not isinstance(items, (list, tuple)):
        raise ConfigError(
            f"Config key '{where}' must be a list of features (mappings with 'name' and "
            f"'kind'). Received: {items!r}.")
    specs = []
    for i, item in enumerate(items):
        path = f"{where}[{i}]"
        if isinstance(item, tuple(FEATURE_KINDS.values())):
            spec = item
        elif isinstance(item, Mapping):
            if "kind" not in item:
                raise ConfigError(
                    f"Missing required config key '{path}.kind' (one of {list(FEATURE_KINDS)}).")
            kind = choice(item["kind"], list(FEATURE_KINDS), f"{path}.kind")
            spec = from_config(FEATURE_KINDS[kind], item, path)
        else:
            raise ConfigError(
                f"Config key '{path}' must be a mapping with 'name' and 'kind' "
                f"(one of {list(FEATURE_KINDS)}). Received: {item!r}.")
        check_spec(spec, path)
        specs.append(spec)
    check_specs(specs, where)
    return specs


def check_spec(spec: FeatureSpec, where: str) -> None:
    """Checks the values of one spec (ranges, clip bounds, names).

    Raises:
        ConfigError: naming `where` and the key.
    """
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ConfigError(f"Config key '{where}.name' must be a non-empty string. Received: {spec.name!r}.")
    if spec.name == NUMERIC_KEY:
        raise ConfigError(
            f"Config key '{where}.name': the name '{NUMERIC_KEY}' is reserved (it holds the matrix "
            f"of numeric features). Rename the column or the feature.")
    if isinstance(spec, NumericFeature):
        if spec.clip is not None:
            if len(spec.clip) != 2 or spec.clip[0] > spec.clip[1]:
                raise ConfigError(
                    f"Config key '{where}.clip' must be two numbers [lo, hi] with lo <= hi. "
                    f"Received: {list(spec.clip)!r}.")
        if spec.embedding is not None:
            _check_numeric_embedding(spec.embedding, f"{where}.embedding")
        return
    if any(c in spec.name for c in GLOB_CHARS):
        raise ConfigError(
            f"Config key '{where}.name': globs are only supported for numeric features. "
            f"Received: {spec.name!r} for a {spec.kind} feature.")
    if spec.table is not None and (not isinstance(spec.table, str) or not spec.table.strip()):
        raise ConfigError(f"Config key '{where}.table' must be a non-empty string. Received: {spec.table!r}.")
    _positive(spec.embedding_dim, f"{where}.embedding_dim")
    _positive(spec.min_count, f"{where}.min_count")
    _positive(spec.max_vocab_size, f"{where}.max_vocab_size", optional=True)
    _positive(spec.hash_buckets, f"{where}.hash_buckets", optional=True)
    if isinstance(spec, TextFeature):
        _positive(spec.max_tokens, f"{where}.max_tokens", optional=True)
        _positive(spec.max_length, f"{where}.max_length", optional=True)
        if spec.max_vocab_size is not None:
            raise ConfigError(
                f"Config key '{where}.max_vocab_size': a text feature's vocabulary size is "
                f"'max_tokens'. Received: max_vocab_size={spec.max_vocab_size!r}.")
        if spec.ngrams not in (1, 2) or isinstance(spec.ngrams, bool):
            raise ConfigError(f"Config key '{where}.ngrams' must be 1 (words) or 2 (words and bigrams). "
                              f"Received: {spec.ngrams!r}.")
    if isinstance(spec, MultiCategoricalFeature):
        _positive(spec.max_length, f"{where}.max_length", optional=True)
        if not isinstance(spec.separator, str) or spec.separator == "":
            raise ConfigError(
                f"Config key '{where}.separator' must be a non-empty string. Received: {spec.separator!r}.")


def check_specs(specs: Iterable[FeatureSpec], where: str = "features") -> None:
    """Checks the rules across features: unique names, names that do not collide, shared tables that agree.

    Raises:
        ConfigError: naming the features (and the table) involved.
    """
    specs = list(specs)
    first: dict[str, int] = {}
    tables: dict[str, list[tuple[int, TableFeature]]] = {}
    check_names([(s.name, f"{where}[{i}].name") for i, s in enumerate(specs)
                 if not (isinstance(s, NumericFeature) and s.is_glob)], "feature")
    check_names(list({s.table_name: (s.table_name, f"{where}[{i}].{'table' if s.table else 'name'}")
                      for i, s in enumerate(specs)
                      if not isinstance(s, NumericFeature)}.values()), "embedding table")
    for i, spec in enumerate(specs):
        if spec.name in first:
            raise ConfigError(
                f"Feature '{spec.name}' is declared twice: {where}[{first[spec.name]}] and "
                f"{where}[{i}]. Remove one of them.")
        first[spec.name] = i
        if not isinstance(spec, NumericFeature):
            tables.setdefault(spec.table_name, []).append((i, spec))
    for table, members in tables.items():
        for key in SHARED_TABLE_KEYS:
            values = {spec.name: getattr(spec, key) for _, spec in members}
            if len(set(values.values())) > 1:
                if key == "vocabulary_limit":  # the config key: max_tokens for text, else max_vocab_size
                    key = "max_vocab_size / max_tokens"
                raise ConfigError(
                    f"Features sharing table '{table}' must agree on '{key}'. Received: "
                    + ", ".join(f"{name}: {key}={value!r}" for name, value in values.items())
                    + f". Set the same '{key}' on each of {list(values)}.")


def _check_numeric_embedding(embedding: NumericEmbedding, where: str) -> None:
    """Checks a numeric feature's `embedding`: ranges, and keys that belong to the other kind."""
    _positive(embedding.dim, f"{where}.dim")
    other = ("frequencies", "sigma") if embedding.kind == "quantile" else ("bins",)
    for key in other:
        if getattr(embedding, key) is not None:
            raise ConfigError(f"Config key '{where}.{key}' does not apply to a {embedding.kind} embedding "
                              f"(only to {'periodic' if key != 'bins' else 'quantile'}). Remove it.")
    if embedding.bins is not None:
        _positive(embedding.bins, f"{where}.bins")
        if embedding.bins < 2:
            raise ConfigError(f"Config key '{where}.bins' must be at least 2. Received: {embedding.bins!r}.")
    _positive(embedding.frequencies, f"{where}.frequencies", optional=True)
    if embedding.sigma is not None and not embedding.sigma > 0:
        raise ConfigError(f"Config key '{where}.sigma' must be a positive number. Received: {embedding.sigma!r}.")


def _positive(value: Any, where: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"Config key '{where}' must be a positive integer. Received: {value!r}.")
