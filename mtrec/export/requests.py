"""`request_columns`: a DataFrame as the exported SavedModel's raw inputs (tests, benchmarks, clients)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mtrec.data.io import mark_missing
from mtrec.features import FeatureEncoder
from mtrec.features.vocabulary import MISSING, as_strings


def request_columns(frame: pd.DataFrame, encoder: FeatureEncoder,
                    na_values: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Converts rows to the export's inputs so that the SavedModel encodes them as `encoder.transform` does.

    Categorical columns become their category strings (`5` and `5.0` are
    `"5"`), a missing value the empty string; numeric columns float64 with
    NaN for missing; multi-valued cells strings joined by the feature's
    separator, a missing cell `""` and an empty list the bare separator;
    text cells as they are (a missing cell `""`, an empty one `" "`).

    With `na_values` (the run's `data.na_values`), text cells equal to one
    of them are missing first, as `mtrec score` reads a file; then the
    SavedModel's scores equal `mtrec score`'s.

    Args:
        frame: rows with the encoder's input columns.
        encoder: the run's fitted encoder.
        na_values: strings that mean "missing" in text columns. Defaults to none.

    Returns:
        `{column: numpy array}`: `str` arrays and float64 arrays, one per input.
    """
    encoder.check_columns(frame, "the request rows")
    if na_values:
        frame = mark_missing(frame, na_values)
    out: dict[str, np.ndarray] = {}
    for state in encoder.numeric_:
        numbers = pd.to_numeric(frame[state.column], errors="coerce")
        out[state.column] = numbers.to_numpy(np.float64, na_value=np.nan)
    for spec in encoder.categorical_features:
        values = as_strings(frame[spec.name])
        values[values == MISSING] = ""
        out[spec.name] = values.astype(str)
    for spec in encoder.multi_categorical_features:
        cells = frame[spec.name].to_numpy(dtype=object)
        out[spec.name] = np.array([_cell(cell, spec.separator) for cell in cells], dtype=str)
    for spec in encoder.text_features:  # the text as it is; missing "", an empty text " " (no token)
        cells = frame[spec.name].to_numpy(dtype=object)
        out[spec.name] = np.array(["" if cell is None or (not isinstance(cell, str) and pd.isna(cell))
                                   else (str(cell) or " ") for cell in cells], dtype=str)
    return out


def _cell(cell: object, separator: str) -> str:
    if isinstance(cell, str):
        return cell if cell.strip() else separator
    if isinstance(cell, (list, tuple, np.ndarray, pd.Series, set, frozenset)):
        tokens = [t for t in (s.strip() for s in as_strings(pd.Series(list(cell), dtype=object))) if t]
        return separator.join(tokens) if tokens else separator
    if cell is None or pd.isna(cell):
        return ""
    return str(as_strings([cell])[0])
