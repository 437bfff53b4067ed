"""`mtrec prepare --engine ray`: the same fitted state and encoded rows as the embedded engine."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtrec.preparation import prepare, read_prepared

ray = pytest.importorskip("ray")

from tests.test_prepare import make_config, make_table, write_shards  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _split(folder, name: str) -> pd.DataFrame:
    manifest = json.loads((folder / "manifest.json").read_text())
    tables = [pq.read_table(folder / s["path"]).to_pandas() for s in manifest["splits"][name]["shards"]]
    return pd.concat(tables).sort_values("row").reset_index(drop=True)


def test_ray_engine_writes_what_the_embedded_engine_writes(local_ray, tmp_path):
    frame = make_table(1500)
    write_shards(frame, tmp_path / "in", 3)
    config = make_config(str(tmp_path / "in"), {"kind": "group", "column": "user"}, id_columns=["day"])
    embedded = prepare(config, tmp_path / "embedded", batch_size=200, shard_batches=2)
    on_ray = prepare(config, tmp_path / "ray", batch_size=200, shard_batches=2, engine="ray")
    # The same fitted state: the partial fits merged on the driver in the same order.
    assert (tmp_path / "ray" / "features.json").read_text() == (tmp_path / "embedded" / "features.json").read_text()
    assert read_prepared(tmp_path / "ray")[1].get_config() == read_prepared(tmp_path / "embedded")[1].get_config()
    assert on_ray.manifest["splits"] == embedded.manifest["splits"]
    # The same encoded rows, compared by row key.
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(_split(tmp_path / "ray", name), _split(tmp_path / "embedded", name))
