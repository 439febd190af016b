"""Lab 05's tasks: what beat publishes. Each run records itself (``labkit.taskside``)."""

from __future__ import annotations

from celery import shared_task

from labkit.taskside import record_attempt

RUNS = "lab05:runs"


@shared_task(bind=True, name="lab05.tick")
def tick(self) -> str:
    """The interval schedule's task."""
    record_attempt(self, RUNS, beat=bool(self.request.get("celery_beat_task")))
    return self.request.id


@shared_task(bind=True, name="lab05.minute")
def minute(self) -> str:
    """The crontab schedule's task (every minute)."""
    record_attempt(self, RUNS, beat=bool(self.request.get("celery_beat_task")))
    return self.request.id


@shared_task(name="lab05.add")
def add(x: int, y: int) -> int:
    """Two arguments; the broken schedule entry passes three."""
    return x + y
