"""Entry point of the Keras 2 retrieval process: `python -m mtrec.retrieval.runner {train,index} ...`.

Started by `mtrec.retrieval.train_retrieval` (and so by `mtrec
retrieval-train` and `mtrec recommend`) with `TF_USE_LEGACY_KERAS=1` in its
environment. Run by hand without the variable, it starts itself again with it.

Subcommands:
    train   interactions + items tables in, a retrieval directory out:
            query_tower/, candidate_tower/, index/ (SavedModels), towers.json
            (vocabularies, statistics), retrieval.json (the config),
            metrics.json (history, held-out top-K accuracy and RMSE),
            users.parquet (each user's query features), seen.parquet (the
            training interactions, for excluding seen items), items.parquet
            (the indexed item ids, in index order).
    index   a table of embeddings in (an id column and an `embedding` list
            column), a BruteForce index SavedModel out whose queries are
            embeddings.

The directory is written beside its final place and renamed onto it at the
end, so a failed run never leaves a half-written one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def _staging(out: Path) -> Path:
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def _train(args: argparse.Namespace) -> None:
    import pandas as pd

    from mtrec.data.io import read_table, write_parquet
    from mtrec.retrieval import export, two_tower
    from mtrec.retrieval.config import parse_retrieval_config
    from mtrec.retrieval.tower_inputs import as_strings, tower_inputs
    from mtrec.utils.atomic import write_json
    from mtrec.utils.config_file import read_config_file
    from mtrec.utils.validation import require_columns

    config = parse_retrieval_config(read_config_file(args.config))
    train = read_table(args.train)
    items = read_table(args.items)
    test = read_table(args.test) if args.test else None
    needed = config.query_columns + config.candidate_columns + ([config.rating] if config.rating else [])
    require_columns(train, needed, args.train)
    require_columns(items, config.candidate_columns, args.items)
    if test is not None:
        require_columns(test, needed, args.test)

    out = Path(args.out)
    staging = _staging(out)
    started = time.perf_counter()
    model, states = two_tower.build_model(config, train, items)
    history = two_tower.fit(model, train, states, verbose=args.verbose)
    seconds = time.perf_counter() - started
    metrics = {"train_seconds": round(seconds, 2), "rows": {"train": len(train), "items": len(items)},
               "history": {k: [float(v) for v in values] for k, values in history.items() if k.endswith("loss")}}
    if test is not None and len(test):
        metrics["rows"]["test"] = len(test)
        metrics["test"] = two_tower.evaluate(model, test, states)

    item_ids = as_strings(items[config.item_id]).to_numpy(dtype=object)
    export.export_retrieval(
        model, states, tower_inputs(items, config.candidate_features, states["candidate"]),
        item_ids, staging, k=config.k)
    write_json(staging / "towers.json", states)
    write_json(staging / "retrieval.json", config.get_config())
    write_json(staging / "metrics.json", metrics)
    users = train[config.query_columns].drop_duplicates(config.user_id, keep="last")
    write_parquet(users.reset_index(drop=True), staging / "users.parquet")
    write_parquet(train[[config.user_id, config.item_id]].reset_index(drop=True), staging / "seen.parquet")
    write_parquet(items[[config.item_id]].reset_index(drop=True), staging / "items.parquet")
    _publish(staging, out)
    print(json.dumps({"retrieval_dir": str(out), **{k: v for k, v in metrics.items() if k != "history"}}))


def _index(args: argparse.Namespace) -> None:
    import numpy as np
    import tensorflow as tf

    from mtrec.data.io import read_table
    from mtrec.retrieval import export

    table = read_table(args.embeddings)
    embeddings = np.stack(table["embedding"].to_numpy()).astype("float32")
    ids = table[args.id_column].astype(str).to_numpy(dtype=object)
    out = Path(args.out)
    staging = _staging(out)
    index = export.build_index(embeddings, ids, query_model=None, k=args.k)
    export.save_index(index, tf.TensorSpec([None, embeddings.shape[1]], tf.float32, name="queries"),
                      len(ids), staging / export.INDEX)
    _publish(staging, out)


def build_parser() -> argparse.ArgumentParser:
    """The runner's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m mtrec.retrieval.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the two-tower model and export towers and index")
    p.add_argument("--config", required=True, help="the `retrieval` config section, as JSON or YAML")
    p.add_argument("--train", required=True, help="training interactions (Parquet/CSV)")
    p.add_argument("--items", required=True, help="every candidate item with its features")
    p.add_argument("--test", help="held-out interactions for top-K accuracy and RMSE")
    p.add_argument("--out", required=True, help="retrieval directory to write")
    p.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity")
    p.set_defaults(func=_train)
    p = sub.add_parser("index", help="a BruteForce index over given embeddings")
    p.add_argument("--embeddings", required=True)
    p.add_argument("--id-column", default="item_id")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_index)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs a subcommand in this (Keras 2) process, or restarts in one."""
    from mtrec.errors import MtrecError
    from mtrec.retrieval.legacy import legacy_keras_enabled, run_legacy_module
    from mtrec.utils.framework_logs import quiet_if_asked

    argv = sys.argv[1:] if argv is None else argv
    if not legacy_keras_enabled():
        try:
            run_legacy_module("mtrec.retrieval.runner", argv)
        except MtrecError as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    args = build_parser().parse_args(argv)
    quiet_if_asked()  # started by a quiet `mtrec` command: TensorFlow's chatter stays hidden here too
    try:
        args.func(args)
    except MtrecError as err:
        print(f"mtrec retrieval: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
