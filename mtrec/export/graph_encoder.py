"""GraphEncoder: the fitted FeatureEncoder as TensorFlow ops, for a SavedModel that takes raw columns."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtrec.errors import NotFittedError
from mtrec.export.hashing import hash_ids
from mtrec.features import FeatureEncoder
from mtrec.features import text
from mtrec.features.names import internal_names
from mtrec.features.specs import NUMERIC_KEY
from mtrec.features.vocabulary import FIRST_ID, MISSING, OOV_ID, PAD_ID, Vocabulary


class GraphEncoder(tf.Module):
    """Encodes raw request columns in the graph exactly as `FeatureEncoder.transform` does.

    Built from a fitted encoder's state; nothing is fitted here. Per raw column:

    * categorical: a `tf.string` `[n]` input. The empty string is a missing
      value (the Python encoder's `"<missing>"` category). Values go through a
      `tf.lookup.StaticHashTable` of the fitted vocabulary (id 2, 3, ... in
      the fitted order, out-of-vocabulary id 1), or through the Python
      encoder's SipHash (`mtrec.export.hashing`) when the table hashes.
    * multi-valued: a `tf.string` `[n]` input in the feature's separator
      format (`"Action|Comedy"`). Tokens are split, stripped and empty ones
      dropped, looked up as above, then padded with 0 / cut to the fitted
      length. The empty string is a missing cell (`["<missing>"]`); a cell
      holding only the separator is an empty list (all padding).
    * text: a `tf.string` `[n]` input, tokenized as `mtrec.features.text`
      does (see `encode_text`), then looked up, padded and cut like a
      multi-valued feature.
    * numeric: a `tf.float64` `[n]` input, NaN (or +/-inf) for missing:
      log1p, clip, imputation, standardization and missing flags with the
      fitted statistics, in float64, then float32.

    A string cell equal to one of `na_values` (the run's `data.na_values`,
    which `mtrec train` and `mtrec score` read as missing in text columns)
    is missing too.

    Each input is named in the signature by its column's internal name
    (`mtrec.features.names`: the column itself when it is a plain
    identifier, e.g. `Clothing_ID` for `"Clothing ID"`); `describe_inputs`
    gives both.

    Args:
        encoder: a fitted `FeatureEncoder`.
        na_values: strings that mean "missing" in string inputs, besides `""`.
            Defaults to none.

    Raises:
        NotFittedError: the encoder is not fitted.

    Example:

    ```python
    graph = GraphEncoder(run.encoder)
    features = graph({"age": tf.constant([31.0]), "genres": tf.constant(["Action|Comedy"])})
    predictions = run.model(features, training=False)
    ```
    """

    def __init__(self, encoder: FeatureEncoder, na_values: Sequence[str] = ()) -> None:
        super().__init__(name="graph_encoder")
        self._na_values = sorted({"", *(str(v) for v in na_values)})
        if not encoder.is_fitted:
            raise NotFittedError("This FeatureEncoder instance is not fitted yet. Call 'fit' first.")
        self._categorical = [(s.name, s.table_name) for s in encoder.categorical_features]
        self._multi = [(s.name, s.table_name, s.separator, int(encoder.lengths_[s.name]))
                       for s in encoder.multi_categorical_features]
        self._text = [(s.name, s.table_name, int(s.ngrams), int(encoder.lengths_[s.name]))
                      for s in encoder.text_features]
        self._numeric = [dict(column=s.column, feature=s.feature, log1p=bool(s.log1p),
                              clip=None if s.clip is None else [float(v) for v in s.clip],
                              fill=float(s.fill), mean=float(s.mean), std=float(s.std),
                              indicator=bool(s.indicator)) for s in encoder.numeric_]
        self._hash_buckets: dict[str, int] = {}
        self.tables: dict[str, tf.lookup.StaticHashTable] = {}
        op_names = internal_names(encoder.vocabularies_)  # valid TensorFlow names for any table name
        for table, vocabulary in encoder.vocabularies_.items():
            if vocabulary.hash_buckets is not None:
                self._hash_buckets[table] = int(vocabulary.hash_buckets)
            elif vocabulary.values:
                self.tables[table] = _static_table(vocabulary, op_names[table])
        marks = set(self._na_values)
        literal = {s.name: sorted(marks.intersection(encoder.vocabularies_[s.table_name].values))
                   for s in [*encoder.categorical_features, *encoder.multi_categorical_features]}
        literal = {k: v for k, v in literal.items() if v}
        if literal:
            warnings.warn(
                f"Categories seen in training that the export reads as missing (the empty string or "
                f"data.na_values), by feature: {literal}; such values score as '<missing>' there.",
                UserWarning, stacklevel=2)

    # -- the raw inputs --------------------------------------------------------------------

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """`{column: tf.TensorSpec([None], dtype, name=column)}`, numeric columns then the others."""
        specs = {s["column"]: tf.float64 for s in self._numeric}
        specs.update({name: tf.string for name, _ in self._categorical})
        specs.update({name: tf.string for name, *_ in self._multi})
        specs.update({name: tf.string for name, *_ in self._text})
        names = internal_names(specs)
        return {column: tf.TensorSpec([None], dtype, name=names[column]) for column, dtype in specs.items()}

    def describe_inputs(self) -> list[dict[str, Any]]:
        """One JSON-able entry per input column: name, dtype, kind and (multi-valued) separator."""
        out = [{"name": s["column"], "dtype": "float64", "kind": "numeric",
                "missing": "NaN"} for s in self._numeric]
        out += [{"name": name, "dtype": "string", "kind": "categorical", "missing": self._na_values}
                for name, _ in self._categorical]
        out += [{"name": name, "dtype": "string", "kind": "multi_categorical", "separator": sep,
                 "max_length": length, "missing": self._na_values, "empty_list": sep}
                for name, _, sep, length in self._multi]
        out += [{"name": name, "dtype": "string", "kind": "text", "ngrams": ngrams, "max_length": length,
                 "missing": self._na_values} for name, _, ngrams, length in self._text]
        names = internal_names(entry["name"] for entry in out)
        return [{**entry, "input_name": names[entry["name"]]} for entry in out]

    # -- encoding --------------------------------------------------------------------------

    def __call__(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Encodes raw columns into the model's input dict (`FeatureEncoder.transform`'s keys and dtypes).

        Args:
            inputs: `{column: [n] tensor}` as in `input_signature`; extra keys are ignored.

        Returns:
            `{"numeric": float32 [n, d]}` when there are numeric columns,
            `{feature: int32 [n]}` per categorical feature and
            `{feature: int32 [n, length]}` per multi-valued feature.
        """
        out: dict[str, tf.Tensor] = {}
        if self._numeric:
            out[NUMERIC_KEY] = self._encode_numeric(inputs)
        for name, table in self._categorical:
            values = tf.convert_to_tensor(inputs[name])
            values = tf.where(self._is_missing(values), MISSING, values)
            out[name] = self._lookup(table, values)
        for name, table, separator, length in self._multi:
            out[name] = self._encode_multi(tf.convert_to_tensor(inputs[name]), table, separator, length)
        for name, table, ngrams, length in self._text:
            cells = tf.convert_to_tensor(inputs[name])
            tokens = encode_text(cells, ngrams)
            out[name] = self._pad_tokens(cells, tokens, table, length)
        return out

    def _is_missing(self, strings: tf.Tensor) -> tf.Tensor:
        if len(self._na_values) == 1:
            return tf.equal(strings, "")
        return tf.reduce_any(tf.equal(strings[:, None], tf.constant(self._na_values)[None, :]), axis=1)

    def _lookup(self, table: str, strings: tf.Tensor) -> tf.Tensor:
        if table in self._hash_buckets:
            return hash_ids(strings, self._hash_buckets[table])
        if table not in self.tables:  # an empty vocabulary: everything is out of vocabulary
            return tf.fill(tf.shape(strings), tf.constant(OOV_ID, tf.int32))
        return tf.cast(self.tables[table].lookup(strings), tf.int32)

    def _encode_multi(self, cells: tf.Tensor, table: str, separator: str, length: int) -> tf.Tensor:
        tokens = tf.strings.split(cells, sep=separator)
        tokens = tf.ragged.map_flat_values(tf.strings.strip, tokens)
        tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
        return self._pad_tokens(cells, tokens, table, length)

    def _pad_tokens(self, cells: tf.Tensor, tokens: tf.RaggedTensor, table: str, length: int) -> tf.Tensor:
        """Looks ragged tokens up, pads/cuts them to `length`; a missing cell is `["<missing>"]`."""
        ids = tf.ragged.map_flat_values(lambda flat: self._lookup(table, flat), tokens)
        dense = ids.to_tensor(default_value=PAD_ID, shape=[None, length])
        # A missing cell (the empty string) is the one-value list ["<missing>"].
        missing_row = tf.concat([tf.reshape(self._lookup(table, tf.constant([MISSING])), [1]),
                                 tf.fill([length - 1], tf.constant(PAD_ID, tf.int32))], axis=0)
        missing = self._is_missing(cells)[:, None]
        return tf.where(missing, missing_row[None, :], dense)

    def _encode_numeric(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        columns, indicators = [], []
        for s in self._numeric:
            x = tf.cast(tf.convert_to_tensor(inputs[s["column"]]), tf.float64)
            missing = tf.logical_not(tf.math.is_finite(x))
            if s["log1p"]:
                bad = tf.logical_and(tf.logical_not(missing), x <= -1.0)
                tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [
                    f"Column '{s['column']}' (numeric feature '{s['feature']}', log1p: true) has a "
                    f"value <= -1; log1p needs values > -1."])
                x = tf.math.log1p(tf.where(bad, tf.zeros_like(x), x))
            if s["clip"] is not None:
                x = tf.clip_by_value(x, s["clip"][0], s["clip"][1])
            x = tf.where(missing, tf.constant(s["fill"], tf.float64), x)
            columns.append((x - s["mean"]) / s["std"])
            if s["indicator"]:
                indicators.append(tf.cast(missing, tf.float64))
        return tf.cast(tf.stack(columns + indicators, axis=1), tf.float32)


def _code_class(ranges: list[tuple[int, int]] | str) -> str:
    """An RE2 character class of code-point ranges (or of the characters of a string)."""
    if isinstance(ranges, str):
        ranges = [(ord(c), ord(c)) for c in ranges]
    return "[" + "".join(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}"
                         for lo, hi in ranges) + "]"


def encode_text(cells: tf.Tensor, ngrams: int) -> tf.RaggedTensor:
    """`mtrec.features.text.tokenize` in `tf.strings` ops: `[n]` strings to ragged `[n, None]` tokens.

    The same steps on the same explicit character classes: whitespace and
    control characters to a space, apostrophes deleted, punctuation and
    symbols to a space, Unicode lowercase, split on spaces without empty
    tokens, then (with `ngrams=2`) the bigrams after the words. Missing
    cells are handled by the caller.
    """
    x = tf.strings.regex_replace(cells, _code_class(text.space_ranges()), " ")
    x = tf.strings.regex_replace(x, _code_class(text.DELETE_CHARS), "")
    x = tf.strings.regex_replace(x, _code_class(text.strip_ranges()), " ")
    # The letters TensorFlow's ICU cannot lowercase are left alone by the Python side too (KEEP_CASE).
    x = tf.strings.lower(x, encoding="utf-8")
    tokens = tf.strings.split(x, sep=" ")
    tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
    if ngrams >= 2:
        tokens = tf.concat([tokens, tf.strings.ngrams(tokens, 2, separator=" ")], axis=1)
    return tokens


def _static_table(vocabulary: Vocabulary, table: str) -> tf.lookup.StaticHashTable:
    keys = tf.constant(np.asarray(vocabulary.values, dtype=object).astype(str).tolist(), tf.string)
    values = tf.range(FIRST_ID, FIRST_ID + len(vocabulary.values), dtype=tf.int64)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values),
                                     default_value=OOV_ID, name=f"vocabulary_{table}")
