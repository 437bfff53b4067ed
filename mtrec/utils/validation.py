"""Turn plain dicts (from YAML) into typed dataclasses, failing fast with clear errors.

Every message names the full key path (for example ``model.num_experts``), says
what the rule is and shows what arrived, and an unknown key gets the closest
known key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from mtrec.errors import ConfigError, DataError, SchemaError

T = TypeVar("T")


def closest(name: str, choices: Iterable[str]) -> str:
    """Returns " Did you mean 'x'?" for the closest choice, or "" when none is close."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


#: The most names `short_list` shows before it says how many more there are.
MAX_LISTED = 60


def short_list(names: Iterable[Any]) -> str:
    """`names` as a list for a message, cut after `MAX_LISTED` with how many more there are."""
    names = list(names)
    if len(names) <= MAX_LISTED:
        return str(names)
    return f"{names[:MAX_LISTED]} ... ({len(names) - MAX_LISTED} more)"


def require_columns(frame: Any, columns: Iterable[str], source: Any, *, note: str = "",
                    what: str = "Column") -> None:
    """Raises SchemaError naming the first of `columns` missing from the table `frame`.

    The message names the column, the source, the closest present column and the
    columns present.

    Args:
        frame: a DataFrame (anything with `.columns`), or the present column names.
        columns: the columns needed.
        source: where the table came from, for the message (a path, a description).
        note: said right after the source, e.g. `" (renamed upstream?)"`.
        what: the message's first words, before the column's name, e.g.
            `"Label column"`. Defaults to `"Column"`.
    """
    present = list(frame.columns) if hasattr(frame, "columns") else list(frame)
    for column in columns:
        if column not in present:
            raise SchemaError(f"{what} '{column}' is missing from {source}{note}.{closest(column, present)} "
                              f"Columns present: {short_list(present)}.")


def require_files(directory: Path, names: Iterable[str], what: str, hint: str) -> None:
    """Raises DataError naming every one of `names` missing from `directory`.

    Args:
        directory: the folder to check.
        names: the files and folders it must hold.
        what: what the folder should be, e.g. `"a finished run directory"`.
        hint: how to get one, said after the list.
    """
    missing = [name for name in names if not (directory / name).exists()]
    if missing:
        raise DataError(f"{directory.resolve()} is not {what}: missing {missing}. {hint}")


def check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raises ConfigError for the first key of `data` not in `allowed`.

    Args:
        data: the mapping read from the config.
        allowed: the keys that are accepted.
        where: the key path of `data`, used in the message (e.g. "model").
    """
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(
                f"Unknown config key '{path}'.{closest(key, allowed)} "
                f"Allowed keys{' of ' + where if where else ''}: {sorted(allowed)}."
            )


def choice(value: Any, allowed: Iterable[str], where: str) -> str:
    """Checks that `value` is one of `allowed`, with a scikit-learn style message.

    Returns:
        `value`, unchanged.
    """
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(
            f"The '{where}' parameter must be one of {allowed}. "
            f"Got {value!r} instead.{closest(str(value), allowed)}"
        )
    return value


def kind_and_params(raw: Any, kinds: Iterable[str], where: str,
                    default: str | None = None) -> tuple[str, dict[str, Any]]:
    """Splits a `{kind: ..., other keys}` section (`model:`, `weighting:`) into its kind and the rest.

    Args:
        raw: the mapping read from the config.
        kinds: the known kinds.
        where: the key path of `raw`, for messages.
        default: the kind when `raw` has none; None makes `kind` required.

    Raises:
        ConfigError: `raw` is not a mapping, has no kind (and there is no
            default), or names an unknown kind (the kinds are listed).
    """
    kinds = sorted(kinds)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Config key '{where}' must be a mapping with a 'kind'. Received: {raw!r}")
    if "kind" not in raw and default is None:
        raise ConfigError(f"Missing required config key '{where}.kind' (one of {kinds}).")
    kind = choice(raw.get("kind", default), kinds, f"{where}.kind")
    return kind, {k: v for k, v in raw.items() if k != "kind"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks `value` against the type annotation `tp` and returns it, converted.

    Supported: bool, int, float (ints accepted), str, None, Any, Literal,
    Optional/Union, list[X], tuple[X, ...], dict[str, X] and nested dataclasses.

    Raises:
        ConfigError: naming `where` when the value does not fit.
    """
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:  # `X | None`: X's own error names the inner key (e.g. `training.schedule.kind`)
            raise errors[0]
        raise ConfigError(
            f"Config key '{where}' must be {_type_name(tp)}. Received: {value!r}."
        )
    if origin is Literal:
        return choice(value, args, where)
    if dataclasses.is_dataclass(tp):
        return from_config(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"Config key '{where}' must be a list of {_type_name(args[0]) if args else 'values'}. "
                f"Received: {value!r}."
            )
        item_type = args[0] if args else Any
        items = [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"Config key '{where}' must be a mapping. Received: {value!r}.")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"Config key '{where}' must be true or false. Received: {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"Config key '{where}' must be an integer. Received: {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"Config key '{where}' must be a number. Received: {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"Config key '{where}' must be a string. Received: {value!r}.")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"Config key '{where}' must be {_type_name(tp)}. Received: {value!r}.")
    return value


def from_config(cls: type[T], data: Any, where: str = "") -> T:
    """Builds dataclass `cls` from a mapping, checking keys and types.

    Fields without a default are required. A dataclass may define
    `__post_init__` for rules across fields; it should raise ConfigError.

    Args:
        cls: the dataclass to build.
        data: the mapping (None is read as an empty mapping).
        where: the key path of `data`, for messages.

    Returns:
        An instance of `cls`.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"Config key '{where or '<root>'}' must be a mapping of keys to values. Received: {data!r}."
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(data, fields, where)
    kwargs = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required config key '{path}'.")
    return cls(**kwargs)


def get_config(obj: Any) -> Any:
    """Converts a (nested) dataclass back into plain YAML-able values."""
    if dataclasses.is_dataclass(obj):
        return {f.name: get_config(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [get_config(v) for v in obj]
    if isinstance(obj, dict):
        return {k: get_config(v) for k, v in obj.items()}
    return obj


#: The largest finite float32: a model input or label beyond it becomes inf.
FLOAT32_MAX = 3.4028234663852886e38


def check_unique_columns(names: Iterable[Any], source: Any) -> None:
    """Refuses a table whose header names a column twice.

    Raises:
        SchemaError: naming the duplicated column(s) and the file.
    """
    seen: dict[str, int] = {}
    for name in names:
        seen[str(name)] = seen.get(str(name), 0) + 1
    duplicated = [name for name, count in seen.items() if count > 1]
    if duplicated:
        raise SchemaError(
            f"Column name(s) {short_list(duplicated)} appear more than once in {source}. "
            "Rename or drop the duplicates: mtrec will not guess which one is meant.")


def scan_numbers(frame: Any, columns: Iterable[str], source: Any) -> dict[str, int]:
    """Refuses numbers beyond float32's range and counts +/-inf, per numeric column, in one pass.

    Finite numbers beyond float32's range would become inf as model inputs or
    labels, so they are refused; +/-inf values are counted (NaN is missing,
    not counted) for `check_nonfinite`. Boolean and non-numeric columns are
    skipped. Integer columns are counted as 0 without reading them: this runs
    on every batch that is prepared or scored.

    Args:
        frame: a DataFrame.
        columns: the columns to check.
        source: the file or table, for messages.

    Returns:
        +/-inf values per numeric column of `columns`.

    Raises:
        DataError: naming the first such column, the file and the largest magnitude.
    """
    import numpy as np
    import pandas as pd

    dtypes = frame.dtypes  # not a Series per column: this runs on every batch
    numeric = [c for c in dict.fromkeys(columns)
               if pd.api.types.is_numeric_dtype(dtypes[c]) and not pd.api.types.is_bool_dtype(dtypes[c])]
    counts = dict.fromkeys(numeric, 0)
    # Integers (int64 at most 9.2e18) are always within float32's range and never inf: only floats
    # are read. One comparison per column finds both cases, as NaN compares false; the rarer cases
    # are told apart only where it found any.
    for column in (c for c in numeric if pd.api.types.is_float_dtype(dtypes[c])):
        values = frame[column].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            beyond = np.abs(values) > FLOAT32_MAX
        if not beyond.any():
            continue
        infinite = np.isinf(values)
        too_big = beyond & ~infinite
        if too_big.any():
            raise DataError(
                f"Column '{column}' of {source} holds {int(too_big.sum())} values beyond float32's range "
                f"(|x| > 3.4e38; largest {np.abs(values[too_big]).max():.3g}). The file may be damaged; "
                "fix or drop those rows.")
        counts[column] = int(infinite.sum())
    return counts


def check_nonfinite(counts: dict[str, int], rows: int, max_fraction: float, source: Any,
                    what: str = "column") -> None:
    """Warns about +/-inf values (treated as missing) per column; fails above `max_fraction`.

    Args:
        counts: +/-inf values per column (`scan_numbers`).
        rows: rows counted.
        max_fraction: the largest share allowed (`data.max_nonfinite_fraction`).
        source: the file or table, for messages.
        what: what the columns are ("feature", "label").

    Raises:
        DataError: a column's share of +/-inf is above `max_fraction`.
    """
    import warnings

    bad = {c: n for c, n in counts.items() if n}
    if not bad or rows == 0:
        return
    over = {c: n for c, n in bad.items() if n / rows > max_fraction}
    if over:
        column, n = next(iter(over.items()))
        raise DataError(
            f"{what.capitalize()} column '{column}' of {source} holds {n:,} +/-inf values in {rows:,} rows "
            f"({n / rows:.2%}), more than data.max_nonfinite_fraction={max_fraction}"
            f"{f' (also {list(over)[1:]})' if len(over) > 1 else ''}. Fix the data, or raise the fraction "
            "to treat them as missing.")
    warnings.warn(
        f"{what.capitalize()} column(s) of {source} hold +/-inf values, treated as missing: {bad} "
        f"(of {rows:,} rows).", UserWarning, stacklevel=3)
