"""Diabetes 130-US hospitals, 1999-2008 (UCI 296): 101,766 inpatient encounters of 71,518 patients.

Raw file in `<data_dir>/diabetes_130_us_hospitals/`: `diabetic_data.csv.gz` (or
`diabetic_data.csv`), with a header line; `?` marks a missing value.

Labels: `readmit_30d` (readmitted within 30 days, `readmitted == "<30"`),
`readmit_any` (readmitted at all, `readmitted != "NO"`), both 0/1, and
`time_in_hospital` (days, float64). The raw `readmitted` column is dropped (it is the
label). Patients repeat: split by `patient_nbr` (`data.split.kind: group`).

The three diagnosis columns `diag_1..3` are ICD-9 codes as strings (e.g. "250.83",
"V57"), meant to share one embedding table (`table: diagnosis`). The id columns
`admission_type_id`, `discharge_disposition_id` and `admission_source_id` are codes,
loaded as strings. Medication names with a hyphen get an underscore
(`glyburide-metformin` -> `glyburide_metformin`), so every column is a valid feature
name. Encounters of patients who died (discharge 11, 19, 20, 21) are kept.
"""

from __future__ import annotations

import os

import pandas as pd

from mtrec.data.datasets.common import Batch, read_raw

FOLDER = "diabetes_130_us_hospitals"
FILES = ("diabetic_data.csv.gz", "diabetic_data.csv")

ID_COLUMNS = ["encounter_id", "patient_nbr"]
DIAGNOSIS_COLUMNS = ["diag_1", "diag_2", "diag_3"]
NUMERIC_FEATURES = [
    "num_lab_procedures", "num_procedures", "num_medications", "number_outpatient",
    "number_emergency", "number_inpatient", "number_diagnoses",
]
MEDICATIONS = [
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride", "acetohexamide",
    "glipizide", "glyburide", "tolbutamide", "pioglitazone", "rosiglitazone", "acarbose",
    "miglitol", "troglitazone", "tolazamide", "examide", "citoglipton", "insulin",
    "glyburide-metformin", "glipizide-metformin", "glimepiride-pioglitazone",
    "metformin-rosiglitazone", "metformin-pioglitazone",
]
CATEGORICAL_FEATURES = [
    "race", "gender", "age", "weight", "admission_type_id", "discharge_disposition_id",
    "admission_source_id", "payer_code", "medical_specialty", *DIAGNOSIS_COLUMNS,
    "max_glu_serum", "A1Cresult", *(m.replace("-", "_") for m in MEDICATIONS), "change",
    "diabetesMed",
]
LABEL_COLUMNS = ["readmit_30d", "readmit_any", "time_in_hospital"]

_RAW_CATEGORICAL = [
    "race", "gender", "age", "weight", "admission_type_id", "discharge_disposition_id",
    "admission_source_id", "payer_code", "medical_specialty", *DIAGNOSIS_COLUMNS,
    "max_glu_serum", "A1Cresult", *MEDICATIONS, "change", "diabetesMed",
]
#: Raw columns read (the rest of the file is not needed).
RAW_COLUMNS = ID_COLUMNS + _RAW_CATEGORICAL + NUMERIC_FEATURES + ["time_in_hospital", "readmitted"]

_READMITTED_30 = {"NO": 0, ">30": 0, "<30": 1}
_READMITTED_ANY = {"NO": 0, ">30": 1, "<30": 1}


def _convert(batch: Batch) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {
        "encounter_id": batch.number("encounter_id", integer=True, low=0),
        "patient_nbr": batch.number("patient_nbr", integer=True, low=0),
    }
    for name in _RAW_CATEGORICAL:
        # "None" (max_glu_serum, A1Cresult: not measured) is a value, only "?" is missing.
        columns[name.replace("-", "_")] = batch.string(name, missing=("?", ""))
    for name in NUMERIC_FEATURES:
        columns[name] = batch.number(name, integer=True, low=0)
    columns["readmit_30d"] = batch.choice("readmitted", _READMITTED_30)
    columns["readmit_any"] = batch.choice("readmitted", _READMITTED_ANY)
    columns["time_in_hospital"] = batch.number("time_in_hospital", low=0)
    return pd.DataFrame(columns)


def load_diabetes(data_dir: str | os.PathLike | None = None, *, nrows: int | None = None,
                  max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Loads Diabetes 130-US hospitals: one row per encounter.

    Args:
        data_dir: the folder holding `diabetes_130_us_hospitals/`. Defaults to
            `default_data_dir()`.
        nrows: read at most this many encounters. Defaults to all.
        max_malformed_fraction: malformed rows (wrong field count, a count or id
            that is not a whole number, an unknown `readmitted` value) are skipped
            with a warning; more than this fraction fails. Defaults to `0.001`.

    Returns:
        `encounter_id`, `patient_nbr` (int64 ids; group splits by `patient_nbr`),
        the strings of `CATEGORICAL_FEATURES` (`?` as missing), the int64 counts
        of `NUMERIC_FEATURES`, and the labels `readmit_30d`, `readmit_any`
        (int64 0/1) and `time_in_hospital` (float64 days).

    Raises:
        DataError: the folder or file is missing, empty or unreadable, or too many
            rows are malformed.
        SchemaError: an expected column is missing from the header (renamed upstream?).

    Example:

    ```python
    frame = load_diabetes()
    frame.groupby("age")["readmit_30d"].mean()
    ```
    """
    _, frame = read_raw(data_dir, FOLDER, FILES, columns=RAW_COLUMNS, convert=_convert, header=True,
                        nrows=nrows, max_malformed_fraction=max_malformed_fraction)
    return frame[ID_COLUMNS + CATEGORICAL_FEATURES + NUMERIC_FEATURES + LABEL_COLUMNS]
