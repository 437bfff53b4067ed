"""Multi-valued cells (lists, or strings joined by a separator) as flat tokens and padded ids."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from mtrec.features.vocabulary import MISSING, PAD_ID, as_strings, merge_equal

_LIST_TYPES = (list, tuple, np.ndarray)


def split_cells(series: pd.Series, separator: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattens a multi-valued column into category-string codes and per-row lengths.

    String cells are split on `separator`; list, tuple and array cells are
    used as they are; any other scalar is a one-value list. A missing cell
    (None/NaN) is the one-value list `["<missing>"]`, like a missing value of
    a categorical column. Tokens are compared as strings (see `as_strings`),
    stripped of surrounding whitespace, and empty tokens are dropped (so
    `""` and `[]` are empty lists, all padding).

    String columns are split once per distinct cell, so a column with few
    distinct combinations (e.g. genres) costs little more than a hash pass.

    Args:
        series: the column.
        separator: separator of string cells.

    Returns:
        `(uniques, codes, lengths)`: distinct token strings (object array),
        int64 codes into them for every row's tokens in row order, and the
        int64 number of tokens of each row.
    """
    n = len(series)
    if n == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return _split_strings(series, separator)
    return _flatten_lists(series, separator)


def _split_strings(series: pd.Series, separator: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell_codes, cells = pd.factorize(series, use_na_sentinel=True)
    cell_codes = np.asarray(cell_codes, dtype=np.int64)
    token_lists = [[t for t in (p.strip() for p in cell.split(separator)) if t] for cell in cells]
    if (cell_codes < 0).any():
        token_lists.append([MISSING])
        cell_codes[cell_codes < 0] = len(token_lists) - 1
    return expand_cells(cell_codes, token_lists)


def expand_cells(cell_codes: np.ndarray, token_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row token codes from the token lists of the distinct cells.

    Args:
        cell_codes: int64, the distinct cell of each row (an index into `token_lists`).
        token_lists: the tokens of each distinct cell.

    Returns:
        `(uniques, codes, lengths)` as `split_cells` returns them.
    """
    cell_lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=object,
                       count=int(cell_lengths.sum()))
    cell_token_codes, uniques = pd.factorize(flat)
    # Expand per distinct cell to per row: row r reads its cell's slice of tokens.
    lengths = cell_lengths[cell_codes]
    cell_starts = np.cumsum(cell_lengths) - cell_lengths
    row_starts = np.cumsum(lengths) - lengths
    offsets = np.arange(int(lengths.sum())) - np.repeat(row_starts, lengths)
    flat_index = np.repeat(cell_starts[cell_codes], lengths) + offsets
    codes = np.asarray(cell_token_codes, dtype=np.int64)[flat_index]
    return np.asarray(uniques, dtype=object), codes, lengths


def _flatten_lists(series: pd.Series, separator: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(series)
    cells = series.to_numpy(dtype=object)
    missing = np.asarray(series.isna(), dtype=bool)
    if missing.any():
        cells = cells.copy()
        for i in np.flatnonzero(missing):
            cells[i] = [MISSING]
    if not all(t in _LIST_TYPES for t in set(map(type, cells))):
        cells = [_as_list(cell, separator) for cell in cells]
    lengths = np.fromiter(map(len, cells), dtype=np.int64, count=n)
    flat = np.fromiter(itertools.chain.from_iterable(cells), dtype=object, count=int(lengths.sum()))
    try:
        codes, raw = pd.factorize(flat, use_na_sentinel=False)
    except TypeError:  # unhashable tokens: convert every token
        codes, raw = pd.factorize(as_strings(flat))
    strings = as_strings(pd.Series(raw, dtype=object))
    strings = pd.Series(strings, dtype=object).str.strip().to_numpy(dtype=object)
    uniques, codes = merge_equal(strings, np.asarray(codes, dtype=np.int64))
    empty = np.flatnonzero(uniques == "")
    if len(empty):
        keep = codes != empty[0]
        rows = np.repeat(np.arange(n), lengths)[keep]
        codes = codes[keep]
        lengths = np.bincount(rows, minlength=n).astype(np.int64)
    return uniques, codes, lengths


def pad_ids(ids: np.ndarray, lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Lays flat ids out as an `(n, max_length)` int32 matrix, padded with 0, cut to `max_length`.

    Args:
        ids: the ids of the flat tokens, in row order.
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
    if isinstance(cell, (*_LIST_TYPES, pd.Series)):
        return list(cell)
    if isinstance(cell, (set, frozenset)):
        return sorted(cell, key=str)  # a set has no order of its own
    if cell is None or pd.isna(cell):
        return [MISSING]
    return [cell]
