"""Every lab notebook runs top to bottom on a real kernel and shows what its driver measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

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


# the longest first, so that the two lanes end together (Lab 07's sweep is the longest)
LONGEST_FIRST = ("07_pools", "04_acks_late")


@pytest.fixture(scope="module")
def executed(kernel_env, tmp_path_factory) -> dict[str, tuple[int, Path, Path, str]]:
    """Every notebook executed in a process of its own, two at a time (the labs' findings must
    hold on a busy machine; the walkthrough tier runs the same way), the next one started as
    soon as either lane is free: the return code, the executed notebook, its results directory
    and what it printed to stderr."""
    done: dict[str, tuple[int, Path, Path, str]] = {}
    pending = sorted(NOTEBOOKS, key=lambda p: LONGEST_FIRST.index(p.stem) if p.stem in LONGEST_FIRST
                     else len(LONGEST_FIRST))
    running: list[tuple[Path, subprocess.Popen, Path, Path, Path]] = []
    deadline = time.monotonic() + 1200
    while pending or running:
        while pending and len(running) < 2:
            path = pending.pop(0)
            work = tmp_path_factory.mktemp(path.stem)
            env = dict(os.environ, CELERY_LAB_RESULTS=str(work / "results"),
                       JUPYTER_PATH=str(kernel_env),
                       # "Your turn" grades the starter: no learner copy here
                       **{EXERCISES_ENV: str(work / "no-exercises")})
            out, err = work / path.name, work / "stderr.txt"
            argv = [sys.executable, "-m", "tests.run_notebook", str(path), str(out)]
            if path.stem in SMALLER:
                argv.append(json.dumps(SMALLER[path.stem]))
            with err.open("w") as stderr:
                proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            running.append((path, proc, out, work / "results", err))
        finished = [entry for entry in running if entry[1].poll() is not None]
        if not finished:
            if time.monotonic() > deadline:
                for entry in running:
                    entry[1].kill()
                    entry[1].wait()
                pytest.fail(f"notebooks still running after 1200 s: {[e[0].stem for e in running]}")
            time.sleep(0.2)
            continue
        for entry in finished:
            path, proc, out, results, err = entry
            running.remove(entry)
            done[path.stem] = (proc.returncode, out, results, err.read_text())
    return done


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_shows_its_measurements(path, executed):
    code, out, results, stderr = executed[path.stem]
    assert code == 0, stderr
    nb = nbformat.read(out, as_version=4)
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
