"""A boosted forest's out-of-fold score as a feature (stacking a GBDT under the network).

For one task's label, LightGBM forests read the pipeline's other feature columns as
the LightGBM baseline reads them (`gbdt.TabularFrame`: numbers as numbers,
categories as LightGBM categories, token columns as their sources or a bag of
tokens) and give every row a raw score (a logit for a binary label). As for
`target_stats`, training rows get their score out of fold: the training split
is cut into `folds` parts and each part is scored by a forest fit on the
others, so a row's own label never feeds its feature (a forest scoring its own
training rows is over-confident on them, and the network would learn to trust
it more than it deserves on new rows). Validation and test rows get the mean
score of the fold forests. Each forest stops early on the validation split,
as the baseline's boosters do; test rows never reach a fit.

The network then learns what the forest misses, and every task can read
every forest's score. The LightGBM baseline does not read score columns
(`TabularFrame`'s `exclude`), so it stays the forest alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from mtrec.data.splits import Splits
from mtrec.errors import ConfigError
from mtrec.utils.validation import closest


@dataclasses.dataclass
class GBDTScore:
    """One score column (config list `gbdt_scores`).

    Args:
        name: the new float column.
        task: the experiment's task whose label the forests fit, with the
            LightGBM baseline's objective for its kind (binary: logistic, and
            the score is a logit; regression: L2; count: Poisson, a log
            rate). Multiclass tasks have no single score and are refused.
        folds: parts of the training split for the out-of-fold scores.
        params: LightGBM parameters over the defaults (the baseline's
            defaults: learning rate 0.05, 31 leaves, 20 rows per leaf; the
            pipeline's `lightgbm.params` do not apply here).
        num_boost_round: most trees per forest.
        early_stopping_rounds: rounds without improvement on the validation
            split before a forest stops.
        seed: seed of the folds and of LightGBM.
    """

    name: str
    task: str
    folds: int = 5
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"gbdt_scores[{self.name}].folds must be >= 2. Received: {self.folds}")
        for key in ("num_boost_round", "early_stopping_rounds"):
            if getattr(self, key) < 1:
                raise ConfigError(f"gbdt_scores[{self.name}].{key} must be >= 1. Received: {getattr(self, key)}")


def add_gbdt_scores(frame: pd.DataFrame, splits: Splits, scores: list[GBDTScore], features: list,
                    tasks: list, derived: dict[str, list[str]], max_tokens: int = 20_000,
                    min_token_rows: int = 5, source: str = "the table") -> pd.DataFrame:
    """Adds each score as a float column of `frame` (in place).

    Args:
        frame: every row (all splits).
        splits: training rows fit the forests; validation rows stop them.
        scores: the score columns.
        features: the experiment's feature specs; the forests read their
            columns (score columns excepted).
        tasks: the experiment's tasks (labels as `mtrec train` reads them).
        derived: `{token column: source columns}` (the pipeline's `derive`):
            the forests read the sources instead.
        max_tokens, min_token_rows: tokens kept per token column (the
            pipeline's `lightgbm` settings, so the forests read what the
            baseline reads).
        source: description of `frame` for messages.

    Raises:
        ConfigError: a task is not one of `tasks`, or is multiclass; lightgbm
            is not installed.
        SchemaError / DataError: a label column is missing or holds a bad value.
    """
    if not scores:
        return frame
    try:
        import lightgbm as lgb
    except ImportError as error:
        raise ConfigError("gbdt_scores needs lightgbm: pip install 'mtrec-keras[gbdt]'.") from error
    from mtrec.features import FeatureEncoder
    from mtrec.pipelines.gbdt import TabularFrame, task_objective
    from mtrec.tasks import MulticlassTask

    by_name = {task.name: task for task in tasks}
    for spec in scores:
        if spec.task not in by_name:
            raise ConfigError(f"gbdt_scores[{spec.name}].task '{spec.task}' is not one of the experiment's "
                              f"tasks {list(by_name)}.{closest(spec.task, by_name)}")
        if isinstance(by_name[spec.task], MulticlassTask):
            raise ConfigError(f"gbdt_scores[{spec.name}].task '{spec.task}' is multiclass: a forest's score "
                              "is one number per row only for binary, regression and count tasks.")
    names = {spec.name for spec in scores}
    train = frame.iloc[splits.train]
    encoder = FeatureEncoder([f for f in features if f.name not in names]).fit(
        train, exclude=sorted({c for task in tasks for c in task.columns}))
    builder = TabularFrame(encoder, max_tokens, min_token_rows, derived, dict(frame.dtypes.items()),
                           exclude=sorted(names)).fit(train)
    x = builder.transform(frame)
    for spec in scores:
        task = by_name[spec.task]
        y = np.asarray(task.prepare_labels(frame[task.label], source), dtype="float64").reshape(-1)
        objective = task_objective(task)  # the baseline's objective and early-stopping metric
        frame[spec.name] = _out_of_fold(lgb, spec, objective, builder, x, y, splits)
    return frame


def _out_of_fold(lgb: Any, spec: GBDTScore, objective: dict[str, Any], builder: Any, x: Any, y: np.ndarray,
                 splits: Splits) -> np.ndarray:
    """Raw scores: out of fold on training rows, the fold forests' mean elsewhere."""
    params = {**objective, "learning_rate": 0.05,
              "num_leaves": 31, "min_data_in_leaf": 20, "feature_fraction": 0.9,
              "bagging_fraction": 0.9, "bagging_freq": 1, "verbosity": -1, "seed": spec.seed,
              # One thread, as the baseline: OpenMP threads spinning for a busy core cost far more
              # than they give on a small shared machine (set `params: {num_threads: 0}` for all).
              "num_threads": 1,
              **spec.params}
    train = splits.train[~np.isnan(y[splits.train])]
    valid = splits.valid[~np.isnan(y[splits.valid])]
    # Every row whose label no forest was fit on: validation, test, unlabelled training rows.
    others = np.setdiff1d(np.arange(len(y)), train)
    fold = np.random.default_rng(spec.seed).integers(0, spec.folds, size=len(train))
    values = np.zeros(len(y))
    valid_set = (lgb.Dataset(x[valid], label=y[valid], feature_name=builder.feature_names_,
                             categorical_feature=builder.categorical_features_, free_raw_data=False)
                 if len(valid) else None)
    for k in range(spec.folds):
        fit_rows, held_rows = train[fold != k], train[fold == k]
        fit_set = lgb.Dataset(x[fit_rows], label=y[fit_rows], feature_name=builder.feature_names_,
                              categorical_feature=builder.categorical_features_, free_raw_data=False)
        booster = lgb.train(params, fit_set, num_boost_round=spec.num_boost_round,
                            valid_sets=[valid_set] if valid_set is not None else None,
                            callbacks=[lgb.early_stopping(spec.early_stopping_rounds, verbose=False)]
                            if valid_set is not None else [])
        best = booster.best_iteration or None
        values[held_rows] = booster.predict(x[held_rows], num_iteration=best, raw_score=True)
        values[others] += booster.predict(x[others], num_iteration=best, raw_score=True) / spec.folds
    return values
