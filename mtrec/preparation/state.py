"""The prepared folder's fitted encoder: `features.json` with vocabularies in Parquet files.

A click log's vocabularies hold millions of values (and the rare values a
vocabulary excluded, kept to tell "rare" from "never seen"); as JSON that is
slow to read and large. Here each table's values go to
`vocabularies/<nnn>.parquet` (columns `value` string, `count` int64, `kept`
bool; kept values first, in id order) and `features.json` holds the rest of
`FeatureEncoder.get_config()` plus a reference per table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mtrec.errors import DataError
from mtrec.features import FeatureEncoder, Vocabulary
from mtrec.utils.atomic import atomic_path, write_json

STATE_FILE = "features.json"
VOCABULARY_FOLDER = "vocabularies"


def save_encoder(encoder: FeatureEncoder, folder: str | Path) -> Path:
    """Writes the fitted encoder into `folder` (vocabulary files first, then `features.json`).

    Returns:
        The path of `features.json`.
    """
    folder = Path(folder)
    config = encoder.get_config()
    for i, (table, entry) in enumerate(config.get("tables", {}).items()):
        if "vocabulary" not in entry:
            continue  # hashed
        vocabulary, excluded = entry.pop("vocabulary"), entry.pop("excluded")
        relative = f"{VOCABULARY_FOLDER}/{i:03d}.parquet"
        values = list(vocabulary) + list(excluded)
        table_data = pa.table({
            "value": pa.array(values, type=pa.string()),
            "count": pa.array(list(vocabulary.values()) + list(excluded.values()), type=pa.int64()),
            "kept": pa.array([True] * len(vocabulary) + [False] * len(excluded), type=pa.bool_()),
        })
        with atomic_path(folder / relative) as tmp:
            pq.write_table(table_data, tmp)
        entry.update({"vocabulary_file": relative, "size": len(vocabulary), "excluded_size": len(excluded)})
    target = folder / STATE_FILE
    write_json(target, config)
    return target


def load_encoder(folder: str | Path) -> FeatureEncoder:
    """Reads an encoder written by `save_encoder`.

    Raises:
        DataError: `features.json` or a vocabulary file is missing or unreadable.
    """
    folder = Path(folder)
    path = folder / STATE_FILE
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read the prepared encoder {path}: {err}") from err
    for table, entry in config.get("tables", {}).items():
        relative = entry.pop("vocabulary_file", None)
        if relative is None:
            continue
        file = folder / relative
        try:
            data = pq.read_table(file).to_pydict()
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"Cannot read the vocabulary of table '{table}' from {file}: {err}") from err
        entry["vocabulary"] = {v: c for v, c, k in zip(data["value"], data["count"], data["kept"]) if k}
        entry["excluded"] = {v: c for v, c, k in zip(data["value"], data["count"], data["kept"]) if not k}
    try:
        return FeatureEncoder.from_config(config)
    except DataError as err:
        raise DataError(f"{path}: {err}") from err


__all__ = ["STATE_FILE", "VOCABULARY_FOLDER", "Vocabulary", "load_encoder", "save_encoder"]
