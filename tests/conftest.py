"""Shared fixtures. Every test is checked for processes it left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest

from labkit.params import Params
from labkit.session import LabSession
from labs import REPO_ROOT as REPO
from tests import board


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


def lab_command(lab_id: str, *args: str, params: Sequence[str] = (), script: bool = False) -> list[str]:
    """``celery-lab run NN`` or, with ``script``, the lab's driver as a script."""
    number = lab_id.split("_", 1)[0]
    command = ([sys.executable, "-m", f"labs.lab{lab_id}.driver"] if script
               else [sys.executable, "-m", "labkit", "run", number])
    return [*command, *args, *(a for p in params for a in ("--param", p))]


def read_run(results: Path, lab_id: str, proc: subprocess.CompletedProcess) -> LabRun:
    latest = results / lab_id / "latest"
    result = json.loads((latest / "result.json").read_text()) if latest.exists() else None
    return LabRun(proc, result, latest)


def run_lab(results: Path, lab_id: str, *args: str, params: Sequence[str] = (),
            script: bool = False, timeout: float = 300) -> LabRun:
    """Run a lab as a user would into ``results``; returns the process and the run's result.json."""
    proc = subprocess.run(lab_command(lab_id, *args, params=params, script=script), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=cli_env(results))
    return read_run(results, lab_id, proc)


# -- the lab runs the test modules declare, on the test board (tests/board.py) -----------------

RUN_TIMEOUT = 300.0


def declare_run(key: str, lab_id: str, *args: str, params: Sequence[str] = (),
                script: bool = False, expected_s: float = 20.0, alone: bool = False) -> str:
    """A lab run a test module needs, declared when the module is collected: it runs on the
    session's test board, two at a time with the other heavy jobs."""
    argv = lab_command(lab_id, *args, params=params, script=script)

    def run(workdir: Path) -> LabRun:
        proc = board.command(argv, cli_env(workdir), REPO, workdir, RUN_TIMEOUT)
        return read_run(workdir, lab_id, proc)

    return board.declare(key, run, expected_s=expected_s, alone=alone)


@pytest.fixture(scope="session")
def test_board(request, tmp_path_factory) -> board.Board:
    """Every heavy job the selected tests that read the board declared, run once for the session
    (the first test that reads it waits; its own timeout counts only its call, the board has its
    own deadline). The jobs that must run alone go last: ``make test`` runs the tests that do not
    read the board in a second pytest process meanwhile (tests/both.py), done by then."""
    modules = {item.module.__name__ for item in request.session.items
               if item.module is not None and "test_board" in item.fixturenames}
    played = board.play(board.needed(modules),
                        lambda key: tmp_path_factory.mktemp(key.replace("/", "-")), alone_last=True)
    TIMINGS.append(played.timings())
    return played


@pytest.fixture(scope="session")
def lab_runs(test_board) -> board.Board:
    return test_board


TIMINGS: list[str] = []


def pytest_collection_modifyitems(items) -> None:
    """A test that reads the board is marked ``board`` (``-m board`` / ``-m "not board"`` split a
    run in two, as tests/both.py does), and waits for all of the board in setup: its timeout
    counts its own call only (the board is bounded by board.DEADLINE_S, each job by its own
    timeout)."""
    for item in items:
        if "test_board" in item.fixturenames:
            item.add_marker(pytest.mark.board)
            marker = item.get_closest_marker("timeout")
            seconds = marker.args[0] if marker and marker.args else 300
            item.add_marker(pytest.mark.timeout(seconds, func_only=True), append=False)


def pytest_terminal_summary(terminalreporter) -> None:
    for text in TIMINGS:
        terminalreporter.write_line(text)


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
