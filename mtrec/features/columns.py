"""Column bookkeeping: glob expansion, natural order, and dtype checks on tables and schemas."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mtrec.errors import ConfigError, SchemaError
from mtrec.features.specs import FeatureSpec, NumericFeature

_NUMERIC_INFERRED = ("integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty")


def natural_key(name: str) -> tuple:
    """Sort key that orders digits by value: `x2` before `x10`."""
    parts = tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))
    return parts, name


def expand_numeric(specs: Sequence[FeatureSpec], columns: Sequence[Any],
                   source: str) -> list[tuple[str, NumericFeature]]:
    """Expands numeric globs against a table's columns.

    A glob skips columns that a feature names explicitly (of any kind), so
    `{name: "x*"}` next to `{name: x_id, kind: categorical}` leaves `x_id`
    to the categorical feature.

    Args:
        specs: all the features.
        columns: the training table's columns.
        source: description of the table, for messages.

    Returns:
        `(column, spec)` per numeric column, in declaration order, each
        glob's matches naturally sorted.

    Raises:
        SchemaError: a glob matches no column.
        ConfigError: two globs match the same column.
    """
    explicit = {s.name for s in specs if not (isinstance(s, NumericFeature) and s.is_glob)}
    names = [c for c in columns if isinstance(c, str)]
    out: list[tuple[str, NumericFeature]] = []
    claimed: dict[str, str] = {}
    for spec in specs:
        if not isinstance(spec, NumericFeature):
            continue
        if not spec.is_glob:
            out.append((spec.name, spec))
            continue
        matches = sorted((c for c in names if c not in explicit and fnmatch.fnmatchcase(c, spec.name)),
                         key=natural_key)
        if not matches:
            raise SchemaError(
                f"Numeric feature pattern '{spec.name}' matches no column of {source}. "
                f"Columns present: {list(columns)}")
        for column in matches:
            if column in claimed:
                raise ConfigError(
                    f"Column '{column}' matches two numeric feature patterns, '{claimed[column]}' "
                    f"and '{spec.name}'. Make the patterns disjoint or name the column explicitly.")
            claimed[column] = spec.name
            out.append((column, spec))
    return out


def column_types(columns: Any) -> dict[str, Any]:
    """Normalizes a table description to `{column: type}`.

    Args:
        columns: a DataFrame (its dtypes; object columns as Series, so their values can be
            inspected), a `pyarrow.Schema`, a mapping of name to dtype, or a
            sequence of names (types unknown).

    Returns:
        A dict from column name to a Series (a DataFrame's object columns),
        dtype, pyarrow type, or None.
    """
    if isinstance(columns, pd.DataFrame):
        # A Series only where the values must be looked at (object columns): building one per
        # column costs more than the check, which runs on every batch that is scored.
        return {c: columns[c] if dtype == object else dtype for c, dtype in columns.dtypes.items()}
    if isinstance(columns, pa.Schema):
        return {f.name: f.type for f in columns}
    if isinstance(columns, Mapping):
        return dict(columns)
    if isinstance(columns, (list, tuple, pd.Index)):
        return {c: None for c in columns}
    raise TypeError(
        "`columns` must be a DataFrame, a pyarrow.Schema, a mapping of column name to dtype "
        f"or a list of names. Received: {type(columns).__name__}")


def is_numeric(kind: Any) -> bool | None:
    """Whether a column type (Series, dtype, pyarrow type or dtype name) holds numbers.

    Booleans and all-null columns count as numeric. Returns None when the
    type is unknown (a name that is no dtype, or None).
    """
    if kind is None:
        return None
    if isinstance(kind, pd.Series):
        if pd.api.types.is_numeric_dtype(kind.dtype):
            return True
        if kind.dtype == object:
            return pd.api.types.infer_dtype(kind, skipna=True) in _NUMERIC_INFERRED
        return False
    if isinstance(kind, pa.DataType):
        return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                    or pa.types.is_decimal(kind) or pa.types.is_null(kind))
    try:
        dtype = pd.api.types.pandas_dtype(kind)
    except (TypeError, ValueError):
        return None
    return bool(pd.api.types.is_numeric_dtype(dtype))


def dtype_name(kind: Any) -> str:
    """A short readable name of a column type, for messages."""
    if isinstance(kind, pd.Series):
        if kind.dtype == object:
            return f"object (values inferred as {pd.api.types.infer_dtype(kind, skipna=True)})"
        return str(kind.dtype)
    return str(kind)


def to_float(series: pd.Series, column: str, source: str) -> np.ndarray:
    """The column as float64, missing values (and +/-inf) as NaN.

    Raises:
        SchemaError: the column does not hold numbers.
    """
    if not is_numeric(series):
        raise SchemaError(
            f"Column '{column}' of a numeric feature in {source} has dtype {dtype_name(series)}; "
            f"a numeric feature needs numbers. Declare it with kind: categorical, or convert it.")
    if series.dtype == object:
        series = pd.to_numeric(series.astype(object).where(series.notna(), np.nan), errors="coerce")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.array(values, dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def numeric_matrix(df: pd.DataFrame, columns: Sequence[str], source: str) -> np.ndarray:
    """The columns as one float64 `(n, len(columns))` matrix, NaN for missing.

    Plain numpy numeric columns are read in one go; others (object,
    nullable) column by column through `to_float`.

    Raises:
        SchemaError: a column does not hold numbers.
    """
    columns = list(columns)
    dtypes = [df[c].dtype for c in columns]
    if all(isinstance(d, np.dtype) and d.kind in "biuf" for d in dtypes):
        return df[columns].to_numpy(dtype=np.float64)
    out = np.empty((len(df), len(columns)), dtype=np.float64, order="F")
    for j, column in enumerate(columns):
        out[:, j] = to_float(df[column], column, source)
    return out
