"""Exercise 11, a reference answer: one queue, priority 0 for urgent, and a worker that holds
nothing beside the task it runs (a prefetch multiplier of 1 and ``task_acks_late``: the running
task's message stays unacknowledged, so the worker fetches nothing more until it ends; the next
fetch reads priority 0's list first). The cost: a task may run twice after a crash, so it must
be idempotent (Lab 04)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.result import AsyncResult

WORKER: dict[str, Any] = {"queues": ["ex11"], "prefetch_multiplier": 1,
                          "settings": {"task_acks_late": True}}


def send_bulk(app: Celery, args: tuple) -> AsyncResult:
    return app.send_task("lab11.job", args, queue="ex11", priority=9)


def send_urgent(app: Celery, args: tuple) -> AsyncResult:
    return app.send_task("lab11.job", args, queue="ex11", priority=0)
