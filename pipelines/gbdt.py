"""What a tabular user would pick instead: one LightGBM model per task, on the same splits.

The inputs are the raw columns the mtrec features read (from the prepared
`features.json`): numeric columns as they are (LightGBM handles NaN),
categorical columns as LightGBM categories (codes fixed on the training
split, so every split codes them alike), and multi-valued and text columns
as a bag of tokens: one sparse 0/1 column per token found in at least
`min_token_rows` training rows (at most `max_tokens` per column, the most
frequent), tokenized as the mtrec feature tokenizes them (text: lowercased,
punctuation stripped, bigrams with `ngrams: 2`). Feature names are
`<column>=<token>`, cleaned for LightGBM and then made distinct (`it_`,
`it_-2`), so tokens that clean alike stay two features. Each task gets its own booster, with
early stopping on the validation split (AUC for binary tasks, L2 for
regression, multi-logloss for multiclass). Rows whose label is missing are
dropped per task. A chained (ESMM) task is fit on its own label over all
rows, as a tabular user would.

LightGBM is an optional extra (`pip install mtrec[gbdt]`); without it the
baseline is skipped with a note in the report.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from mtrec.features import FeatureEncoder
from mtrec.features.sequences import split_cells
from mtrec.pipelines.config import LightGBMConfig
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask, Task

#: Feature kinds given to LightGBM as a bag of tokens (`text` once that kind exists).
TOKEN_KINDS = ("multi_categorical", "text")


def lightgbm_available() -> bool:
    """Whether the optional `lightgbm` package can be imported."""
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


def cell_tokens(spec: Any, series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A token column's cells as the mtrec feature splits them: `(uniques, codes, lengths)`.

    Multi-valued cells are split on the feature's separator (`split_cells`);
    text is tokenized as the `text` feature tokenizes it
    (`mtrec.features.text.tokenize_column`: lowercased, punctuation
    stripped, bigrams with `ngrams: 2`).
    """
    if getattr(spec, "kind", None) == "text":
        from mtrec.features.text import tokenize_column  # the kind and its tokenizer come together

        return tokenize_column(series, getattr(spec, "ngrams", 1))
    return split_cells(series, spec.separator)


class TabularFrame:
    """Builds the LightGBM input matrix from raw rows, fit on the training split.

    Args:
        encoder: the fitted mtrec feature encoder (which columns, of which kind).
        max_tokens: most frequent tokens kept per multi-valued or text column.
        min_token_rows: a token is kept when it occurs in at least this many
            training rows (rarer ones cannot make a split anyway).
        derived: `{token column: its source columns}`: a derived token column
            is replaced by its sources (strings as categories, numbers as numbers).
        types: `{column: dtype}` of the raw table, to type derived sources.
        exclude: feature columns left out (columns built from a forest's
            own scores, see `gbdt_scores`).
    """

    def __init__(self, encoder: FeatureEncoder, max_tokens: int = 20_000, min_token_rows: int = 1,
                 derived: dict[str, list[str]] | None = None, types: dict[str, Any] | None = None,
                 exclude: list[str] | None = None) -> None:
        derived, types, excluded = derived or {}, types or {}, set(exclude or ())
        self.numeric = [state.column for state in encoder.numeric_ if state.column not in excluded]
        self.categorical = [spec.name for spec in encoder.categorical_features if spec.name not in excluded]
        token_specs = [spec for spec in encoder.specs
                       if getattr(spec, "kind", None) in TOKEN_KINDS and spec.name not in excluded]
        self.tokens = {spec.name: spec for spec in token_specs if spec.name not in derived}
        for spec in token_specs:
            for column in derived.get(spec.name, []):
                numeric = pd.api.types.is_numeric_dtype(types.get(column, object))
                target = self.numeric if numeric else self.categorical
                if column not in target:
                    target.append(column)
        self.max_tokens = max_tokens
        self.min_token_rows = min_token_rows

    def fit(self, train: pd.DataFrame) -> TabularFrame:
        """Fixes the categories and each token column's kept tokens on the training rows."""
        self.categories_ = {c: pd.Index(pd.unique(_as_strings(train[c]).dropna())) for c in self.categorical}
        self.vocabularies_: dict[str, pd.Index] = {}
        for name, spec in self.tokens.items():
            uniques, codes, lengths = cell_tokens(spec, train[name])
            rows = np.repeat(np.arange(len(train)), lengths)
            # Rows holding each token (a word repeated in one text counts once).
            pairs = np.unique(np.stack([codes, rows]), axis=1) if len(codes) else np.zeros((2, 0), np.int64)
            counts = np.bincount(pairs[0], minlength=len(uniques))
            order = np.argsort(-counts, kind="stable")
            order = order[counts[order] >= self.min_token_rows][: self.max_tokens]
            self.vocabularies_[name] = pd.Index([str(uniques[i]) for i in order])
        self.feature_names_ = _unique_names(
            [*self.numeric, *self.categorical,
             *(f"{name}={token}" for name, vocab in self.vocabularies_.items() for token in vocab)])
        self.categorical_features_ = list(range(len(self.numeric), len(self.numeric) + len(self.categorical)))
        return self

    def transform(self, frame: pd.DataFrame) -> Any:
        """The LightGBM input of any split: columns in `feature_names_` order.

        A dense float64 array, or a CSR matrix when there are token columns
        (categories as their codes, NaN where missing or unseen).
        """
        dense = [pd.to_numeric(frame[c], errors="coerce").astype("float64").to_numpy() for c in self.numeric]
        for c in self.categorical:
            codes = pd.Categorical(_as_strings(frame[c]), categories=self.categories_[c]).codes
            dense.append(np.where(codes < 0, np.nan, codes).astype("float64"))
        block = np.column_stack(dense) if dense else np.zeros((len(frame), 0))
        if not self.tokens:
            return block
        import scipy.sparse as sp  # comes with lightgbm (the gbdt extra)

        blocks = [sp.csr_matrix(block)]
        for name, spec in self.tokens.items():
            uniques, codes, lengths = cell_tokens(spec, frame[name])
            rows = np.repeat(np.arange(len(frame)), lengths)
            vocab = self.vocabularies_[name]
            columns = vocab.get_indexer(pd.Index([str(u) for u in uniques], dtype=object))[codes]
            kept = columns >= 0
            bag = sp.csr_matrix((np.ones(int(kept.sum())), (rows[kept], columns[kept])),
                                shape=(len(frame), len(vocab)))
            bag.sum_duplicates()
            bag.data[:] = 1.0  # presence, not counts
            blocks.append(bag)
        return sp.hstack(blocks, format="csr")


def _as_strings(series: pd.Series) -> pd.Series:
    """Values as strings, missing ones kept missing (LightGBM's own missing-value branch)."""
    return series.astype(object).where(series.isna(), series.astype(str))


def _safe_name(name: str) -> str:
    """A name LightGBM accepts (ASCII letters, digits and `_=-.`; anything else becomes `_`)."""
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "_=-." else "_" for ch in str(name))


def _unique_names(names: list[str]) -> list[str]:
    """LightGBM-safe names, made distinct where cleaning made two alike (`it's`, `it.` -> `it_`, `it_-2`)."""
    out, seen = [], set()
    for name in names:
        safe = base = _safe_name(name)
        k = 1
        while safe in seen:
            k += 1
            safe = f"{base}-{k}"
        seen.add(safe)
        out.append(safe)
    return out


def task_objective(task: Task) -> dict[str, Any]:
    """LightGBM objective and early-stopping metric for a task kind."""
    if isinstance(task, BinaryTask):
        return {"objective": "binary", "metric": "auc"}
    if isinstance(task, RegressionTask):
        return {"objective": "regression", "metric": "l2"}
    if task.kind == "count":  # Poisson regression: predictions are rates, as the count task's
        return {"objective": "poisson", "metric": "poisson"}
    if isinstance(task, MulticlassTask):
        return {"objective": "multiclass", "num_class": task.num_classes, "metric": "multi_logloss"}
    raise TypeError(f"No LightGBM objective for task kind {type(task).__name__}")


def fit_lightgbm(tasks: list[Task], encoder: FeatureEncoder, frames: dict[str, pd.DataFrame],
                 labels: dict[str, dict[str, np.ndarray]], config: LightGBMConfig,
                 seed: int = 0, derived: dict[str, list[str]] | None = None,
                 exclude: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Trains one booster per task and predicts the test split.

    Args:
        tasks: the tasks (auxiliary ones included; the caller may drop them).
        encoder: the fitted feature encoder (which raw columns, of which kind).
        frames: raw rows by split (`train`, `valid`, `test`).
        labels: `{split: {task: float (n, 1) labels, NaN where missing}}`.
        config: LightGBM settings.
        seed: LightGBM's seed.
        derived: `{token column: source columns}` (see `TabularFrame`).
        exclude: feature columns the boosters do not read (see `TabularFrame`).

    Returns:
        `({task: test predictions}, {task: {"best_iteration", "seconds"}, "inputs": {"features",
        "tokens"}})`;
        predictions are probabilities (binary), values (regression) or
        `(n, classes)` probabilities (multiclass).
    """
    import lightgbm as lgb

    builder = TabularFrame(encoder, config.max_tokens, config.min_token_rows, derived,
                           dict(frames["train"].dtypes.items()), exclude).fit(frames["train"])
    x = {name: builder.transform(frame) for name, frame in frames.items()}
    predictions: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"inputs": {"features": len(builder.feature_names_),
                                       "tokens": {name: len(v) for name, v in builder.vocabularies_.items()}}}
    for task in tasks:
        started = time.perf_counter()
        params = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20,
                  "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
                  # One thread: OpenMP's spinning threads fight TensorFlow's pool (and other
                  # processes) for the cores; on a busy 2-core machine one thread is ~7x faster.
                  "verbosity": -1, "seed": seed, "num_threads": 1,
                  **config.params, **task_objective(task)}
        sets, rows = {}, {}
        for split in ("train", "valid"):
            # Column 0 is the label; a task with sample_weight carries its weights in column 1.
            array = np.asarray(labels[split][task.name]).reshape(x[split].shape[0], -1)
            y = array[:, 0]
            present = np.flatnonzero(~np.isnan(y))
            rows[split] = len(present)
            weight = array[present, 1] if array.shape[1] > 1 else None
            sets[split] = lgb.Dataset(x[split][present], label=y[present], weight=weight,
                                      feature_name=builder.feature_names_,
                                      categorical_feature=builder.categorical_features_, free_raw_data=False)
        has_valid = rows["valid"] > 0
        callbacks = [lgb.early_stopping(config.early_stopping_rounds, verbose=False)] if has_valid else []
        booster = lgb.train(params, sets["train"], num_boost_round=config.num_boost_round,
                            valid_sets=[sets["valid"]] if has_valid else None, callbacks=callbacks)
        best = booster.best_iteration or booster.current_iteration()
        predictions[task.name] = np.asarray(booster.predict(x["test"], num_iteration=best))
        info[task.name] = {"best_iteration": int(best), "seconds": round(time.perf_counter() - started, 2)}
    return predictions, info
