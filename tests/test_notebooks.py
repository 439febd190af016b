"""Every lab notebook runs top to bottom on a real kernel and shows what its driver measured."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from nbclient import NotebookClient

import labs
from labkit.catalog import resolve
from labkit.results import held
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
    lab_ids = [labs.lab_id(p) for p in labs.packages()]
    assert lab_ids, "no labs found"
    assert [n.stem for n in NOTEBOOKS] == lab_ids


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
    assert len(images) >= len(resolve(lab_id).figures), "the notebook shows every plot of its lab inline"
    # the notebook measured through its driver, in this run, and every finding held
    result = json.loads((results / lab_id / "latest" / "result.json").read_text())
    ok, failed = held(result)
    assert ok and not failed, {f["id"]: f["measured"] for f in result["findings"] if not f["holds"]}
    assert result["versions"]["python"] == sys.version.split()[0]
    # a lab with an exercise ends with "Your turn": the check, run from the notebook
    if (REPO / "labs" / f"lab{lab_id}" / "grade.py").exists():
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "checks pass" in text or "could not grade" in text, text[-2000:]
