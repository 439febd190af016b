"""The numbered labs: ``labNN_name/`` with tasks.py, driver.py and a workshop README.

This module is also the one place that knows how labs are laid out on disk: the app finds
their task modules here, the kit their drivers, the tests their notebooks. It imports nothing
of the project, so any layer may use it.
"""

from __future__ import annotations

import re
from pathlib import Path

LABS_DIR = Path(__file__).resolve().parent
REPO_ROOT = LABS_DIR.parent
LAB_PACKAGE = re.compile(r"^lab(\d{2})_(\w+)$")


def packages() -> list[str]:
    """``['lab01_hello_world', ...]``: every lab folder, in number order."""
    return sorted(p.name for p in LABS_DIR.iterdir()
                  if p.is_dir() and LAB_PACKAGE.match(p.name) and (p / "__init__.py").exists())


def lab_id(package: str) -> str:
    """``lab01_hello_world`` -> ``01_hello_world`` (the id a driver declares)."""
    return package[len("lab"):]


def readme(lab_id: str) -> Path:
    """``01_hello_world`` -> its workshop walkthrough, ``labs/lab01_hello_world/README.md``."""
    return LABS_DIR / f"lab{lab_id}" / "README.md"


def task_modules() -> list[str]:
    """Every ``labs.labNN_name.tasks`` module, found on disk so a new lab needs no edit elsewhere."""
    return [f"labs.{p}.tasks" for p in packages() if (LABS_DIR / p / "tasks.py").exists()]
