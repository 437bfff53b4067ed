"""mtrec.data: reading and writing tables, train/valid/test splits, the synthetic generator.

- `io`: `read_table`, `read_schema`, `iter_parquet_batches`, `count_rows`,
  `write_parquet`, `ParquetBatchWriter` (Parquet and CSV, atomic writes).
- `splits`: `SplitConfig`, `Splits`, `make_splits` (random, group, time, hash),
  and `split_codes` / `GroupSplit` for splitting batch by batch.
- `synthetic`: `SyntheticConfig`, `make_synthetic` (the MMoE paper's data).
- `click_log`: `make_click_log`, `write_click_log` (a synthetic click log of any
  size as Parquet shards, for `mtrec prepare` and `benchmarks/scale.py`).
"""

from mtrec.data.io import (
    ParquetBatchWriter,
    count_rows,
    iter_parquet_batches,
    read_schema,
    read_table,
    write_parquet,
)
from mtrec.data.splits import SplitConfig, Splits, make_splits
from mtrec.data.synthetic import (
    SyntheticConfig,
    make_synthetic,
    synthetic_sine_parameters,
    synthetic_task_weights,
)

__all__ = [
    "ParquetBatchWriter",
    "SplitConfig",
    "Splits",
    "SyntheticConfig",
    "count_rows",
    "iter_parquet_batches",
    "make_splits",
    "make_synthetic",
    "read_schema",
    "read_table",
    "synthetic_sine_parameters",
    "synthetic_task_weights",
    "write_parquet",
]
