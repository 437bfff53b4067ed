"""The `mtrec retrieval-train`, `mtrec retrieve` and `mtrec recommend` subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_retrieval_train(args: argparse.Namespace) -> int:
    from mtrec.recommend.config import load_recommend_config
    from mtrec.recommend.interactions import holdout_split, load_tables
    from mtrec.recommend.stages import fit_retrieval
    from mtrec.training.run import default_run_dir

    config = load_recommend_config(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    tables = load_tables(config.data)
    train, heldout = holdout_split(tables.interactions, config.data.holdout, config.data.user_id)
    print(f"Training retrieval on {len(train):,} interactions (held out: {len(heldout):,}) "
          f"in a Keras 2 process -> {run_dir / 'retrieval'}", flush=True)
    metrics = fit_retrieval(config, tables, train, heldout, run_dir / "retrieval")
    print(json.dumps(metrics.get("test", {}), indent=2))
    print(f"Retrieval directory: {run_dir / 'retrieval'}")
    return 0


def _cmd_retrieve(args: argparse.Namespace) -> int:
    from mtrec.data.io import read_table, write_parquet
    from mtrec.retrieval import CandidateIndex

    index = CandidateIndex.load(args.run_dir)
    users = read_table(args.users)
    candidates = index.query(users, k=args.k, exclude_seen=not args.keep_seen, progress=not args.no_progress,
                             source=str(args.users))
    write_parquet(candidates, args.output)
    print(f"Wrote {len(candidates):,} candidates for {candidates[index.config.user_id].nunique():,} users "
          f"to {args.output}")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from mtrec.recommend.config import load_recommend_config
    from mtrec.recommend.stages import format_evaluation, recommend
    from mtrec.training.run import default_run_dir

    config = load_recommend_config(args.config, args.overrides)
    if args.output:
        config.output.path = str(Path(args.output).resolve())
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    result = recommend(config, run_dir, progress=not args.no_progress, reuse_retrieval=args.reuse_retrieval,
                       verbose=args.verbose)
    timings = result.timings
    print(format_evaluation(result.evaluation))
    print(f"Ranked {result.recommendations[config.data.user_id].nunique():,} users x {config.output.k} "
          f"candidates in {timings['rank_seconds']:.1f} s ({timings['ranking_rows_per_second']:,.0f} rows/s); "
          f"retrieval for all users {timings['retrieve_seconds']:.1f} s.")
    print(f"Recommendations: {result.output}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Registers the three subcommands on the `mtrec` parser."""
    p = sub.add_parser("retrieval-train",
                       help="train the TFRS two-tower retrieval model (in its own Keras 2 process)")
    p.add_argument("-c", "--config", required=True, help="recommend YAML config (its data and retrieval sections)")
    p.add_argument("--run-dir", help="run directory; the model goes to RUN_DIR/retrieval")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_cmd_retrieval_train)

    p = sub.add_parser("retrieve", help="top-k retrieval candidates per user from a trained index")
    p.add_argument("run_dir", help="a run directory with retrieval/ (or the retrieval directory itself)")
    p.add_argument("--users", required=True, help="Parquet/CSV with a user id column (features optional)")
    p.add_argument("--k", type=int, default=None, help="candidates per user (default: the config's k)")
    p.add_argument("--keep-seen", action="store_true", help="do not drop items seen in training")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("output", help="Parquet file: user, rank, item, retrieval_score")
    p.set_defaults(func=_cmd_retrieve)

    p = sub.add_parser("recommend", help="retrieval -> multi-task ranking -> blend: top N per user")
    p.add_argument("-c", "--config", required=True, help="recommend YAML config")
    p.add_argument("--run-dir", help="run directory (default: runs/<name>/<time>)")
    p.add_argument("--output", help="the recommendations Parquet file (default: RUN_DIR/recommendations.parquet)")
    p.add_argument("--reuse-retrieval", action="store_true", help="keep RUN_DIR/retrieval if trained")
    p.add_argument("--verbose", type=int, default=2, help="Keras verbosity of the two trainings")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_cmd_recommend)
