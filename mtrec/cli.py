"""The `mtrec` command: train, prepare, score, export, quickstart, synthetic, pipeline, gates, transfer.

It prints only mtrec's own lines: TensorFlow's start-up chatter (CUDA probing
on a CPU machine, absl's preamble, retracing warnings) is quieted before
TensorFlow loads, unless `mtrec --verbose COMMAND ...`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def _seed(text: str) -> int:
    """argparse type of `--seeds`: an integer (overrides given after the seeds are not seeds)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an integer seed; put key=value overrides before --seeds") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from mtrec.config import load_config
    from mtrec.training.run import default_run_dir, train

    config = load_config(args.config, args.overrides)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    if args.seeds:  # one run per seed under RUN_DIR/seed<k>, and their summary
        from mtrec.training.seeds import SUMMARY_MD, train_seeds

        print(f"Training {config.model.kind} ({config.name}), seeds {args.seeds}, into {run_dir}", flush=True)
        summary = train_seeds(config, args.seeds, run_dir, overwrite=args.overwrite)
        print((run_dir / SUMMARY_MD).read_text())
        print(f"Run directories: {', '.join(summary['runs'].values())}")
        return 0
    print(f"Training {config.model.kind} ({config.name}) into {run_dir}", flush=True)
    try:
        result = train(config, run_dir, overwrite=args.overwrite)
    except Exception as err:
        from mtrec.training.multiprocess import exit_if_joined

        exit_if_joined(f"mtrec train: error: {error_line(err)}", args.debug)  # one of several processes
        raise
    if result.run_dir != run_dir:  # a process other than 0 of several (mtrec.training.multiprocess)
        print(f"Done; process 0 writes the run directory {run_dir}.")
        return 0
    print((run_dir / "report.md").read_text())
    print(f"Run directory: {result.run_dir}")
    return 0


def _cmd_launch(args: argparse.Namespace) -> int:
    from mtrec.training.launch import launch

    return launch(args.processes, args.child, port=args.port)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from mtrec.config import load_config
    from mtrec.preparation import prepare

    config = load_config(args.config, args.overrides)
    result = prepare(config, args.out, batch_size=args.batch_size, overwrite=args.overwrite,
                     engine=args.engine, ray_address=args.ray_address, workers=args.workers)
    sizes = ", ".join(f"{name} {split['rows']:,}" for name, split in result.manifest["splits"].items())
    print(f"Prepared {result.rows:,} rows into {result.out} ({sizes}; "
          f"{result.rows_per_second:,.0f} rows/s{', resumed' if result.resumed else ''}).")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    if args.split or args.output is None:
        return _cmd_score_split(args)
    from mtrec.data.io import PARQUET_SUFFIXES
    from mtrec.scoring import score_file, score_folder

    if Path(args.input).is_dir() and not args.output.lower().endswith(PARQUET_SUFFIXES):
        # A folder of shards to a folder: one output shard per input shard, restartable.
        done = score_folder(args.run_dir, args.input, args.output, batch_size=args.batch_size,
                            progress=not args.no_progress, workers=args.workers)
        print(f"Scored {done.scored} of {done.shards} shards ({done.skipped} already done): {done.rows:,} rows "
              f"into {done.output} ({done.rows_per_second:,.0f} rows/s).")
        return 0
    summary = score_file(args.run_dir, args.input, args.output, batch_size=args.batch_size,
                         progress=not args.no_progress)
    print(f"Wrote {summary.rows:,} rows to {summary.output} "
          f"({summary.rows_per_second:,.0f} rows/s).")
    return 0


def _cmd_score_split(args: argparse.Namespace) -> int:
    """`mtrec score --split test RUN_DIR OUT`: the run's own rows of a split."""
    from mtrec.errors import ConfigError
    from mtrec.scoring.run_split import score_split

    if not args.split or args.output is not None:
        raise ConfigError("Give RUN_DIR INPUT OUTPUT, or --split SPLIT RUN_DIR OUTPUT (the run's own rows).")
    summary = score_split(args.run_dir, args.input, args.split, batch_size=args.batch_size)
    print(f"Wrote the {args.split} split's {summary.rows:,} rows to {summary.output} "
          f"({summary.rows_per_second:,.0f} rows/s).")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mtrec.export import export_run, read_blend

    if args.recommender:
        return _cmd_export_recommender(args)
    blend = read_blend(args.blend) if args.blend else None
    summary = export_run(args.run_dir, args.out_dir, gates=args.gates, blend=blend, overwrite=args.overwrite)
    print(f"Wrote a SavedModel to {summary.out_dir} in {summary.seconds:.1f} s: signatures "
          f"serving_default and serve_batch; inputs {[i['name'] for i in summary.inputs]}; "
          f"outputs {summary.outputs}.")
    if summary.left_out:
        print(f"Id columns left out of serve_batch (not valid TensorFlow input names): {summary.left_out}")
    return 0


def _cmd_export_recommender(args: argparse.Namespace) -> int:
    """`mtrec export --recommender REC_RUN_DIR OUT_DIR`: the whole recommend run as one SavedModel."""
    from mtrec.errors import ConfigError
    from mtrec.export.recommender import export_recommender

    if args.gates or args.blend:
        raise ConfigError("--recommender exports the recommend run's own blend; --gates and --blend do not apply.")
    summary = export_recommender(args.run_dir, args.out_dir, items=args.items, overwrite=args.overwrite)
    print(f"Wrote a SavedModel to {summary.out_dir} in {summary.seconds:.1f} s: signature serving_default; "
          f"inputs {[i['input_name'] for i in summary.inputs]}; top {summary.n} of {summary.k} candidates "
          f"from {summary.items:,} items; outputs {summary.outputs}.")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from mtrec.quickstart import describe_quickstart, print_quickstart, run_quickstart

    print(describe_quickstart(overrides=args.overrides), flush=True)
    rows = run_quickstart(args.out, overrides=args.overrides)
    print_quickstart(rows)
    print(f"\nRun directories (model, features, metrics, report): {args.out}")
    return 0


def _cmd_synthetic(args: argparse.Namespace) -> int:
    from mtrec.data.io import write_parquet
    from mtrec.data.synthetic import make_synthetic

    frame = make_synthetic(args.rows, num_features=args.features, correlation=args.correlation,
                           num_tasks=args.tasks, binarize=args.binarize, seed=args.seed)
    write_parquet(frame, args.output)
    print(f"Wrote {len(frame):,} rows x {frame.shape[1]} columns to {args.output}")
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from mtrec.pipelines.runner import run_from_cli

    return run_from_cli(args.name, args.config, args.quick, args.step, args.force, args.data_dir,
                        args.out, args.overrides)


def _cmd_gates(args: argparse.Namespace) -> int:
    from mtrec.analysis.collapse import CollapseThresholds
    from mtrec.analysis.commands import gates_command

    thresholds = CollapseThresholds(args.dominant_share, args.dead_share)
    analysis, text, written = gates_command(args.run_dir, args.data, by=args.by, out=args.out,
                                            bins=args.bins, max_rows=args.rows or None,
                                            thresholds=thresholds)
    print(text)
    print(f"Wrote {len(written)} files to {written[0].parent}")
    return 1 if args.fail_on_collapse and analysis.collapsed else 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from mtrec.analysis.commands import transfer_command

    _, text, written = transfer_command(args.mtl_run_dir, args.single_task_run_dirs, out=args.out,
                                        split=args.split, metric=args.metric, tolerance=args.tolerance)
    print(text)
    print(f"Wrote {', '.join(str(p) for p in written)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mtrec.training.run_lock import describe_run

    print(describe_run(args.run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `mtrec` command."""
    parser = argparse.ArgumentParser(prog="mtrec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's own log lines (CUDA probing, retracing warnings); "
                             "give it before the command: mtrec --verbose train ...")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line summary")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--run-dir", help="run directory (default: runs/<name>/<model>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a completed run in --run-dir")
    p.add_argument("--seeds", type=_seed, nargs="+", metavar="SEED",
                   help="train once per seed into RUN_DIR/seed<k>/ and write RUN_DIR/seeds.md (mean ± sd)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. training.epochs=5 model.num_experts=4")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("launch", help="run `mtrec train` in N local processes (JAX, loopback): "
                                      "mtrec launch -n 2 -- train -c CONFIG ...")
    p.add_argument("-n", "--processes", type=_positive_int, required=True, help="number of processes")
    p.add_argument("--port", type=_positive_int, help="the coordinator's port on 127.0.0.1 (default: a free one)")
    p.add_argument("child", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the mtrec command every process runs, after '--'")
    p.set_defaults(func=_cmd_launch)

    p = sub.add_parser("prepare", help="stream a table larger than memory into encoded shards per split")
    p.add_argument("-c", "--config", required=True, help="YAML config file (data, features, tasks)")
    p.add_argument("--out", required=True, help="the prepared folder (a rerun finishes an interrupted one)")
    p.add_argument("--batch-size", type=_positive_int, default=131_072, help="rows per record batch")
    p.add_argument("--overwrite", action="store_true", help="replace a folder prepared from another config")
    p.add_argument("--engine", choices=["embedded", "ray"], default="embedded",
                   help="embedded: this process; ray: each input file's work as a Ray Data task (mtrec-keras[ray])")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: the cluster to join (e.g. auto); default a local Ray")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="embedded engine: local processes sharing the input files (default 1; Linux)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("score", help="score a Parquet/CSV file, or a folder of shards, with a trained run")
    p.add_argument("run_dir")
    p.add_argument("input", help="a file, or a folder of Parquet/CSV shards")
    p.add_argument("output", nargs="?", help="a .parquet file; for a folder of shards, a folder (one output shard per "
                   "input shard; a rerun skips finished shards), or a .parquet file for one output")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="rows per step (default: the run's scoring.batch_size)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="for a folder of shards: score whole shards in this many processes (default 1)")
    p.add_argument("--split", choices=["train", "valid", "test"],
                   help="score the run's own rows of this split instead of a file: mtrec score --split test "
                        "RUN_DIR OUTPUT (rows recorded in RUN_DIR/splits.parquet)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("export", help="write a run as one TensorFlow SavedModel: raw columns in, every task's score out")
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("out_dir", help="the SavedModel folder to write")
    p.add_argument("--gates", action="store_true", help="also output the gate weights (gated models)")
    p.add_argument("--blend", help="YAML with a blend (a recommend config, or {kind, weights}): adds `score`")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    p.add_argument("--recommender", action="store_true",
                   help="RUN_DIR is a `mtrec recommend` run: export retrieval -> ranking -> blend -> top N in "
                        "one graph (a user's columns in, the top N items with every task's score out)")
    p.add_argument("--items", help="with --recommender: the items table (default: the recommend config's data)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("quickstart", help="MMoE vs SharedBottom vs SingleTask on synthetic data (no data needed)")
    p.add_argument("--out", default="runs/quickstart", help="folder of the run directories")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_cmd_quickstart)

    p = sub.add_parser("synthetic", help="write the MMoE paper's synthetic data set as Parquet")
    p.add_argument("output")
    p.add_argument("--rows", type=_positive_int, default=10000)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--correlation", type=float, default=0.5)
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--binarize", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synthetic)

    p = sub.add_parser("gates", help="gate statistics, collapse alarm and plots of a gated run on a data file")
    p.add_argument("run_dir", help="run directory of an MMoE, OMoE, CGC or PLE model")
    p.add_argument("data", help="Parquet/CSV rows with the training features")
    p.add_argument("--by", help="column to segment the gates by (categories, or quantile buckets)")
    p.add_argument("--bins", type=int, default=5, help="quantile buckets of a numeric --by column")
    p.add_argument("--rows", type=int, default=50000, help="rows sampled from DATA (0: all)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/gates)")
    p.add_argument("--dominant-share", type=float, default=0.9,
                   help="alarm when every task puts more than this on one expert")
    p.add_argument("--dead-share", type=float, default=0.1,
                   help="an expert is dead below this times the uniform share in every gate")
    p.add_argument("--fail-on-collapse", action="store_true", help="exit with status 1 when the alarm fires")
    p.set_defaults(func=_cmd_gates)

    p = sub.add_parser("transfer", help="per-task gain of a multi-task run over SingleTask, and Δm")
    p.add_argument("mtl_run_dir", help="the multi-task run directory")
    p.add_argument("single_task_run_dirs", nargs="+", help="the SingleTask run directory (or one per task)")
    p.add_argument("--metric", help="metric for every task (default: auc, accuracy or rmse)")
    p.add_argument("--split", default="test")
    p.add_argument("--tolerance", type=float, default=0.0, help="flag gains below -TOLERANCE percent")
    p.add_argument("--out", help="output folder (default: MTL_RUN_DIR/transfer)")
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("status", help="a run directory's state: running, interrupted, completed or failed")
    p.add_argument("run_dir", help="the run directory (its run.json and lock)")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("pipeline", help="run a batch pipeline on a real data set (prepare, train, evaluate)")
    p.add_argument("name", nargs="?",
                   help="census, census_gbdt, census_group2, census_group2_cat, census_group2_gbdt, census_dcn, "
                        "census_cat, movielens, hillstrom, sp500 or diabetes (configs/pipeline_NAME.yaml); "
                        "optional with -c")
    p.add_argument("-c", "--config", help="pipeline config (default: configs/pipeline_NAME.yaml); your own "
                   "table: a config whose experiment.data.path names it")
    p.add_argument("--quick", action="store_true", help="the quick mode: configs/pipeline_NAME_quick.yaml")
    p.add_argument("--step", default="all", choices=["all", "prepare", "train", "evaluate"],
                   help="run one step alone (default: all, each skipped when current)")
    p.add_argument("--force", action="store_true", help="rerun steps even when their outputs are current")
    p.add_argument("--data-dir", help="folder of the data sets (default: $MTREC_DATA_DIR or ../shared/datasets)")
    p.add_argument("--out", help="output folder (default: runs/pipelines/NAME)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="pipeline config overrides, e.g. seeds=[1] experiment.training.epochs=5")
    p.set_defaults(func=_cmd_pipeline)

    from mtrec.recommend.commands import add_commands as add_recommend_commands

    add_recommend_commands(sub)  # retrieval-train, retrieve, recommend
    return parser


def _verbose(argv: list[str]) -> bool:
    """Whether `--verbose` comes before the command (after it, it is the command's own option)."""
    for arg in argv:
        if not arg.startswith("-"):
            return False
        if arg == "--verbose":
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mtrec` command; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # before or after the command
    argv = [arg for arg in argv if arg != "--debug"]
    # Before the parser is built: building it imports the recommend commands, and so TensorFlow.
    if not _verbose(argv):
        from mtrec.utils.framework_logs import quiet_framework_logs

        quiet_framework_logs()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides given after an option (`--out DIR a.b=1`) are not matched by argparse's
    # positional `overrides`; collect them, refuse anything else.
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:  # said by the command's own parser: "mtrec score: error: ..." with its usage
        command = parser._subparsers._group_actions[0].choices.get(args.command, parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    args.debug = debug
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"mtrec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every error ends in one line (the traceback with --debug)
        if args.debug:
            raise
        print(f"mtrec {args.command}: error: {error_line(err)}", file=sys.stderr)
        return 2


def error_line(err: BaseException) -> str:
    """One line for an error: mtrec's own message, or the type, message and a hint for any other."""
    from mtrec.errors import MtrecError

    text = " ".join(str(err).split())
    if isinstance(err, MtrecError):
        return text
    filename = getattr(err, "filename", None)
    if isinstance(err, OSError) and filename:
        text = f"{err.strerror or text}: {filename}"
    elif isinstance(err, EOFError):
        text = f"a compressed input ended early; the file is truncated ({text})"
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(err).__name__}: {text} (unexpected; rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
