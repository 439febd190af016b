"""The Celery app: ``celery -A app.celery_app worker`` runs every lab's tasks.

Tasks are declared with ``@shared_task`` in ``labs/labNN_*/tasks.py``; they attach to this
app in workers and to the lab kit's client app in a driver (see ``create_app``).
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from celery import Celery

from app.config import settings_from_env

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"


def lab_task_modules() -> list[str]:
    """Every ``labs.labNN_name.tasks`` module, found on disk so a new lab needs no edit here."""
    return sorted(
        f"labs.{info.name}.tasks"
        for info in pkgutil.iter_modules([str(LABS_DIR)])
        if info.ispkg and info.name.startswith("lab") and (LABS_DIR / info.name / "tasks.py").exists()
    )


def create_app(overrides: dict[str, Any] | None = None, *, set_as_current: bool = True) -> Celery:
    """Build the lab app from the environment, then ``overrides``.

    Workers use the module-level ``app`` below; a driver builds its own client with the same
    settings it hands its workers, so one process can run several labs against several
    brokers one after another.
    """
    celery = Celery("celery_lab", include=lab_task_modules(), set_as_current=set_as_current)
    settings = settings_from_env()
    settings.update(overrides or {})
    celery.conf.update(settings)
    return celery


app = create_app()
