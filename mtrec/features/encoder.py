"""FeatureEncoder: fits vocabularies and statistics on the training split, encodes any split."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtrec.errors import DataError, NotFittedError, SchemaError
from mtrec.features.columns import (
    column_types,
    dtype_name,
    expand_numeric,
    is_numeric,
    numeric_matrix,
    to_float,
)
from mtrec.features.numeric import NumericColumn, encode_numeric
from mtrec.features.partial import PartialFit, ValueCounts
from mtrec.features.sequences import pad_ids, split_cells
from mtrec.features.specs import (
    NUMERIC_KEY,
    CategoricalFeature,
    FeatureSpec,
    MultiCategoricalFeature,
    NumericFeature,
    PooledFeature,
    TableFeature,
    TextFeature,
    parse_features,
)
from mtrec.features.text import tokenize_column
from mtrec.features.vocabulary import Vocabulary, factorize_strings
from mtrec.utils.atomic import write_json
from mtrec.utils.validation import closest, get_config

FORMAT = "mtrec.FeatureEncoder"
VERSION = 1


class FeatureEncoder:
    """Turns raw table columns into the model's input arrays.

    Fit on the training split only: it expands numeric globs, fits each
    numeric column's statistics and each embedding table's vocabulary
    (shared by the features that name the same table), and the padded
    length of multi-valued features. `transform` then encodes any table the
    same way, fast (vectorized pandas/numpy).

    Args:
        specs: the features, as spec objects or config mappings (parsed with
            `parse_features`).

    Attributes (after `fit`):
        numeric_: list of `NumericColumn`, one per expanded numeric column.
        numeric_columns_: names of the columns of the `"numeric"` array:
            the standardized columns, then the `<column>__missing` ones.
        vocabularies_: `{table: Vocabulary}`.
        lengths_: `{feature: int}`, the padded length of each multi-valued or text
            feature.
        last_oov_counts_: `{feature: int}` after each `transform`: per
            categorical and multi-valued feature, how many non-missing values
            were never seen at fit time and went to the OOV id.

    Example:

    ```python
    encoder = FeatureEncoder([
        {"name": "age", "kind": "numeric", "log1p": True},
        {"name": "item_id", "kind": "categorical", "embedding_dim": 16},
        {"name": "last_item_id", "kind": "categorical", "table": "item_id", "embedding_dim": 16},
    ]).fit(train)
    arrays = encoder.transform(test)   # {"numeric": (n, 1), "item_id": (n,), "last_item_id": (n,)}
    layer = FeatureEmbedding(encoder.layout())
    ```
    """

    def __init__(self, specs: Sequence[FeatureSpec | Mapping[str, Any]]) -> None:
        self.specs: list[FeatureSpec] = parse_features(list(specs), "features")

    # -- the features, by kind -------------------------------------------------------------

    @property
    def categorical_features(self) -> list[CategoricalFeature]:
        """The single-valued categorical features, in declaration order."""
        return [s for s in self.specs if isinstance(s, CategoricalFeature)]

    @property
    def multi_categorical_features(self) -> list[MultiCategoricalFeature]:
        """The multi-valued categorical features, in declaration order."""
        return [s for s in self.specs if isinstance(s, MultiCategoricalFeature)]

    @property
    def text_features(self) -> list[TextFeature]:
        """The text features, in declaration order."""
        return [s for s in self.specs if isinstance(s, TextFeature)]

    @property
    def pooled_features(self) -> list[PooledFeature]:
        """The features encoded as padded id lists (multi-valued and text), in declaration order."""
        return [s for s in self.specs if isinstance(s, (MultiCategoricalFeature, TextFeature))]

    @property
    def table_features(self) -> dict[str, list[TableFeature]]:
        """`{table: [features reading it]}`, tables in order of first use."""
        tables: dict[str, list[TableFeature]] = {}
        for spec in self._table_specs():
            tables.setdefault(spec.table_name, []).append(spec)
        return tables

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `from_config` with fitted state) has run."""
        return hasattr(self, "vocabularies_")

    @property
    def input_columns(self) -> list[str]:
        """The raw columns `transform` reads, numeric globs expanded (needs `fit` when there are globs)."""
        return [column for column, _ in self._needed_columns()]

    # -- fit and transform -----------------------------------------------------------------

    def fit(self, df: pd.DataFrame, source: str = "the training table",
            exclude: Sequence[str] = ()) -> FeatureEncoder:
        """Fits statistics, vocabularies and lengths on the training split.

        Args:
            df: the training rows (only the training split: nothing from
                validation or test may leak into the encoding).
            source: description of `df` for messages.
            exclude: columns numeric globs must never match, e.g. the label
                and id columns (so `"*"` cannot pick up a label).

        Returns:
            self.

        Raises:
            SchemaError: a column is missing or a numeric feature's column
                holds no numbers.
            DataError: the table has no rows, or log1p meets a value <= -1.
        """
        _check_frame(df)
        if len(df) == 0:
            raise DataError(f"Cannot fit the feature encoder: {source} has no rows.")
        return self.finish_fit(self.partial_fit(df, source, exclude), source)

    def partial_fit(self, df: pd.DataFrame, source: str = "the training table",
                    exclude: Sequence[str] = ()) -> PartialFit:
        """The mergeable statistics of some training rows, for a streamed fit.

        `fit(df)` is `finish_fit(partial_fit(df))`; fitting a large table
        batch by batch merges the batches' states with `PartialFit.merge`
        first (see `mtrec.features.partial`). The encoder itself is not
        changed.

        Args:
            df: some training rows (may be empty).
            source: description of `df` for messages.
            exclude: columns numeric globs must never match.

        Returns:
            A `PartialFit`.

        Raises:
            SchemaError: a column is missing or a numeric feature's column
                holds no numbers.
            DataError: log1p meets a value <= -1.
        """
        _check_frame(df)
        numeric = expand_numeric(self.specs,
                                 [c for c in df.columns if c not in set(exclude)], source)
        needed = [(column, spec.name) for column, spec in numeric] + [
            (spec.name, spec.name) for spec in self._table_specs()]
        self._check_columns(column_types(df), needed, {column for column, _ in numeric}, source)
        stats = [NumericColumn.partial(to_float(df[column], column, source), spec, column, source)
                 for column, spec in numeric]
        tables: dict[str, ValueCounts] = {}
        longest: dict[str, int] = {}
        for table, members in self.table_features.items():
            counts = tables[table] = ValueCounts()
            for spec in members:
                if isinstance(spec, (MultiCategoricalFeature, TextFeature)):
                    uniques, codes, lengths = _split(df[spec.name], spec)
                    longest[spec.name] = int(lengths.max()) if len(lengths) else 0
                    counts.merge(ValueCounts.of_codes(uniques, codes))
                elif members[0].hash_buckets is None:
                    column = df[spec.name]
                    if _is_integer(column):
                        counts.merge(ValueCounts.of_integer_column(column.to_numpy()))
                    else:
                        counts.merge(ValueCounts.of_codes(*factorize_strings(column)))
        return PartialFit(numeric=[(column, spec.name) for column, spec in numeric],
                          numeric_stats=stats, tables=tables, longest=longest, rows=len(df))

    def finish_fit(self, state: PartialFit, source: str = "the training table") -> FeatureEncoder:
        """Fits the encoder from the (merged) partial state of all training rows.

        Args:
            state: `partial_fit`'s output, merged over every training batch.
            source: description of the training rows, for messages.

        Returns:
            self.

        Raises:
            DataError: the state holds no rows.
        """
        if state.rows == 0:
            raise DataError(f"Cannot fit the feature encoder: {source} has no rows.")
        for attr in ("numeric_", "numeric_columns_", "vocabularies_", "lengths_", "last_oov_counts_"):
            self.__dict__.pop(attr, None)
        specs = {s.name: s for s in self.specs}
        numeric_states = [NumericColumn.from_partial(stats, specs[feature], column)
                          for (column, feature), stats in zip(state.numeric, state.numeric_stats)]
        vocabularies: dict[str, Vocabulary] = {}
        for table, members in self.table_features.items():
            head = members[0]
            if head.hash_buckets is not None:
                vocabularies[table] = Vocabulary.hashed(head.hash_buckets)
            else:
                vocabularies[table] = Vocabulary.from_counts(state.tables[table], head.min_count,
                                                             head.vocabulary_limit)
        self.numeric_ = numeric_states
        self.numeric_columns_ = _numeric_columns(numeric_states)
        self.vocabularies_ = vocabularies
        self.lengths_ = {s.name: s.max_length or max(1, state.longest[s.name])
                         for s in self.pooled_features}
        self.last_oov_counts_ = {s.name: 0 for s in self._table_specs()}
        return self

    def transform(self, df: pd.DataFrame, source: str = "the input table") -> dict[str, np.ndarray]:
        """Encodes rows with the fitted state.

        Args:
            df: the rows; extra columns are ignored.
            source: description of `df` for messages (e.g. a file path).

        Returns:
            `{"numeric": float32 (n, numeric_dim)}` when there are numeric
            features, then `{feature: int32 (n,)}` per categorical feature
            and `{feature: int32 (n, length)}` per multi-valued or text
            feature (padded with 0, cut to `lengths_[feature]`).

        Raises:
            NotFittedError: `fit` has not run.
            SchemaError: a needed column is missing or of the wrong type.
            DataError: log1p meets a value <= -1.
        """
        features, self.last_oov_counts_ = self.transform_counted(df, source)
        return features

    def transform_counted(self, df: pd.DataFrame,
                          source: str = "the input table") -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """`transform`, returning the unseen categories per feature instead of keeping them.

        It leaves the encoder as it is, so several threads may encode batches
        with one encoder at the same time (streamed scoring does).

        Args:
            df: the rows; extra columns are ignored.
            source: description of `df` for messages.

        Returns:
            `(features, oov_counts)`: `transform`'s output, and
            `last_oov_counts_`'s value for these rows.

        Raises:
            As `transform`.
        """
        self._check_fitted()
        _check_frame(df)
        self.check_columns(df, source)
        out: dict[str, np.ndarray] = {}
        if self.numeric_:
            values = numeric_matrix(df, [state.column for state in self.numeric_], source)
            out[NUMERIC_KEY] = encode_numeric(self.numeric_, values, source)
        oov: dict[str, int] = {}
        for spec in self.categorical_features:
            column = df[spec.name]
            vocabulary = self.vocabularies_[spec.table_name]
            if _is_integer(column) and vocabulary.hash_buckets is None:
                out[spec.name], oov[spec.name] = vocabulary.lookup_integer_column(column.to_numpy())
                continue
            uniques, codes = factorize_strings(column)
            ids, unseen = vocabulary.lookup(uniques)
            out[spec.name] = ids.astype(np.int32)[codes]
            oov[spec.name] = int(unseen[codes].sum())
        for spec in self.pooled_features:
            uniques, codes, lengths = _split(df[spec.name], spec)
            ids, unseen = self.vocabularies_[spec.table_name].lookup(uniques)
            out[spec.name], fits = pad_ids(ids[codes], lengths, self.lengths_[spec.name])
            oov[spec.name] = int(unseen[codes][fits].sum())
        return out, {s.name: oov[s.name] for s in self._table_specs()}

    def fit_transform(self, df: pd.DataFrame, source: str = "the training table") -> dict[str, np.ndarray]:
        """`fit(df)` then `transform(df)`."""
        return self.fit(df, source).transform(df, source)

    # -- columns ---------------------------------------------------------------------------

    def check_columns(self, columns: Any, source: str) -> None:
        """Checks that a table has every needed column, numeric where needed.

        Args:
            columns: a DataFrame, a `pyarrow.Schema`, a mapping of column
                name to dtype, or a list of names (then types are not checked).
            source: description of the table (e.g. a file path), for messages.

        Raises:
            SchemaError: a needed column is missing (named, with the closest
                present column suggested and the present columns listed), or a
                numeric feature's column is not numeric.
            NotFittedError: numeric globs are declared and `fit` has not run.
        """
        self._check_columns(column_types(columns), self._needed_columns(), self._numeric_names(), source)

    @staticmethod
    def _check_columns(types: dict[str, Any], needed: list[tuple[str, str]], numeric: set[str],
                       source: str) -> None:
        missing = [(column, feature) for column, feature in needed if column not in types]
        if missing:
            present = [str(c) for c in types]
            parts = []
            for column, feature in missing:
                owner = "" if feature == column else f" (from feature '{feature}')"
                parts.append(f"'{column}'{owner}.{closest(column, present)}")
            if len(missing) == 1:
                head = f"Column needed by the features is missing from {source}: {parts[0]}"
            else:
                head = f"Columns needed by the features are missing from {source}: {' '.join(parts)}"
            raise SchemaError(f"{head} Columns present: {present}")
        for column, feature in needed:
            if column in numeric and is_numeric(types[column]) is False:
                owner = "" if feature == column else f" (from pattern '{feature}')"
                raise SchemaError(
                    f"Column '{column}' of numeric feature '{column}'{owner} in {source} has dtype "
                    f"{dtype_name(types[column])}; a numeric feature needs numbers. Declare it with "
                    f"kind: categorical, or convert the column.")

    def _numeric_names(self) -> set[str]:
        if self.is_fitted:
            return {s.column for s in self.numeric_}
        return {s.name for s in self.specs if isinstance(s, NumericFeature)}

    def _needed_columns(self) -> list[tuple[str, str]]:
        """`(column, feature)` for every raw column read, in declaration order."""
        if self.is_fitted:
            numeric = {}
            for state in self.numeric_:
                numeric.setdefault(state.feature, []).append(state.column)
        else:
            globs = [s.name for s in self.specs if isinstance(s, NumericFeature) and s.is_glob]
            if globs:
                raise NotFittedError(
                    f"This FeatureEncoder instance is not fitted yet. Call 'fit' first: the "
                    f"numeric patterns {globs} are expanded against the training table's columns.")
            numeric = {s.name: [s.name] for s in self.specs if isinstance(s, NumericFeature)}
        out = []
        for spec in self.specs:
            columns = numeric.get(spec.name, []) if isinstance(spec, NumericFeature) else [spec.name]
            out.extend((c, spec.name) for c in columns)
        return list(dict.fromkeys(out))

    # -- layout and state ------------------------------------------------------------------

    def layout(self) -> dict[str, Any]:
        """The shapes the model's `FeatureEmbedding` layer needs.

        Returns:
            `{"numeric_dim": int, "tables": {table: {"input_dim": int,
            "output_dim": int}}, "categorical": {feature: table},
            "multi_categorical": {feature: table}}`, where `input_dim` is 2 +
            the vocabulary size (or 2 + `hash_buckets`).
        """
        self._check_fitted()
        tables = {}
        for table, members in self.table_features.items():
            tables[table] = {"input_dim": self.vocabularies_[table].input_dim,
                             "output_dim": members[0].embedding_dim}
        return {
            "numeric_dim": len(self.numeric_columns_),
            "tables": tables,
            "categorical": {s.name: s.table_name for s in self.categorical_features},
            # Text is pooled like a multi-valued feature: the model needs no other kind.
            "multi_categorical": {s.name: s.table_name for s in self.pooled_features},
        }

    def get_config(self) -> dict[str, Any]:
        """The specs and, when fitted, the fitted state, as JSON-able, readable values.

        Returns:
            A dict with `features` (the specs), and after `fit`: `numeric`
            (per column: its statistics), `numeric_columns`, `tables` (per
            table: its features, `embedding_dim`, and either `vocabulary`
            `{value: training count}` in id order from 2 plus `excluded` (seen
            but sent to OOV), or `hash_buckets`) and `lengths`.
        """
        config: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                                  "features": [get_config(s) for s in self.specs]}
        if not self.is_fitted:
            return config
        config["numeric"] = [state.get_config() for state in self.numeric_]
        config["numeric_columns"] = list(self.numeric_columns_)
        config["tables"] = {
            table: {"features": [s.name for s in members], "embedding_dim": members[0].embedding_dim,
                    **self.vocabularies_[table].get_config()}
            for table, members in self.table_features.items()
        }
        config["lengths"] = dict(self.lengths_)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuilds an encoder (fitted when the config holds fitted state) from `get_config`'s output.

        Raises:
            DataError: the mapping is not a FeatureEncoder state.
        """
        if not isinstance(config, Mapping) or config.get("format") != FORMAT or "features" not in config:
            raise DataError(
                f"Not a FeatureEncoder state: expected a mapping with format '{FORMAT}' and "
                f"'features'. Received keys: {list(config) if isinstance(config, Mapping) else config!r}")
        if config.get("version", VERSION) > VERSION:
            raise DataError(
                f"FeatureEncoder state version {config['version']} is newer than this mtrec "
                f"supports ({VERSION}). Upgrade mtrec.")
        encoder = cls(config["features"])
        if "numeric" not in config:
            return encoder
        try:
            encoder.numeric_ = [NumericColumn.from_config(c) for c in config["numeric"]]
            encoder.numeric_columns_ = _numeric_columns(encoder.numeric_)
            tables = config["tables"]
            encoder.vocabularies_ = {t: Vocabulary.from_config(tables[t]) for t in encoder.table_features}
            encoder.lengths_ = {s.name: int(config["lengths"][s.name])
                                for s in encoder.pooled_features}
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"FeatureEncoder state is incomplete or malformed: {type(err).__name__}: {err}") from err
        encoder.last_oov_counts_ = {s.name: 0 for s in encoder._table_specs()}
        return encoder

    def save(self, path: str | os.PathLike) -> None:
        """Writes `get_config()` as JSON, atomically."""
        write_json(path, self.get_config())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureEncoder:
        """Reads an encoder written by `save`.

        Raises:
            DataError: the file is missing, not JSON, or not an encoder state.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"Feature encoder file {path} does not exist.")
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"Feature encoder file {path} is not readable JSON: {err}") from err
        try:
            return cls.from_config(config)
        except DataError as err:
            raise DataError(f"{path}: {err}") from err

    # -- helpers ---------------------------------------------------------------------------

    def _table_specs(self) -> list[TableFeature]:
        """Categorical and multi-valued features, in declaration order."""
        return [s for s in self.specs if not isinstance(s, NumericFeature)]

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("This FeatureEncoder instance is not fitted yet. Call 'fit' first.")

    def __repr__(self) -> str:
        names = [s.name for s in self.specs]
        return f"FeatureEncoder(features={names}, fitted={self.is_fitted})"


def _split(series: pd.Series, spec: PooledFeature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(uniques, codes, lengths)` of a multi-valued or text column."""
    if isinstance(spec, TextFeature):
        return tokenize_column(series, spec.ngrams)
    return split_cells(series, spec.separator)


def _numeric_columns(states: list[NumericColumn]) -> list[str]:
    return [s.column for s in states] + [s.indicator_name for s in states if s.indicator]


def _is_integer(column: pd.Series) -> bool:
    """Whether a column is plain numpy integers (no missing), whose category strings are `str(k)`."""
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu" and column.dtype.itemsize <= 8 \
        and column.dtype != np.uint64


def _check_frame(df: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"Expected a pandas DataFrame. Received: {type(df).__name__}")
