"""Lab 09's tasks: canvas members that record every execution (``labkit.taskside``), so what
ran, with which arguments, where and when, is the tasks' own evidence, not the client's."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

from labkit.taskside import record_attempt, store

RUNS = "lab09:runs"  # one record per execution of a lab09 task (errbacks included)


@shared_task(bind=True, name="lab09.add")
def add(self, x: int, y: int, label: str = "") -> int:
    """A chain link: with ``.s()`` the previous result arrives as ``x``."""
    record_attempt(self, RUNS, label=label, role="add", args_seen=[x, y])
    return x + y


@shared_task(bind=True, name="lab09.work")
def work(self, i: int, sleep_s: float, label: str = "") -> int:
    """A header or group member: sleeps, then returns ``i * i``; records when it started."""
    started = time.time()
    time.sleep(sleep_s)
    record_attempt(self, RUNS, label=label, role="member", i=i, started=started)
    return i * i


@shared_task(bind=True, name="lab09.gated")
def gated(self, i: int, gate: str, timeout: float, label: str = "") -> int:
    """A header member that ends only when the driver opens ``gate`` (a Redis key): the lab
    reads the chord's join state while the header is surely incomplete."""
    client, prefix = store(self)
    started = time.time()
    while not client.exists(f"{prefix}{gate}") and time.time() - started < timeout:
        time.sleep(0.01)
    record_attempt(self, RUNS, label=label, role="member", i=i, started=started)
    return i * i


@shared_task(bind=True, name="lab09.fail")
def fail(self, i: int, sleep_s: float = 0.0, label: str = "") -> int:
    """A member that raises after ``sleep_s``."""
    time.sleep(sleep_s)
    record_attempt(self, RUNS, label=label, role="member", i=i, failed=True)
    raise ValueError(f"member {i} of {label} failed")


@shared_task(bind=True, name="lab09.flaky", max_retries=5)
def flaky(self, i: int, fail_times: int, countdown: float, label: str = "") -> int:
    """A member that retries ``fail_times`` times before it returns ``i * i``."""
    record_attempt(self, RUNS, label=label, role="member", i=i, retries=self.request.retries)
    if self.request.retries < fail_times:
        raise self.retry(countdown=countdown)
    return i * i


@shared_task(bind=True, name="lab09.collect")
def collect(self, results: list[Any], label: str = "") -> int:
    """A chord body: records the list it was given, in the order it was given."""
    record_attempt(self, RUNS, label=label, role="body", results=results)
    return sum(r for r in results if isinstance(r, int))


@shared_task(bind=True, name="lab09.broken_body")
def broken_body(self, results: list[Any], label: str = "") -> int:
    record_attempt(self, RUNS, label=label, role="body", results=results, failed=True)
    raise ValueError(f"the body of {label} failed")


@shared_task(name="lab09.on_error")
def on_error(request: Any, exc: Any, traceback: Any, label: str = "") -> None:
    """An errback, new style (``request, exc, traceback``): Celery calls it inline, in the
    process of the task that failed. Not bound on purpose: a bound errback is taken for an old
    style one and sent as a message with the task id alone (a TypeError in the worker log)."""
    record_attempt(on_error, RUNS, label=label, role="errback", failed_id=getattr(request, "id", None),
                   exc=f"{type(exc).__name__}: {exc}", own_message=on_error.request.id is not None)


@shared_task(bind=True, name="lab09.on_error_id")
def on_error_id(self, task_id: str, label: str = "") -> None:
    """An errback, old style (the failed task's id only): sent as a message of its own."""
    record_attempt(self, RUNS, label=label, role="errback", failed_id=task_id, exc=None,
                   own_message=self.request.id is not None)


@shared_task(bind=True, name="lab09.waits_inside")
def waits_inside(self, queue: str, timeout: float, allow: bool, label: str = "") -> str:
    """The anti-pattern: send a subtask and wait for it inside this task."""
    inner = add.apply_async((1, 1), {"label": f"{label}-inner"}, queue=queue)
    began = time.time()
    try:
        value = inner.get(timeout=timeout, disable_sync_subtasks=not allow)
        outcome = f"returned {value}"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    record_attempt(self, RUNS, label=label, role="waiter", inner_id=inner.id, outcome=outcome,
                   waited_s=time.time() - began, began=began)
    return outcome


@shared_task(name="lab09.tiny")
def tiny(x: int, y: int) -> int:
    """A task too small to be worth a message of its own (chunks against a group)."""
    return x + y


# Exercise 09's building blocks: a fetch that fails for the item the grader chose, and the two
# records the grader reads (the body's total, and each failure reported).
EX_BAD = "lab09:ex:bad"  # the item whose fetch raises, set by the grader
EX_FETCH_S = "lab09:ex:fetch_s"  # how long a fetch takes, set by the grader
EX_TOTALS = "lab09:ex:totals"
EX_FAILURES = "lab09:ex:failures"


def fetch_item(task: Any, item: int) -> int:
    """``item * item``, or ValueError for the item the grader chose to fail."""
    client, prefix = store(task)
    time.sleep(float(client.get(f"{prefix}{EX_FETCH_S}") or 0))
    bad = client.get(f"{prefix}{EX_BAD}")
    if bad is not None and int(bad) == item:
        raise ValueError(f"item {item} could not be fetched")
    return item * item


def record_total(task: Any, values: list[int]) -> None:
    """What the fan-in step computed: the values it was given (the grader reads them)."""
    record_attempt(task, EX_TOTALS, values=values)


def report_failure(task: Any, item: int, error: str) -> None:
    """Report one failed item (the grader counts the reports)."""
    record_attempt(task, EX_FAILURES, item=item, error=error)
