"""Packaging: the wheel installs only `mtrec` (batch jobs as `mtrec.pipelines`, configs as package data).

The end-to-end test builds a wheel from the checkout's files, installs it
(not editable) into a fresh virtual environment and runs
`mtrec pipeline census --quick` from another folder. The fresh environment
sees the test environment's dependencies through a `.pth` line naming its
site-packages; a folder added that way does not get its own `.pth` files
processed, so the editable install of the checkout stays out of sight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_datasets

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_subpackage_of_mtrec_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mtrec").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapped == {"mtrec.pipelines": "pipelines", "mtrec.configs": "configs"}
    assert all(name == "mtrec" or name.startswith("mtrec.") for name in listed)


def _checkout_files(target: Path) -> None:
    """Copies what a fresh clone of the working tree would hold (tracked and untracked-not-ignored files)."""
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_wheel_installs_mtrec_alone_and_runs_a_pipeline_from_elsewhere(tmp_path):
    data = shared_datasets()
    if data is None or not (data / "census_income_kdd").is_dir():
        pytest.skip("census_income_kdd not found (set MTREC_DATA_DIR or add ../shared/datasets)")
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to list the files a wheel is built from")
    source, dist, venv, elsewhere = (tmp_path / d for d in ("src", "dist", "venv", "elsewhere"))
    _checkout_files(source)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("mtrec_keras-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"mtrec", wheel.name.split("-py")[0] + ".dist-info"}
    assert "mtrec/pipelines/runner.py" in names and "mtrec/configs/pipeline_census_quick.yaml" in names
    assert not [n for n in names if n.startswith(("mtrec/bench", "benchmarks/", "tests/"))]

    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed",
          str(wheel)])

    elsewhere.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    probe = _run([str(python), "-c", "\n".join([
        "import importlib.util, json, mtrec.pipelines, importlib.resources as r",
        "print(json.dumps({'mtrec': mtrec.__file__, 'pipelines': mtrec.pipelines.__file__,",
        "  'top_level': importlib.util.find_spec('pipelines') is not None,",
        "  'configs': sorted(p.name for p in r.files('mtrec.configs').iterdir())}))"])], cwd=elsewhere, env=env)
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["mtrec"].startswith(str(site)) and found["pipelines"].startswith(str(site))
    assert not found["top_level"]  # no top-level `pipelines` package
    assert "pipeline_census_quick.yaml" in found["configs"]

    out = tmp_path / "out"
    done = _run([str(venv / "bin" / "mtrec"), "pipeline", "census", "--quick", "--data-dir", str(data),
                 "--out", str(out)], cwd=elsewhere, env=env)
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"single_task", "mmoe"}
    assert "| single_task (baseline)" in done.stdout
