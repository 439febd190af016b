"""Lab 13's task. It counts its own starts and finishes and its side effect by task id, so
"lost" and "ran twice" are measured by the work itself, never read from a log."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import count_execution, record_attempt, store

WORK = "lab13.work"
STARTS = "lab13:starts"
FINISHES = "lab13:finishes"
EFFECTS = "lab13:effects"  # task id -> how many times its side effect happened
RUNS = "lab13:runs"  # one record when a run starts, one when it ends
DONE = "lab13:done:"  # + task id: set by the first run of an idempotent task that applied its effect
RELEASE = "lab13:release"  # set it and every held task ends; + ":<queue>": those of one queue


@shared_task(bind=True, name=WORK)
def work(self, seconds: float, idempotent: bool = False, hold: bool = False) -> int:
    """A side effect first (a card charged, an email sent), then ``seconds`` of work (small
    sleeps). An idempotent run applies the effect only if no earlier run of its task id did
    (SET NX on a marker). ``hold`` ends early once ``lab13:release`` is set: the by-hand
    walkthrough's task, long enough to signal the worker while it runs."""
    count_execution(self, STARTS)
    record_attempt(self, RUNS, phase="start")
    client, prefix = store(self)
    if not idempotent or client.set(f"{prefix}{DONE}{self.request.id}", 1, nx=True):
        client.hincrby(f"{prefix}{EFFECTS}", self.request.id, 1)
    # a held task ends once lab13:release is set, or lab13:release:<its queue>
    queue = (self.request.delivery_info or {}).get("routing_key")
    release = (f"{prefix}{RELEASE}", f"{prefix}{RELEASE}:{queue}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if hold and client.exists(*release):
            break
        time.sleep(0.02)
    record_attempt(self, RUNS, phase="finish")
    return count_execution(self, FINISHES)
