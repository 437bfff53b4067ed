"""Data-set loaders: real files (skipped when absent), bad input on small raw files in tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import shared_datasets
from mtrec.data.datasets import (
    DATA_DIR_ENV,
    MalformedRowsWarning,
    default_data_dir,
    load_census,
    load_dataset,
    load_diabetes,
    load_hillstrom,
    load_movielens,
    load_movielens_items,
    load_movielens_users,
    load_sp500,
    sp500_features,
)
from mtrec.data.datasets import census, diabetes, hillstrom, movielens, sp500
from mtrec.errors import DataError, SchemaError
from mtrec.features import FeatureEncoder

DATA = shared_datasets()


def needs(folder: str) -> Path:
    """The data set's folder, or skip the test when it is absent."""
    if DATA is None or not (DATA / folder).is_dir():
        pytest.skip(f"data set {folder} not found (set {DATA_DIR_ENV})")
    return DATA


def write_gz(path: Path, lines: list[str], encoding: str = "utf8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding=encoding) as f:
        f.write("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- data folder


def test_default_data_dir_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path.resolve()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataError, match="MTREC_DATA_DIR.*is not a folder"):
        default_data_dir()


def test_default_data_dir_falls_back_to_shared_datasets(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    expected = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if expected.is_dir():
        assert default_data_dir() == expected.resolve()
    else:
        with pytest.raises(DataError, match="MTREC_DATA_DIR"):
            default_data_dir()


def test_missing_dataset_folder_names_the_folder(tmp_path):
    (tmp_path / "census_incom_kdd").mkdir()
    with pytest.raises(DataError, match=r"'census_income_kdd' not found.*Did you mean 'census_incom_kdd'"):
        load_census(tmp_path)


def test_missing_raw_file_names_folder_and_file(tmp_path):
    folder = tmp_path / "census_income_kdd"
    folder.mkdir()
    (folder / "census-income.tst.gz").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_census(tmp_path)
    message = str(info.value)
    assert str(folder.resolve()) in message
    assert "census-income.test.gz" in message and "census-income.tst.gz" in message


def test_load_dataset_by_folder_name_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'census'.*census_income_kdd"):
        load_dataset("census", tmp_path)
    with pytest.raises(DataError, match="census_income_kdd"):
        load_dataset("census_income_kdd", tmp_path)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="nrows"):
        load_census(tmp_path, nrows=0)
    with pytest.raises(ValueError, match="max_malformed_fraction"):
        load_census(tmp_path, max_malformed_fraction=2)


# --------------------------------------------------------------------------- census


def census_row(age: str = "38", education: str = "Bachelors degree(BA AB BS)",
               marital: str = "Never married", income: str = "50000+.") -> str:
    """One raw census line (42 fields, leading spaces as in the UCI file)."""
    values = {name: "Not in universe" for name in census.RAW_COLUMNS}
    values.update({name: "0" for name in census.NUMERIC_COLUMNS})
    values.update(age=age, education=education, marital_stat=marital, income_50k=income,
                  instance_weight="1032.38", hisp_origin="NA", state_prev_res="?", year="95")
    return ", ".join(values[name] for name in census.RAW_COLUMNS)


def test_census_real_file_counts_and_labels():
    frame = load_census(needs("census_income_kdd"))
    assert len(frame) == 99_762
    # PROVENANCE.md: 6,186 over 50K, 43,143 never married. College: the six degree values'
    # counts in the raw file, 2,079 + 2,690 + 9,885 + 3,306 + 876 + 620.
    assert int(frame["income"].sum()) == 6_186
    assert int(frame["never_married"].sum()) == 43_143
    assert int(frame["college"].sum()) == 2_079 + 2_690 + 9_885 + 3_306 + 876 + 620
    assert "official_split" not in frame  # only the test file is present
    for excluded in census.EXCLUDED_COLUMNS:
        assert excluded not in frame
    assert list(frame.columns) == census.FEATURE_COLUMNS + census.LABEL_COLUMNS
    for name in census.NUMERIC_COLUMNS + census.LABEL_COLUMNS:
        assert frame[name].dtype == np.int64, name
    for name in census.CATEGORICAL_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[name]), name
    # Leading spaces stripped; `NA` is a category; `?` is missing (the year-95 rows).
    assert frame["sex"].isin(["Male", "Female"]).all()
    assert (frame["hisp_origin"] == "NA").sum() == 405
    assert frame["mig_chg_msa"].isna().sum() == 49_946
    assert frame.loc[frame["year"] == "95", "mig_chg_msa"].isna().all()


def test_census_frame_feeds_the_feature_encoder():
    frame = load_census(needs("census_income_kdd"), nrows=2_000)
    assert len(frame) == 2_000
    specs = [{"name": n, "kind": "numeric", "log1p": True} for n in census.NUMERIC_COLUMNS]
    specs += [{"name": n, "kind": "categorical"} for n in census.CATEGORICAL_COLUMNS]
    arrays = FeatureEncoder(specs).fit_transform(frame)
    assert arrays["numeric"].shape == (2_000, len(census.NUMERIC_COLUMNS))
    assert np.isfinite(arrays["numeric"]).all()
    assert arrays["class_worker"].min() >= 1  # every value found in the vocabulary


def test_census_parses_a_written_file_and_uses_the_official_split(tmp_path):
    folder = tmp_path / "census_income_kdd"
    write_gz(folder / "census-income.test.gz", [
        census_row(), census_row(education="Some college but no degree", marital="Divorced",
                                 income="- 50000."),
    ])
    frame = load_census(tmp_path)
    assert frame[["income", "never_married", "college"]].values.tolist() == [[1, 1, 1], [0, 0, 0]]
    assert frame.loc[0, "age"] == 38 and frame.loc[0, "hisp_origin"] == "NA"
    assert pd.isna(frame.loc[0, "state_prev_res"])
    write_gz(folder / "census-income.data.gz", [census_row(age="50")] * 3)
    both = load_census(tmp_path)
    assert both["official_split"].tolist() == ["train"] * 3 + ["test"] * 2
    assert both["age"].tolist() == [50, 50, 50, 38, 38]


def test_census_malformed_rows_are_counted_skipped_and_limited(tmp_path):
    folder = tmp_path / "census_income_kdd"
    good = [census_row()] * 97
    bad = [census_row(age="abc"), census_row(income="50000+"), "38, Private, 6"]
    write_gz(folder / "census-income.test.gz", good + bad)
    with pytest.warns(MalformedRowsWarning, match=r"3 of 100 rows .* are malformed") as record:
        frame = load_census(tmp_path, max_malformed_fraction=0.05)
    message = str(record[0].message)
    assert "'age' = 'abc' is not a number" in message and "has 3 fields, expected 42" in message
    assert len(frame) == 97
    with pytest.raises(DataError, match=r"3 of 100 rows .* more than max_malformed_fraction=0.01"):
        load_census(tmp_path, max_malformed_fraction=0.01)


def test_census_file_with_a_changed_layout_fails(tmp_path):
    folder = tmp_path / "census_income_kdd"
    write_gz(folder / "census-income.test.gz", [census_row() + ", extra"] * 5)
    with pytest.raises(DataError, match="5 of 5 rows.*has 43 fields, expected 42"):
        load_census(tmp_path)


def test_empty_raw_file_is_an_error(tmp_path):
    folder = tmp_path / "census_income_kdd"
    folder.mkdir()
    with gzip.open(folder / "census-income.test.gz", "wt") as f:
        f.write("")
    with pytest.raises(DataError, match="is empty"):
        load_census(tmp_path)


# --------------------------------------------------------------------------- movielens


def write_movielens(root: Path, ratings: list[str]) -> Path:
    """A tiny ml-100k folder: 2 users, 2 movies (one undated), the given u.data lines."""
    folder = root / "movielens_100k"
    write_gz(folder / "u.data.gz", ratings)
    flags = ["0"] * len(movielens.GENRES)
    action_comedy = list(flags)
    action_comedy[1] = action_comedy[5] = "1"
    unknown = list(flags)
    unknown[0] = "1"
    (folder / "u.item").write_text(
        "1|Héros (1995)|01-Jan-1995||http://x|" + "|".join(action_comedy) + "\n"
        "2|unknown||||" + "|".join(unknown) + "\n", encoding="latin-1")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    return root


def test_movielens_real_files_counts_and_features():
    frame = load_movielens(needs("movielens_100k"))
    assert len(frame) == 100_000
    assert frame["user_id"].nunique() == 943 and frame["item_id"].nunique() == 1_682
    # PROVENANCE.md: ratings 1..5 = 6,110 / 11,370 / 27,144 / 34,175 / 21,201.
    assert frame["rating"].value_counts().sort_index().tolist() == [6_110, 11_370, 27_144, 34_175, 21_201]
    assert int(frame["like"].sum()) == 34_175 + 21_201
    assert frame["rating"].dtype == np.float64 and frame["like"].dtype == np.int64
    assert frame["timestamp"].dtype == np.int64 and frame["age"].dtype == np.int64
    assert frame["day_of_week"].isin(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]).all()
    assert frame["hour"].between(0, 23).all()
    tokens = set(frame["genres"].str.split("|").explode())
    assert tokens == set(movielens.GENRES)
    assert frame["genres"].str.len().gt(0).all()
    specs = [{"name": "user_id", "kind": "categorical"}, {"name": "genres", "kind": "multi_categorical"},
             {"name": "release_year", "kind": "numeric"}, {"name": "zip_prefix", "kind": "categorical"}]
    arrays = FeatureEncoder(specs).fit_transform(frame.head(5_000))
    assert arrays["genres"].shape[1] == frame.head(5_000)["genres"].str.count(r"\|").max() + 1


def test_movielens_side_tables():
    data = needs("movielens_100k")
    users, items = load_movielens_users(data), load_movielens_items(data)
    assert len(users) == 943 and users["user_id"].tolist() == list(range(1, 944))
    assert len(items) == 1_682 and items["item_id"].tolist() == list(range(1, 1_683))
    assert items.loc[0, "title"] == "Toy Story (1995)"
    assert items.loc[0, "genres"] == "Animation|Children's|Comedy"
    assert items["release_date"].isna().sum() == 1  # item 267, "unknown"
    assert users["zip_prefix"].str.len().eq(3).all()


def test_movielens_parses_written_files_and_skips_bad_ratings(tmp_path):
    good = ["1\t1\t5\t881250949", "2\t2\t3\t891717742"] * 50
    write_movielens(tmp_path, good[:-2] + ["1\t3\t4\t881250949", "1\t1\t6\t881250949"])
    with pytest.warns(MalformedRowsWarning, match="2 of 100 rows") as record:
        frame = load_movielens(tmp_path, max_malformed_fraction=0.05)
    assert "item_id 3 is not in u.item" in str(record[0].message)
    assert "'rating' = '6' > 5" in str(record[0].message)
    assert len(frame) == 98
    first = frame.iloc[0]
    assert (first["rating"], first["like"], first["genres"], first["release_year"]) == (
        5.0, 1, "Action|Comedy", 1995.0)
    assert first["day_of_week"] == "Thu" and first["hour"] == 15  # 1997-12-04 15:55:49 UTC
    assert first["movie_age"] == pytest.approx((881250949 - 788918400) / (365.25 * 86400))
    second = frame.iloc[1]
    assert (second["zip_prefix"], second["genres"]) == ("T8H", "unknown")
    assert np.isnan(second["release_year"]) and np.isnan(second["movie_age"])
    assert load_movielens_items(tmp_path).loc[0, "title"] == "Héros (1995)"  # latin-1
    with pytest.raises(DataError, match="more than max_malformed_fraction=0.001"):
        load_movielens(tmp_path)
    with pytest.warns(MalformedRowsWarning):  # the whole first block is read
        assert len(load_movielens(tmp_path, nrows=10, max_malformed_fraction=0.05)) == 10


def test_movielens_missing_side_file_is_named(tmp_path):
    write_movielens(tmp_path, ["1\t1\t5\t881250949"])
    (tmp_path / "movielens_100k" / "u.user").unlink()
    with pytest.raises(DataError, match=r"for 'u.user'"):
        load_movielens(tmp_path)


# --------------------------------------------------------------------------- hillstrom

HILLSTROM_HEADER = ",".join(hillstrom.COLUMNS)  # the raw header, in the raw order
HILLSTROM_ROW = "10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,1,1,29.99"


def test_hillstrom_real_file_counts_and_funnel():
    frame = load_hillstrom(needs("hillstrom_email_marketing"))
    assert len(frame) == 64_000
    assert list(frame.columns) == hillstrom.COLUMNS
    # PROVENANCE.md: arms 21,387 / 21,307 / 21,306; visit 14.68%; 578 conversions; mean spend $1.05.
    assert frame["segment"].value_counts().to_dict() == {
        "Womens E-Mail": 21_387, "Mens E-Mail": 21_307, "No E-Mail": 21_306}
    assert frame["visit"].mean() == pytest.approx(0.1468, abs=5e-5)
    assert int(frame["conversion"].sum()) == 578
    assert frame["spend"].mean() == pytest.approx(1.05, abs=0.005)
    assert (frame["conversion"] <= frame["visit"]).all()
    assert set(frame["zip_code"]) == {"Urban", "Surburban", "Rural"}
    for name in ("visit", "conversion", "mens", "womens", "newbie", "recency"):
        assert frame[name].dtype == np.int64, name
    assert frame["spend"].dtype == np.float64 and frame["history"].dtype == np.float64


def test_hillstrom_renamed_column_is_named(tmp_path):
    header = HILLSTROM_HEADER.replace("zip_code", "zipcode")
    write_gz(tmp_path / "hillstrom_email_marketing" / "hillstrom.csv.gz", [header, HILLSTROM_ROW])
    with pytest.raises(SchemaError, match=r"Column 'zip_code' is missing .*renamed upstream.*'zipcode'"):
        load_hillstrom(tmp_path)


def test_hillstrom_funnel_violations_are_malformed(tmp_path):
    rows = [HILLSTROM_ROW] * 18 + [
        HILLSTROM_ROW.replace(",1,1,29.99", ",0,1,29.99"),  # conversion without a visit
        HILLSTROM_ROW.replace(",1,1,29.99", ",1,0,29.99"),  # spend without a conversion
    ]
    write_gz(tmp_path / "hillstrom_email_marketing" / "hillstrom.csv.gz", [HILLSTROM_HEADER] + rows)
    with pytest.warns(MalformedRowsWarning, match="2 of 20 rows") as record:
        frame = load_hillstrom(tmp_path, max_malformed_fraction=0.1)
    assert "conversion = 1 without a visit" in str(record[0].message)
    assert len(frame) == 18 and frame.loc[0, "spend"] == pytest.approx(29.99)
    with pytest.raises(DataError, match="2 of 20 rows"):
        load_hillstrom(tmp_path, max_malformed_fraction=0.05)


def test_header_only_file_has_no_rows(tmp_path):
    write_gz(tmp_path / "hillstrom_email_marketing" / "hillstrom.csv.gz", [HILLSTROM_HEADER])
    with pytest.raises(DataError, match="no usable rows"):
        load_hillstrom(tmp_path)


# --------------------------------------------------------------------------- diabetes


def test_diabetes_real_file_counts_and_labels():
    frame = load_diabetes(needs("diabetes_130_us_hospitals"))
    assert len(frame) == 101_766
    assert frame["patient_nbr"].nunique() == 71_518 and frame["encounter_id"].is_unique
    # PROVENANCE.md: readmitted NO 54,864; >30 35,545; <30 11,357.
    assert int(frame["readmit_30d"].sum()) == 11_357
    assert int(frame["readmit_any"].sum()) == 35_545 + 11_357
    assert frame["time_in_hospital"].dtype == np.float64
    assert frame["time_in_hospital"].between(1, 14).all()
    assert "readmitted" not in frame and "glyburide_metformin" in frame
    # `?` is missing (about 97% of weight); the literal "None" (not measured) is a value.
    assert frame["weight"].isna().mean() == pytest.approx(0.97, abs=0.01)
    assert (frame["A1Cresult"] == "None").sum() > 0 and frame["A1Cresult"].notna().all()
    for name in diabetes.DIAGNOSIS_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[name])
    specs = [{"name": n, "kind": "categorical", "table": "diagnosis"} for n in diabetes.DIAGNOSIS_COLUMNS]
    encoder = FeatureEncoder(specs).fit(frame.head(5_000))
    assert list(encoder.layout()["tables"]) == ["diagnosis"]


def test_diabetes_unknown_readmitted_value_is_malformed(tmp_path):
    needs("diabetes_130_us_hospitals")
    with gzip.open(DATA / "diabetes_130_us_hospitals" / "diabetic_data.csv.gz", "rt") as f:
        lines = [next(f).rstrip("\n") for _ in range(201)]  # the header and 200 encounters
    lines[5] = lines[5].rsplit(",", 1)[0] + ",MAYBE"
    write_gz(tmp_path / "diabetes_130_us_hospitals" / "diabetic_data.csv.gz", lines)
    with pytest.warns(MalformedRowsWarning, match=r"1 of 200 rows.*'MAYBE' is not one of"):
        frame = load_diabetes(tmp_path, max_malformed_fraction=0.01)
    assert len(frame) == 199


# --------------------------------------------------------------------------- sp500


def toy_prices(days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Two tickers of random-walk prices on business days."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2017-01-02", periods=days)
    frames = []
    for ticker in ("AAA", "BBB"):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        frames.append(pd.DataFrame({
            "date": dates, "ticker": ticker, "close": close,
            "high": close * 1.01, "low": close * 0.99,
            "volume": rng.integers(1_000, 5_000, days).astype(float),
        }))
    return pd.concat(frames, ignore_index=True)


def test_sp500_features_use_no_future_value():
    prices = toy_prices()
    base = sp500_features(prices)
    cut = prices["date"].iloc[40]
    future = prices["date"] > cut
    changed = prices.copy()
    rng = np.random.default_rng(1)
    for column in ("close", "high", "low", "volume"):
        changed.loc[future, column] *= rng.uniform(0.5, 1.5, int(future.sum()))
    after = sp500_features(changed)
    past = base["date"] <= cut
    assert past.sum() > 0 and (~past).sum() > 0
    features = sp500.NUMERIC_FEATURES + ["day_of_week"]
    pd.testing.assert_frame_equal(base.loc[past, features], after.loc[past, features])
    # ... while the labels at the cut day, which look ahead, do change.
    at_cut = base["date"] == cut
    for label in ("next_return", "future_vol_5d"):
        assert not np.allclose(base.loc[at_cut, label], after.loc[at_cut, label]), label


def test_sp500_features_and_labels_match_their_definitions():
    prices = toy_prices()
    frame = sp500_features(prices)
    days = len(prices) // 2
    assert len(frame) == 2 * (days - sp500.MAX_LAG - sp500.HORIZON)
    close = prices.loc[prices["ticker"] == "AAA", "close"].to_numpy()
    volume = np.log1p(prices.loc[prices["ticker"] == "AAA", "volume"].to_numpy())
    r = close[1:] / close[:-1] - 1  # r[t - 1] is the return into day t
    row = frame[frame["ticker"] == "AAA"].iloc[0]  # day t = MAX_LAG
    t = sp500.MAX_LAG
    assert row["date"] == prices["date"].iloc[t]
    assert row["ret_1d"] == pytest.approx(close[t] / close[t - 1] - 1)
    assert row["ret_20d"] == pytest.approx(close[t] / close[t - 20] - 1)
    assert row["vol_5d"] == pytest.approx(np.sqrt(np.mean(r[t - 5:t] ** 2)))
    past = volume[t - 20:t]
    assert row["volume_z"] == pytest.approx((volume[t] - past.mean()) / past.std(ddof=1))
    assert row["hl_range"] == pytest.approx(np.log(1.01 / 0.99))
    assert row["next_return"] == pytest.approx(close[t + 1] / close[t] - 1)
    assert row["next_up"] == int(close[t + 1] > close[t])
    assert row["future_vol_5d"] == pytest.approx(np.sqrt(np.mean(r[t:t + 5] ** 2)))
    assert frame.groupby("ticker")["date"].is_monotonic_increasing.all()


def test_sp500_real_file():
    frame = load_sp500(needs("sp500_stocks_5yr"), nrows=20_000)
    # The file is ordered by ticker (AAL, AAPL, AAP, ...): 20,000 rows hold 15 whole tickers.
    tickers = frame["ticker"].unique()
    assert tickers[0] == "AAL" and len(tickers) == 16
    per_ticker = frame.groupby("ticker").size()
    assert per_ticker.loc["AAL"] == 1_259 - sp500.MAX_LAG - sp500.HORIZON
    assert list(frame.columns) == sp500.COLUMNS
    assert pd.api.types.is_datetime64_any_dtype(frame["date"])
    assert frame[sp500.LABEL_COLUMNS + sp500.NUMERIC_FEATURES[:-1]].notna().all().all()
    assert frame["next_up"].mean() == pytest.approx(0.52, abs=0.03)
    assert set(frame["day_of_week"]) == {"Mon", "Tue", "Wed", "Thu", "Fri"}
    # Volatility persists: past and future realized volatility correlate (0.375 here; 0 if unaligned).
    assert frame["vol_20d"].corr(frame["future_vol_5d"], method="spearman") > 0.25


def test_sp500_repeated_day_and_short_history(tmp_path):
    prices = toy_prices(days=40)
    lines = ["date,open,high,low,close,volume,Name"] + [
        f"{r.date:%Y-%m-%d},{r.close},{r.high},{r.low},{r.close},{int(r.volume)},{r.ticker}"
        for r in prices.itertuples()]
    write_gz(tmp_path / "sp500_stocks_5yr" / "all_stocks_5yr.csv.gz", lines + [lines[3]])
    with pytest.warns(MalformedRowsWarning, match="ticker AAA has 2017-01-04 twice"):
        frame = load_sp500(tmp_path, max_malformed_fraction=0.05)
    assert len(frame) == 2 * (40 - sp500.MAX_LAG - sp500.HORIZON)
    write_gz(tmp_path / "sp500_stocks_5yr" / "all_stocks_5yr.csv.gz", lines[:21])
    with pytest.raises(DataError, match="more than 25 trading days"):
        load_sp500(tmp_path)


def test_corrupt_raw_file_is_an_error(tmp_path):
    folder = tmp_path / "hillstrom_email_marketing"
    folder.mkdir()
    data = gzip.compress(("\n".join([HILLSTROM_HEADER] + [HILLSTROM_ROW] * 2000)).encode())
    (folder / "hillstrom.csv.gz").write_bytes(data[: len(data) // 2])  # cut short
    with pytest.raises(DataError, match=r"hillstrom.csv.gz"):
        load_hillstrom(tmp_path)
    (folder / "hillstrom.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"Cannot read .*hillstrom.csv.gz"):
        load_hillstrom(tmp_path)
