"""The exported recommender beside `mtrec recommend`: the same lists for every user, and the time per request.

    python -m benchmarks.export_recommender REC_RUN_DIR [--items ITEMS.parquet] [--repeats 100]

Exports REC_RUN_DIR (`mtrec export --recommender`, in a temporary folder),
loads it with `tf.saved_model.load` and asks it for every user of the run's
users table (the config's data, as `mtrec recommend` read it). Counts the
users whose top N items equal `recommendations.parquet` in the same order
and the largest score difference; then times requests of 1 and 256 users
through the SavedModel and through `mtrec recommend`'s own stages
(`CandidateIndex.query`, `rank_candidates`, `output_table`) in this process,
after one warm-up call each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, latencies, machine_info, report


def main() -> None:
    import tensorflow as tf

    from mtrec.export.recommender import export_recommender, recommender_request
    from mtrec.recommend.config import load_recommend_config
    from mtrec.recommend.interactions import Tables, holdout_split, load_tables
    from mtrec.recommend.stages import output_table, rank_candidates, retrieve_candidates
    from mtrec.retrieval import CandidateIndex
    from mtrec.training.trained_run import load_run

    parser = argument_parser("export_recommender", __doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--items", help="the items table (default: the config's data)")
    parser.add_argument("--repeats", type=int, default=100, help="calls per latency measurement")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    config = load_recommend_config(run_dir / "config.yaml")
    tables = load_tables(config.data)
    items = pd.read_parquet(args.items) if args.items else tables.items
    user = config.data.user_id
    recs = pd.read_parquet(run_dir / "recommendations.parquet")
    users = tables.users[tables.users[user].isin(recs[user])].reset_index(drop=True)
    request = {k: tf.constant(v) for k, v in recommender_request(users, run_dir).items()}
    result = {"machine": machine_info(), "run_dir": str(run_dir), "users": len(users)}
    with tempfile.TemporaryDirectory() as tmp:
        summary = export_recommender(run_dir, Path(tmp) / "model", items=items)
        model = tf.saved_model.load(str(summary.out_dir))
        serve = model.signatures["serving_default"]
        got = {k: v.numpy() for k, v in serve(**request).items()}
        expected = recs.set_index(user)
        same, worst = 0, 0.0
        for row, key in enumerate(users[user]):
            mine = expected.loc[[key]]
            same += (got[config.data.item_id][row].astype(str).tolist()
                     == mine[config.data.item_id].astype(str).tolist())
            worst = max(worst, float(np.abs(got["score"][row] - mine["score"].to_numpy()).max()))
        result.update(export_seconds=summary.seconds, items=summary.items, k=summary.k, n=summary.n,
                      users_with_equal_lists=same, max_abs_score_difference=worst)

        index, run = CandidateIndex.load(run_dir), load_run(run_dir / "ranking")
        train, _ = holdout_split(tables.interactions, config.data.holdout, user)

        def stages(frame: pd.DataFrame) -> pd.DataFrame:
            candidates = retrieve_candidates(index, frame, train, config, progress=False)
            ranked, _, tasks = rank_candidates(run, candidates, Tables(tables.interactions, frame, items), config,
                                               progress=False)
            return output_table(ranked, config, tasks)

        table = []
        known = np.flatnonzero(users[user].isin(train[user]).to_numpy())
        for batch in (1, 256):
            starts = list(range(0, max(1, len(known) - batch), max(1, (len(known) - batch) // 20 or 1)))
            picks = [known[np.arange(s, s + batch) % len(known)] for s in starts]
            repeats = args.repeats if batch == 1 else max(10, args.repeats // 5)
            for name, call, batches in (
                    ("SavedModel", lambda b: serve(**b), [{k: tf.gather(v, p) for k, v in request.items()}
                                                          for p in picks]),
                    ("mtrec recommend stages", stages, [users.iloc[p] for p in picks])):
                ms = np.array(latencies(call, batches, repeats)) * 1000
                table.append({"path": name, "users per call": batch, "p50 ms": float(np.percentile(ms, 50)),
                              "p99 ms": float(np.percentile(ms, 99)), "users/s": batch / np.median(ms) * 1000})
    result["table"] = table
    report(f"Exported recommender vs mtrec recommend: {same:,} of {len(users):,} users with the same top "
           f"{summary.n} (max score difference {worst:.2e}); {summary.items:,} items, k = {summary.k}; "
           f"export {summary.seconds:.1f} s", table, result, args.out, digits=2)


if __name__ == "__main__":
    main()
