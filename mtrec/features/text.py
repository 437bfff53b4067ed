"""The `text` feature's tokenizer: lowercase, strip punctuation, split on whitespace, optional bigrams.

One definition serves the Python encoder (`tokenize`) and the exported graph
(`mtrec.export.graph_encoder`, with `tf.strings` ops): the character classes
are explicit code-point ranges (`SPACE_RANGES`, `STRIP_RANGES`,
`DELETE_CHARS`) written out for Python's `str.translate` and for RE2 alike,
so both sides split the same strings the same way.

Steps, in this order, on one cell:

1. whitespace and control characters (Unicode categories Zs, Zl, Zp, Cc,
   and whatever `str.isspace` calls space) become one space each;
2. apostrophes (`'` and `’`) are deleted, so "don't" is one token `dont`;
3. every other punctuation or symbol character (categories P* and S*:
   `.,;!?-()"…—$%+<=>|~` and emoji) becomes a space;
4. the cell is lowercased (Unicode lowercasing, `str.lower`; the few
   letters TensorFlow's ICU cannot lowercase, `KEEP_CASE`, are left as they
   are on both sides);
5. it is split on spaces, empty tokens dropped;
6. with `ngrams: 2`, the row's bigrams (`"very good"`, joined by one
   space) follow its unigrams.

A missing cell is the one-token list `["<missing>"]`, as for
`multi_categorical`; a cell with no word (`""`, `"!!!"`) is an empty list.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

import numpy as np
import pandas as pd

from mtrec.features.sequences import expand_cells
from mtrec.features.vocabulary import MISSING

#: Deleted without a space: apostrophes inside words.
DELETE_CHARS = "'\u2019"

#: Uppercase letters whose lowercase TensorFlow's ICU tables (older than Python's Unicode) lack;
#: `str.lower` is not applied to them so that the graph and Python agree.
KEEP_CASE = "\u2c2f\ua7c0\ua7d0\ua7d6\ua7d8" + "".join(
    chr(c) for c in range(0x10570, 0x10596) if c not in (0x1057b, 0x1058b, 0x10593))


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for code in codes:
        if out and out[-1][1] == code - 1:
            out[-1][1] = code
        else:
            out.append([code, code])
    return [(a, b) for a, b in out]


@functools.lru_cache(maxsize=1)
def _classes() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    space, strip = [], []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zs", "Zl", "Zp", "Cc"):
            space.append(code)
        elif category[0] in "PS" and char not in DELETE_CHARS:
            strip.append(code)
    return _ranges(space), _ranges(strip)


def space_ranges() -> list[tuple[int, int]]:
    """Code-point ranges written as a space before splitting (whitespace and controls)."""
    return _classes()[0]


def strip_ranges() -> list[tuple[int, int]]:
    """Code-point ranges of the punctuation and symbols written as a space."""
    return _classes()[1]


@functools.lru_cache(maxsize=1)
def _table() -> dict[int, str | None]:
    table: dict[int, str | None] = {ord(c): None for c in DELETE_CHARS}
    for lo, hi in (*space_ranges(), *strip_ranges()):
        table.update(dict.fromkeys(range(lo, hi + 1), " "))
    return table


def _lower(text: str) -> str:
    if not any(c in KEEP_CASE for c in text):
        return text.lower()
    # Rare: lower the pieces between the letters TensorFlow leaves as they are.
    pieces, start = [], 0
    for i, char in enumerate(text):
        if char in KEEP_CASE:
            pieces += [text[start:i].lower(), char]
            start = i + 1
    return "".join(pieces) + text[start:].lower()


def tokenize(text: str, ngrams: int = 1) -> list[str]:
    """The tokens of one non-missing cell (see the module docstring for the steps).

    Args:
        text: the cell.
        ngrams: 1 for words, 2 for words then bigrams.

    Returns:
        The tokens, unigrams first, then bigrams in order.
    """
    words = _lower(text.translate(_table())).split(" ")
    words = [w for w in words if w]
    if ngrams >= 2:
        words += [f"{a} {b}" for a, b in zip(words, words[1:])]
    return words


def tokenize_column(series: pd.Series, ngrams: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokenizes a text column into token codes and per-row lengths (as `split_cells` does for lists).

    Each distinct cell is tokenized once. Non-string cells are written as
    strings first (`str(5)`); missing cells are `["<missing>"]`.

    Args:
        series: the column.
        ngrams: 1 or 2.

    Returns:
        `(uniques, codes, lengths)`: distinct tokens (object array), int64
        codes into them in row order, and int64 tokens per row.
    """
    n = len(series)
    if n == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cell_codes, cells = pd.factorize(series, use_na_sentinel=True)
    cell_codes = np.asarray(cell_codes, dtype=np.int64)
    token_lists = [tokenize(cell if isinstance(cell, str) else str(cell), ngrams) for cell in cells]
    if (cell_codes < 0).any():
        token_lists.append([MISSING])
        cell_codes[cell_codes < 0] = len(token_lists) - 1
    return expand_cells(cell_codes, token_lists)
