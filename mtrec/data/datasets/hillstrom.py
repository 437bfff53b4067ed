"""Hillstrom MineThatData e-mail challenge (2008): 64,000 customers, a visit -> conversion -> spend funnel.

Raw file in `<data_dir>/hillstrom_email_marketing/`: `hillstrom.csv.gz` (or
`hillstrom.csv`), with a header line. Column names and values keep the original
spelling (`zip_code` is Urban/Surburban/Rural).

Labels: `visit` (0/1), `conversion` (0/1, only after a visit: the second link of an
ESMM chain `conversion after visit`) and `spend` (dollars, 0 unless converted).
"""

from __future__ import annotations

import os

import pandas as pd

from mtrec.data.datasets.common import Batch, read_raw

FOLDER = "hillstrom_email_marketing"
FILES = ("hillstrom.csv.gz", "hillstrom.csv")

NUMERIC_FEATURES = ["recency", "history", "mens", "womens", "newbie"]
CATEGORICAL_FEATURES = ["history_segment", "zip_code", "channel", "segment"]
LABEL_COLUMNS = ["visit", "conversion", "spend"]
#: Columns of the raw file, in the order of the loaded frame.
COLUMNS = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
           "channel", "segment"] + LABEL_COLUMNS

_BINARY = {"0": 0, "1": 1}


def _convert(batch: Batch) -> pd.DataFrame:
    columns = {
        "recency": batch.number("recency", integer=True, low=0),
        "history_segment": batch.string("history_segment", required=True),
        "history": batch.number("history", low=0),
        "mens": batch.choice("mens", _BINARY),
        "womens": batch.choice("womens", _BINARY),
        "zip_code": batch.string("zip_code", required=True),
        "newbie": batch.choice("newbie", _BINARY),
        "channel": batch.string("channel", required=True),
        "segment": batch.string("segment", required=True),
        "visit": batch.choice("visit", _BINARY),
        "conversion": batch.choice("conversion", _BINARY),
        "spend": batch.number("spend", low=0),
    }
    frame = pd.DataFrame(columns)
    # The funnel: no conversion without a visit, no spend without a conversion.
    batch.reject((frame["conversion"] > frame["visit"]).to_numpy(),
                 lambda i: "conversion = 1 without a visit")
    batch.reject(((frame["spend"] > 0) & (frame["conversion"] == 0)).to_numpy(),
                 lambda i: f"spend = {frame['spend'].iloc[i]:g} without a conversion")
    return frame


def load_hillstrom(data_dir: str | os.PathLike | None = None, *, nrows: int | None = None,
                   max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Loads the Hillstrom e-mail data set: one row per customer.

    Args:
        data_dir: the folder holding `hillstrom_email_marketing/`. Defaults to
            `default_data_dir()`.
        nrows: read at most this many customers. Defaults to all.
        max_malformed_fraction: malformed rows (wrong field count, a bad number,
            a flag that is not 0/1, a conversion without a visit, spend without a
            conversion) are skipped with a warning; more than this fraction fails.
            Defaults to `0.001`.

    Returns:
        `COLUMNS`: `recency` (int64 months), `history` (float64 dollars), the
        0/1 flags `mens`, `womens`, `newbie` (int64), the strings
        `history_segment`, `zip_code`, `channel`, `segment` (the treatment arm),
        and the labels `visit`, `conversion` (int64) and `spend` (float64).

    Raises:
        DataError: the folder or file is missing, empty or unreadable, or too many
            rows are malformed.
        SchemaError: an expected column is missing from the header (renamed upstream?).

    Example:

    ```python
    frame = load_hillstrom()
    frame.groupby("segment")["visit"].mean()   # the e-mail's effect on visits
    ```
    """
    _, frame = read_raw(data_dir, FOLDER, FILES, columns=COLUMNS, convert=_convert, header=True,
                        nrows=nrows, max_malformed_fraction=max_malformed_fraction)
    return frame[COLUMNS]
