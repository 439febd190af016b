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


# -- the lab runs the test modules declare, run two at a time -------------------------------------

class Declared(NamedTuple):
    lab_id: str
    command: list[str]
    expected_s: float  # about how long it runs: the longest start first, so the lanes end together
    alone: bool  # it measures throughput against the machine's spare cores: nothing beside it


DECLARED: dict[str, Declared] = {}
LANES = 2  # two labs at once: the busy machine every lab's margins must survive (notebooks too)
RUN_TIMEOUT = 300.0


def declare_run(key: str, lab_id: str, *args: str, params: Sequence[str] = (),
                script: bool = False, expected_s: float = 20.0, alone: bool = False) -> str:
    """A lab run a test module needs, declared when the module is collected: the session's
    ``lab_runs`` runs every declared one, two at a time, the first time a test asks for any."""
    DECLARED[key] = Declared(lab_id, lab_command(lab_id, *args, params=params, script=script),
                             expected_s, alone)
    return key


@pytest.fixture(scope="session")
def lab_runs(tmp_path_factory) -> dict[str, LabRun]:
    """Every declared run, each in its own results directory: those that run alone first, then
    the longest first, the next started as soon as a lane is free; each bounded by RUN_TIMEOUT."""
    pending = sorted(DECLARED.items(), key=lambda item: (not item[1].alone, -item[1].expected_s))
    running: list[tuple[str, subprocess.Popen, Path, float]] = []
    done: dict[str, LabRun] = {}
    try:
        while pending or running:
            while pending and len(running) < LANES:
                alone_now = any(DECLARED[key].alone for key, *_ in running)
                if alone_now or (pending[0][1].alone and running):
                    break  # a run that measures throughput has the machine to itself
                key, declared = pending.pop(0)
                results = tmp_path_factory.mktemp(key)
                # output to files, not pipes: a lab prints more than a pipe holds while it waits
                with (results / "stdout.txt").open("w") as out, (results / "stderr.txt").open("w") as err:
                    proc = subprocess.Popen(declared.command, cwd=REPO, env=cli_env(results),
                                            stdout=out, stderr=err)
                running.append((key, proc, results, time.monotonic()))
            for entry in list(running):
                key, proc, results, began = entry
                if proc.poll() is None and time.monotonic() - began < RUN_TIMEOUT:
                    continue
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
                completed = subprocess.CompletedProcess(
                    proc.args, proc.returncode, (results / "stdout.txt").read_text(errors="replace"),
                    (results / "stderr.txt").read_text(errors="replace"))
                done[key] = read_run(results, DECLARED[key].lab_id, completed)
                running.remove(entry)
            time.sleep(0.1)
    finally:
        for _, proc, _, _ in running:
            proc.kill()
            proc.wait(timeout=30)
    return done


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
