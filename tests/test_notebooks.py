"""Every lab notebook runs top to bottom on a real kernel and shows what its driver measured."""

from __future__ import annotations

import json
import re
import sys

import nbformat
import pytest
from nbclient import NotebookClient

import labs
from labkit.catalog import resolve
from labkit.exercise import EXERCISES_ENV
from labkit.results import held
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# The notebook tier proves a notebook runs top to bottom through its driver; what each lab finds
# at its own parameters is its e2e test's business. These labs run here at smaller legal sizes
# (set in the notebook's PARAMS cell, as a reader would), to keep `make test` in its budget.
SMALLER = {
    "01_hello_world": {"batch": 500, "sequential": 30},
    "04_acks_late": {"modes": ["early", "late_reject"], "faults": ["child_kill", "worker_kill"],
                     "tasks": 3, "task_s": 0.4},
    "07_pools": {"pools": ["prefork", "gevent"], "process_concurrency": [1, 2],
                 "green_concurrency": [1, 16], "latency": 0.04, "cpu_ms": 25, "per_slot": 2,
                 "long_s": 0.8, "shorts": 8},
}


def with_params(nb, params: dict) -> None:
    """Set the notebook's ``PARAMS = {}`` line to ``params``, as a reader edits it."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "PARAMS = {}" in cell.source:
            cell.source = re.sub(r"^PARAMS = \{\}", f"PARAMS = {params!r}", cell.source,
                                 flags=re.M)
            return
    raise AssertionError("no PARAMS = {} line in the notebook's setup cell")


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
    if path.stem in SMALLER:
        with_params(nb, SMALLER[path.stem])
    # "Your turn" grades the starter (no learner copy here): it must say not yet, with hints
    monkeypatch.setenv(EXERCISES_ENV, str(tmp_path / "no-exercises"))
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
        assert "checks pass" in text and "not yet" in text and "hint:" in text, text[-2000:]
