"""The notebooks run top to bottom (small budget) and are kept without outputs, in step with their builder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Each notebook and the figures it must display.
FIGURES = {"gates.ipynb": 6, "task_relationships.ipynb": 3, "mmoe_paper_synthetic.ipynb": 1}
NAMES = list(FIGURES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    # The kernel inherits this environment: the small budget, and run directories in tmp.
    monkeypatch.setenv("MTREC_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MTREC_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.delenv("MTREC_FIGURES_DIR", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # kernel "python3" with argv[0] "python" runs as sys.executable (jupyter_client's rule),
    # so the notebook sees this virtualenv on a fresh clone too.
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # its budget is the quick mode's; timing is not asserted (CI machines are shared)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert images == FIGURES[name], f"{name} displayed {images} figures"


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_saved_without_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebooks_match_their_builder(tmp_path):
    # build_notebooks.py is the source; a hand edit to an .ipynb would be lost on rebuild.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import build_notebooks as b; "
            "from pathlib import Path; b.build(Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(NOTEBOOKS), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    for name in NAMES:
        assert (tmp_path / name).read_text() == (NOTEBOOKS / name).read_text(), name
