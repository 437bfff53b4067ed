"""`mtrec prepare --workers N`: forked local processes write what one process writes, and die with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtrec.errors import ConfigError, DataError
from mtrec.preparation import prepare, process_engine
from tests.conftest import REPO
from tests.test_prepare import make_config, make_table, write_shards

pytestmark = pytest.mark.skipif(not process_engine.fork_available(), reason="forked workers run on Linux")


def _split(folder: Path, name: str) -> pd.DataFrame:
    manifest = json.loads((folder / "manifest.json").read_text())
    tables = [pq.read_table(folder / s["path"]).to_pandas() for s in manifest["splits"][name]["shards"]]
    return pd.concat(tables).sort_values("row").reset_index(drop=True)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_two_workers_write_what_one_process_writes(tmp_path, kind):
    frame = make_table(1800)
    if kind == "parquet":
        write_shards(frame, tmp_path / "in", 4)
    else:  # CSV has no row count: the workers count each file's rows first
        (tmp_path / "in").mkdir()
        for i, part in enumerate([frame.iloc[:700], frame.iloc[700:1100], frame.iloc[1100:]]):
            part.to_csv(tmp_path / "in" / f"part-{i}.csv", index=False)
    path = str(tmp_path / "in") if kind == "parquet" else [str(p) for p in sorted((tmp_path / "in").iterdir())]
    config = make_config(path, {"kind": "group", "column": "user"}, id_columns=["day"])
    one = prepare(config, tmp_path / "one", batch_size=200, shard_batches=2)
    two = prepare(config, tmp_path / "two", batch_size=200, shard_batches=2, workers=2)
    # The same fitted state (the partial fits merged in file order) and the same shards.
    assert (tmp_path / "two" / "features.json").read_text() == (tmp_path / "one" / "features.json").read_text()
    assert two.manifest["splits"] == one.manifest["splits"]
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(_split(tmp_path / "two", name), _split(tmp_path / "one", name))


def test_a_worker_error_reaches_the_caller_naming_the_file(tmp_path):
    frame = make_table(900)
    frame.loc[700, "click"] = 5  # not a binary label, in the third file
    write_shards(frame, tmp_path / "in", 3)
    config = make_config(str(tmp_path / "in"), {"kind": "hash"})
    with pytest.raises(DataError, match="part-2.parquet") as raised:
        prepare(config, tmp_path / "out", batch_size=200, workers=2)
    assert "click" in str(raised.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_workers_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="workers must be a positive integer. Received: 0"):
        process_engine.check_workers(0)


WORKER_SCRIPT = """
import os, sys, time
from pathlib import Path
from mtrec.preparation.process_engine import map_files

out = Path(sys.argv[1])

def work(i, start):
    (out / f"worker-{i}").write_text(str(os.getpid()))
    time.sleep(120)

list(map_files(work, [(0, 0), (1, 0)], workers=2))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited (nobody reaped it yet)


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    driver = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("worker-*"))) < 2:
            assert time.monotonic() < deadline and driver.poll() is None, "the workers did not start"
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in tmp_path.glob("worker-*")]
        assert all(_alive(pid) for pid in workers)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        driver.kill()


@pytest.mark.parametrize("kind", ["parquet", "csv.gz"])
def test_a_damaged_file_is_skipped_alike_by_workers(tmp_path, kind):
    # A file in the middle: the files after it keep their row positions (the hash split's keys).
    from tests.test_prepare import _damage

    frame = make_table(2000 if kind == "parquet" else 24000)
    if kind == "parquet":
        paths = write_shards(frame, tmp_path / "in", 4)
        _damage(paths[2], frame.iloc[1000:1500], "page-checksum")
        path = str(tmp_path / "in")
    else:
        (tmp_path / "in").mkdir()
        paths = [tmp_path / "in" / f"part-{i}.csv.gz" for i in range(4)]
        for i, target in enumerate(paths):
            frame.iloc[i * 6000:(i + 1) * 6000].to_csv(target, index=False, compression="gzip")
        paths[2].write_bytes(paths[2].read_bytes()[:len(paths[2].read_bytes()) * 6 // 10])
        path = [str(p) for p in paths]
    config = make_config(path, {"kind": "hash"}, max_malformed_fraction=0.3)
    with pytest.warns(UserWarning, match="Skipped damaged file"):
        one = prepare(config, tmp_path / "one", batch_size=200)
    with pytest.warns(UserWarning, match="Skipped damaged file"):
        two = prepare(config, tmp_path / "two", batch_size=200, workers=2)
    assert two.rows == one.rows == len(frame) * 3 // 4
    assert two.manifest["splits"] == one.manifest["splits"]
    assert two.manifest["unreadable_inputs"] == one.manifest["unreadable_inputs"]
