"""The towers' inputs from raw columns: fitted vocabularies and statistics, strings and floats.

Plain pandas and NumPy, no TensorFlow: the Keras 2 training process
(`two_tower`, `export`) and the Keras 3 process that queries the index
(`index.CandidateIndex`) prepare rows with these same functions, so a query
sees exactly what training saw. The towers look the strings up and
standardize the floats inside their SavedModels, which therefore serve raw
columns.

Why not `mtrec.features.FeatureEncoder`: the encoder turns columns into ids
outside the graph, by its own conventions (ids by decreasing count, missing
as a category of its own, population standard deviation); the towers keep
the lookup inside the SavedModel (sorted vocabulary, missing and unseen
values share the out-of-vocabulary row, sample standard deviation). Moving
either onto the other's conventions changes the trained retrieval model and
its published figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtrec.retrieval.config import TowerFeature


def as_strings(values: pd.Series) -> pd.Series:
    """Categorical values as the strings the towers look up ("" for missing; 7.0 read as "7")."""
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")
    return values.astype("string").fillna("").astype(str)


def utf8(values: pd.Series) -> np.ndarray:
    """Strings as a UTF-8 bytes array, what TensorFlow string tensors hold."""
    return np.array([value.encode("utf-8") for value in values], dtype=object)


def fit_tower_state(features: list[TowerFeature], frame: pd.DataFrame) -> dict[str, Any]:
    """Vocabularies (categorical) and mean/std (numeric) of a tower's inputs, from `frame`.

    Returns:
        `{column: {"vocabulary": [...]} or {"mean": m, "std": s}}`, JSON-able.
    """
    state: dict[str, Any] = {}
    for feature in features:
        values = frame[feature.name]
        if feature.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            std = float(numbers.std()) if numbers.notna().sum() > 1 else 1.0
            state[feature.name] = {"mean": float(numbers.mean()) if numbers.notna().any() else 0.0,
                                   "std": std if std > 0 else 1.0}
        elif feature.kind == "multi_categorical":
            tokens = as_strings(values).str.split(feature.separator, regex=False).explode()
            state[feature.name] = {"vocabulary": sorted(set(tokens) - {""})}
        else:
            state[feature.name] = {"vocabulary": sorted(set(as_strings(values)) - {""})}
    return state


def tower_inputs(frame: pd.DataFrame, features: list[TowerFeature], state: dict[str, Any]) -> dict[str, np.ndarray]:
    """Columns of `frame` as the arrays a tower takes: UTF-8 strings, or float32 with NaN as the mean."""
    out = {}
    for feature in features:
        if feature.kind == "numeric":
            numbers = pd.to_numeric(frame[feature.name], errors="coerce").astype("float32")
            out[feature.name] = numbers.fillna(state[feature.name]["mean"]).to_numpy("float32")
        else:
            out[feature.name] = utf8(as_strings(frame[feature.name]))
    return out
