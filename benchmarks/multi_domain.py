"""Multi-domain benchmark on Hillstrom: domain-conditioned MMoE gates against one model per domain.

The Hillstrom e-mail table (64,000 customers) has a natural domain column,
the campaign `segment` ("Mens E-Mail", "Womens E-Mail", "No E-Mail"). Three
setups get the same rows, split (60/20/20, seeded), tasks (`visit`,
`conversion`, `spend`), epochs and early stopping:

- **mmoe**: an MMoE over all customers, `segment` an ordinary feature;
- **mmoe_domain_gates**: the same MMoE with `model.gate_inputs: [segment]`:
  every gate reads only the segment's embedding, so each domain gets its
  own mixture of the shared experts per task;
- **per_domain**: one MMoE per segment, trained on that segment's rows only
  (without the now constant `segment` feature);
- **mmoe_domain_towers** (with `--domain-towers`): the first MMoE with
  `model.domain_towers: segment`: each task has one tower per segment id,
  the experts and gates stay shared.

Each is scored on every domain's test rows: AUC of `visit` and of
`conversion` (about 0.9% of customers convert, so its AUC is noisy: a
test domain holds 20 to 65 conversions, the "No E-Mail" one the fewest).
On 2 CPU cores shared with other work the default run (3 seeds, 15
trainings) took 49 minutes.

    python -m benchmarks.multi_domain [--seeds 3] [--epochs 30] [--domain-towers]
        [--out bench_results/multi_domain.json]

Needs `hillstrom_email_marketing/` under `../shared/datasets` (or
`$MTREC_DATA_DIR`). Prints a table and writes JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, machine_info, report, run_each
from mtrec.config import parse_config
from mtrec.data.datasets.hillstrom import load_hillstrom
from mtrec.training.evaluation import roc_auc
from mtrec.training.predict import predict_arrays
from mtrec.training.run import train

DOMAIN = "segment"
DOMAINS = ["Mens E-Mail", "Womens E-Mail", "No E-Mail"]
# Folds 0/1/2 (train/valid/test) assigned once, so every setup sees the same rows in each split.
_SPLIT = {"kind": "time", "column": "fold", "valid_start": 1, "test_start": 2}
_FEATURES = [
    {"name": "recency", "kind": "numeric"},
    {"name": "history", "kind": "numeric", "log1p": True},
    {"name": "mens", "kind": "numeric"},
    {"name": "womens", "kind": "numeric"},
    {"name": "newbie", "kind": "numeric"},
    {"name": "history_segment", "kind": "categorical", "embedding_dim": 4},
    {"name": "zip_code", "kind": "categorical", "embedding_dim": 2},
    {"name": "channel", "kind": "categorical", "embedding_dim": 2},
]
_TASKS = [{"name": "visit", "kind": "binary"}, {"name": "conversion", "kind": "binary"},
          {"name": "spend", "kind": "regression", "weight": 0.005}]
_MODEL = {"kind": "mmoe", "num_experts": 4, "expert": {"units": [32]}, "tower_units": [8]}
SETUPS = ("mmoe", "mmoe_domain_gates", "per_domain")
TOWERS = "mmoe_domain_towers"  # the optional fourth setup (--domain-towers)


def _config(seed: int, epochs: int, domain_feature: bool, gate_inputs: bool, towers: bool = False) -> Any:
    features = _FEATURES + ([{"name": DOMAIN, "kind": "categorical", "embedding_dim": 2}] if domain_feature else [])
    model = {**_MODEL, **({"gate_inputs": [DOMAIN]} if gate_inputs else {}),
             **({"domain_towers": DOMAIN} if towers else {})}
    return parse_config({
        "name": "multi_domain", "seed": seed, "data": {"split": _SPLIT}, "features": features, "tasks": _TASKS,
        "model": model,
        "training": {"epochs": epochs, "batch_size": 512, "learning_rate": 0.002, "verbose": 0,
                     "jit_compile": False, "early_stopping": {"monitor": "val_loss", "patience": 4}},
    })


def _scores(result: Any, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    features = result.prepared.encoder.transform(frame)
    return {k: v.ravel() for k, v in predict_arrays(result.model, features).items()}


def run_once(frame: pd.DataFrame, seed: int, epochs: int, domain_towers: bool, work: Path) -> list[dict[str, Any]]:
    """Trains the setups on one seed's split; returns one row per setup and domain."""
    frame = frame.copy()
    frame["fold"] = np.random.default_rng(seed).choice(3, size=len(frame), p=[0.6, 0.2, 0.2])
    test = frame[frame["fold"] == 2]
    setups = SETUPS + ((TOWERS,) if domain_towers else ())
    predictions: dict[str, dict[str, dict[str, np.ndarray]]] = {s: {} for s in setups}
    shared = [("mmoe", False, False), ("mmoe_domain_gates", True, False)]
    for setup, gates, towers in shared + ([(TOWERS, False, True)] if domain_towers else []):
        result = train(_config(seed, epochs, True, gates, towers), work / f"{setup}-{seed}", frame=frame)
        for domain in DOMAINS:
            predictions[setup][domain] = _scores(result, test[test[DOMAIN] == domain])
    for i, domain in enumerate(DOMAINS):
        result = train(_config(seed, epochs, False, False), work / f"per_domain{i}-{seed}",
                       frame=frame[frame[DOMAIN] == domain])
        predictions["per_domain"][domain] = _scores(result, test[test[DOMAIN] == domain])
    rows = []
    for setup in setups:
        for domain in DOMAINS:
            part, scores = test[test[DOMAIN] == domain], predictions[setup][domain]
            rows.append({"seed": seed, "setup": setup, "domain": domain, "test_rows": len(part),
                         "conversions": int(part["conversion"].sum()),
                         "visit_auc": roc_auc(part["visit"].to_numpy(), scores["visit"]),
                         "conversion_auc": roc_auc(part["conversion"].to_numpy(), scores["conversion"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("multi_domain", __doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=None, help="read only this many customers (quick runs)")
    parser.add_argument("--domain-towers", action="store_true",
                        help=f"also train {TOWERS}: the MMoE with one tower per segment per task")
    parser.add_argument("--data-dir", default=os.environ.get("MTREC_DATA_DIR", "../shared/datasets"))
    args = parser.parse_args(argv)

    frame = load_hillstrom(args.data_dir, nrows=args.rows)
    per_seed = run_each(((frame, seed, args.epochs, args.domain_towers) for seed in range(1, args.seeds + 1)),
                        lambda *a: {"rows": run_once(*a)})
    runs = pd.DataFrame([row for result in per_seed for row in result["rows"]])
    summary = runs.groupby(["domain", "setup"], sort=False).agg(
        visit_auc=("visit_auc", "mean"), visit_sd=("visit_auc", "std"),
        conversion_auc=("conversion_auc", "mean"), conversion_sd=("conversion_auc", "std"),
        test_rows=("test_rows", "mean")).reset_index()
    report(f"Hillstrom, test AUC per domain, mean (sd) over {args.seeds} seed(s)",
           summary.to_dict(orient="records"),
           {"machine": machine_info(), "seeds": args.seeds, "epochs": args.epochs, "rows": len(frame),
            "domain_towers": args.domain_towers,
            "runs": runs.to_dict(orient="records"), "summary": summary.to_dict(orient="records")}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
