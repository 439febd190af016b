"""Lab 03's tasks: each records ``self.request`` as it saw it (``labkit.taskside``)."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import record_attempt

CONTEXTS = "lab03:contexts"
PROGRESS = "lab03:progress"


@shared_task(bind=True, name="lab03.whoami")
def whoami(self, *args, label: str = "", **kwargs) -> str:
    """Record the request context; return the label so a chain can pass something along."""
    record_attempt(self, CONTEXTS, label=label)
    return label


@shared_task(bind=True, name="lab03.retrying", max_retries=5)
def retrying(self, fail_times: int, countdown: float, label: str = "") -> int:
    record_attempt(self, CONTEXTS, label=label)
    if self.request.retries < fail_times:
        raise self.retry(countdown=countdown)
    return self.request.retries


@shared_task(bind=True, name="lab03.progress")
def progress(self, steps: int, step_s: float) -> dict:
    """Report progress the way a long task should: a custom state with meta, per step."""
    for done in range(1, steps + 1):
        time.sleep(step_s)
        if done < steps:
            self.update_state(state="PROGRESS", meta={"done": done, "total": steps})
            record_attempt(self, PROGRESS, done=done)
    return {"done": steps, "total": steps}


@shared_task(bind=True, name="lab03.login")
def login(self, user: str, password: str) -> bool:
    """Takes a secret argument; the caller hides it with argsrepr/kwargsrepr."""
    return bool(user) and bool(password)
