"""Census-Income (KDD), the MMoE paper's benchmark (Ma et al., KDD 2018, section 6.2).

Raw files in `<data_dir>/census_income_kdd/`: `census-income.test.gz` (the official test
file, 99,762 rows; required) and, when added by hand, `census-income.data.gz` (the
official training file, 199,523 rows). Plain (not gzipped) twins are accepted too.

Labels (0/1, int64):
- `income`: income over 50K (`income_50k == "50000+."`).
- `never_married`: marital status "Never married".
- `college`: at least a college degree: associates (both kinds), bachelors, masters,
  professional school or doctorate; "Some college but no degree" is 0.

Features: every other raw column except the ones the paper removes (`education`,
`marital_stat`, `income_50k`, and the sampling weight `instance_weight`). The seven
continuous columns are int64; the rest, coded ones included (`det_ind_code`,
`det_occ_code`, `own_or_self`, `vet_benefits`, `year`), are strings with `?` as missing.
`hisp_origin`'s literal `NA` is a category, not a missing value.

With both official files present, a column `official_split` ("train"/"test") says
which file each row came from, so a pipeline can use the official split; with the test
file alone there is no such column (split it with `data.split`, e.g. random 60/20/20
with seed 2018).
"""

from __future__ import annotations

import os

import pandas as pd

from mtrec.data.datasets.common import Batch, check_loader_args, dataset_folder, find_raw_file, read_csv

FOLDER = "census_income_kdd"
TEST_FILES = ("census-income.test.gz", "census-income.test")
TRAIN_FILES = ("census-income.data.gz", "census-income.data")

#: The 42 fields of a raw row, in order (no header line in the files).
RAW_COLUMNS = [
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour",
    "hs_college", "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin",
    "sex", "union_member", "unemp_reason", "full_or_part_emp", "capital_gains",
    "capital_losses", "stock_dividends", "tax_filer_stat", "region_prev_res",
    "state_prev_res", "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp",
    "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k",
]

#: Continuous columns (UCI's census-income.names); every other feature is nominal.
NUMERIC_COLUMNS = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp",
    "weeks_worked",
]

#: Raw columns that are labels or must not be inputs (the paper removes them).
EXCLUDED_COLUMNS = ["education", "marital_stat", "income_50k", "instance_weight"]

#: Feature columns of the loaded frame, in raw order.
FEATURE_COLUMNS = [c for c in RAW_COLUMNS if c not in EXCLUDED_COLUMNS]
CATEGORICAL_COLUMNS = [c for c in FEATURE_COLUMNS if c not in NUMERIC_COLUMNS]
LABEL_COLUMNS = ["income", "never_married", "college"]

#: Education values counted as "at least college" (the `college` label).
COLLEGE_DEGREES = frozenset({
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
})

_INCOME = {"- 50000.": 0, "50000+.": 1}


def _convert(batch: Batch) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {}
    for name in FEATURE_COLUMNS:
        if name in NUMERIC_COLUMNS:
            columns[name] = batch.number(name, integer=True, low=0)
        else:
            # `NA` (hisp_origin) is a real category; only `?` means unknown.
            columns[name] = batch.string(name, missing=("?",))
    columns["income"] = batch.choice("income_50k", _INCOME)
    marital = batch.string("marital_stat", required=True)
    education = batch.string("education", required=True)
    columns["never_married"] = (marital == "Never married").astype("int64")
    columns["college"] = education.isin(COLLEGE_DEGREES).astype("int64")
    return pd.DataFrame(columns)


def _read(path: os.PathLike, nrows: int | None, max_malformed_fraction: float) -> pd.DataFrame:
    return read_csv(path, columns=RAW_COLUMNS, convert=_convert, header=False, quoting=False,
                    strip=True, nrows=nrows, max_malformed_fraction=max_malformed_fraction)


def load_census(data_dir: str | os.PathLike | None = None, *, nrows: int | None = None,
                       max_malformed_fraction: float = 0.001) -> pd.DataFrame:
    """Loads Census-Income (KDD) as one typed frame: features and the three labels.

    Args:
        data_dir: the folder holding `census_income_kdd/`. Defaults to
            `default_data_dir()`.
        nrows: read at most this many rows of each raw file (for quick runs).
            Defaults to all.
        max_malformed_fraction: malformed rows (wrong field count, a non-numeric
            continuous value, an unknown income label, an empty marital status or
            education) are skipped with a warning; more than this fraction of a
            file fails. Defaults to `0.001`.

    Returns:
        The 38 columns of `FEATURE_COLUMNS`, then `income`, `never_married`,
        `college`, and `official_split` when the official training file is
        present too (its rows first).

    Raises:
        DataError: the folder or the test file is missing (the message names the
            folder and the file), a file is empty or unreadable, or too many rows
            are malformed.

    Example:

    ```python
    frame = load_census()            # 99,762 rows from the official test file
    frame[["income", "never_married"]].mean()
    ```
    """
    nrows, max_malformed_fraction = check_loader_args(nrows, max_malformed_fraction)
    folder = dataset_folder(data_dir, FOLDER)
    test_path = find_raw_file(folder, TEST_FILES)
    train_path = next((folder / n for n in TRAIN_FILES if (folder / n).is_file()), None)
    test = _read(test_path, nrows, max_malformed_fraction)
    if train_path is None:
        return test
    train = _read(train_path, nrows, max_malformed_fraction)
    train["official_split"] = "train"
    test["official_split"] = "test"
    frame = pd.concat([train, test], ignore_index=True)
    frame["official_split"] = frame["official_split"].astype("str")
    return frame
