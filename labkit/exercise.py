"""Exercise mode: the learner writes the code, the lab's real workers and faults grade it.

A lab with an exercise has three files beside its driver: ``exercise.py`` (the starter the
learner copies and edits), ``solution.py`` (a reference answer) and ``grade.py``, which declares
``EXERCISE``: what to do, what to read first, a time box, hints, and ``grade(session, learner)``.
Grading is a lab run of its own (``labkit.runner``): a private Redis, real workers that import
the learner's module, and one finding per check; a hint says which concept a check is about,
never the answer.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import labs
from labkit.errors import SetupError
from labkit.lab import Lab
from labkit.params import Param

if TYPE_CHECKING:
    from labkit.runner import Outcome
    from labkit.session import LabSession

EXERCISES_ENV = "CELERY_LAB_EXERCISES"  # where learners' copies go (default: exercises/)


def exercises_dir() -> Path:
    return Path(os.environ.get(EXERCISES_ENV) or labs.REPO_ROOT / "exercises")


@dataclass(frozen=True)
class Exercise:
    lab_id: str  # the lab it belongs to, e.g. "01_hello_world"
    task: str  # one line: what to make the code do
    read_first: str  # where the concept is taught
    time_box_min: int
    grade: Callable[[LabSession, ModuleType], None]  # records one finding per check
    hints: dict[str, str] = field(default_factory=dict)  # check id -> the concept to look at
    params: dict[str, Param] = field(default_factory=dict)
    measures_speed: bool = False  # graded by throughput: never beside another grading run
    embedded_only: bool = False  # it stops or restarts its broker: refused on an external Redis

    @property
    def number(self) -> str:
        return self.lab_id.split("_", 1)[0]

    @property
    def package(self) -> str:
        return f"lab{self.lab_id}"

    @property
    def starter(self) -> Path:
        return labs.LABS_DIR / self.package / "exercise.py"

    @property
    def solution(self) -> Path:
        return labs.LABS_DIR / self.package / "solution.py"

    @property
    def workfile(self) -> Path:
        """Where ``celery-lab exercise NN`` puts the learner's copy (git-ignored)."""
        return exercises_dir() / f"{self.package}.py"

    @property
    def module_name(self) -> str:
        """The name the learner's file is imported under, in the grader and in the workers."""
        return f"learner_lab{self.number}"


def all_exercises() -> list[Exercise]:
    out = []
    for package in labs.packages():
        if (labs.LABS_DIR / package / "grade.py").exists():
            out.append(importlib.import_module(f"labs.{package}.grade").EXERCISE)
    return out


def resolve(ref: str) -> Exercise:
    from labkit import catalog

    lab = catalog.resolve(ref)
    for exercise in all_exercises():
        if exercise.lab_id == lab.id:
            return exercise
    raise SetupError(f"lab {lab.id} has no exercise yet; `celery-lab exercise list` shows them")


def start(exercise: Exercise, force: bool = False) -> Path:
    """Copy the starter to ``exercises/``; never over the learner's work unless ``force``."""
    target = exercise.workfile
    if target.exists() and not force:
        raise SetupError(f"{target} exists (your work); "
                         "add --force to start again from the starter")
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(exercise.starter, target)
    return target


def check_syntax(path: Path) -> None:
    """A setup error naming the line, before anything starts."""
    if not path.is_file():
        raise SetupError(f"no such file: {path} (start with `celery-lab exercise NN`)")
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as exc:
        raise SetupError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None


@dataclass
class Learner:
    """The learner's file, copied into the run's temp dir and importable from there."""

    path: Path
    directory: Path
    name: str
    module: ModuleType | None = None

    def worker_options(self) -> dict[str, Any]:
        """What a worker needs to import the learner's tasks: the module on its path, and
        Celery's ``imports`` setting naming it."""
        return {"settings": {"imports": [self.name]}, "env": {"PYTHONPATH": str(self.directory)}}


def load(exercise: Exercise, path: Path, tmp: Path) -> Learner:
    """Import the learner's file under ``exercise.module_name``; an error in it is a setup
    error with the line it came from."""
    directory = tmp / "learner"
    directory.mkdir(exist_ok=True)
    shutil.copyfile(path, directory / f"{exercise.module_name}.py")
    learner = Learner(path, directory, exercise.module_name)
    sys.path.insert(0, str(directory))
    try:
        sys.modules.pop(learner.name, None)
        learner.module = importlib.import_module(learner.name)
    except Exception as exc:
        frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__))
                      if f.filename.endswith(f"{learner.name}.py")), None)
        where = f"{path}:{frame.lineno}" if frame else str(path)
        raise SetupError(f"{where}: {type(exc).__name__}: {exc}") from None
    return learner


def grading_lab(exercise: Exercise, path: Path) -> Lab:
    """The grading run as a lab of its own (its results go under ``NN_name_exercise``)."""
    def measure(session: LabSession) -> None:
        learner = load(exercise, path, session.tmp)
        session.step(f"grading {path}")
        exercise.grade(session, learner)

    return Lab(id=f"{exercise.lab_id}_exercise", title=f"Exercise {exercise.number}: {exercise.task}",
               measure=measure, params=exercise.params, embedded_only=exercise.embedded_only)


def check(exercise: Exercise, path: Path, broker: str | None = None,
          results: Path | None = None) -> Outcome:
    from labkit import runner

    check_syntax(path)
    return runner.run(grading_lab(exercise, path), broker=broker, results=results, progress=False)


def verdict_lines(exercise: Exercise, outcome: Outcome) -> list[str]:
    """One line per check: passed, or not yet with its hint."""
    lines = []
    for finding in outcome.findings:
        if finding.holds:
            lines.append(f"passed   {finding.claim}")
        else:
            hint = exercise.hints.get(finding.id, "")
            lines.append(f"not yet  {finding.claim}" + (f"\n         hint: {hint}" if hint else ""))
    if outcome.error:
        lines.append(f"not yet  the grader could not finish: {outcome.error}")
    return lines
