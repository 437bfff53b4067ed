"""FeatureEmbedding: turns the encoded feature dict into one dense vector."""

from __future__ import annotations

import copy
from typing import Any

import keras
from keras import ops

from mtrec.features.names import internal_names
from mtrec.layers.numeric_embedding import NumericEmbedding
from mtrec.types import Shape, Tensor
from mtrec.utils.keras_utils import serializable

NUMERIC_KEY = "numeric"


@serializable
class FeatureEmbedding(keras.layers.Layer):
    """Looks up categorical features in (possibly shared) tables and concatenates all features.

    The layout comes from `FeatureEncoder.layout()`; text features are in
    its `multi_categorical` part (pooled alike). Each table is one weight,
    declared once in the config; features name the table they read, so
    features that share a table (e.g. `item_id` and `last_item_id`) keep
    sharing it after a `.keras` save and reload. A table's weight is named
    `table_<internal name>` (`mtrec.features.names`), valid whatever the
    column is called.

    Id convention (from the encoder): 0 is padding, 1 the out-of-vocabulary
    bucket, 2 and up the vocabulary. Multi-valued features are mean-pooled
    over their non-padding ids.

    Args:
        layout: dict with keys `numeric_dim` (int), `tables`
            ({table: {"input_dim": int, "output_dim": int}}), `categorical`
            ({feature: table}) and `multi_categorical` ({feature: table}),
            and optionally `numeric_embeddings`: a list of `{"column": int,
            "name": str, "kind": ..., "dim": int, ...}` (the other keys are
            `NumericEmbedding`'s arguments, quantile edges included; see
            `mtrec.features.numeric_embedding`), whose numeric columns are
            replaced by their learned embedding.
        embeddings_initializer: initializer of the tables. Defaults to
            `"uniform"` with Keras's default range.
        embeddings_regularizer: optional regularizer of the tables.
        **kwargs: base `Layer` arguments.

    Input: dict with `"numeric"` (float, `(batch, numeric_dim)`) when
        `numeric_dim > 0`, an int `(batch,)` tensor per categorical feature
        and an int `(batch, length)` tensor per multi-valued feature.
    Output shape: `(batch, output_dim)`, the numeric columns first (those
        not embedded, then one embedding per embedded column), then one
        embedding per categorical feature, then one per multi-valued feature,
        in layout order.
    """

    def __init__(
        self,
        layout: dict[str, Any],
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.layout = _check_layout(layout)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        # Numeric embeddings (Gorishniy et al.): one small layer per embedded numeric column.
        self.numeric_embeddings = [
            NumericEmbedding(**{k: v for k, v in entry.items() if k not in ("column", "name")},
                             name=f"numeric_embedding_{entry['column']}", dtype=self.dtype_policy)
            for entry in self.layout.get("numeric_embeddings", [])]
        embedded = {entry["column"] for entry in self.layout.get("numeric_embeddings", [])}
        self._plain_columns = [j for j in range(self.layout["numeric_dim"]) if j not in embedded]

    @property
    def output_dim(self) -> int:
        """Width of the concatenated output vector."""
        tables = self.layout["tables"]
        width = len(self._plain_columns) + sum(layer.dim for layer in self.numeric_embeddings)
        for kind in ("categorical", "multi_categorical"):
            width += sum(tables[t]["output_dim"] for t in self.layout[kind].values())
        return width

    @property
    def input_names(self) -> list[str]:
        """The keys the layer reads from its input dict."""
        names = [NUMERIC_KEY] if self.layout["numeric_dim"] else []
        return names + list(self.layout["categorical"]) + list(self.layout["multi_categorical"])

    def build(self, input_shape: Any = None) -> None:
        self.tables = {}
        # Weight names must be valid TensorFlow scope names whatever the column is called
        # ("Clothing ID"): the optimizer names its slots after them.
        internal = internal_names(self.layout["tables"])
        for name, spec in self.layout["tables"].items():
            self.tables[name] = self.add_weight(
                name=f"table_{internal[name]}",
                shape=(spec["input_dim"], spec["output_dim"]),
                initializer=self.embeddings_initializer,
                regularizer=self.embeddings_regularizer,
            )
        for layer in self.numeric_embeddings:
            layer.build((None, 1))
        self.built = True

    def call(self, inputs: dict[str, Tensor]) -> Tensor:
        parts = []
        if self.layout["numeric_dim"]:
            numeric = ops.cast(inputs[NUMERIC_KEY], self.compute_dtype)
            if not self.numeric_embeddings:
                parts.append(numeric)
            else:
                if self._plain_columns:
                    parts.append(ops.take(numeric, self._plain_columns, axis=1))
                for entry, layer in zip(self.layout["numeric_embeddings"], self.numeric_embeddings):
                    parts.append(layer(ops.take(numeric, [entry["column"]], axis=1)))
        for feature, table in self.layout["categorical"].items():
            ids = ops.cast(ops.reshape(inputs[feature], (-1,)), "int32")
            parts.append(ops.take(self.tables[table], ids, axis=0))
        for feature, table in self.layout["multi_categorical"].items():
            parts.append(_mean_pool(self.tables[table], inputs[feature]))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def feature_width(self, features: list[str]) -> int:
        """Width of `embed(inputs, features)`: the sum of the named features' table widths."""
        self._check_embedded(features)
        tables = self.layout["tables"]
        return sum(tables[self._table_of(f)]["output_dim"] for f in features)

    def embed(self, inputs: dict[str, Tensor], features: list[str]) -> Tensor:
        """The embeddings of some categorical (or pooled) features only, concatenated.

        The same tables as `call` reads, so a gate conditioned on a domain
        column (`GatedModel(gate_inputs=...)`) shares its embedding.

        Args:
            inputs: the encoded feature dict.
            features: names of categorical, multi-valued or text features.

        Returns:
            `(batch, feature_width(features))`.
        """
        parts = []
        for feature in features:
            table = self.tables[self._table_of(feature)]
            if feature in self.layout["categorical"]:
                ids = ops.cast(ops.reshape(inputs[feature], (-1,)), "int32")
                parts.append(ops.take(table, ids, axis=0))
            else:
                parts.append(_mean_pool(table, inputs[feature]))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _table_of(self, feature: str) -> str:
        return self.layout["categorical"].get(feature) or self.layout["multi_categorical"][feature]

    def _check_embedded(self, features: list[str]) -> None:
        known = [*self.layout["categorical"], *self.layout["multi_categorical"]]
        unknown = [f for f in features if f not in known]
        if unknown or not features:
            raise ValueError(f"Features {unknown or features} are not embedded features of this layout "
                             f"(categorical, multi-valued or text). Embedded features: {known}")

    def compute_output_shape(self, input_shape: Any) -> Shape:
        return (None, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "layout": copy.deepcopy(self.layout),
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer)
            if self.embeddings_regularizer else None,
        }


def _mean_pool(table: Tensor, ids: Tensor) -> Tensor:
    """Mean of the embeddings of the non-padding ids of each row (zeros for a row of padding)."""
    ids = ops.cast(ids, "int32")
    vectors = ops.take(table, ids, axis=0)  # (batch, length, dim)
    mask = ops.cast(ops.expand_dims(ids > 0, -1), vectors.dtype)
    count = ops.maximum(ops.sum(mask, axis=1), 1.0)
    return ops.sum(vectors * mask, axis=1) / count


def _check_layout(layout: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(layout, dict):
        raise ValueError(f"`layout` must be a dict from FeatureEncoder.layout(). Received: {layout!r}")
    layout_in = layout
    layout = {
        "numeric_dim": int(layout.get("numeric_dim", 0)),
        "tables": dict(layout.get("tables", {})),
        "categorical": dict(layout.get("categorical", {})),
        "multi_categorical": dict(layout.get("multi_categorical", {})),
    }
    if layout_in.get("numeric_embeddings"):  # only when present: other layouts stay as they were
        layout["numeric_embeddings"] = [dict(entry) for entry in layout_in["numeric_embeddings"]]
        for entry in layout["numeric_embeddings"]:
            if not 0 <= int(entry.get("column", -1)) < layout["numeric_dim"]:
                raise ValueError(f"Numeric embedding {entry.get('name')!r} reads column {entry.get('column')!r}, "
                                 f"outside the {layout['numeric_dim']} numeric columns.")
    for kind in ("categorical", "multi_categorical"):
        for feature, table in layout[kind].items():
            if table not in layout["tables"]:
                raise ValueError(
                    f"Feature '{feature}' reads table '{table}', which `layout['tables']` lacks. "
                    f"Tables: {sorted(layout['tables'])}"
                )
    if not layout["numeric_dim"] and not layout["categorical"] and not layout["multi_categorical"]:
        raise ValueError("`layout` declares no feature: at least one is needed.")
    return layout
