"""Exercise 11: urgent tasks that overtake a backlog, on one worker.

The grader starts ONE worker (one pool process) as ``WORKER`` says, fills its backlog with bulk
tasks through ``send_bulk`` (each takes a fraction of a second), and, while one of them is
running, sends a few urgent tasks through ``send_urgent``. Make the urgent tasks run before any
other backlog task: only the one already running when they were sent may finish first. Every
task must still run: the backlog goes on after them.

``WORKER``: the worker's ``queues`` (its ``-Q``), its ``prefetch_multiplier``, and ``settings``,
Celery settings as JSON (for example ``{"task_acks_late": true}`` or broker transport options);
the client that calls your senders gets the same settings. Send with ``app.send_task("lab11.job",
args, ...)`` and pass ``args`` on unchanged; choose the queue and the message options.

Any approach that uses this one worker passes. Check it: ``celery-lab check 11``.
Read first: labs/lab11_priorities/README.md (what a worker holds, and how Redis orders priorities).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.result import AsyncResult

WORKER: dict[str, Any] = {"queues": ["ex11"], "prefetch_multiplier": 4, "settings": {}}


def send_bulk(app: Celery, args: tuple) -> AsyncResult:
    return app.send_task("lab11.job", args, queue="ex11", priority=9)


def send_urgent(app: Celery, args: tuple) -> AsyncResult:
    # On RabbitMQ a higher number wins; this is Redis.
    return app.send_task("lab11.job", args, queue="ex11", priority=0)
