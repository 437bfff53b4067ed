"""Reading and writing tables: Parquet (a file or a folder of files) and CSV/TSV.

Every failure is a `DataError` (missing, empty, unreadable file, unknown file
type) or a `SchemaError` (a requested column is missing) whose message names
the file. Writes are atomic: a temporary file beside the target is renamed
onto it only when the write finished, so no reader ever sees half a file.

Example:

```python
write_parquet(frame, "rows.parquet")
frame = read_table("rows.parquet", columns=["user_id", "click"])
for batch in iter_parquet_batches("rows.parquet", batch_size=65_536):
    ...
```
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mtrec.errors import DataError, SchemaError, UnreadableFileError
from mtrec.utils.atomic import atomic_path
from mtrec.utils.validation import check_unique_columns, require_columns, short_list

PathLike = str | os.PathLike
TablePath = PathLike | Sequence[PathLike]

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
SUPPORTED = PARQUET_SUFFIXES + CSV_SUFFIXES

#: Rows read from a CSV file to infer its schema in `read_schema`.
CSV_SCHEMA_ROWS = 1000


# --------------------------------------------------------------------------- paths


def _paths(path: TablePath) -> list[Path]:
    if isinstance(path, (str, os.PathLike)):
        return [Path(path)]
    paths = [Path(p) for p in path]
    if not paths:
        raise DataError("Empty list of paths: give at least one Parquet or CSV file.")
    return paths


def _kind(path: Path) -> str:
    """Returns "parquet", "parquet_dir" or "csv" for an existing path."""
    if path.is_dir():
        return "parquet_dir"
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    suffix = "".join(path.suffixes[-2:]) if path.suffixes else "(none)"
    raise DataError(
        f"Cannot read {path.resolve()}: unknown file type '{suffix}'. Supported: "
        f"{', '.join(SUPPORTED)}, or a folder of Parquet files."
    )


def _check_exists(path: Path) -> None:
    if path.exists():
        return
    full = path.resolve()
    message = f"No such file: {full}."
    parent = full.parent
    if parent.is_dir():
        names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
        close = difflib.get_close_matches(full.name, names, n=3, cutoff=0.5)
        if close:
            message += f" Similar names in {parent}: {close}."
        elif names:
            message += f" {parent} holds: {short_list(names)}."
        else:
            message += f" {parent} is empty."
    else:
        message += f" The folder {parent} does not exist either."
    raise DataError(message)


def _check_file(path: Path) -> str:
    """Checks that `path` exists, has a known type and is not a 0-byte file; returns its kind."""
    _check_exists(path)
    kind = _kind(path)
    if kind != "parquet_dir" and path.stat().st_size == 0:
        raise DataError(f"File {path.resolve()} is empty (0 bytes).")
    return kind


def _parquet_files(folder: Path) -> list[Path]:
    """Parquet files under `folder` (recursively), skipping hidden and `_`-prefixed names."""
    files = []
    for file in sorted(folder.rglob("*")):
        parts = file.relative_to(folder).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        if file.is_file() and file.name.lower().endswith(PARQUET_SUFFIXES):
            files.append(file)
    if not files:
        names = sorted(p.name for p in folder.iterdir())
        raise DataError(
            f"Folder {folder.resolve()} holds no Parquet files (*.parquet, *.pq). "
            f"It holds: {short_list(names) if names else 'nothing'}."
        )
    return files


#: Parquet pages carry a CRC32 (mtrec writes one) that is checked on reading, so bytes damaged
#: in the middle of a file are a DataError, not silently wrong numbers.
_VERIFY = ds.ParquetFragmentScanOptions(page_checksum_verification=True)


def _dataset(folder: Path) -> ds.Dataset:
    files = _parquet_files(folder)
    try:
        dataset = ds.dataset([str(f) for f in files], format="parquet", partitioning="hive",
                             partition_base_dir=str(folder))
        # The dataset takes the first file's schema: another file's other columns would be read as
        # all-missing or dropped, without a word. Each footer is read (metadata only).
        schemas = [(Path(f.path), f.physical_schema.names) for f in dataset.get_fragments()]
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"Cannot read folder {folder.resolve()} as Parquet: {err}") from err
    for other, names in schemas[1:]:
        if set(names) != set(schemas[0][1]):
            _check_same_columns(schemas[0][0], schemas[0][1], other, names)
    return dataset


@contextlib.contextmanager
def _reading(path: Path, as_what: str) -> Iterator[None]:
    """Turns low-level read errors into an UnreadableFileError (a DataError) naming the file."""
    try:
        yield
    except (DataError, SchemaError):
        raise
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError,
            pd.errors.ParserError) as err:
        raise UnreadableFileError(f"Cannot read {path.resolve()} as {as_what}: {err}") from err
    except EOFError as err:  # gzip/bz2: the compressed stream is cut short
        raise UnreadableFileError(f"Cannot read {path.resolve()} as {as_what}: the compressed file is truncated "
                                  f"({err}).") from err


def _dedupe(columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    return list(dict.fromkeys(columns))


# --------------------------------------------------------------------------- schema


def _csv_sep(path: Path) -> str:
    return "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","


def _csv_header(path: Path) -> list[str]:
    with _reading(path, "CSV"):
        try:
            header = pd.read_csv(path, sep=_csv_sep(path), nrows=0)
            # pandas renames a repeated name ("num1" -> "num1.1"); the raw first line shows it.
            raw = pd.read_csv(path, sep=_csv_sep(path), header=None, nrows=1, dtype=str)
        except pd.errors.EmptyDataError as err:
            raise DataError(f"File {path.resolve()} is empty: it has no header and no rows.") from err
    check_unique_columns(raw.iloc[0].tolist() if len(raw) else header.columns, path.resolve())
    return [str(c) for c in header.columns]


def _schema_one(path: Path) -> pa.Schema:
    kind = _check_file(path)
    if kind == "parquet":
        with _reading(path, "Parquet"):
            schema = pq.read_schema(path)
        check_unique_columns(schema.names, path.resolve())
        return schema
    if kind == "parquet_dir":
        return _dataset(path).schema
    _csv_header(path)  # empty-file errors first
    with _reading(path, "CSV"):
        head = pd.read_csv(path, sep=_csv_sep(path), nrows=CSV_SCHEMA_ROWS)
    return pa.Schema.from_pandas(head, preserve_index=False)


def read_schema(path: TablePath) -> pa.Schema:
    """Returns the schema of a table without reading its rows.

    For Parquet only the footer is read. For CSV the types are inferred from
    the first `CSV_SCHEMA_ROWS` rows, the way `read_table` (pandas) would.

    Args:
        path: a Parquet file, a folder of Parquet files, a CSV/TSV file, or a
            list of them (then every file must have the same column names and
            the first file's schema is returned).

    Returns:
        A `pyarrow.Schema`.

    Raises:
        DataError: a file is missing, empty, unreadable or of unknown type.
        SchemaError: the files of a list have different columns.
    """
    paths = _paths(path)
    schema = _schema_one(paths[0])
    for other in paths[1:]:
        _check_same_columns(paths[0], schema.names, other, _schema_one(other).names)
    return schema


def _check_same_columns(first: Path, first_names: Sequence[str], other: Path,
                        other_names: Sequence[str]) -> None:
    if list(first_names) == list(other_names):
        return
    missing = [c for c in first_names if c not in other_names]
    extra = [c for c in other_names if c not in first_names]
    detail = []
    if missing:
        detail.append(f"lacks {short_list(missing)}")
    if extra:
        detail.append(f"has extra {short_list(extra)}")
    if not detail:
        detail.append("has the same columns in another order")
    raise SchemaError(
        f"{other.resolve()} does not have the columns of {first.resolve()}: it "
        f"{' and '.join(detail)}."
    )


# --------------------------------------------------------------------------- reading


#: The strings `data.na_values` defaults to: pandas' own CSV list, written out.
DEFAULT_NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def mark_missing(frame: pd.DataFrame, na_values: Sequence[str]) -> pd.DataFrame:
    """Turns the `na_values` strings of text columns into missing values (what CSV reading does).

    Args:
        frame: rows, e.g. read from Parquet.
        na_values: strings that mean "missing".

    Returns:
        `frame`, with copies of the text columns that held such strings.
    """
    marks = set(na_values)
    copied = False
    for column in frame.columns if marks else ():
        series = frame[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            hit = series.isin(marks)
            if hit.any():
                if not copied:
                    frame, copied = frame.copy(), True
                frame[column] = series.mask(hit)
    return frame


def _read_one(path: Path, columns: list[str] | None,
              na_values: Sequence[str] | None = None) -> pd.DataFrame:
    kind = _check_file(path)
    if kind == "csv":
        require_columns(_csv_header(path), columns or (), path.resolve())
        na = {} if na_values is None else {"keep_default_na": False, "na_values": list(na_values)}
        with _reading(path, "CSV"):
            frame = pd.read_csv(path, sep=_csv_sep(path), usecols=columns, **na)
        if len(frame) == 0:
            raise DataError(f"File {path.resolve()} has a header but no rows.")
        return frame[columns] if columns is not None else frame
    if kind == "parquet":
        with _reading(path, "Parquet"):
            schema = pq.read_schema(path)
        check_unique_columns(schema.names, path.resolve())
        require_columns(schema.names, columns or (), path.resolve())
        with _reading(path, "Parquet"):
            table = pq.read_table(path, columns=columns, page_checksum_verification=True)
    else:
        dataset = _dataset(path)
        require_columns(dataset.schema.names, columns or (), path.resolve())
        with _reading(path, "a folder of Parquet files"):
            table = dataset.to_table(columns=columns, fragment_scan_options=_VERIFY)
    if table.num_rows == 0:
        raise DataError(f"{'Folder' if kind == 'parquet_dir' else 'File'} {path.resolve()} has 0 rows.")
    with _reading(path, "Parquet"):
        frame = table.to_pandas()
    return frame if na_values is None else mark_missing(frame, na_values)


def read_table(path: TablePath, columns: Sequence[str] | None = None,
               na_values: Sequence[str] | None = None) -> pd.DataFrame:
    """Reads a Parquet or CSV table into a DataFrame.

    Args:
        path: a `.parquet`/`.pq` file, a folder of Parquet files (read
            recursively, hive partitions become columns, names starting with
            `.` or `_` are skipped), a `.csv`/`.csv.gz`/`.tsv`/`.tsv.gz` file,
            or a list of these, concatenated in order.
        columns: the columns to read, in this order. Defaults to all.
        na_values: strings that mean "missing", the same in CSV and Parquet
            text columns (`data.na_values`). Defaults to `None`: pandas'
            default list in CSV, none in Parquet.

    Returns:
        The rows, with a fresh `RangeIndex`.

    Raises:
        DataError: a file is missing (the message lists similar names in its
            folder), empty (0 bytes or 0 rows), unreadable, or of unknown type.
        SchemaError: a requested column is missing (the closest name is
            suggested), or the files of a list have different columns.

    Example:

    ```python
    frame = read_table(["part-0.parquet", "part-1.parquet"], columns=["x0", "y0"])
    ```
    """
    columns = _dedupe(columns)
    paths = _paths(path)
    frames = [_read_one(p, columns, na_values) for p in paths]
    if len(frames) == 1:
        return frames[0]
    for other, frame in zip(paths[1:], frames[1:]):
        _check_same_columns(paths[0], [str(c) for c in frames[0].columns], other,
                            [str(c) for c in frame.columns])
    return pd.concat(frames, ignore_index=True)


def _parquet_sources(path: TablePath, csv_message: Callable[[Path], str]) -> Iterator[tuple[Path, str]]:
    """Each path of `path` with its kind ("parquet" or "parquet_dir"), checked as it comes.

    Raises:
        DataError: a path is missing, empty or of unknown type, or is CSV (the
            message is `csv_message(path)`: what the caller cannot do with CSV).
    """
    for p in _paths(path):
        kind = _check_file(p)
        if kind == "csv":
            raise DataError(csv_message(p))
        yield p, kind


def count_rows(path: TablePath) -> int:
    """Number of rows of Parquet files, from their metadata (no data is read).

    Args:
        path: a Parquet file, a folder of Parquet files, or a list of them.

    Returns:
        The total number of rows.

    Raises:
        DataError: a file is missing or unreadable, or is not Parquet (CSV
            has no row count short of reading it).
    """
    total = 0
    sources = _parquet_sources(path, lambda p: (
        f"Cannot count the rows of {p.resolve()} without reading it: only Parquet "
        f"files store a row count. Use len(read_table(...)) instead."))
    for p, kind in sources:
        if kind == "parquet":
            with _reading(p, "Parquet"):
                total += pq.ParquetFile(p).metadata.num_rows
        else:
            with _reading(p, "a folder of Parquet files"):
                total += _dataset(p).count_rows()
    return total


def iter_parquet_batches(path: TablePath, batch_size: int,
                         columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Streams a Parquet table as DataFrames of at most `batch_size` rows.

    Only one batch is in memory at a time (`pyarrow.parquet.ParquetFile.iter_batches`).
    Every path and column is checked before the first batch is yielded.

    Args:
        path: a Parquet file, a folder of Parquet files, or a list of them.
        batch_size: the most rows per batch; a positive integer.
        columns: the columns to read, in this order. Defaults to all.

    Yields:
        DataFrames, in file and row order; together they hold every row.

    Raises:
        ValueError: `batch_size` is not a positive integer.
        DataError: a file is missing, unreadable or not Parquet.
        SchemaError: a requested column is missing.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    columns = _dedupe(columns)
    sources = []
    for p, kind in _parquet_sources(path, lambda p: (
            f"iter_parquet_batches reads Parquet only, and {p.resolve()} is CSV. "
            f"Use read_table for CSV files, or convert it with write_parquet.")):
        dataset = _dataset(p) if kind == "parquet_dir" else None
        if dataset is None:
            with _reading(p, "Parquet"):
                names = pq.read_schema(p).names
        else:
            names = dataset.schema.names
        sources.append((p, kind, dataset))
        require_columns(names, columns or (), p.resolve())
    return _iter_batches(sources, batch_size, columns)


def _iter_batches(sources: list[tuple[Path, str, Any]], batch_size: int,
                  columns: list[str] | None) -> Iterator[pd.DataFrame]:
    for p, kind, dataset in sources:
        with _reading(p, "Parquet"):
            if kind == "parquet":
                with pq.ParquetFile(p, page_checksum_verification=True) as file:
                    for batch in file.iter_batches(batch_size=batch_size, columns=columns):
                        yield batch.to_pandas()
            else:
                for batch in dataset.to_batches(columns=columns, batch_size=batch_size,
                                                fragment_scan_options=_VERIFY):
                    if batch.num_rows:
                        yield batch.to_pandas()


def iter_file_batches(path: PathLike, batch_size: int, columns: Sequence[str] | None = None,
                      na_values: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Streams one Parquet or CSV file as DataFrames of at most `batch_size` rows, read as `read_table` reads.

    The same checks as `read_table`: a repeated column name is refused,
    Parquet page checksums are verified, `na_values` strings are missing in
    CSV and in Parquet text columns alike. A CSV is read in chunks (pandas
    infers each chunk's types on its own).

    Args:
        path: a `.parquet`/`.pq` or `.csv`/`.csv.gz`/`.tsv`/`.tsv.gz` file.
        batch_size: the most rows per batch; a positive integer.
        columns: the columns to read, in this order. Defaults to all.
        na_values: strings that mean "missing" (`data.na_values`). Defaults
            to `None`: pandas' default list in CSV, none in Parquet.

    Yields:
        DataFrames in row order; a file without rows yields none.

    Raises:
        ValueError: `batch_size` is not a positive integer.
        DataError: the file is missing, unreadable or truncated (named).
        SchemaError: a requested column is missing, or a name is repeated.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    path = Path(path)
    columns = _dedupe(columns)
    kind = _check_file(path)
    if kind == "parquet":
        with _reading(path, "Parquet"):
            names = pq.read_schema(path).names
        check_unique_columns(names, path.resolve())
        require_columns(names, columns or (), path.resolve())
        for frame in _iter_batches([(path, kind, None)], batch_size, columns):
            yield frame if na_values is None else mark_missing(frame, na_values)
    elif kind == "csv":
        require_columns(_csv_header(path), columns or (), path.resolve())
        na = {} if na_values is None else {"keep_default_na": False, "na_values": list(na_values)}
        with _reading(path, "CSV"):
            for frame in pd.read_csv(path, sep=_csv_sep(path), usecols=columns, chunksize=batch_size, **na):
                yield frame[columns] if columns is not None else frame
    else:
        raise DataError(f"{path.resolve()} is a folder; iter_file_batches reads one file. "
                        "Use iter_parquet_batches for a folder of Parquet files.")


# --------------------------------------------------------------------------- writing


def _to_arrow(data: pd.DataFrame | pa.Table | pa.RecordBatch) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(
        f"Expected a pandas DataFrame or a pyarrow Table/RecordBatch. Received: {type(data).__name__}"
    )


def write_parquet(df: pd.DataFrame | pa.Table, path: PathLike, compression: str = "snappy") -> Path:
    """Writes a table to Parquet atomically (temporary file beside `path`, then rename).

    The DataFrame's index is not written. Missing parent folders are created.

    Args:
        df: the rows.
        path: the target file.
        compression: Parquet compression codec. Defaults to `"snappy"`.

    Returns:
        The path written.
    """
    table = _to_arrow(df)
    target = Path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression=compression, write_page_checksum=True)
    return target


class ParquetBatchWriter:
    """Writes a Parquet file batch by batch; the file appears at `path` only when complete.

    Batches go to a temporary file in the target's folder, which is renamed
    onto `path` on a clean exit from the `with` block and deleted when the
    block raises: nothing half-written is ever left at `path`.

    Args:
        path: the target file.
        schema: the file's schema. Defaults to the first batch's; later
            batches are cast to it. Give it when the first batch may hold a
            column that is all missing (Arrow would type it `null`).
        compression: Parquet compression codec. Defaults to `"snappy"`.
        use_dictionary: dictionary-encode columns (smaller files of repeated
            values, slower writes): `True`, `False`, or the names of the
            columns to encode. Defaults to `True`.

    Example:

    ```python
    with ParquetBatchWriter("scores.parquet") as writer:
        for frame in frames:
            writer.write(frame)
    ```
    """

    def __init__(self, path: PathLike, schema: pa.Schema | None = None,
                 compression: str = "snappy", use_dictionary: bool | Sequence[str] = True) -> None:
        self.path = Path(path)
        self.schema = schema
        self.compression = compression
        self.use_dictionary = use_dictionary if isinstance(use_dictionary, bool) else list(use_dictionary)
        self.rows_written = 0
        self._writer: pq.ParquetWriter | None = None
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> ParquetBatchWriter:
        if self._stack is not None:
            raise RuntimeError(f"ParquetBatchWriter for {self.path} is already open.")
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self.rows_written = 0
        return self

    def write(self, batch: pd.DataFrame | pa.Table | pa.RecordBatch) -> None:
        """Appends a batch of rows.

        Args:
            batch: a DataFrame (its index is not written) or an Arrow table/batch.

        Raises:
            SchemaError: the batch's columns or types do not fit the file's schema.
        """
        if self._stack is None or self._tmp is None:
            raise RuntimeError("ParquetBatchWriter.write is only valid inside its `with` block.")
        table = _to_arrow(batch)
        if self.schema is None:
            self.schema = table.schema.remove_metadata()
        table = self._conform(table)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self._tmp), self.schema, compression=self.compression,
                                            use_dictionary=self.use_dictionary, write_page_checksum=True)
        self._writer.write_table(table)
        self.rows_written += table.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self.schema is not None
        names = self.schema.names
        if table.column_names != names:
            missing = [c for c in names if c not in table.column_names]
            extra = [c for c in table.column_names if c not in names]
            if missing or extra:
                raise SchemaError(
                    f"Batch for {self.path.resolve()} does not match the file's columns: "
                    f"missing {missing}, extra {extra}. File columns: {short_list(names)}."
                )
            table = table.select(names)
        if table.schema.equals(self.schema, check_metadata=False):
            return table.replace_schema_metadata(None)
        try:
            return table.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            target = self.path.resolve()
            for field in self.schema:
                column = table.column(field.name)
                try:
                    column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as col_err:
                    raise SchemaError(
                        f"Column '{field.name}' of a batch for {target} is {column.type}, but "
                        f"the file's schema has {field.type}: {col_err}"
                    ) from err
            raise SchemaError(f"Batch for {target} does not fit the file's schema: {err}") from err

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        stack, self._stack = self._stack, None
        writer, self._writer = self._writer, None
        tmp, self._tmp = self._tmp, None
        assert stack is not None and tmp is not None
        try:
            if writer is not None:
                writer.close()
            elif exc_type is None:
                # No batch was written: still leave a valid (empty) file.
                schema = self.schema if self.schema is not None else pa.schema([])
                pq.write_table(schema.empty_table(), tmp, compression=self.compression,
                               write_page_checksum=True)
        except BaseException as err:
            if exc_type is None:
                # Finishing the file failed: discard the temporary file, then raise.
                stack.__exit__(type(err), err, err.__traceback__)
                raise
            # An exception from the `with` block is already on its way; it wins.
        # On an exception atomic_path deletes the temporary file; otherwise it renames it.
        return bool(stack.__exit__(exc_type, exc, tb))
