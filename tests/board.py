"""The heavy tier of ``make test`` on one board: every lab run, notebook, walkthrough rehearsal
and graded solution the collected test modules declare, run two at a time by one scheduler.

Why one board: each tier used to run its own pair of lanes, so every tier ended with a lane
idle, and the per-test timeout counted a whole tier's setup against its first test. Here the
lanes stay full from the first job to the last, a job that measures throughput against the
machine's spare cores (``alone``) has the machine to itself, and the whole board is bounded by
its own deadline instead (the tests that read it time only their own call: see conftest).

Two at a time is deliberate: it is the busy machine every lab's margins must survive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

LANES = 2
DEADLINE_S = 1500.0  # the whole board; each job has its own, shorter bound as well


class Job(NamedTuple):
    run: Callable[[Path], Any]  # given a work directory of its own; returns what its tests read
    expected_s: float  # about how long it runs: the longest start first, so the lanes end together
    alone: bool  # it measures against the machine's spare cores: nothing runs beside it
    quiet: bool = False  # beside one other board job only: it waits for the tests beside the board


class Failed(NamedTuple):
    error: BaseException


JOBS: dict[str, Job] = {}
DECLARED_BY: dict[str, set[str]] = {}  # job -> the test modules that need it
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def declare(key: str, run: Callable[[Path], Any], *, expected_s: float = 20.0,
            alone: bool = False, quiet: bool = False) -> str:
    """A job a test module needs, declared when the module is collected (the first declaration
    of a key wins: two modules may declare the run they share)."""
    JOBS.setdefault(key, Job(run, expected_s, alone, quiet))
    DECLARED_BY.setdefault(key, set()).add(_declaring_module())
    return key


def _declaring_module() -> str:
    """The test module whose collection declared the job (through any helper in between)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.rpartition(".")[2].startswith("test_"):
            return name
        frame = frame.f_back
    return ""


def needed(modules: set[str]) -> dict[str, Job]:
    """The jobs the selected tests' modules declared: ``pytest -k`` or one file runs only those."""
    return {key: job for key, job in JOBS.items() if DECLARED_BY[key] & modules}


def command(argv: Sequence[str], env: dict[str, str], cwd: Path, workdir: Path,
            timeout: float) -> subprocess.CompletedProcess:
    """Run ``argv`` with its output in files (a lab prints more than a pipe holds while it
    waits), killed with its process group after ``timeout`` or when the board is stopped."""
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                                start_new_session=True)
    with _children_lock:
        _children.add(proc)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        with err.open("a") as stderr:
            stderr.write(f"\n[the test board killed it after {timeout:g} s]\n")
    finally:
        with _children_lock:
            _children.discard(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(errors="replace"),
                                       err.read_text(errors="replace"))


def _kill(proc: subprocess.Popen) -> None:
    """The command and whatever it started: a lab's kit reaps its own, but not after SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


class Board:
    """What every job returned (or raised), with each job's wall time."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Any] = {}
        self.wall_s: dict[str, float] = {}
        self.total_s = 0.0

    def __getitem__(self, key: str) -> Any:
        outcome = self.outcomes[key]
        if isinstance(outcome, Failed):
            raise outcome.error
        return outcome

    def timings(self) -> str:
        rows = sorted(self.wall_s.items(), key=lambda kv: -kv[1])
        return "\n".join([f"test board: {len(rows)} jobs, {self.total_s:.0f} s wall on {LANES} lanes",
                          *(f"  {wall:6.1f} s  {key}" for key, wall in rows)])


ALONE_AFTER_ENV = "CELERY_LAB_TESTS_ALONE_AFTER"  # a file: a lone job starts once it exists


def _alone_may_start() -> bool:
    """tests/both.py names a file it creates when the tests beside the board have ended: a job
    that must run alone, or quietly, waits for it."""
    gate = os.environ.get(ALONE_AFTER_ENV)
    return not gate or os.path.exists(gate)


def play(jobs: dict[str, Job], workdir: Callable[[str], Path], lanes: int = LANES,
         deadline_s: float = DEADLINE_S, alone_last: bool = False) -> Board:
    """Every job: those that run alone one by one, first (or last, ``alone_last``: when the
    tests that run beside the board have ended), and the rest longest first, the next started as
    soon as a lane is free."""
    board = Board()
    pending = sorted(jobs, key=lambda k: (jobs[k].alone == alone_last, -jobs[k].expected_s))
    running: dict[str, threading.Thread] = {}
    began: dict[str, float] = {}
    lock = threading.Lock()
    start = time.monotonic()

    def work(key: str) -> None:
        try:
            outcome: Any = jobs[key].run(workdir(key))
        except BaseException as exc:
            outcome = Failed(exc)
        with lock:
            board.outcomes[key] = outcome
            board.wall_s[key] = time.monotonic() - began[key]

    try:
        while pending or running:
            for key in [k for k, t in running.items() if not t.is_alive()]:
                running.pop(key).join()
            alone_now = any(jobs[k].alone for k in running)
            gate_open = _alone_may_start()
            while pending and len(running) < lanes and not alone_now:
                if jobs[pending[0]].alone and (running or not gate_open):
                    break  # it waits for the lanes to empty
                # a quiet job waits for the tests beside the board; the next one may go first
                key = next((k for k in pending if gate_open or not jobs[k].quiet), None)
                if key is None or (jobs[key].alone and (running or not gate_open)):
                    break
                pending.remove(key)
                began[key] = time.monotonic()
                running[key] = threading.Thread(target=work, args=(key,), name=key, daemon=True)
                running[key].start()
                alone_now = jobs[key].alone
            if time.monotonic() - start > deadline_s:
                raise TimeoutError(f"the test board ran past {deadline_s:g} s: still running "
                                   f"{sorted(running)}, not started {pending}")
            time.sleep(0.1)
    finally:
        with _children_lock:
            left = list(_children)
        for proc in left:
            _kill(proc)
        for thread in running.values():
            thread.join(60)
    board.total_s = time.monotonic() - start
    return board
