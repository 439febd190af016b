"""Every lab notebook runs top to bottom on a real kernel and shows what its driver measured."""

from __future__ import annotations

import sys

import nbformat
import pytest

import labs
from labkit.catalog import resolve
from labkit.results import held
from tests.conftest import REPO
from tests.notebook_runs import declare_notebook, executed_notebook

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# every notebook runs on the test board at the parameters its lab's own test asserts on
RUNS = {p.stem: declare_notebook(p.stem) for p in NOTEBOOKS}


def test_every_lab_has_a_notebook():
    lab_ids = [labs.lab_id(p) for p in labs.packages()]
    assert lab_ids, "no labs found"
    assert [n.stem for n in NOTEBOOKS] == lab_ids


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_measurements(path, test_board):
    run = test_board[RUNS[path.stem]]
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    nb = nbformat.read(executed_notebook(run), as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    lab_id = path.stem
    assert len(images) >= len(resolve(lab_id).figures), "the notebook shows every plot of its lab inline"
    # the notebook measured through its driver, in this run, and every finding held
    result = run.result
    assert result is not None, "the notebook's run wrote no result.json"
    ok, failed = held(result)
    assert ok and not failed, {f["id"]: f["measured"] for f in result["findings"] if not f["holds"]}
    assert result["versions"]["python"] == sys.version.split()[0]
    # a lab with an exercise ends with "Your turn": the check, run from the notebook
    if (REPO / "labs" / f"lab{lab_id}" / "grade.py").exists():
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "checks pass" in text and "not yet" in text and "hint:" in text, text[-2000:]
