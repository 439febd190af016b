"""Shared fixtures. Every test is checked for processes it left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest

from labkit.params import Params
from labkit.session import LabSession
from labs import REPO_ROOT as REPO


def _our_descendants() -> list[psutil.Process]:
    """Children of this pytest process that the kit could have started."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if any(word in cmd for word in ("celery", "redis-server", "flower", "labs.", "labkit")):
            out.append(p)
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    yield
    deadline = time.monotonic() + 5
    while _our_descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _our_descendants()
    for p in left:
        p.kill()
    assert not left, f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}"


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "results"
    monkeypatch.setenv("CELERY_LAB_RESULTS", str(path))
    return path


@pytest.fixture
def session(tmp_path):
    with LabSession("00_probe", Params(), tmp_path / "run", progress=False) as s:
        yield s


class LabRun(NamedTuple):
    proc: subprocess.CompletedProcess
    result: dict[str, Any] | None
    run_dir: Path


def run_lab(results: Path, lab_id: str, *args: str, params: list[str] = (),
            script: bool = False, timeout: float = 300) -> LabRun:
    """Run a lab as a user would (``celery-lab run NN`` or, with ``script``, its driver as a
    script) into ``results``; returns the process and the run's result.json."""
    number = lab_id.split("_", 1)[0]
    command = ([sys.executable, "-m", f"labs.lab{lab_id}.driver"] if script
               else [sys.executable, "-m", "labkit", "run", number])
    command += [*args, *(a for p in params for a in ("--param", p))]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=cli_env(results))
    latest = results / lab_id / "latest"
    result = json.loads((latest / "result.json").read_text()) if latest.exists() else None
    return LabRun(proc, result, latest)


def cli_env(results: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CELERY_LAB_RESULTS"] = str(results)
    env.pop("CELERY_LAB_BROKER", None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def assert_held(result: dict[str, Any] | None, expected_ids: set[str]) -> None:
    """The run made exactly these claims and each one held (named by id, so a finding that
    went missing or appeared unannounced fails as loudly as one that did not hold)."""
    from labkit.results import held

    assert result is not None, "the run wrote no result.json"
    ok, failed = held(result)
    failing = {f["id"]: f["measured"] for f in result["findings"] if not f["holds"]}
    assert not failed, failing
    assert set(ok) == expected_ids, {"missing": expected_ids - set(ok), "unexpected": set(ok) - expected_ids}
