"""The exported SavedModel beside `mtrec score`: latency at batch 1 and 256, rows/s at 4,096, max difference.

    python -m benchmarks.export_serving RUN_DIR ROWS.parquet [--rows 5000]

Exports RUN_DIR (`mtrec export`, in a temporary folder), loads it with
`tf.saved_model.load` and scores the first `--rows` rows of ROWS (raw
columns, `mtrec.export.request_columns`) through `serving_default`; the
same rows go through `score_frame` (the Python encoder, then the Keras
model). Both in this process, after one warm-up call per batch size.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, latencies, machine_info, report


def main() -> None:
    import tensorflow as tf

    from mtrec.data.io import mark_missing
    from mtrec.export import export_run, request_columns
    from mtrec.scoring.score import score_frame
    from mtrec.training.trained_run import load_run

    parser = argument_parser("export_serving", __doc__)
    parser.add_argument("run_dir")
    parser.add_argument("rows")
    parser.add_argument("--rows-count", "--rows", dest="count", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=200, help="calls per latency measurement")
    args = parser.parse_args()
    run = load_run(args.run_dir)
    frame = pd.read_parquet(args.rows).iloc[:args.count].reset_index(drop=True)
    for column in run.config.data.id_columns:
        if column not in frame:
            frame[column] = ""  # e.g. the pipelines' `__split__` marker
    frame = mark_missing(frame, run.config.data.na_values)  # as `mtrec score` reads a file
    n = len(frame)
    request = {k: tf.constant(v) for k, v in request_columns(frame, run.encoder).items()}
    table, result = [], {"machine": machine_info(), "run_dir": args.run_dir, "rows": n}
    with tempfile.TemporaryDirectory() as tmp:
        summary = export_run(run, Path(tmp) / "model")
        serve = tf.saved_model.load(str(summary.out_dir)).signatures["serving_default"]
        rows = lambda idx: {k: tf.gather(v, idx) for k, v in request.items()}  # noqa: E731
        reference = score_frame(run, frame)
        got = serve(**request)
        diff = max(float(np.abs(got[c].numpy() - (np.stack(reference[c].to_numpy()) if c.endswith("_proba")
                                                  else reference[c].to_numpy())).max())
                   for c in got)
        result["export_seconds"], result["max_abs_difference"] = summary.seconds, diff
        for batch in (1, 256):
            starts = range(0, max(1, n - batch), max(1, (n - batch) // 50 or 1))
            saved = [rows(np.arange(s, s + batch) % n) for s in starts]
            frames = [frame.iloc[np.arange(s, s + batch) % n] for s in starts]
            repeats = args.repeats if batch == 1 else max(20, args.repeats // 4)
            for name, call, batches in (("SavedModel", lambda b: serve(**b), saved),
                                        ("mtrec score_frame", lambda f: score_frame(run, f), frames)):
                ms = np.array(latencies(call, batches, repeats)) * 1000
                table.append({"path": name, "batch": batch, "p50 ms": float(np.percentile(ms, 50)),
                              "p99 ms": float(np.percentile(ms, 99)), "rows/s": batch / np.median(ms) * 1000})
        big = rows(np.arange(4096) % n)
        big_frame = frame.iloc[np.arange(4096) % n]
        for name, call, arg in (("SavedModel", lambda b: serve(**b), big),
                                ("mtrec score_frame", lambda f: score_frame(run, f), big_frame)):
            seconds = np.median(latencies(call, [arg], 5))
            table.append({"path": name, "batch": 4096, "p50 ms": seconds * 1000, "p99 ms": float("nan"),
                          "rows/s": 4096 / seconds})
    result["table"] = table
    report(f"Export vs mtrec score on {n:,} rows of {args.rows} (max abs difference {diff:.2e})",
           table, result, args.out, digits=2)


if __name__ == "__main__":
    main()
