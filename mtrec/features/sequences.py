"""Multi-valued cells (lists, or strings joined by a separator) as flat tokens and padded ids."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from mtrec.features.vocabulary import MISSING, PAD_ID, as_strings


def split_cells(series: pd.Series, separator: str) -> tuple[np.ndarray, np.ndarray]:
    """Flattens a multi-valued column into category strings and per-row lengths.

    String cells are split on `separator`; list, tuple and array cells are
    used as they are; any other scalar is a one-value list. A missing cell
    (None/NaN) is the one-value list `["<missing>"]`. Tokens are stripped of
    surrounding whitespace and empty tokens are dropped, so `""` is an empty
    list.

    Args:
        series: the column.
        separator: separator of string cells.

    Returns:
        `(tokens, lengths)`: a 1-d object array of str with every row's
        tokens in order, and an int64 array with the number of tokens of
        each row.
    """
    cells = series.to_numpy(dtype=object)
    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        missing = pd.isna(series).to_numpy()
        present = pd.Series(cells[~missing], dtype=object)
        split = iter(present.str.split(separator, regex=False).tolist() if len(present) else [])
        lists = [[MISSING] if m else next(split) for m in missing]
    else:
        lists = [_as_list(cell, separator) for cell in cells]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=n)
    raw = np.empty(int(lengths.sum()), dtype=object)
    raw[:] = list(itertools.chain.from_iterable(lists))
    tokens = as_strings(pd.Series(raw, dtype=object))
    tokens = pd.Series(tokens, dtype=object).str.strip().to_numpy(dtype=object)
    keep = tokens != ""
    if not keep.all():
        rows = np.repeat(np.arange(n), lengths)[keep]
        tokens = tokens[keep]
        lengths = np.bincount(rows, minlength=n).astype(np.int64)
    return tokens, lengths


def pad_ids(ids: np.ndarray, lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Lays flat ids out as an `(n, max_length)` int32 matrix, padded with 0, cut to `max_length`.

    Args:
        ids: the ids of the flat tokens, as returned in row order.
        lengths: tokens per row.
        max_length: columns of the matrix.

    Returns:
        The matrix, and a boolean mask over `ids` of the tokens that fit in it.
    """
    n = len(lengths)
    out = np.full((n, max_length), PAD_ID, dtype=np.int32)
    if len(ids) == 0:
        return out, np.zeros(0, dtype=bool)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(len(ids)) - np.repeat(starts, lengths)
    fits = positions < max_length
    out[rows[fits], positions[fits]] = ids[fits]
    return out, fits


def _as_list(cell: object, separator: str) -> list:
    if isinstance(cell, str):
        return cell.split(separator)
    if isinstance(cell, (list, tuple, np.ndarray, pd.Series)):
        return list(cell)
    if isinstance(cell, (set, frozenset)):
        return sorted(cell, key=str)  # a set has no order of its own
    if cell is None or pd.isna(cell):
        return [MISSING]
    return [cell]
