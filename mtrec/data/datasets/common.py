"""Shared machinery of the data-set loaders: where the data lives, finding raw files, and
reading raw CSV files as a stream with malformed rows counted and skipped.

Every loader reads its raw files through `read_csv`: pyarrow parses the file in blocks
(all columns as strings, so a stray value never fails a whole block), the loader's
`convert` function types one block at a time through a `Batch`, which marks rows whose
values cannot be used, and only the typed rows are kept. So at most one block of raw
strings is in memory beside the typed result.

Example:

```python
folder = dataset_folder(None, "hillstrom_email_marketing")   # $MTREC_DATA_DIR/... by default
path = find_raw_file(folder, ["hillstrom.csv.gz", "hillstrom.csv"])
frame = read_csv(path, columns=["visit", "spend"], header=True,
                 convert=lambda b: pd.DataFrame({"visit": b.choice("visit", {"0": 0, "1": 1}),
                                                 "spend": b.number("spend", low=0)}))
```
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from tqdm.auto import tqdm

from mtrec.errors import DataError
from mtrec.utils.validation import closest, require_columns

#: Environment variable naming the folder that holds the data-set folders.
DATA_DIR_ENV = "MTREC_DATA_DIR"

#: The repository root (this file is mtrec/data/datasets/common.py).
REPO_ROOT = Path(__file__).resolve().parents[3]

#: Raw tokens read as a missing value by `Batch.number` and `Batch.string` unless told otherwise.
MISSING_TOKENS = ("", "?")

_BLOCK_SIZE = 1 << 23  # bytes of raw text per parsed block
_MAX_EXAMPLES = 3


class MalformedRowsWarning(UserWarning):
    """Some raw rows were malformed and skipped (fewer than the allowed fraction)."""


# --------------------------------------------------------------------------- locations


def default_data_dir() -> Path:
    """The folder that holds the data-set folders.

    `$MTREC_DATA_DIR` when set; else `../shared/datasets` relative to the current
    directory, else relative to the repository root, whichever exists first.

    Returns:
        An existing folder, resolved.

    Raises:
        DataError: `$MTREC_DATA_DIR` names no folder, or it is unset and no default
            folder exists (the message says how to set it).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"{DATA_DIR_ENV}={env!r} is not a folder. Point it at the folder that holds the "
                f"data-set folders (census_income_kdd/, movielens_100k/, ...)."
            )
        return path.resolve()
    candidates = [Path.cwd() / ".." / "shared" / "datasets", REPO_ROOT.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    looked = ", ".join(str(c.resolve()) for c in dict.fromkeys(candidates))
    raise DataError(
        f"No data folder found: {DATA_DIR_ENV} is not set and none of {looked} exists. Set "
        f"{DATA_DIR_ENV} to the folder that holds the data-set folders, e.g. "
        f"`export {DATA_DIR_ENV}=/path/to/datasets`, or pass data_dir=... ."
    )


def dataset_folder(data_dir: str | os.PathLike | None, folder: str) -> Path:
    """The folder of one data set, checked to exist.

    Args:
        data_dir: the folder that holds the data-set folders; `None` means
            `default_data_dir()`.
        folder: the data set's folder name, e.g. `"census_income_kdd"`.

    Returns:
        `data_dir / folder`.

    Raises:
        DataError: `data_dir` or the data set's folder does not exist.
    """
    root = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"Data folder {root.resolve()} does not exist (it should hold {folder}/).")
    path = root / folder
    if not path.is_dir():
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DataError(
            f"Data-set folder '{folder}' not found in {root.resolve()}.{closest(folder, names)} "
            f"Folders there: {names}."
        )
    return path


def find_raw_file(folder: Path, names: Sequence[str]) -> Path:
    """The first of `names` that exists in `folder` (e.g. a gzipped file or its plain twin).

    Args:
        folder: the data set's folder.
        names: accepted file names, preferred first.

    Returns:
        The path of the file found.

    Raises:
        DataError: none exists; the message names the folder, the expected file
            name(s) and what the folder holds.
    """
    for name in names:
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    close = difflib.get_close_matches(names[0], present, n=2, cutoff=0.5)
    expected = f"'{names[0]}'" + (f" (or {', '.join(repr(n) for n in names[1:])})" if names[1:] else "")
    hint = f" Similar names there: {close}." if close else ""
    raise DataError(
        f"Raw file missing: looked in {folder.resolve()} for {expected}.{hint} "
        f"The folder holds: {present}."
    )


# --------------------------------------------------------------------------- arguments


def check_loader_args(nrows: Any, max_malformed_fraction: Any) -> tuple[int | None, float]:
    """Checks a loader's `nrows` (None or a positive integer), then its
    `max_malformed_fraction` (a number in [0, 1]).

    Returns:
        `(nrows, max_malformed_fraction)` as `int | None` and `float`.

    Raises:
        ValueError: naming the argument and the value received.
    """
    if nrows is not None:
        if isinstance(nrows, bool) or not isinstance(nrows, (int, np.integer)) or nrows < 1:
            raise ValueError(f"`nrows` must be a positive integer or None. Received: nrows={nrows!r}")
        nrows = int(nrows)
    value = max_malformed_fraction
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= float(value) <= 1:
        raise ValueError(
            f"`max_malformed_fraction` must be a number in [0, 1]. "
            f"Received: max_malformed_fraction={value!r}"
        )
    return nrows, float(value)


# --------------------------------------------------------------------------- malformed rows


class MalformedRows:
    """Counts the malformed rows of one raw file and keeps a few examples.

    Args:
        path: the raw file, named in messages.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.unparsed = 0  # rows the parser skipped (wrong field count), part of `count`
        self.examples: list[str] = []

    def add(self, count: int, example: str) -> None:
        """Records `count` skipped rows, described by `example`."""
        if count <= 0:
            return
        self.count += count
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(example)

    def check(self, rows_read: int, max_fraction: float) -> None:
        """Warns about the skipped rows, or fails when there are too many.

        Args:
            rows_read: rows read in all, malformed ones included.
            max_fraction: the largest fraction of malformed rows accepted.

        Raises:
            DataError: more than `max_fraction` of the rows are malformed.
        """
        if self.count == 0:
            return
        fraction = self.count / max(rows_read, 1)
        summary = (f"{self.count:,} of {rows_read:,} rows ({fraction:.3%}) of {self.path.resolve()} "
                   f"are malformed; e.g. {'; '.join(self.examples)}")
        if fraction > max_fraction:
            raise DataError(
                f"{summary}. That is more than max_malformed_fraction={max_fraction:g}: is the file "
                f"corrupt or its layout changed upstream? Raise max_malformed_fraction to skip them."
            )
        warnings.warn(f"Skipped {summary}.", MalformedRowsWarning, stacklevel=3)


class Batch:
    """One block of raw rows (all strings) being typed; marks the rows that cannot be used.

    Each accessor returns a typed column and marks as malformed the rows whose
    value fails its rule; `read_csv` drops those rows after `convert` returns.

    Args:
        block: the block's columns as Arrow strings.
        first_row: 1-based number (among the rows with the right field count) of
            the block's first row, for messages.
        malformed: where skipped rows are recorded.
    """

    def __init__(self, block: pa.RecordBatch, first_row: int, malformed: MalformedRows) -> None:
        self.block = block
        self.first_row = first_row
        self.malformed = malformed
        self.index = pd.RangeIndex(block.num_rows)
        self.bad = np.zeros(block.num_rows, dtype=bool)
        self._columns: dict[str, pd.Series] = {}

    def __len__(self) -> int:
        return self.block.num_rows

    def column(self, name: str) -> pd.Series:
        """The raw column `name` as a Series of strings (converted once, on first use)."""
        if name not in self._columns:
            self._columns[name] = pd.Series(self.block.column(name).to_pandas(), index=self.index,
                                            dtype="str", name=name)
        return self._columns[name]

    def reject(self, mask: np.ndarray | pd.Series, reason: Callable[[int], str]) -> None:
        """Marks the rows of `mask` malformed; `reason(i)` describes row `i` of the block."""
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            self.malformed.add(int(mask.sum()), f"data row {self.first_row + first:,}: {reason(first)}")
            self.bad |= mask

    def _value(self, column: str, i: int) -> str:
        return repr(self.column(column).iloc[i])

    def string(self, column: str, missing: Sequence[str] = MISSING_TOKENS,
               required: bool = False) -> pd.Series:
        """The column as strings, with the `missing` tokens as missing values.

        Args:
            column: the raw column.
            missing: raw tokens that mean "unknown".
            required: a missing value makes the row malformed.
        """
        values = self.column(column)
        is_missing = values.isin(list(missing)).to_numpy()
        if required:
            self.reject(is_missing,
                        lambda i: f"column '{column}' is empty or unknown ({self._value(column, i)})")
        return values.where(~is_missing) if is_missing.any() else values

    def number(self, column: str, *, missing: Sequence[str] = MISSING_TOKENS, required: bool = True,
               integer: bool = False, low: float | None = None, high: float | None = None) -> pd.Series:
        """The column as numbers.

        Args:
            column: the raw column.
            missing: raw tokens that mean "unknown" (NaN).
            required: a missing value makes the row malformed; the result is
                then int64 when `integer`, else float64.
            integer: values must be whole numbers.
            low, high: inclusive bounds; a value outside makes the row malformed.

        Returns:
            float64 (int64 when `integer` and `required`).
        """
        array, is_missing = self._parse_numbers(column, missing)
        unparsed = np.isnan(array) & ~is_missing
        self.reject(unparsed, lambda i: f"column '{column}' = {self._value(column, i)} is not a number")
        if required:
            self.reject(is_missing, lambda i: f"column '{column}' is missing ({self._value(column, i)})")
        finite = ~np.isnan(array)
        if integer:
            self.reject(finite & (np.floor(array) != array),
                        lambda i: f"column '{column}' = {self._value(column, i)} is not a whole number")
        if low is not None:
            self.reject(finite & (array < low),
                        lambda i: f"column '{column}' = {self._value(column, i)} < {low:g}")
        if high is not None:
            self.reject(finite & (array > high),
                        lambda i: f"column '{column}' = {self._value(column, i)} > {high:g}")
        if integer and required:
            return pd.Series(np.where(self.bad | np.isnan(array), 0, array).astype("int64"), index=self.index)
        return pd.Series(array, index=self.index)

    def _parse_numbers(self, column: str, missing: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """float64 values (NaN where missing or unparsable) and the missing-token mask."""
        raw = self.block.column(column)
        is_missing = pc.is_in(raw, value_set=pa.array(list(missing), pa.string()))
        try:  # fast path: Arrow parses the whole column, or fails on the first bad value
            parsed = pc.cast(pc.if_else(is_missing, pa.scalar(None, pa.string()), raw), pa.float64())
            array = parsed.to_numpy(zero_copy_only=False).astype("float64", copy=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = self.column(column)
            array = pd.to_numeric(values.where(~is_missing.to_numpy(zero_copy_only=False)),
                                  errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return array, is_missing.to_numpy(zero_copy_only=False)

    def choice(self, column: str, mapping: Mapping[str, Any], dtype: str = "int64") -> pd.Series:
        """Maps the raw values through `mapping`; a value not in it makes the row malformed.

        Args:
            column: the raw column.
            mapping: raw value -> typed value (e.g. `{"NO": 0, "<30": 1}`).
            dtype: dtype of the result.
        """
        raw = self.column(column)
        known = raw.isin(list(mapping)).to_numpy()
        self.reject(~known, lambda i: f"column '{column}' = {self._value(column, i)} is not one of "
                                      f"{list(mapping)}")
        fill = next(iter(mapping.values()))
        return raw.map(dict(mapping)).where(known, fill).astype(dtype)


# --------------------------------------------------------------------------- reading


def read_header(path: Path, delimiter: str, encoding: str = "utf8") -> list[str]:
    """The column names on the first line of a (possibly gzipped) CSV file.

    Raises:
        DataError: the file is empty or unreadable.
    """
    try:
        with pa.input_stream(str(path)) as stream:  # decompresses .gz by its suffix
            head = stream.read(1 << 16)
    except (OSError, pa.ArrowException, EOFError) as err:
        raise DataError(f"Cannot read {path.resolve()}: {err}") from err
    text = head.split(b"\n", 1)[0].decode(encoding, errors="replace").rstrip("\r")
    if not text.strip():
        raise DataError(f"File {path.resolve()} is empty: expected a header line and rows.")
    return [name.strip().strip('"') for name in text.split(delimiter)]


def read_csv(path: Path, *, columns: Sequence[str], convert: Callable[[Batch], pd.DataFrame],
             header: bool, delimiter: str = ",", encoding: str = "utf8", quoting: bool = True,
             strip: bool = False, nrows: int | None = None,
             max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Streams a raw CSV file block by block into one typed frame.

    Rows with the wrong number of fields are skipped by the parser; rows that
    `convert` marks malformed are dropped; both are counted (see `MalformedRows`).

    Args:
        path: the file (`.gz` is decompressed on the fly).
        columns: with `header`, the columns to read (each must be in the header,
            else SchemaError); without, the names of all the file's fields in order.
        convert: types one `Batch` of string columns; returns a frame with one row
            per raw row, in order (rows it marked malformed are dropped after).
        header: whether the first line names the columns.
        delimiter: the field separator.
        encoding: the text encoding.
        quoting: whether `"` quotes fields (off for files whose text has stray quotes).
        strip: strip surrounding whitespace from every value first.
        nrows: stop after this many good rows. Defaults to all.
        max_malformed_fraction: fail when more than this fraction of the rows read
            is malformed.

    Returns:
        The typed rows with a fresh RangeIndex.

    Raises:
        DataError: the file is empty, unreadable or has no usable row, or too many
            rows are malformed.
        SchemaError: a needed column is missing from the header.
    """
    columns = list(columns)
    if header:
        names = read_header(path, delimiter, encoding)
        require_columns(names, columns, path.resolve(), note=" (renamed upstream?)")
        read_options = pcsv.ReadOptions(column_names=names, skip_rows=1, encoding=encoding,
                                        block_size=_BLOCK_SIZE)
    else:
        names = columns
        read_options = pcsv.ReadOptions(column_names=names, encoding=encoding, block_size=_BLOCK_SIZE)
    malformed = MalformedRows(path)

    def on_invalid(row: pcsv.InvalidRow) -> str:
        where = f"line {row.number:,}" if row.number is not None else "a row"
        malformed.unparsed += 1
        malformed.add(1, f"{where} has {row.actual_columns} fields, expected {row.expected_columns} "
                         f"({row.text[:80]!r})")
        return "skip"

    parse_options = pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False,
                                      invalid_row_handler=on_invalid)
    convert_options = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, include_columns=columns,
        null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
    )
    parts: list[pd.DataFrame] = []
    good = seen = 0
    try:
        reader = pcsv.open_csv(str(path), read_options=read_options, parse_options=parse_options,
                               convert_options=convert_options)
        with tqdm(desc=f"reading {path.name}", unit=" rows", unit_scale=True, disable=None,
                  leave=False) as progress:
            for record_batch in reader:
                if strip:
                    record_batch = pa.RecordBatch.from_arrays(
                        [pc.utf8_trim_whitespace(a) for a in record_batch.columns],
                        names=record_batch.schema.names)
                batch = Batch(record_batch, seen + 1, malformed)
                typed = convert(batch)
                seen += len(batch)
                typed = typed.loc[~batch.bad]
                if nrows is not None and good + len(typed) >= nrows:
                    parts.append(typed.iloc[: nrows - good])
                    good = nrows
                    break
                parts.append(typed)
                good += len(typed)
                progress.update(len(batch))
    except pa.ArrowInvalid as err:
        if "Empty CSV file" in str(err):
            raise DataError(f"File {path.resolve()} is empty: it has no rows.") from err
        raise DataError(f"Cannot parse {path.resolve()} as CSV: {err}") from err
    except (OSError, pa.ArrowException, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"Cannot read {path.resolve()}: {err}") from err
    malformed.check(seen + malformed.unparsed, max_malformed_fraction)
    if good == 0:
        raise DataError(f"File {path.resolve()} has no usable rows"
                        f"{' (only a header)' if header and malformed.count == 0 else ''}.")
    return pd.concat(parts, ignore_index=True)


def read_raw(data_dir: str | os.PathLike | None, folder: str, files: Sequence[str], *,
             nrows: Any = None, max_malformed_fraction: Any = 0.001,
             **options: Any) -> tuple[Path, pd.DataFrame]:
    """Reads the raw file of a data set whose rows come from one file: the body of a loader.

    Checks `nrows` and `max_malformed_fraction` (`check_loader_args`), finds the
    first of `files` in the data set's folder (`dataset_folder`, `find_raw_file`)
    and reads it with `read_csv`.

    Args:
        data_dir: the folder holding the data-set folders; `None` means
            `default_data_dir()`.
        folder: the data set's folder name.
        files: accepted file names, preferred first.
        nrows, max_malformed_fraction: the loader's arguments, checked here.
        **options: the other arguments of `read_csv` (`columns`, `convert`,
            `header`, ...).

    Returns:
        The path read (for later messages) and the typed rows.
    """
    nrows, max_malformed_fraction = check_loader_args(nrows, max_malformed_fraction)
    path = find_raw_file(dataset_folder(data_dir, folder), files)
    return path, read_csv(path, nrows=nrows, max_malformed_fraction=max_malformed_fraction, **options)
