"""Benchmarks of mtrec, run from the checkout: `python -m benchmarks.NAME [--help]`.

Not part of the installed library. Each prints a Markdown table and writes
JSON under `bench_results/`; `harness` holds what they share.

Modules:
    speed             mtrec's MMoE against a hand-written Keras 3 MMoE (train and score rates)
    weighting         per-step cost of each task weighting strategy against static weights
    family            every model on the synthetic tasks, per task correlation (test R²)
    esmm              the chained ESMM tower against a naive CVR model on the synthetic funnel
    retrieval_anchor  the TFRS multitask tutorial reproduced on ML-100K (a Keras 2 process)
    scale             streamed preparation (`mtrec prepare`) against the in-memory path: rows/s, peak memory
"""

from mtrec.utils.framework_logs import quiet_framework_logs

# Before any benchmark imports TensorFlow: its start-up lines (CUDA probing, absl) are not the
# benchmark's output.
quiet_framework_logs()
