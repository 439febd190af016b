"""Lab 04's tasks. They count their own starts and finishes by task id (atomic HINCRBY), so
"lost" and "ran twice" are measured by the work itself, never read from logs."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import count_execution, record_attempt, store

STARTS = "lab04:starts"
FINISHES = "lab04:finishes"
RUNS = "lab04:runs"
SIDE_EFFECTS = "lab04:side_effects"
RELEASE = "lab04:release"


@shared_task(bind=True, name="lab04.work")
def work(self, seconds: float) -> int:
    """Count a start, work for ``seconds`` (sleeping in small steps), count a finish."""
    count_execution(self, STARTS)
    record_attempt(self, RUNS, phase="start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return count_execution(self, FINISHES)


@shared_task(bind=True, name="lab04.charge")
def charge(self, order: str, tail_s: float, guarded: bool) -> int:
    """A side effect (charging a card), then more work. Redelivered, it charges again, unless
    guarded by an idempotency key on the task id (SET NX: only the first run gets it)."""
    count_execution(self, STARTS)
    record_attempt(self, RUNS, phase="start", order=order)
    client, prefix = store(self)
    first = True
    if guarded:
        first = bool(client.set(f"{prefix}lab04:charged:{self.request.id}", 1, nx=True))
    if first:
        client.hincrby(f"{prefix}{SIDE_EFFECTS}", order, 1)
    time.sleep(tail_s)
    return count_execution(self, FINISHES)


@shared_task(bind=True, name="lab04.hold")
def hold(self, max_s: float = 600) -> int:
    """For the by-hand walkthrough: count a start, run until someone sets ``lab04:release``
    (or ``max_s`` passes), count a finish. A person then has all the time they need to look
    and to strike while it runs, where a fixed-length task would have ended."""
    count_execution(self, STARTS)
    record_attempt(self, RUNS, phase="start")
    client, prefix = store(self)
    deadline = time.monotonic() + max_s
    while not client.exists(f"{prefix}{RELEASE}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return count_execution(self, FINISHES)


# Exercise 04's building blocks: a payment task begins, charges a card, then writes a receipt.
CARD_CHARGES = "lab04:ex:card_charges"  # order -> how many times its card was charged


def begin(task) -> None:
    """The grader's stopwatch: this execution started (and in which process)."""
    count_execution(task, STARTS)
    record_attempt(task, RUNS, phase="start")


def charge_card(task, order: str) -> None:
    """The side effect: money moves. Each call charges the card once more."""
    client, prefix = store(task)
    client.hincrby(f"{prefix}{CARD_CHARGES}", order, 1)


def write_receipt(task, seconds: float) -> None:
    """The work after the charge (where a fault strikes), then the finish is counted."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    count_execution(task, FINISHES)
