"""Shared fixtures. Every test is checked for processes it left behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit.lab import Lab
from labkit.params import Params
from labkit.session import LabSession

REPO = Path(__file__).resolve().parent.parent
PROBE = Lab(id="00_probe", title="test probe", measure=lambda session: None)


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
    with LabSession(PROBE, Params(), tmp_path / "run", progress=False) as s:
        yield s


def cli_env(results: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CELERY_LAB_RESULTS"] = str(results)
    env.pop("CELERY_LAB_BROKER", None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env
