"""Every lab notebook runs top to bottom on a real kernel and shows what its driver measured."""

from __future__ import annotations

import importlib
import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernelspec for *this* interpreter, ahead of any other on the machine."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(prefix=str(prefix), kernel_name="python3")
    return prefix / "share" / "jupyter"


def test_every_lab_has_a_notebook():
    labs = sorted(p.name[len("lab"):] for p in (REPO / "labs").glob("lab[0-9][0-9]_*") if p.is_dir())
    assert labs, "no labs found"
    assert [n.stem for n in NOTEBOOKS] == labs


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_measurements(path, kernel_env, tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("CELERY_LAB_RESULTS", str(results))
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    lab_id = path.stem
    plots = importlib.import_module(f"labs.lab{lab_id}.plots")
    assert len(images) >= len(plots.FIGURES), "the notebook shows every plot of its lab inline"
    # the notebook measured through its driver, in this run, and every finding held
    result = json.loads((results / lab_id / "latest" / "result.json").read_text())
    assert result["findings"] and all(f["holds"] for f in result["findings"])
    assert result["versions"]["python"] == sys.version.split()[0]
