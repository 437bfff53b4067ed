"""Fits the numeric embeddings a config asks for (`embedding:` on a numeric feature) into the model's layout.

The numeric column is still encoded as a standardized float by the
`FeatureEncoder`; the model's `FeatureEmbedding` replaces it by a learned
embedding (`mtrec.layers.numeric_embedding.NumericEmbedding`). For a
quantile embedding the bucket edges are fit here, on the encoded training
values, and written into the layout: they are then part of the model's
config, saved in `model.keras` and in the exported graph.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from mtrec.features.specs import NUMERIC_KEY, NumericFeature


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """The distinct quantile edges of some values: at most `bins + 1`, at least 2.

    Args:
        values: 1-D training values (already standardized, no NaN).
        bins: the buckets asked for.

    Returns:
        Strictly increasing edges. Tied quantiles (a column with few distinct
        values) merge, so there may be fewer buckets than asked; a constant
        column gets the one bucket `[v, v + 1]`.
    """
    values = np.asarray(values, dtype="float64").reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [0.0, 1.0]
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        return [float(edges[0]), float(edges[0]) + 1.0]
    return [float(e) for e in edges]


def fit_numeric_embeddings(layout: Mapping[str, Any], encoder: Any,
                           train_features: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Adds `numeric_embeddings` to a layout for the numeric features that declare an `embedding`.

    Args:
        layout: `FeatureEncoder.layout()`.
        encoder: the fitted `FeatureEncoder`; its `numeric_` states say which
            feature (a column or a glob) declared each numeric column.
        train_features: the encoded training split (its `"numeric"` matrix).
            For a streamed run, the sample of training rows the splits hold.

    Returns:
        A copy of `layout`, with `numeric_embeddings` (a list of `{"column":
        index in the numeric matrix, "name": column, "kind", "dim", "relu",
        and "edges" or "frequencies" and "sigma"}`) when any column asks for
        an embedding; otherwise `layout` unchanged (copied).
    """
    layout = copy.deepcopy(dict(layout))
    specs = {s.name: s for s in encoder.specs if isinstance(s, NumericFeature)}
    entries = []
    for column, state in enumerate(encoder.numeric_):
        spec = specs.get(state.feature)
        if spec is None or spec.embedding is None:
            continue
        params = dict(spec.embedding.params)
        entry: dict[str, Any] = {"column": column, "name": state.column}
        if params["kind"] == "quantile":
            bins = params.pop("bins")
            params["edges"] = quantile_edges(np.asarray(train_features[NUMERIC_KEY])[:, column], bins)
        entries.append({**entry, **params})
    if entries:
        layout["numeric_embeddings"] = entries
    return layout
