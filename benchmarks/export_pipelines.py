"""The export on every shipped pipeline: 5,000 test rows through the SavedModel vs `score_frame`.

    python -m benchmarks.export_pipelines [census movielens ...] [--data-dir DIR]

For each pipeline: prepare its data, train one small MMoE for one epoch
(the check is the export's fidelity, not the model's quality), export it
with `--gates`, then score the first 5,000 rows of its test split, with an
unseen value in every categorical column of row 0, missing ones in row 1
and NaN numbers in row 2, both ways. Prints the largest absolute
difference per pipeline (1e-5 is the bar). Pipelines whose data set is
absent are reported as skipped.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import argument_parser, machine_info, report

PIPELINES = ["census", "movielens", "hillstrom", "diabetes", "sp500"]
MODEL = "[{name: mmoe, model: {kind: mmoe, num_experts: 2, expert: {units: [16]}, tower_units: [8]}}]"


def check(name: str, data_dir: str | None, work: Path, rows: int = 5000) -> dict:
    import tensorflow as tf

    from mtrec.errors import DataError
    from mtrec.data.io import mark_missing
    from mtrec.export import export_run, request_columns
    from mtrec.pipelines.config import config_path, load_pipeline_config
    from mtrec.pipelines.runner import run_pipeline
    from mtrec.scoring.score import score_frame
    from mtrec.training.trained_run import load_run

    started = time.perf_counter()
    out = work / name
    config = load_pipeline_config(config_path(name), [
        f"output_dir={out}", "seeds=[1]", "baseline=mmoe", "experiment.training.epochs=1", f"models={MODEL}"])
    try:
        run_pipeline(config, ("prepare", "train"), data_dir=data_dir, progress=False, echo=None)
    except DataError as err:
        return {"pipeline": name, "skipped": str(err)[:120]}
    run = load_run(out / "runs" / "mmoe" / "seed1")
    export_run(run, out / "model", gates=True)
    frame = pd.read_parquet(out / "data" / "test.parquet").iloc[:rows].reset_index(drop=True)
    for column in run.config.data.id_columns:
        if column not in frame:
            frame[column] = "test"  # the pipelines' `__split__` marker
    categorical = [s.name for s in run.encoder.categorical_features + run.encoder.multi_categorical_features]
    frame = frame.astype({c: object for c in categorical})
    for column in categorical:
        frame.at[0, column], frame.at[1, column] = "never_seen_value", None
    for state in run.encoder.numeric_:
        frame[state.column] = frame[state.column].astype("float64")
        frame.at[2, state.column] = np.nan
    frame = mark_missing(frame, run.config.data.na_values)  # as `mtrec score` reads a file
    reference = score_frame(run, frame)
    gates = run.model.gate_weights(run.encoder.transform(frame))
    serve = tf.saved_model.load(str(out / "model")).signatures["serving_default"]
    got = serve(**{k: tf.constant(v) for k, v in request_columns(frame, run.encoder).items()})
    worst = 0.0
    for key, value in got.items():
        if key.startswith("gate_"):
            expected = gates[key[len("gate_"):]]
        else:
            column = reference[key].to_numpy()
            expected = np.stack(column) if key.endswith("_proba") else column
        worst = max(worst, float(np.abs(value.numpy() - expected).max()))
    return {"pipeline": name, "rows": len(frame), "inputs": len(serve.structured_input_signature[1]),
            "outputs": len(got), "max_abs_difference": worst, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argument_parser("export_pipelines", __doc__)
    parser.add_argument("pipelines", nargs="*", default=PIPELINES)
    parser.add_argument("--data-dir", help="data sets folder (default: $MTREC_DATA_DIR or ../shared/datasets)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = [check(name, args.data_dir, Path(tmp)) for name in args.pipelines]
    report("SavedModel vs score_frame on each pipeline's test split", table,
           {"machine": machine_info(), "table": table}, args.out, digits=6)


if __name__ == "__main__":
    main()
