"""What a lab declares, and how the kit finds every lab under ``labs/``."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.errors import SetupError
from labkit.params import Param, Params

if TYPE_CHECKING:
    from labkit.runner import Outcome
    from labkit.session import LabSession

LAB_PACKAGE = re.compile(r"^lab(\d{2})_(\w+)$")


@dataclass(frozen=True)
class Lab:
    """A lab: an id like ``01_hello_world``, its parameters and the function that measures."""

    id: str
    title: str
    measure: Callable[[LabSession], None]
    params: dict[str, Param] = field(default_factory=dict)
    wall_time: str = ""  # the stated budget, e.g. "default ~25 s, --quick ~15 s"
    settings: Callable[[Params], dict[str, Any]] | None = None  # per-run Celery settings
    validate: Callable[[Params], None] | None = None  # raises SetupError before anything starts

    @property
    def number(self) -> str:
        return self.id.split("_", 1)[0]

    def celery_settings(self, params: Params) -> dict[str, Any]:
        return self.settings(params) if self.settings else {}

    def run(self, quick: bool = False, params: dict[str, Any] | None = None,
            broker: str | None = None, results: Path | None = None,
            progress: bool = True) -> Outcome:
        """What a notebook calls: the very measurement ``celery-lab run <id>`` makes."""
        from labkit.runner import run

        return run(self, quick=quick, params=params, broker=broker, results=results,
                   progress=progress)

    def main(self) -> int:
        """``python -m labs.<lab>.driver [args]`` is ``celery-lab run <id> [args]``."""
        from labkit.cli import main

        return main(["run", self.id, *sys.argv[1:]])


def lab_packages() -> list[str]:
    import labs

    return sorted(info.name for info in pkgutil.iter_modules(labs.__path__)
                  if info.ispkg and LAB_PACKAGE.match(info.name))


def load(package: str) -> Lab:
    module = importlib.import_module(f"labs.{package}.driver")
    lab: Lab = module.LAB
    expected = package[len("lab"):]
    if lab.id != expected:
        raise RuntimeError(f"labs/{package}/driver.py declares id {lab.id!r}, expected {expected!r}")
    return lab


def all_labs() -> list[Lab]:
    return [load(p) for p in lab_packages()]


def resolve(ref: str) -> Lab:
    """``01``, ``1``, ``01_hello_world`` or ``lab01_hello_world`` -> the lab."""
    ref = ref.strip().removeprefix("lab")
    packages = lab_packages()
    for package in packages:
        number, name = LAB_PACKAGE.match(package).groups()
        if ref in (number, f"{number}_{name}", name) or (ref.isdigit() and int(ref) == int(number)):
            return load(package)
    known = ", ".join(p[len("lab"):] for p in packages)
    raise SetupError(f"unknown lab {ref!r}; known labs: {known}")
