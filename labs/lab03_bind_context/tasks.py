"""Lab 03's tasks: each records ``self.request`` as it saw it (``labkit.taskside``)."""

from __future__ import annotations

import time
import uuid

from celery import shared_task

from labkit.taskside import app_store, record_attempt, store

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


# Exercise 03's building blocks: a password check, and a secret store the tasks can read from.
EXPECTED_PASSWORD = "lab03:ex:expected"  # set by the grader
VAULT = "lab03:ex:vault:"  # a reference -> a secret, read once


def check_password(task, user: str, password: str) -> bool:
    """True when ``password`` is the one the grader set for this run."""
    client, prefix = store(task)
    expected = client.get(f"{prefix}{EXPECTED_PASSWORD}")
    return bool(user) and expected is not None and password == expected.decode()


def vault_put(app, secret: str, ttl_s: int = 300) -> str:
    """Keep ``secret`` in the run's Redis for a while; returns the reference to pass instead."""
    client, prefix = app_store(app)
    ref = uuid.uuid4().hex
    client.set(f"{prefix}{VAULT}{ref}", secret, ex=ttl_s)
    return ref


def vault_take(task, ref: str) -> str | None:
    """The secret behind ``ref``, removed as it is read (None if it was never there or taken)."""
    client, prefix = store(task)
    value = client.getdel(f"{prefix}{VAULT}{ref}")
    return value.decode() if value is not None else None
