"""Lab 02's tasks. Each records every execution itself (``labkit.taskside``): which attempt,
which broker delivery, when it ran. The backoff tasks take their retry policy from
``task_annotations`` in the run's settings, so every backoff knob is a ``--param``."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import count_execution, record_attempt

ATTEMPTS = "lab02:attempts"
EXECUTIONS = "lab02:executions"


class TransientError(Exception):
    """A failure worth retrying (a timeout, a 503...)."""


@shared_task(bind=True, name="lab02.flaky", max_retries=3, default_retry_delay=1)
def flaky(self, fail_times: int, countdown: float | None = None, with_exc: bool = True,
          max_retries: int | None = None) -> int:
    """Fail ``fail_times`` times, each time asking for a retry in ``countdown`` s; then succeed.

    ``max_retries`` (default: the task's 3) is passed to ``self.retry``, where Celery reads it.
    """
    record_attempt(self, ATTEMPTS, phase="attempt")
    if self.request.retries < fail_times:
        record_attempt(self, ATTEMPTS, phase="retry-called")
        exc = TransientError(f"attempt {self.request.retries} failed") if with_exc else None
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries)
    return self.request.retries


@shared_task(bind=True, name="lab02.wait_inside", max_retries=0)
def wait_inside(self, seconds: float, poll: float = 0.05) -> float:
    """The anti-pattern: wait for a condition by sleeping in a loop inside the task."""
    record_attempt(self, ATTEMPTS, phase="attempt")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(poll)
    return seconds


@shared_task(bind=True, name="lab02.quick")
def quick(self, i: int) -> int:
    record_attempt(self, ATTEMPTS, phase="quick")
    return i


@shared_task(bind=True, name="lab02.backoff_plain", autoretry_for=(TransientError,))
def backoff_plain(self, fail_times: int) -> int:
    """Autoretry with exponential backoff, no jitter (policy from task_annotations)."""
    return _fail_then_succeed(self, fail_times)


@shared_task(bind=True, name="lab02.backoff_jitter", autoretry_for=(TransientError,))
def backoff_jitter(self, fail_times: int) -> int:
    """Autoretry with exponential backoff and full jitter (policy from task_annotations)."""
    return _fail_then_succeed(self, fail_times)


def _fail_then_succeed(task, fail_times: int) -> int:
    record_attempt(task, ATTEMPTS, phase="attempt")
    if task.request.retries < fail_times:
        record_attempt(task, ATTEMPTS, phase="retry-called")
        raise TransientError(f"attempt {task.request.retries} failed")
    return task.request.retries


@shared_task(bind=True, name="lab02.counted")
def counted(self) -> int:
    """Counts its own executions by task id: a redelivered ETA message runs again."""
    record_attempt(self, ATTEMPTS, phase="counted")
    return count_execution(self, EXECUTIONS)


EXERCISE_ATTEMPTS = "lab02:exercise"


def payment_api(task, fail_times: int) -> str:
    """Exercise 02's flaky dependency: it records each attempt, and raises TransientError on the
    first ``fail_times`` deliveries of a task id (counted by Celery's retries), then answers."""
    record_attempt(task, EXERCISE_ATTEMPTS, phase="attempt")
    if task.request.retries < fail_times:
        record_attempt(task, EXERCISE_ATTEMPTS, phase="retry-called")
        raise TransientError(f"payment API timed out (attempt {task.request.retries})")
    return "charged"
