"""Lab 06's tasks: each run records which worker consumed it and how it was routed."""

from __future__ import annotations

from celery import shared_task

from labkit.taskside import record_attempt

RUNS = "lab06:runs"


@shared_task(bind=True, name="lab06.process_log")
def process_log(self, level: str, line: str) -> str:
    record_attempt(self, RUNS, level=level)
    return level


@shared_task(bind=True, name="lab06.announce")
def announce(self, n: int) -> int:
    """Sent to a broadcast queue: every worker that listens runs it."""
    record_attempt(self, RUNS, n=n)
    return n


@shared_task(bind=True, name="lab06.routed")
def routed(self, n: int) -> int:
    """Has a task_routes entry; the lab overrides it per call."""
    record_attempt(self, RUNS, n=n)
    return n
