"""Follow a lab's walkthrough step by step, as an attendee would, and time each section.

Two substitutions keep a rehearsal private: the workshop ports (Redis 6379 and 6380, Flower 5555)
become free ones, and ``/tmp/`` becomes the rehearsal's own folder. Everything else is typed
exactly as the README prints it."""

from __future__ import annotations

import doctest
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labkit.broker import free_port
from labkit.walkthrough.parse import Step, steps
from labkit.walkthrough.terminals import StepFailed, Terminal, plain
from labs import REPO_ROOT

WORKSHOP_PORTS = (6379, 6380, 5555)  # Redis, a second Redis (Lab 10's record store), Flower
PYTHON = ("python", "python3")       # typed alone: the terminal's Python session starts
COMMAND_TIMEOUT = 60.0
WAIT_TIMEOUT = 30.0
CHECKER = doctest.OutputChecker()
CHECK_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def fresh_terminal_env() -> dict[str, str]:
    """A new terminal after ``source .venv/bin/activate``: nothing of the lab exported yet."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CELERY_", "FLOWER_", "PYTEST_", "COV_"))}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(Path(venv_bin).parent)
    env.pop("MPLBACKEND", None)
    return env


@dataclass
class Rehearsal:
    readme: Path
    sections: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0


def check_output(want: str, got: str) -> bool:
    want, got = want.strip(), plain(got).strip()
    if not want:
        return not got
    return CHECKER.check_output(want + "\n", got + "\n", CHECK_FLAGS)


def play(readme: Path, workdir: Path | None = None,
         say: Callable[[str], None] = lambda line: None) -> Rehearsal:
    """Every step of ``readme``; raises :class:`StepFailed` at the first that departs from it."""
    own = tempfile.TemporaryDirectory(prefix="walkthrough-") if workdir is None else None
    workdir = Path(own.name) if own else workdir
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    subs = {str(port): str(free_port()) for port in WORKSHOP_PORTS}
    subs["/tmp/"] = f"{tmp}/"
    text = readme.read_text()
    for old, new in subs.items():
        text = text.replace(old, new)
    private = workdir / readme.name
    private.write_text(text)
    terminals: dict[str, Terminal] = {}
    rehearsal = Rehearsal(readme)
    started = time.monotonic()
    try:
        for step in steps(private):
            term = terminals.get(step.term)
            if term is None:
                term = terminals[step.term] = Terminal(step.term, fresh_terminal_env(),
                                                       REPO_ROOT, workdir)
            t0 = time.monotonic()
            where = f"{readme.parent.name}/{readme.name} {step.where}"
            say(f"{where}: {step.kind} {step.section}")
            _do(step, term, where)
            rehearsal.sections[step.section] = (rehearsal.sections.get(step.section, 0.0)
                                                + time.monotonic() - t0)
    finally:
        for term in reversed(list(terminals.values())):
            term.stop()
        rehearsal.wall_s = time.monotonic() - started
        if own:
            own.cleanup()
    return rehearsal


def _do(step: Step, term: Terminal, where: str) -> None:
    wait = step.timeout or WAIT_TIMEOUT
    if step.kind == "console":
        deadline = time.monotonic() + (step.until or 0)
        while True:
            try:
                _console(step, term, where)
                return
            except StepFailed:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.3)             # a person looks again a moment later
    elif step.kind == "text":
        if term.running is None:
            raise StepFailed(f"{where}: nothing runs in terminal {step.term} to show this")
        term.running.wait_for(step.body, wait, where)
    elif step.kind == "pycon":
        term.session().run(step.body, where, step.lineno, step.timeout or COMMAND_TIMEOUT)
    elif step.kind == "keys":
        key = step.body.strip()
        if term.running is None:
            raise StepFailed(f"{where}: {key} in terminal {step.term}, where nothing runs")
        term.running.press(key)
        if not step.running and not term.running.exited(wait):
            raise StepFailed(f"{where}: `{term.running.line}` still runs {wait:g} s after {key}")


def _console(step: Step, term: Terminal, where: str) -> None:
    last = len(step.commands) - 1
    for index, command in enumerate(step.commands):
        if step.running and index == last:
            term.start(command.line, where).wait_for(command.want, step.timeout or WAIT_TIMEOUT,
                                                     where)
            continue
        if command.line in PYTHON:
            term.session()
            got = ""
        else:
            got = term.type(command.line, step.timeout or COMMAND_TIMEOUT, where)
        if not check_output(command.want, got):
            raise StepFailed(f"{where}: `$ {command.line}` printed\n{plain(got).rstrip()}\n"
                             f"but the README expects\n{command.want}")
