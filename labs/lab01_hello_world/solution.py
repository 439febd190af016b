"""Exercise 01, a reference answer: three ways to publish, one with a countdown (the worker
holds the message in its timer, not in a pool slot), and one deadline for all the waiting."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery


def send(app: Celery, add: Any, later_s: float) -> list[Any]:
    return [add.delay(1, 1),
            app.send_task("lab01.add", args=(2, 3)),
            add.apply_async((5, 8), countdown=later_s)]


def collect(results: list[Any], deadline_s: float) -> list[int]:
    deadline = time.monotonic() + deadline_s
    return [r.get(timeout=max(0.01, deadline - time.monotonic())) for r in results]
