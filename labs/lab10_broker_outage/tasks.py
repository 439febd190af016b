"""Lab 10's tasks. They record every execution in the run's record store (a second private
Redis that the lab never stops, ``LabSession.start_record_store``): the broker is the thing the
lab takes away, so evidence kept there would go with it."""

from __future__ import annotations

import time

from celery import shared_task

from labkit.taskside import count_execution, record_attempt, store

RUNS = "lab10:runs"  # one record per execution: its id, label, when it started and ended
COUNTS = "lab10:counts"  # executions per task id


@shared_task(bind=True, name="lab10.job")
def job(self, n: int, label: str = "", sleep_s: float = 0.0) -> int:
    """A unit of work that counts itself: how many ran, never ran, ran twice."""
    started = time.time()
    count_execution(self, COUNTS)
    time.sleep(sleep_s)
    record_attempt(self, RUNS, label=label, n=n, started=started, role="job")
    return n


@shared_task(bind=True, name="lab10.hold")
def hold(self, gate: str, timeout: float, label: str = "") -> str:
    """Occupies its pool slot until the driver sets ``gate`` in the record store (or ``timeout``):
    the lab knows exactly what runs, what waits prefetched and what waits in the queue."""
    started = time.time()
    count_execution(self, COUNTS)
    client, _ = store(self)
    record_attempt(self, RUNS, label=label, n=-1, started=started, role="hold", phase="started")
    while not client.exists(gate) and time.time() - started < timeout:
        time.sleep(0.01)
    released = bool(client.exists(gate))
    record_attempt(self, RUNS, label=label, n=-1, started=started, role="hold", phase="finished",
                   released=released)
    return "released" if released else "timed out"


def hold_bound_s(timeout: float) -> float:
    """A holder's own bound: far beyond the lab's waits (it is released long before), only so a
    gate never set cannot hold a pool slot for ever."""
    return 6 * timeout
