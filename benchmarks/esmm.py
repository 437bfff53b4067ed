"""ESMM benchmark: the chained conditional tower against a naive model trained on clicked rows.

On the synthetic click -> purchase funnel (`mtrec.data.funnel`), two models
get the same rows, split, epochs and early stopping:

- **ESMM**: an MMoE with `click` and `purchase` (`after: click`), trained
  over every impression on the joint label; its conditional
  `p(purchase | click)` is `joint / p(click)`.
- **naive**: a single-task model of `purchase`, trained on clicked rows only
  (the usual CVR model, which sees only the selected sample).

Both are scored on the clicked test rows (where the conditional is defined
and observed) by AUC of the purchase label, and on all test impressions by
AUC of the true `p(buy | click)`, which tells how well each ranks conversion
intent where clicks were not observed (the selection-bias argument of
Ma et al. 2018). The AUC of the true conditional on clicked rows is the
ceiling. Sparse clicks (`click_rate_shift` -2.5) are where ESMM should help.

    python -m benchmarks.esmm [--rows 20000] [--seeds 3] [--out bench_results/esmm.json]

Prints a table and writes JSON.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, report, run_each
from mtrec.config import parse_config
from mtrec.data.funnel import make_funnel
from mtrec.training.evaluation import roc_auc
from mtrec.training.predict import predict_arrays
from mtrec.training.run import RunResult, train

_TRAINING = {"epochs": 30, "batch_size": 256, "learning_rate": 0.003, "verbose": 0,
             "early_stopping": {"monitor": "val_purchase_auc", "patience": 4}}
# Folds 0/1/2 (train/valid/test) are assigned once per data set, so both
# models see exactly the same rows in each split.
_SPLIT = {"kind": "time", "column": "fold", "valid_start": 1, "test_start": 2}


def _config(tasks: list[dict[str, Any]], model: dict[str, Any], seed: int,
            monitor: str = "val_purchase_auc") -> Any:
    training = {**_TRAINING, "early_stopping": {**_TRAINING["early_stopping"], "monitor": monitor}}
    return parse_config({
        "name": "esmm_bench", "seed": seed,
        "data": {"split": _SPLIT},
        "features": [{"name": "x*", "kind": "numeric"}],
        "tasks": tasks, "model": model, "training": training,
    })


def _predict(result: RunResult, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    features = result.prepared.encoder.transform(frame)
    return {k: v.ravel() for k, v in predict_arrays(result.model, features, 16384).items()}


def run_once(rows: int, click_rate_shift: float, seed: int, esmm_monitor: str, work: Path) -> dict[str, Any]:
    """Trains ESMM and the naive model on one funnel and returns their AUCs."""
    frame = make_funnel(rows, click_rate_shift=click_rate_shift, seed=seed)
    frame["fold"] = np.random.default_rng(seed).choice(3, size=rows, p=[0.7, 0.1, 0.2])
    test = frame[frame["fold"] == 2]
    clicked = test[test["click"] == 1]

    esmm = train(_config([{"name": "click", "kind": "binary"},
                          {"name": "purchase", "kind": "binary", "after": "click"}],
                         {"kind": "mmoe", "num_experts": 4, "expert": {"units": [16]}, "tower_units": [8]},
                         seed, esmm_monitor), work / f"esmm-{seed}-{click_rate_shift}", frame=frame)
    naive = train(_config([{"name": "purchase", "kind": "binary"}],
                          {"kind": "single_task", "tower_units": [16, 8]}, seed),
                  work / f"naive-{seed}-{click_rate_shift}", frame=frame[frame["click"] == 1])

    def conditional(result: RunResult, part: pd.DataFrame) -> np.ndarray:
        p = _predict(result, part)
        if "click" in p:  # ESMM: joint / p(click)
            return p["purchase"] / np.maximum(p["click"], 1e-12)
        return p["purchase"]

    truth_all = test["p_buy_given_click"].to_numpy()
    # Ranking of true conversion intent over all impressions: AUC against a
    # label drawn from the true conditional (fixed seed, same for both).
    intent = (np.random.default_rng(seed + 1).random(len(test)) < truth_all).astype(float)
    buy = clicked["purchase"].to_numpy()
    return {
        "click_rate_shift": click_rate_shift, "seed": seed,
        "clicked_train_rows": int(((frame["fold"] == 0) & (frame["click"] == 1)).sum()),
        "clicked_test_rows": len(clicked),
        "esmm_auc_clicked": roc_auc(buy, conditional(esmm, clicked)),
        "naive_auc_clicked": roc_auc(buy, conditional(naive, clicked)),
        "ceiling_auc_clicked": roc_auc(buy, clicked["p_buy_given_click"].to_numpy()),
        "esmm_auc_all_impressions": roc_auc(intent, conditional(esmm, test)),
        "naive_auc_all_impressions": roc_auc(intent, conditional(naive, test)),
        "joint_exceeds_click": int((_predict(esmm, test)["purchase"]
                                    > _predict(esmm, test)["click"] + 1e-7).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("esmm", __doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shifts", type=float, nargs="+", default=[-1.0, -2.5],
                        help="click logit offsets (more negative: sparser clicks)")
    parser.add_argument("--esmm-monitor", default="val_purchase_auc",
                        help="ESMM's early-stopping metric (the naive model watches its own purchase AUC)")
    args = parser.parse_args(argv)

    results = run_each(((args.rows, shift, seed, args.esmm_monitor)
                        for shift, seed in itertools.product(args.shifts, range(1, args.seeds + 1))), run_once)
    table = pd.DataFrame(results)
    summary = table.groupby("click_rate_shift").mean(numeric_only=True).drop(columns="seed")
    names = {"click_rate_shift": "click shift", "clicked_train_rows": "clicked train rows",
             "esmm_auc_clicked": "ESMM AUC (clicked)", "naive_auc_clicked": "naive AUC (clicked)",
             "ceiling_auc_clicked": "true-p AUC (clicked)",
             "esmm_auc_all_impressions": "ESMM AUC (all, intent)",
             "naive_auc_all_impressions": "naive AUC (all, intent)", "joint_exceeds_click": "joint > click"}
    report(None, summary.reset_index()[list(names)].rename(columns=names).to_dict(orient="records"),
           {"rows": args.rows, "seeds": args.seeds, "esmm_monitor": args.esmm_monitor, "runs": results,
            "mean": summary.reset_index().to_dict(orient="records")}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
